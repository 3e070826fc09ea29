#!/usr/bin/env bash
# scripts/gpu-optical.sh: the optical simulation on the GPU, in steps for the device machine: build
# for sm_90 (build-gpu), the optical and trainer test cases (CPU and CUDA), compute-sanitizer memcheck
# and racecheck over the optical CUDA cases, ./bench optical, the main job ./train
# configs/wiggle_optical.cfg on data/default (carry it), and the optical peers of .peer/peer_wiggle.py
# (fakequant with torch.compile, mase-triton's kernels) in the same call. Logs to $OUT (or gpu-logs/).
# Usage: bash scripts/gpu-optical.sh [build|tests|sanitize|bench|train|peers ...]
set -uo pipefail
cd "$(dirname "$0")/.."
out="${OUT:-gpu-logs}"
mkdir -p "$out"
steps=("$@")
[ ${#steps[@]} -eq 0 ] && steps=(build tests sanitize bench train peers)
status=0
optical_cases='*optical*,*quantiz*,*dither*,*OpticalLinear*,*mase*'
for step in "${steps[@]}"; do
    case "$step" in
    build)
        bash scripts/gpu-build.sh "$out" || exit 1 ;;
    tests)
        ./build-gpu/lumen_tests --no-version -tc="$optical_cases" > "$out/tests_optical.log" 2>&1 || status=1
        grep -E "TEST CASE|ERROR|^\[doctest\] (test cases|assertions)|Status" "$out/tests_optical.log" | tail -40 ;;
    sanitize)
        for tool in memcheck racecheck; do
            compute-sanitizer --tool "$tool" --error-exitcode 9 ./build-gpu/lumen_tests -tc="$optical_cases" \
                -tce='*learns*,*resume*,*trainer*' --no-version > "$out/sanitizer_$tool.log" 2>&1
            echo "compute-sanitizer $tool (optical cases): exit $? ; $(grep -E 'ERROR SUMMARY' "$out/sanitizer_$tool.log" | tail -1)"
        done ;;
    bench)
        ./build-gpu/bench optical --device cuda --json "$out/bench_optical.jsonl" | tee "$out/bench_optical.txt" || status=1 ;;
    train)
        ./build-gpu/train configs/wiggle_optical.cfg --device=cuda --always_save_checkpoint=false \
            --out_dir=/tmp/lumen-wiggle-optical > "$out/train_wiggle_optical.log" 2>&1 || status=1
        grep -E "^(iter|step|number|tokens|optimizer|error|entering|optical|  )" "$out/train_wiggle_optical.log" | tail -60
        ./build-gpu/sample --ckpt /tmp/lumen-wiggle-optical --max_new_tokens 100 --prompt "The " \
            > "$out/sample.log" 2>&1 || status=1
        tail -5 "$out/sample.log" ;;
    peers)
        if [ -d .peer ]; then
            PYTHONUNBUFFERED=1 python3 .peer/peer_wiggle.py fakequant > "$out/peer_fakequant.log" 2>&1
            grep -E "^\{" "$out/peer_fakequant.log"
            PYTHONUNBUFFERED=1 PYTHONPATH=.peer/peers/mase-triton python3 .peer/peer_wiggle.py mase > "$out/peer_mase.log" 2>&1
            grep -E "^\{" "$out/peer_mase.log"
        else
            echo "peers: .peer/ (a copy of shared/perf) was not carried"
        fi ;;
    esac
done
exit $status
