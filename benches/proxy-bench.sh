#!/usr/bin/env bash
# benches/proxy-bench.sh — the gateway's bc-authorize path under the shared nginx/HAProxy
# baseline harness (../shared/bench/proxy-baseline.sh), same load, same three backends.
#
# What is adapted, and why:
#  * The gateway authenticates relying parties, so every request carries
#    BENCH_AUTHORIZATION (HTTP Basic for the client "mcgate-bench-rp-0000"), and the wrk script is
#    copied with the body's client_id fixed to that client (the original varies it per request:
#    "mcgate-bench-rp-%04d" → "mcgate-bench-rp-0000"; same body length, nginx ignores the body).
#  * The gateway runs `serve` with benches/bench-routing.toml: plain HTTP on 127.0.0.1:8088, the
#    harness's prefix table, the three operators pinned to the harness backends
#    (127.0.0.1:9101-9103, whose fixed JSON is a valid CIBA acknowledgement: auth_req_id,
#    expires_in, interval), and binding_message_max_chars raised to 400 (the load pads the body
#    with a ~100-character binding_message; the production default is 64).
#  * The harness's routing check reads an "operator" field that a CIBA acknowledgement does not
#    have, so it only warns for the gateway; routing is checked here instead, through the
#    gateway's own mcgate_transactions_started_total{operator} counters after a probe request.
# Every gateway request does the full work: client auth, parameter validation, MSISDN parse,
# ported+prefix lookup, operator call over the keep-alive pool, transaction stored, JSON answer.
#
# Usage: benches/proxy-bench.sh            (CASES="nginx gateway" REPS=5 by default)
#        CASES="nginx haproxy gateway" LAYOUTS=pinned REPS=3 benches/proxy-bench.sh
# Needs: wrk nginx haproxy curl openssl taskset (apt-get install wrk nginx haproxy curl).
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
SHARED=${SHARED_BENCH:-$ROOT/../shared/bench}
RUN=${RUN_DIR:-/tmp/mcgate-proxy-bench}
mkdir -p "$RUN"
[[ -x $SHARED/proxy-baseline.sh ]] || [[ -f $SHARED/proxy-baseline.sh ]] || { echo "no harness at $SHARED" >&2; exit 2; }

cargo build --release --quiet --manifest-path "$ROOT/Cargo.toml"
BIN=$ROOT/target/release/mcgate

# A private copy of the harness with the fixed client id.
rm -rf "$RUN/harness"; cp -r "$SHARED" "$RUN/harness"; chmod -R u+w "$RUN/harness"
sed -i 's/i % 10000, rand(2147483647)/0, rand(2147483647)/' "$RUN/harness/post-msisdn.lua"
grep -q '0, rand(2147483647), i, rand' "$RUN/harness/post-msisdn.lua" || { echo "could not adapt post-msisdn.lua" >&2; exit 2; }

SECRET=$(openssl rand -hex 32)
HASH=$(printf '%s' "$SECRET" | sha256sum | cut -d' ' -f1)
sed "s/__CLIENT_SECRET_SHA256__/$HASH/; s/__LOG_LEVEL__/${GATEWAY_LOG:-info}/; s/__RUNTIME__/${GATEWAY_RUNTIME:-per_core}/" \
  "$ROOT/benches/bench-routing.toml" >"$RUN/bench-routing.toml"
"$BIN" check-config "$RUN/bench-routing.toml" >/dev/null

# Routing check (before the harness starts its backends, so each operator call is refused and
# counted under that operator): the harness's nine check numbers, nested prefixes included.
"$BIN" serve --config "$RUN/bench-routing.toml" >"$RUN/probe.out" 2>/dev/null &
PROBE=$!
trap 'kill $PROBE 2>/dev/null || true' EXIT
for _ in $(seq 50); do grep -q ready "$RUN/probe.out" 2>/dev/null && break; sleep 0.1; done
bad=0
for item in 34600234567:vodafone 34600123456:orange 34609123456:movistar 34609512345:orange \
  34667234567:vodafone 34667123456:movistar 34711234567:vodafone 34721234567:movistar 34653123456:orange; do
  num=${item%%:*}; want=${item##*:}
  before=$(curl -s http://127.0.0.1:8089/metrics | awk -v w="$want" '$1 ~ "mcgate_operator_errors_total" && $1 ~ "operator=\""w"\"" && $1 ~ "kind=\"connect\"" {print $2}')
  curl -s -o /dev/null -u "mcgate-bench-rp-0000:$SECRET" -d "scope=openid&login_hint=MSISDN:$num" http://127.0.0.1:8088/bc-authorize
  after=$(curl -s http://127.0.0.1:8089/metrics | awk -v w="$want" '$1 ~ "mcgate_operator_errors_total" && $1 ~ "operator=\""w"\"" && $1 ~ "kind=\"connect\"" {print $2}')
  if [[ $after != $((before + 1)) ]]; then echo "routing: $num did not reach $want" >&2; bad=1; fi
done
kill $PROBE; wait $PROBE 2>/dev/null || true; trap - EXIT
((bad == 0)) || exit 1
echo "routing check ok (gateway, 9 numbers)"

export BENCH_AUTHORIZATION="Basic $(printf 'mcgate-bench-rp-0000:%s' "$SECRET" | base64 -w0)"
export CASES=${CASES:-nginx gateway} REPS=${REPS:-5}
export GATEWAY_NAME=${GATEWAY_NAME:-mcgate}
export GATEWAY_CMD="exec $BIN serve --config $RUN/bench-routing.toml 2>$RUN/gateway-stderr.log"
export RUN_DIR=$RUN/results
cd "$RUN/harness"
bash ./proxy-baseline.sh http://127.0.0.1:8088/bc-authorize
