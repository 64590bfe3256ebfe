#!/usr/bin/env bash
# benches/instructions.sh — user-space instructions per request, counted by callgrind.
# Instruction counts do not depend on what else the (noisy, shared) VM is doing, so this is the
# A/B tool for hot-path changes; wall-clock ratios still come from benches/proxy-bench.sh.
# Starts the harness's three nginx backends, the gateway under valgrind (instrumentation off),
# warms up, counts instructions over a fixed wrk load, and prints Ir/request.
# Usage: benches/instructions.sh [connections]     (default 8; needs valgrind nginx wrk)
#        PROFILE=perf-ab benches/instructions.sh   (fast A/B builds; compare like with like)
#        CASE=poll      the token poll of store-bench.sh (one pending auth_req_id polled in a
#                       loop) instead of bc-authorize
#        CASE=pollmany  store-bench.sh's token poll over POLL_IDS (default 500) pending
#                       transactions polled in turn: every poll reads and writes its own one
#        STORE=redis    a private redis-server on an ephemeral loopback port as the [store]; also
#                       prints Redis commands per request (INFO commandstats over the counted run);
#                       STORE_CONF='connections = 1' adds lines to that [store] section
#        COUNT=strace   run the gateway natively and count its syscalls per request
#                       (`strace -c -f`) instead of instructions
#        COUNT=rps      run the gateway natively and print wrk's req/s (wall clock: only for a
#                       rough A/B on a quiet machine) and the CPU time per request of the
#                       gateway (user, sys; minor page faults, RSS growth and context switches
#                       per request) and redis-server; PERF=1 also samples the gateway with
#                       `perf record -g` into $RUN/perf.data
#        TARGET=nginx   with COUNT=rps: the harness's nginx reverse proxy (one worker, the same
#                       load and backends) instead of the gateway: what nginx spends per request
#                       in user space and in the kernel, beside the gateway's figures
#        BUILD=0        skip `cargo build` (use the existing binary, or BIN=path)
#        PORT_OFFSET=N  add N to every port (gateway 8088/8089, backends 9101-9103): runs beside
#                       another bench on the same machine
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
SHARED=${SHARED_BENCH:-$ROOT/../shared/bench}
RUN=${RUN_DIR:-/tmp/mcgate-instructions}
C=${1:-8}
CASE=${CASE:-bc} STORE=${STORE:-memory} COUNT=${COUNT:-callgrind}
mkdir -p "$RUN/logs"
PROFILE=${PROFILE:-release}
[[ ${BUILD:-1} == 0 ]] || cargo build --profile "$PROFILE" --quiet --manifest-path "$ROOT/Cargo.toml"
BIN=${BIN:-$ROOT/target/$PROFILE/mcgate}
PIDS=()
trap 'for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done' EXIT
OFF=${PORT_OFFSET:-0}
ports=(-e "s/:8088\b/:$((8088 + OFF))/g" -e "s/:8089\b/:$((8089 + OFF))/g" -e "s/:9101\b/:$((9101 + OFF))/g"
  -e "s/:9102\b/:$((9102 + OFF))/g" -e "s/:9103\b/:$((9103 + OFF))/g")
GWURL=http://127.0.0.1:$((8088 + OFF)) ADMIN=127.0.0.1:$((8089 + OFF))
sed -e "s|__RUN__|$RUN|g" -e "s|__WORKERS__|1|g" "${ports[@]}" "$SHARED/nginx-upstreams.conf" >"$RUN/nginx-upstreams.conf"
cp "$SHARED/post-msisdn.lua" "$SHARED/msisdn-prefixes.txt" "$RUN/"
sed -i 's/i % 10000, rand(2147483647)/0, rand(2147483647)/' "$RUN/post-msisdn.lua"
SECRET=$(openssl rand -hex 32)
sed -e "s/__CLIENT_SECRET_SHA256__/$(printf '%s' "$SECRET" | sha256sum | cut -d' ' -f1)/" \
  -e "s/__LOG_LEVEL__/${GATEWAY_LOG:-info}/" -e "s/__RUNTIME__/per_core/" "${ports[@]}" \
  "$ROOT/benches/bench-routing.toml" >"$RUN/bench-routing.toml"
if [[ $STORE == redis ]]; then
  RPORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
  redis-server --port "$RPORT" --bind 127.0.0.1 --save '' --appendonly no --dir "$RUN" >"$RUN/logs/redis.log" 2>&1 &
  PIDS+=($!)
  for _ in $(seq 50); do [[ $(redis-cli -p "$RPORT" ping 2>/dev/null) == PONG ]] && break; sleep 0.1; done
  printf '\n[store]\nkind = "redis"\nurl = "redis://127.0.0.1:%s/"\n%b\n' "$RPORT" "${STORE_CONF:-}" >>"$RUN/bench-routing.toml"
