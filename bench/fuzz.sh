#!/bin/sh
# bench/fuzz.sh [SECONDS] [BUILD_DIR] [HARNESS...]: builds the libFuzzer harnesses (make
# fuzz) and runs each (or the ones named, e.g. fuzz_v2_binary) for SECONDS (default 20) on
# its seed corpus (fuzz/seeds.sh: data/ and tests/) plus what earlier runs found, under
# AddressSanitizer and UBSan, then prints executions and crashes per harness. With
# KSV_FUZZ_RUNS=N a harness also stops after N executions (a long run: SECONDS is then the
# cap, N the aim). Exits 1 when any harness crashed, leaked or timed out; the input that
# did it is kept in BUILD_DIR/fuzz/run/crashes/HARNESS/ (add it to the harness's
# regression seeds and fix the parser).
set -eu
secs=${1:-20}
build=$(cd "${2:-build}" && pwd)
[ $# -ge 2 ] && shift 2 || shift $#
runs=${KSV_FUZZ_RUNS:--1}
seed=${KSV_FUZZ_SEED:-}   # libFuzzer's -seed; empty: a fresh one each run
src=$(cd "$(dirname "$0")/.." && pwd)
work=$build/fuzz/run
case $secs in ''|*[!0-9]*) echo "bench/fuzz.sh: SECONDS must be a whole number" >&2; exit 2 ;; esac
make -C "$build" -s fuzz >/dev/null
rm -rf "$work/seeds"
sh "$src/fuzz/seeds.sh" "$src" "$work/seeds"
export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1
export LSAN_OPTIONS=suppressions=$src/tests/lsan.supp
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
status=0
printf '%-24s %12s %10s %8s\n' HARNESS EXECUTIONS EXEC/S CRASHES
case $runs in ''|-1) ;; *[!0-9]*) echo "bench/fuzz.sh: KSV_FUZZ_RUNS must be a whole number" >&2; exit 2 ;; esac
if [ $# -gt 0 ]; then
    harnesses=""
    for n in "$@"; do
        [ -x "$build/fuzz/$n" ] || { echo "bench/fuzz.sh: no harness $n in $build/fuzz" >&2; exit 2; }
        harnesses="$harnesses $build/fuzz/$n"
    done
else
    harnesses=$(ls "$build"/fuzz/fuzz_* 2>/dev/null || true)
fi
for h in $harnesses; do
    name=$(basename "$h")
    case $name in *.*) continue ;; esac   # fuzz_x.d: make's dependency files
    case " ${KSV_FUZZ_SKIP:-} " in *" $name "*) echo "$name: skipped (KSV_FUZZ_SKIP)"; continue ;; esac
    [ -x "$h" ] || continue
    corpus=$work/corpus/$name crashes=$work/crashes/$name log=$work/$name.log
    mkdir -p "$corpus" "$crashes" "$work/seeds/$name"
    # -rss_limit_mb: a parser that needs more than this for one input has a bug too.
    "$h" -max_total_time="$secs" -runs="$runs" ${seed:+-seed="$seed"} -rss_limit_mb=2048 -timeout=10 -print_final_stats=1 \
        -artifact_prefix="$crashes/" "$corpus" "$work/seeds/$name" >"$log" 2>&1 || true
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
    rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -1)
    found=$(find "$crashes" -type f | wc -l)
    printf '%-24s %12s %10s %8s\n' "$name" "${execs:-?}" "${rate:-?}" "$found"
    if [ "$found" -gt 0 ] || [ -z "$execs" ]; then
        status=1
        tail -n 30 "$log" >&2
    fi
done
exit $status
