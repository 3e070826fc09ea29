#!/usr/bin/env bash
# scripts/install-deps.sh: installs the Debian packages lumen builds against, only those missing.
#
# Idempotent and non-interactive; uses sudo when not root. CUDA is not installed here: the CUDA
# backend is built when nvcc and cuBLAS are already present (LUMEN_CUDA=AUTO).
set -euo pipefail

# python3-doc: the default corpus of ./prepare (Python's documentation sources); gnuplot-nox: the loss
# curve ./train renders into out_dir/loss.svg; openmpi-bin, libopenmpi-dev: data-parallel training
# (mpirun launches the ranks; MPI sums CPU tensors and hands NCCL its unique id, dist/)
packages=(cmake g++ make libfmt-dev libcli11-dev doctest-dev nlohmann-json3-dev libgomp1
          python3-doc gnuplot-nox openmpi-bin libopenmpi-dev)

missing=()
for p in "${packages[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
        missing+=("$p")
    fi
done

if [ ${#missing[@]} -eq 0 ]; then
    echo "install-deps: all packages present"
    exit 0
fi

sudo=""
if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null || { echo "install-deps: need root or sudo to install: ${missing[*]}" >&2; exit 1; }
    sudo="sudo"
fi

echo "install-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -q
$sudo apt-get install -y -q --no-install-recommends "${missing[@]}"
