#!/usr/bin/env bash
# gpu-check.sh: the one script a machine with an NVIDIA GPU runs to check ksv-forest's CUDA
# path, in a few minutes:
#   1. builds ksv with nvcc in its own tree (build-gpu/, or $KSV_GPU_BUILD) and checks that
#      `ksv-engine --version` says cuda: yes;
#   2. lists the devices (nvidia-smi -L);
#   3. runs the forest tests with the device present (tests/test_forest: both layouts bit-equal
#      to libxgboost, 10,000-row batches on the GPU path; tests/test_runtime_auto: `auto`'s
#      probe, which is past the GPU batch threshold, picks ksv-forest on the device too;
#      tests/test_forest_lightgbm: the LightGBM reader, and its CPU rules and the kernel's row
#      code bit-equal to LightGBM's stored answers);
#   4. runs bench/forest_gpu_check: GPU path, CPU path and libxgboost bit-equal at 1, 1k and 1M
#      rows on six demo models; LightGBM's kernel against the CPU path and its own row code run
#      on the host, bit-equal at 1, 1k and 1M rows on tests/data/lightgbm's models and a
#      generated 100-tree one; batches >= 256 rows counted on the GPU; then rows/s of the GPU
#      against the CPU path at 1k, 100k and 1M rows (the XGBoost fraud model, the generated
#      LightGBM one).
# Exit status: 0 when everything ran on a device and passed; 1 when something failed; 2 when
# there is no usable GPU (steps 1 and 3 and the CPU half of 4 still run, so the script is
# checked on machines without one; it says clearly that the device half did not run).
#
# Usage: bench/gpu-check.sh            (from anywhere; needs what scripts/deps.sh installs)
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BUILD=${KSV_GPU_BUILD:-$ROOT/build-gpu}
status=0

say() { printf '\n== %s\n' "$*"; }

say "nvcc"
NVCC=$(command -v nvcc || true)
[ -z "$NVCC" ] && [ -x /usr/local/cuda/bin/nvcc ] && NVCC=/usr/local/cuda/bin/nvcc
if [ -z "$NVCC" ]; then
    echo "FAIL: no nvcc on PATH or in /usr/local/cuda/bin: install the CUDA toolkit"
    exit 1
fi
"$NVCC" --version | tail -n 2

say "build ($BUILD)"
# shellcheck source=../scripts/deps.sh
. "$ROOT/scripts/deps.sh"
cuda_home=$(dirname "$(dirname "$NVCC")")
ksv_build "$BUILD" --enable-werror --with-cuda="$cuda_home"
make -C "$BUILD" -j"$(nproc)" tests/test_forest tests/test_runtime_auto tests/test_forest_lightgbm \
    bench/forest_gpu_check >/dev/null
version=$("$BUILD/src/ksv-engine" --version)
echo "$version"
if ! grep -q '^cuda: yes' <<<"$version"; then
    echo "FAIL: the build has no CUDA (configure did not take $cuda_home)"
    exit 1
fi

say "devices"
if command -v nvidia-smi >/dev/null && nvidia-smi -L; then
    device=1
else
    device=0
    echo "NO NVIDIA GPU here (nvidia-smi missing or found no device)"
fi

say "forest tests (parity with libxgboost and LightGBM; on the device when there is one)"
export KSV_DATA_DIR="$ROOT/data" KSV_SRCDIR="$ROOT"
for t in test_forest test_runtime_auto test_forest_lightgbm; do
    if "$BUILD/tests/$t" >"$BUILD/tests/$t.gpu.log" 2>&1; then
        echo "ok   $t ($(tail -n 1 "$BUILD/tests/$t.gpu.log"))"
    else
        echo "FAIL $t: see $BUILD/tests/$t.gpu.log"
        grep -E '^FAIL' "$BUILD/tests/$t.gpu.log" | head -n 20 || true
        status=1
    fi
done

say "GPU vs CPU vs libxgboost (XGBoost) / the kernel's code on the host (LightGBM) at 1, 1k and 1M rows; rows/s"
set +e
"$BUILD/bench/forest_gpu_check" "$ROOT/data" "$ROOT/tests/data/lightgbm" 2> >(grep -v 'INFO ksv-forest: no usable GPU' >&2)
rc=$?
set -e
[ $rc -eq 1 ] && status=1

say "result"
if [ $status -ne 0 ]; then
    echo "FAIL: see above"
    exit 1
fi
if [ $rc -eq 2 ] || [ $device -eq 0 ]; then
    echo "NO GPU: the build and the CPU checks passed; the device checks did NOT run (they need"
    echo "an NVIDIA GPU: run this script on a machine with one)"
    exit 2
fi
echo "PASS: ksv-forest's CUDA kernels are bit-equal to libxgboost (XGBoost models) and to the"
echo "CPU path (LightGBM models), and ran on the device"
