#!/bin/bash
# ab-engines.sh: two ksv-engine builds side by side on the same model and request body,
# interleaved (the order alternates every round, so drift in the machine's load hits both),
# to measure what one change does end to end.
#
# Usage: bench/ab-engines.sh OLD_ENGINE NEW_ENGINE [ROUNDS=6] [SECONDS=4] [RUNTIME=ksv-forest]
# Prints one line per round and rows (1 and 64) with both req/s, then the medians and the
# ratio. Needs wrk and Debian's python3 (for the request bodies). Stops both engines on exit.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
OLD=${1:?old engine}
NEW=${2:?new engine}
ROUNDS=${3:-6}
SECS=${4:-4}
RUNTIME=${5:-ksv-forest}
MODEL="$ROOT/data/models/fraud/model.json"
WORK=$(mktemp -d /tmp/ksv-ab-XXXXXX)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$WORK"; }
trap cleanup EXIT
/usr/bin/python3 "$ROOT/bench/http/make_bodies.py" --model "$MODEL" --out "$WORK" --rows 1,64

start() { # engine dir
    mkdir -p "$2"
    "$1" --listen 127.0.0.1:0 --state-dir "$2" --model "fraud=$MODEL,runtime=$RUNTIME" \
        >"$2.log" 2>&1 &
    pids+=($!)
    for _ in $(seq 100); do [ -s "$2/address" ] && return 0; sleep 0.1; done
    echo "engine $1 did not start: $(tail -n 3 "$2.log")" >&2
    exit 1
}
start "$OLD" "$WORK/old"
start "$NEW" "$WORK/new"
A=$(cat "$WORK/old/address")
B=$(cat "$WORK/new/address")
run() { # rows address
    KSV_BENCH_BODY="$WORK/req-$1.json" wrk -t2 -c32 -d"${SECS}s" -s "$ROOT/bench/http/post.lua" \
        "http://$2/v2/models/fraud/infer" 2>/dev/null | sed -n 's/.* rps=\([0-9.]*\).*/\1/p'
}
median() { sort -n | awk '{v[NR]=$1} END {print (NR%2 ? v[(NR+1)/2] : (v[NR/2]+v[NR/2+1])/2)}'; }
echo "old: $OLD"
echo "new: $NEW"
echo "runtime $RUNTIME, wrk -t2 -c32 -d${SECS}s, $ROUNDS rounds; load: $(cut -d' ' -f1-3 /proc/loadavg)"
for rows in 1 64; do
    : >"$WORK/o" ; : >"$WORK/n"
    for round in $(seq "$ROUNDS"); do
        if [ $((round % 2)) = 1 ]; then o=$(run $rows "$A"); n=$(run $rows "$B")
        else n=$(run $rows "$B"); o=$(run $rows "$A"); fi
        echo "$o" >>"$WORK/o"; echo "$n" >>"$WORK/n"
        echo "rows=$rows round=$round old=$o new=$n"
    done
    mo=$(median <"$WORK/o"); mn=$(median <"$WORK/n")
    echo "rows=$rows median old=$mo new=$mn ratio=$(awk -v a="$mo" -v b="$mn" 'BEGIN {printf "%.2f", b/a}')"
done
