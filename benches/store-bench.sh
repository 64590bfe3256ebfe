#!/usr/bin/env bash
# benches/store-bench.sh — memory store vs Redis store throughput on the two store-heavy RP
# paths, and two gateway instances sharing one Redis. Bounded runs (DURATION seconds each).
#
#  * bc-authorize: the proxy bench's request (client auth, MSISDN routing, operator call to the
#    shared harness's fixed-answer nginx backends on 127.0.0.1:9101-9103, transaction stored).
#  * token poll (1 id): one pending auth_req_id polled in a loop by every connection (client auth;
#    overlapping polls are answered slow_down by the poll gate without a store call, the rest
#    read and compare-and-set the poll bookkeeping).
#  * token poll (POLL_IDS ids, default 500): pending transactions polled in turn, as many RPs
#    poll theirs: each poll reads and writes its own transaction (answers slow_down).
#  * two instances: the same bc-authorize load split over two `mcgate serve` processes
#    (8088 and 8090) sharing the Redis.
# The gateway uses benches/bench-routing.toml plus a [store] section; Redis is a private
# redis-server on an ephemeral loopback port (never the machine's 6379), no persistence.
#
# Usage: benches/store-bench.sh                 (DURATION=10 CONNS=32 THREADS=2 BC_REPS=5)
# Needs: wrk nginx redis-server curl openssl (apt-get install wrk nginx redis-server curl).
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
SHARED=${SHARED_BENCH:-$ROOT/../shared/bench}
RUN=${RUN_DIR:-/tmp/mcgate-store-bench}
DURATION=${DURATION:-10} CONNS=${CONNS:-32} THREADS=${THREADS:-2} POLL_IDS=${POLL_IDS:-500} BC_REPS=${BC_REPS:-5}
rm -rf "$RUN"; mkdir -p "$RUN"
for t in wrk nginx redis-server curl openssl; do command -v $t >/dev/null || { echo "missing $t" >&2; exit 2; }; done

# BIN=target/debug/mcgate to skip the release build (numbers then only compare with each other).
if [[ -z ${BIN:-} ]]; then
  cargo build --release --quiet --manifest-path "$ROOT/Cargo.toml"
  BIN=$ROOT/target/release/mcgate
fi
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; }
trap cleanup EXIT

# Operator backends (the shared harness's nginx, one worker).
sed "s#__RUN__#$RUN#g; s/__WORKERS__/1/" "$SHARED/nginx-upstreams.conf" >"$RUN/nginx-upstreams.conf"
nginx -c "$RUN/nginx-upstreams.conf" -p "$RUN" & PIDS+=($!)

# A private Redis on a free loopback port.
RPORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
redis-server --port "$RPORT" --bind 127.0.0.1 --save '' --appendonly no --dir "$RUN" >"$RUN/redis.log" 2>&1 & PIDS+=($!)
for _ in $(seq 50); do [[ $(redis-cli -p "$RPORT" ping 2>/dev/null) == PONG ]] && break; sleep 0.1; done

SECRET=$(openssl rand -hex 32)
HASH=$(printf '%s' "$SECRET" | sha256sum | cut -d' ' -f1)
AUTH="Basic $(printf 'mcgate-bench-rp-0000:%s' "$SECRET" | base64 -w0)"
config() { # $1 store kind, $2 public port, $3 admin port
  sed "s/__CLIENT_SECRET_SHA256__/$HASH/; s/__LOG_LEVEL__/warn/; s/__RUNTIME__/${GATEWAY_RUNTIME:-per_core}/; \
       s/127.0.0.1:8088\"$/127.0.0.1:$2\"/; s/127.0.0.1:8089/127.0.0.1:$3/" "$ROOT/benches/bench-routing.toml"
  if [[ $1 == redis ]]; then printf '\n[store]\nkind = "redis"\nurl = "redis://127.0.0.1:%s/"\n' "$RPORT"; fi
}
start_gateway() { # $1 store, $2 port, $3 admin port
  config "$1" "$2" "$3" >"$RUN/routing-$1-$2.toml"
  "$BIN" serve --config "$RUN/routing-$1-$2.toml" >"$RUN/gw-$2.out" 2>"$RUN/gw-$2.err" & PIDS+=($!)
  for _ in $(seq 100); do curl -sf "http://127.0.0.1:$3/ready" >/dev/null && return; sleep 0.1; done
  echo "gateway on $2 not ready" >&2; cat "$RUN/gw-$2.err" >&2; exit 1
}
stop_gateways() { for p in "${PIDS[@]:2}"; do kill "$p" 2>/dev/null || true; done; sleep 0.5; PIDS=("${PIDS[@]:0:2}"); }

cat >"$RUN/bc.lua" <<LUA
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/x-www-form-urlencoded"
wrk.headers["Authorization"] = "$AUTH"
request = function()
  return wrk.format(nil, "/bc-authorize", nil, string.format("scope=openid%%20mc_authn&login_hint=MSISDN:34609%06d", math.random(0, 999999)))
