#!/bin/sh
# demo.sh: the Quick start's first command. Installs what is missing, builds, starts
# ksv-engine with the demo models of data/ on 127.0.0.1, sends a sample V2 request and
# prints the answer, then keeps serving until Ctrl-C (--once: stop after the request).
set -eu
top=$(cd "$(dirname "$0")/.." && pwd)
. "$top/scripts/deps.sh"
ksv_install_deps
ksv_build "$top/build"

state=$(mktemp -d /tmp/ksv-demo.XXXXXX)
"$top/build/src/ksv-engine" --listen 127.0.0.1:0 --state-dir "$state" \
    --model-dir "$top/data/models" --log-level warn &
pid=$!
trap 'kill $pid 2>/dev/null; wait $pid 2>/dev/null; rm -rf "$state"' EXIT INT TERM
i=0
until [ -s "$state/address" ] && curl -sf "http://$(cat "$state/address")/v2/health/ready" >/dev/null; do
    i=$((i + 1)); [ $i -lt 200 ] || { echo "ksv-engine did not become ready" >&2; exit 1; }
    sleep 0.1
done
addr=$(cat "$state/address")
echo "ksv-engine is serving on http://$addr:"
curl -s "http://$addr/v2/models"; echo
echo
echo "POST http://$addr/v2/models/iris/infer  (data/requests/iris.json)"
curl -s -H 'Content-Type: application/json' --data @"$top/data/requests/iris.json" \
    "http://$addr/v2/models/iris/infer"; echo
[ "${1:-}" = "--once" ] && exit 0
echo
echo "Try: curl -s -d @data/requests/fraud.json http://$addr/v2/models/fraud/infer"
echo "     curl -s http://$addr/metrics | grep ksv_requests_total"
echo "Admin token: $state/token.  Ctrl-C stops the engine."
wait $pid
