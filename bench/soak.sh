#!/bin/bash
# bench/soak.sh [MINUTES] [BUILD_DIR]: a bounded soak of one real ksv-engine (issue 11).
#
# ksv adds a local node and applies the iris model; `ksv load` measures the peak (closed
# loop, 16 connections, 10 s), then drives 80% of it open-loop (16 connections) for MINUTES (default 2: short
# enough for a check, `bench/soak.sh 10` for the record in docs/BENCHMARKS.md). Meanwhile a
# new revision is applied every 30 s (the model file alternates between its JSON and UBJSON
# forms, so each apply loads, warms and switches a revision under load; the old one unloads
# after a 5 s rollback window), /metrics is scraped every second, and the engine's RSS and
# open fds are sampled every second from /proc.
#
# Prints the figures and exits 1 unless: 0 failed requests, every apply succeeded, the fd
# count after warm-up (the first quarter of the run) ends where it started (+2 at most, for
# a connection in flight), and RSS grows less than 1 MiB per minute after warm-up (the
# least-squares slope, printed). Needs bash (/dev/tcp) and awk; nothing else.
set -euo pipefail
MINUTES=${1:-2}
case $MINUTES in ''|*[!0-9]*|0) echo "bench/soak.sh: MINUTES must be a whole number >= 1" >&2; exit 2 ;; esac
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BUILD=$(cd "${2:-$ROOT/build}" && pwd)
KSV=$BUILD/src/ksv
export KSV_ENGINE=$BUILD/src/ksv-engine
WORK=$(mktemp -d /tmp/ksv-soak-XXXXXX)
export KSV_DB=$WORK/ksv.db XDG_STATE_HOME=$WORK/state USER=${USER:-soak}
NODE=$WORK/node
loader=
cleanup() {
    [ -n "$loader" ] && kill "$loader" 2>/dev/null || true
    pid=$(cat "$NODE/lock" 2>/dev/null || true)
    [ -n "$pid" ] && kill "$pid" 2>/dev/null || true
    rm -rf "$WORK"
}
trap cleanup EXIT

manifest() { # FILE: iris with the given model file; a 5 s rollback window
    cat >"$WORK/iris.yaml" <<EOF
apiVersion: serving.kserve.io/v1beta1
kind: InferenceService
metadata:
  name: iris
  annotations:
    ksv.io/rollback-window: "5"
spec:
  predictor:
    model:
      modelFormat:
        name: xgboost
      storageUri: file://$1
EOF
}
json_num() { # KEY < JSON: the first number after "KEY":
    sed -n "s/.*\"$1\":\([-0-9.eE+]*\).*/\1/p" | head -1
}

