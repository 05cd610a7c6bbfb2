#!/bin/sh
# test.sh: the Quick start's second command: installs what is missing, builds, and runs
# the whole test suite (make check). --sanitize builds a separate tree with
# -fsanitize=address,undefined and runs the suite there.
set -eu
top=$(cd "$(dirname "$0")/.." && pwd)
. "$top/scripts/deps.sh"
ksv_install_deps $KSV_TEST_DEPS
# The external runtimes the tests serve through (MLServer, llama.cpp's server), installed
# once per machine into a venv outside the clone; a second run finds them cached.
sh "$top/scripts/runtimes.sh" install
if [ "${1:-}" = "--sanitize" ]; then
    build="$top/build-sanitize"
    san="-fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined"
    ksv_build "$build" --enable-werror CFLAGS="-O1 -g $san" LDFLAGS="$san"
    # libxgboost's own static initializers leak by design; only our code is judged.
    export ASAN_OPTIONS="detect_leaks=1:abort_on_error=1"
    export LSAN_OPTIONS="suppressions=$top/tests/lsan.supp:print_suppressions=0"
    export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1"
else
    build="$top/build"
    ksv_build "$build" --enable-werror
fi
make -C "$build" -j"$(nproc)" check || { cat "$build"/tests/*.log 2>/dev/null | tail -200; exit 1; }
# Every parser that reads bytes from outside, fuzzed for 20 s each (libFuzzer with ASan and
# UBSan; bench/fuzz.sh). Once, in the plain pass: the harnesses carry their own sanitizers.
if [ "${1:-}" != "--sanitize" ]; then
    # A fixed seed: the suite's 20 s are a reproducible regression pass (the same inputs on
    # every machine); exploring with fresh seeds is `bench/fuzz.sh SECONDS` by hand
    # (docs/FUZZING.md), and what it finds becomes a seed here.
    KSV_FUZZ_SEED=${KSV_FUZZ_SEED:-1} sh "$top/bench/fuzz.sh" "${KSV_FUZZ_SECONDS:-20}" "$build"
fi