end
LUA
rps() { awk '/Requests\/sec/ {print $2}' "$1"; }
bench_bc() { wrk -t"$THREADS" -c"$CONNS" -d"${DURATION}s" -s "$RUN/bc.lua" "http://127.0.0.1:$1" >"$2"; rps "$2"; }
bench_poll() { # $1 port
  local id
  id=$(curl -s -H "Authorization: $AUTH" -d 'scope=openid mc_authn' -d login_hint=MSISDN:34609000001 \
       "http://127.0.0.1:$1/bc-authorize" | sed -n 's/.*"auth_req_id":"\([^"]*\)".*/\1/p')
  cat >"$RUN/poll.lua" <<LUA
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/x-www-form-urlencoded"
wrk.headers["Authorization"] = "$AUTH"
wrk.body = "grant_type=urn:openid:params:grant-type:ciba&auth_req_id=$id"
LUA
  wrk -t"$THREADS" -c"$CONNS" -d"${DURATION}s" -s "$RUN/poll.lua" "http://127.0.0.1:$1/token" >"$2"; rps "$2"
}

# Many pending transactions polled in turn (as many RPs poll theirs): each poll reads and writes
# its own transaction (answers slow_down: every id is polled again within its interval).
bench_poll_many() { # $1 port
  local n
  : >"$RUN/poll-ids.txt"
  for n in $(seq "$POLL_IDS"); do
    curl -s -H "Authorization: $AUTH" -d 'scope=openid mc_authn' -d "login_hint=MSISDN:34609$(printf %06d "$n")" \
         "http://127.0.0.1:$1/bc-authorize" | sed -n 's/.*"auth_req_id":"\([^"]*\)".*/\1/p' >>"$RUN/poll-ids.txt"
  done
  BENCH_AUTHORIZATION=$AUTH wrk -t"$THREADS" -c"$CONNS" -d"${DURATION}s" -s "$ROOT/benches/poll-many.lua" \
    "http://127.0.0.1:$1/token" -- "$RUN/poll-ids.txt" >"$2"; rps "$2"
}

median() { tr ' ' '\n' | grep . | sort -g | awk '{v[NR] = $1} END {print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2}'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN {printf "%.2f", a / b}'; }
declare -A R
# bc-authorize: both gateways up, BC_REPS pairs of runs alternating which store goes first (the
# host's speed drifts within minutes; a pair run back to back compares like with like).
start_gateway memory 8088 8089
start_gateway redis 8090 8091
mem_runs='' redis_runs='' pair_ratios=''
for r in $(seq "$BC_REPS"); do
  if ((r % 2)); then
    m=$(bench_bc 8088 "$RUN/wrk-memory-bc-$r.txt"); x=$(bench_bc 8090 "$RUN/wrk-redis-bc-$r.txt")
  else
    x=$(bench_bc 8090 "$RUN/wrk-redis-bc-$r.txt"); m=$(bench_bc 8088 "$RUN/wrk-memory-bc-$r.txt")
  fi
  mem_runs="$mem_runs $m" redis_runs="$redis_runs $x" pair_ratios="$pair_ratios $(ratio "$x" "$m")"
done
R[memory-bc]=$(echo "$mem_runs" | median) R[redis-bc]=$(echo "$redis_runs" | median)
R[bc-ratio]=$(echo "$pair_ratios" | median)
stop_gateways
for store in memory redis; do
  start_gateway $store 8088 8089
  R[$store-poll]=$(bench_poll 8088 "$RUN/wrk-$store-poll.txt")
  R[$store-pollmany]=$(bench_poll_many 8088 "$RUN/wrk-$store-pollmany.txt")
  stop_gateways
done
# Two instances sharing Redis: half the connections each, at the same time.
start_gateway redis 8088 8089
start_gateway redis 8090 8091
CONNS=$((CONNS / 2)) bench_bc 8088 "$RUN/wrk-two-a.txt" >"$RUN/two-a" & A=$!
CONNS=$((CONNS / 2)) bench_bc 8090 "$RUN/wrk-two-b.txt" >"$RUN/two-b" & B=$!
wait "$A" "$B"
R[two-bc]=$(awk '{s+=$1} END {printf "%.2f", s}' "$RUN/two-a" "$RUN/two-b")
stop_gateways
errors=$(cat "$RUN"/wrk-*.txt | awk '/Non-2xx/ {s+=$NF} END {print s+0}')

printf '\n%-36s %12s\n' case req/s
printf '%-36s %12s\n' "bc-authorize, memory" "${R[memory-bc]}" "bc-authorize, redis" "${R[redis-bc]}" \
  "bc-authorize, 2 instances + redis" "${R[two-bc]}" "token poll (1 id), memory" "${R[memory-poll]}" \
  "token poll (1 id), redis" "${R[redis-poll]}" "token poll ($POLL_IDS ids), memory" "${R[memory-pollmany]}" \
  "token poll ($POLL_IDS ids), redis" "${R[redis-pollmany]}"
echo "bc-authorize runs (req/s), memory:$mem_runs; redis:$redis_runs; redis/memory per pair:$pair_ratios"
echo "ratios: bc-authorize redis/memory = ${R[bc-ratio]} (median of $BC_REPS pairs), token poll (1 id) redis/memory = $(ratio "${R[redis-poll]}" "${R[memory-poll]}"), token poll ($POLL_IDS ids) redis/memory = $(ratio "${R[redis-pollmany]}" "${R[memory-pollmany]}"), 2 instances/1 (redis) = $(ratio "${R[two-bc]}" "${R[redis-bc]}")"
echo "non-2xx answers (token poll answers 400 slow_down by design): $errors; raw wrk output in $RUN"
