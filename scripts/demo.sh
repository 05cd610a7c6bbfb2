#!/bin/sh
# demo.sh: the Quick start's first command. Installs what is missing, builds, and opens
# the console on a demo: `ksv-top --demo` starts a local engine with the demo models of
# data/ (churn with a canary), drives traffic at it, and removes everything on quit.
# --once (or no terminal): start ksv-engine with the demo models, send a sample V2
# request, print the answer and a one-shot console snapshot, and stop.
set -eu
top=$(cd "$(dirname "$0")/.." && pwd)
. "$top/scripts/deps.sh"
ksv_install_deps
ksv_build "$top/build"
if [ "${1:-}" != "--once" ] && [ -t 0 ] && [ -t 1 ]; then
    exec "$top/build/src/ksv-top" --demo
fi

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
echo
echo "ksv-top --demo --once -o json (the console's snapshot of its own demo):"
"$top/build/src/ksv-top" --demo --once -o json | head -n 24
echo "  ..."
echo "In a terminal, sh scripts/demo.sh opens the live console (q quits, ? for help)."
