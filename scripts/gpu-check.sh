#!/usr/bin/env bash
# scripts/gpu-check.sh: the GPU run, in one command for the device machine: build for sm_90, run
# the whole test suite (CPU and CUDA cases), the CUDA cases under compute-sanitizer (memcheck and
# racecheck), ./bench kernels, and the PyTorch peer ceilings in the same session. Logs go to
# $OUT (or ./gpu-logs). Usage: bash scripts/gpu-check.sh [tests|sanitize|bench|peers ...]
set -uo pipefail
cd "$(dirname "$0")/.."
out="${OUT:-gpu-logs}"
mkdir -p "$out"
steps=("$@")
[ ${#steps[@]} -eq 0 ] && steps=(tests sanitize bench peers)
status=0

bash scripts/gpu-build.sh "$out" || exit 1

for step in "${steps[@]}"; do
    case "$step" in
    tests)
        ./build-gpu/lumen_tests --no-version > "$out/tests.log" 2>&1 || status=1
        grep -E "TEST CASE|ERROR|^\[doctest\] (test cases|assertions)|Status" "$out/tests.log" | tail -30 ;;
    sanitize)
        for tool in memcheck racecheck; do
            # NOTE: the out-of-memory test provokes a failing cudaMalloc on purpose; leave it out.
            compute-sanitizer --tool "$tool" --error-exitcode 9 ./build-gpu/lumen_tests -ts=cuda \
                -tce='*out of memory*' --no-version \
                > "$out/sanitizer_$tool.log" 2>&1
            echo "compute-sanitizer $tool (cuda suite): exit $? ; $(grep -E 'ERROR SUMMARY' "$out/sanitizer_$tool.log" | tail -1)"
        done ;;
    bench)
        ./bench kernels --device cuda --json "$out/bench_kernels.jsonl" | tee "$out/bench_kernels.txt" || status=1 ;;
    peers)
        if [ -d .peer ]; then
            PYTHONUNBUFFERED=1 python3 .peer/peer_bench.py ceil > "$out/peer_ceil.log" 2>&1 || status=1
            grep -E '^\{' "$out/peer_ceil.log"
        else
            echo "peers: .peer/ (a copy of shared/perf) was not carried"
        fi ;;
    esac
done
exit $status