fi
nginx -p "$RUN" -c "$RUN/nginx-upstreams.conf" &
PIDS+=($!)
if [[ ${TARGET:-gateway} == nginx ]]; then
  [[ $COUNT == rps && $STORE == memory && $OFF == 0 ]] || { echo "TARGET=nginx needs COUNT=rps, no STORE, no PORT_OFFSET" >&2; exit 2; }
  mkdir -p "$RUN/tls" "$RUN/proxy-body" "$RUN/proxy-temp"
  [[ -s $RUN/tls/cert.pem ]] || openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 30 \
    -subj /CN=localhost -keyout "$RUN/tls/key.pem" -out "$RUN/tls/cert.pem" >/dev/null 2>&1
  grep -Ev '^\s*(#|$)' "$SHARED/msisdn-prefixes.txt" | awk '{ print length($1), $1, $2 }' | sort -k1,1nr -k2,2 |
    awk '{ printf "\"~^%s\" %s;\n", $2, $3 }' >"$RUN/nginx-msisdn-map.conf"
  sed -e "s|__RUN__|$RUN|g" -e "s|__WORKERS__|1|g" "$SHARED/nginx-proxy.conf" >"$RUN/nginx-proxy.conf"
  nginx -p "$RUN" -c "$RUN/nginx-proxy.conf" &
  PIDS+=($!)
  for _ in $(seq 50); do GW=$(pgrep -P "${PIDS[-1]}" | head -1) && [[ -n $GW ]] && break; sleep 0.1; done
  for _ in $(seq 50); do curl -s -o /dev/null http://127.0.0.1:8080/ && break; sleep 0.1; done
  GWURL=http://127.0.0.1:8080
elif [[ $COUNT == strace || $COUNT == rps ]]; then
  "$BIN" serve --config "$RUN/bench-routing.toml" >/dev/null 2>"$RUN/logs/gateway.log" &
else
  valgrind --tool=callgrind --instr-atstart=no --callgrind-out-file="$RUN/callgrind.out.%p" \
    "$BIN" serve --config "$RUN/bench-routing.toml" >/dev/null 2>"$RUN/logs/gateway.log" &
fi
if [[ ${TARGET:-gateway} != nginx ]]; then
  GW=$!
  PIDS+=($GW)
  for _ in $(seq 150); do curl -sf -o /dev/null $ADMIN/ready && break; sleep 0.2; done
fi
AUTH="Basic $(printf 'mcgate-bench-rp-0000:%s' "$SECRET" | base64 -w0)"
export BENCH_AUTHORIZATION=$AUTH
cd "$RUN"
if [[ $CASE == poll ]]; then
  id=$(curl -s -H "Authorization: $AUTH" -d 'scope=openid mc_authn' -d login_hint=MSISDN:34609000001 \
    $GWURL/bc-authorize | sed -n 's/.*"auth_req_id":"\([^"]*\)".*/\1/p')
  [[ -n $id ]] || { echo "no auth_req_id" >&2; exit 1; }
  cat >poll.lua <<LUA
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/x-www-form-urlencoded"
wrk.headers["Authorization"] = "$AUTH"
wrk.body = "grant_type=urn:openid:params:grant-type:ciba&auth_req_id=$id"
LUA
  load() { wrk -t1 -c"$C" -d"$1" -s poll.lua $GWURL/token; }
elif [[ $CASE == pollmany ]]; then
  : >poll-ids.txt
  for n in $(seq "${POLL_IDS:-500}"); do
    curl -s -H "Authorization: $AUTH" -d 'scope=openid mc_authn' -d "login_hint=MSISDN:34609$(printf %06d "$n")" \
      $GWURL/bc-authorize | sed -n 's/.*"auth_req_id":"\([^"]*\)".*/\1/p' >>poll-ids.txt
  done
  [[ -s poll-ids.txt ]] || { echo "no auth_req_id" >&2; exit 1; }
  load() { wrk -t1 -c"$C" -d"$1" -s "$ROOT/benches/poll-many.lua" $GWURL/token -- "$RUN/poll-ids.txt"; }
else
  load() { wrk -t1 -c"$C" -d"$1" -s post-msisdn.lua $GWURL/bc-authorize -- msisdn-prefixes.txt form; }
fi
load 2s >/dev/null
rcpu() { redis-cli -p "$RPORT" info cpu | tr -d '\r' | awk -F: '/^used_cpu_(sys|user):/ {s += $2} END {print s}'; }
if [[ $STORE == redis ]]; then redis-cli -p "$RPORT" config resetstat >/dev/null; CPU0=$(rcpu); fi
if [[ $COUNT == strace ]]; then
  strace -c -f -q -o "$RUN/strace.txt" -p "$GW" & ST=$!
  sleep 1
  out=$(load 4s)
  kill -INT $ST; wait $ST 2>/dev/null || true
