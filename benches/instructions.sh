#!/usr/bin/env bash
# benches/instructions.sh — user-space instructions per bc-authorize, counted by callgrind.
# Instruction counts do not depend on what else the (noisy, shared) VM is doing, so this is the
# A/B tool for hot-path changes; wall-clock ratios still come from benches/proxy-bench.sh.
# Starts the harness's three nginx backends, the gateway under valgrind (instrumentation off),
# warms up, counts instructions over a fixed wrk load, and prints Ir/request.
# Usage: benches/instructions.sh [connections]     (default 8; needs valgrind nginx wrk)
#        PROFILE=perf-ab benches/instructions.sh   (fast A/B builds; compare like with like)
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
SHARED=${SHARED_BENCH:-$ROOT/../shared/bench}
RUN=${RUN_DIR:-/tmp/mcgate-instructions}
C=${1:-8}
mkdir -p "$RUN/logs"
PROFILE=${PROFILE:-release}
cargo build --profile "$PROFILE" --quiet --manifest-path "$ROOT/Cargo.toml"
BIN=$ROOT/target/$PROFILE/mcgate
sed -e "s|__RUN__|$RUN|g" -e "s|__WORKERS__|1|g" "$SHARED/nginx-upstreams.conf" >"$RUN/nginx-upstreams.conf"
cp "$SHARED/post-msisdn.lua" "$SHARED/msisdn-prefixes.txt" "$RUN/"
sed -i 's/i % 10000, rand(2147483647)/0, rand(2147483647)/' "$RUN/post-msisdn.lua"
SECRET=$(openssl rand -hex 32)
sed -e "s/__CLIENT_SECRET_SHA256__/$(printf '%s' "$SECRET" | sha256sum | cut -d' ' -f1)/" \
  -e "s/__LOG_LEVEL__/${GATEWAY_LOG:-info}/" -e "s/__RUNTIME__/per_core/" \
  "$ROOT/benches/bench-routing.toml" >"$RUN/bench-routing.toml"
nginx -p "$RUN" -c "$RUN/nginx-upstreams.conf" &
NG=$!
valgrind --tool=callgrind --instr-atstart=no --callgrind-out-file="$RUN/callgrind.out.%p" \
  "$BIN" serve --config "$RUN/bench-routing.toml" >/dev/null 2>"$RUN/logs/gateway.log" &
GW=$!
trap 'kill $GW $NG 2>/dev/null || true' EXIT
for _ in $(seq 150); do curl -s -o /dev/null 127.0.0.1:8089/live && break; sleep 0.2; done
export BENCH_AUTHORIZATION="Basic $(printf 'mcgate-bench-rp-0000:%s' "$SECRET" | base64 -w0)"
cd "$RUN"
wrk -t1 -c"$C" -d2s -s post-msisdn.lua http://127.0.0.1:8088/bc-authorize -- msisdn-prefixes.txt form >/dev/null
callgrind_control -i on $GW >/dev/null
out=$(wrk -t1 -c"$C" -d5s -s post-msisdn.lua http://127.0.0.1:8088/bc-authorize -- msisdn-prefixes.txt form)
callgrind_control -i off $GW >/dev/null
callgrind_control -d $GW >/dev/null
sleep 1
reqs=$(echo "$out" | awk '/requests in/ {print $1}')
non2xx=$(echo "$out" | awk '/Non-2xx/ {print $5}')
dump=$(ls -t "$RUN"/callgrind.out.$GW.* | head -1)
ir=$(callgrind_annotate "$dump" 2>/dev/null | awk '/PROGRAM TOTALS/ {gsub(",", "", $1); print $1}')
echo "requests=$reqs non2xx=${non2xx:-0} Ir/request=$((ir / reqs)) (profile: callgrind_annotate --inclusive=yes $dump)"