"$KSV" node add soak local --engine-state-dir "$NODE" >/dev/null
MODELS=("$ROOT/data/models/iris/model.json" "$ROOT/data/models/iris-ubj/model.ubj")
manifest "${MODELS[0]}"
"$KSV" apply -f "$WORK/iris.yaml" >/dev/null
PID=$(cat "$NODE/lock")
ADDR=$(cat "$NODE/address")
HOST=${ADDR%:*} PORT=${ADDR##*:}

peak=$("$KSV" -o json load iris --duration 10 --concurrency 16 | json_num achieved_rps)
target=$(awk -v p="$peak" 'BEGIN {printf "%.0f", p * 0.8}')
echo "soak: $MINUTES min at $target req/s (80% of the measured peak $peak req/s), a new" \
     "revision every 30 s, /metrics every 1 s; load average $(cut -d' ' -f1-3 /proc/loadavg)"

"$KSV" -o json load iris --rps "$target" --duration $((MINUTES * 60)) --concurrency 16 \
    >"$WORK/load.json" 2>"$WORK/load.err" &
loader=$!
start=$(date +%s)
: >"$WORK/samples"
applies=0 apply_failures=0 scrapes=0 scrape_failures=0 next_apply=$((start + 30))
while kill -0 "$loader" 2>/dev/null; do
    now=$(date +%s)
    rss=$(awk '/^VmRSS:/ {print $2}' "/proc/$PID/status" 2>/dev/null || echo 0)
    fds=$(ls "/proc/$PID/fd" 2>/dev/null | wc -l)
    echo "$((now - start)) $rss $fds" >>"$WORK/samples"
    # One scrape, as Prometheus would: HTTP/1.0, read to the end.
    if { exec 3<>"/dev/tcp/$HOST/$PORT" && printf 'GET /metrics HTTP/1.0\r\n\r\n' >&3 &&
         head -c 12 <&3 | grep -q ' 200' && cat <&3 >/dev/null; exec 3<&- 3>&-; } 2>/dev/null; then
        scrapes=$((scrapes + 1))
    else
        scrape_failures=$((scrape_failures + 1))
    fi
    if [ "$now" -ge "$next_apply" ]; then
        applies=$((applies + 1))
        manifest "${MODELS[$((applies % 2))]}"
        "$KSV" apply -f "$WORK/iris.yaml" >/dev/null 2>>"$WORK/apply.err" ||
            apply_failures=$((apply_failures + 1))
        next_apply=$((next_apply + 30))
    fi
    sleep 1
done
wait "$loader" || true
sent=$(json_num sent <"$WORK/load.json")
ok=$(sed -n 's/.*"ok":\([0-9]*\).*/\1/p' "$WORK/load.json" | head -1)
errors=$(json_num errors <"$WORK/load.json")
achieved=$(json_num achieved_rps <"$WORK/load.json")
p50=$(json_num p50 <"$WORK/load.json")
p99=$(json_num p99 <"$WORK/load.json")
revisions=$("$KSV" get revisions iris 2>/dev/null | tail -n +2 | wc -l)
# After warm-up (the first quarter): RSS slope by least squares (KiB per minute), RSS and
# fds at its start and end.
awk -v warm=$((MINUTES * 15)) -v out="$WORK/fit" '
    $1 >= warm { n++; sx += $1; sy += $2; sxx += $1 * $1; sxy += $1 * $2
                 if (n == 1) { rss0 = $2; fd0 = $3 } rss1 = $2; fd1 = $3
                 if ($3 > fdmax) fdmax = $3 }
    END { slope = n > 1 ? (n * sxy - sx * sy) / (n * sxx - sx * sx) * 60 : 0
          printf "%d %.1f %d %d %d %d %d\n", n, slope, rss0, rss1, fd0, fd1, fdmax > out }' \
    "$WORK/samples"
read -r n slope rss0 rss1 fd0 fd1 fdmax <"$WORK/fit"
echo "requests: sent ${sent:-?}, ok ${ok:-?}, failed ${errors:-?}; achieved ${achieved:-?} req/s," \
     "latency from each request's due time p50 ${p50:-?} ms, p99 ${p99:-?} ms"
echo "revisions: $applies applied under load ($apply_failures failed), $revisions kept in ksv"
echo "scrapes: $scrapes ok, $scrape_failures failed"
echo "after warm-up ($n samples): RSS $((rss0 / 1024)) -> $((rss1 / 1024)) MiB, slope" \
     "$slope KiB/min; fds $fd0 -> $fd1 (max $fdmax)"
status=0
[ "${errors:-1}" = 0 ] || { echo "FAIL: failed requests"; status=1; }
[ "$apply_failures" = 0 ] || { echo "FAIL: applies failed: $(tail -n 2 "$WORK/apply.err")"; status=1; }
[ "$scrape_failures" = 0 ] || { echo "FAIL: scrapes failed"; status=1; }
[ "$fd1" -le $((fd0 + 2)) ] || { echo "FAIL: open fds grew from $fd0 to $fd1"; status=1; }
awk -v s="$slope" 'BEGIN {exit !(s < 1024)}' || { echo "FAIL: RSS grows $slope KiB/min"; status=1; }
[ "$status" = 0 ] && echo "PASS"
exit "$status"