elif [[ $COUNT == rps ]]; then
  # CPU (user+sys, clock ticks) of the gateway and of redis-server over the run.
  utime() { awk '{print $14}' "/proc/$1/stat"; }
  stime() { awk '{print $15}' "/proc/$1/stat"; }
  minflt() { awk '{print $10}' "/proc/$1/stat"; }
  rss() { awk '/^VmRSS:/ {print $2 * 1024}' "/proc/$1/status"; }
  csw() { cat /proc/"$1"/task/*/status | awk '/^(non)?voluntary_ctxt_switches:/ {s += $2} END {print s}'; }
  GU0=$(utime $GW) GS0=$(stime $GW) GF0=$(minflt $GW) GM0=$(rss $GW) GC0=$(csw $GW); [[ $STORE != redis ]] || R0=$(($(utime "${PIDS[0]}") + $(stime "${PIDS[0]}")))
  [[ -z ${PERF:-} ]] || { perf record -q -F 499 --call-graph dwarf,16384 -o "$RUN/perf.data" -p $GW 2>/dev/null & PF=$!; }
  out=$(load "${DURATION:-5}s")
  [[ -z ${PERF:-} ]] || { kill -INT $PF; wait $PF 2>/dev/null || true; }
  GU1=$(utime $GW) GS1=$(stime $GW) GF1=$(minflt $GW) GM1=$(rss $GW) GC1=$(csw $GW); [[ $STORE != redis ]] || R1=$(($(utime "${PIDS[0]}") + $(stime "${PIDS[0]}")))
else
  callgrind_control -i on $GW >/dev/null
  out=$(load 5s)
  callgrind_control -i off $GW >/dev/null
  callgrind_control -d $GW >/dev/null
  sleep 1
fi
reqs=$(echo "$out" | awk '/requests in/ {print $1}')
non2xx=$(echo "$out" | awk '/Non-2xx/ {print $5}')
if [[ $COUNT == rps ]]; then
  tick=$(getconf CLK_TCK)
  us() { awk -v t="$1" -v k="$tick" -v n="$reqs" 'BEGIN {printf "%.1f", t * 1e6 / k / n}'; }
  per() { awk -v x="$1" -v n="$reqs" -v f="$2" 'BEGIN {printf f, x / n}'; } # $1 per request, format $2
  cpu="${TARGET:-gateway} user $(us $((GU1 - GU0))) us + sys $(us $((GS1 - GS0))) us"
  cpu="$cpu ($(per $((GF1 - GF0)) %.3f) page faults, RSS +$(per $((GM1 - GM0)) %.0f) bytes,"
  cpu="$cpu $(per $((GC1 - GC0)) %.2f) context switches)"
  [[ $STORE != redis ]] || cpu="$cpu, redis-server $(us $((R1 - R0))) us"
  echo "case=$CASE store=$STORE requests=$reqs non2xx=${non2xx:-0} req/s=$(echo "$out" | awk '/Requests\/sec/ {print $2}') CPU/request: $cpu"
elif [[ $COUNT == strace ]]; then
  echo "requests=$reqs non2xx=${non2xx:-0} syscalls per request ($RUN/strace.txt):"
  awk -v n="$reqs" '$1 ~ /^[0-9.]+$/ && NF >= 5 {printf "  %-16s %6.2f\n", $NF, $4 / n}' "$RUN/strace.txt" | sort -k2 -nr | head -12
else
  dump=$(ls -t "$RUN"/callgrind.out.$GW.* | head -1)
  ir=$(callgrind_annotate "$dump" 2>/dev/null | awk '/PROGRAM TOTALS/ {gsub(",", "", $1); print $1}')
  echo "case=$CASE store=$STORE requests=$reqs non2xx=${non2xx:-0} Ir/request=$((ir / reqs)) (profile: callgrind_annotate --inclusive=yes $dump)"
fi
if [[ $STORE == redis ]]; then
  echo "redis commands per request (calls/request, usec_per_call):"
  redis-cli -p "$RPORT" info commandstats | tr -d '\r' | awk -F'[:=,]' -v n="$reqs" \
    '/^cmdstat_/ && $1 != "cmdstat_config" {sub("cmdstat_", "", $1); printf "  %-10s %5.2f  %6.2f us\n", $1, $3 / n, $7}'
  awk -v a="$CPU0" -v b="$(rcpu)" -v n="$reqs" 'BEGIN {printf "  redis-server CPU (user+sys) per request: %.1f us\n", (b - a) * 1e6 / n}'
  redis-cli -p "$RPORT" info stats | tr -d '\r' | awk -F: -v n="$reqs" \
    '/^total_(reads|writes)_processed:/ {printf "  redis-server %s per request: %.2f\n", $1, $2 / n}'
fi
