#!/usr/bin/env bash
# scripts/gpu-build.sh: the device machine's build, shared by gpu-check.sh, gpu-optical.sh, gpu-hf.sh and
# gpu-dist.sh: records the GPU, configures build-gpu/ for sm_90 (Release, CUDA on) and builds everything,
# logs in $1 (default gpu-logs/). Prints lumen's configure lines and "build: ok"; exits 1 with the errors.
set -uo pipefail
cd "$(dirname "$0")/.."
out="${1:-gpu-logs}"
mkdir -p "$out"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | tee "$out/gpu.txt"
cmake -S . -B build-gpu -DCMAKE_BUILD_TYPE=Release -DLUMEN_CUDA=ON -DCMAKE_CUDA_ARCHITECTURES=90 \
    > "$out/configure.log" 2>&1 || { tail -30 "$out/configure.log"; exit 1; }
grep -E "lumen:" "$out/configure.log"
cmake --build build-gpu -j "$(nproc)" > "$out/build.log" 2>&1 || { grep -E "error" -A3 "$out/build.log" | head -60; exit 1; }
echo "build: ok"
