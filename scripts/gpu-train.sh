#!/usr/bin/env bash
# scripts/gpu-train.sh: training throughput on the GPU, lumen against the PyTorch peers in the same
# call: ./train for GPT-2 124M and WiggleGPT v2 at the peers' shape (16 × 1024 tokens per step,
# bf16 autocast-style mixed precision, AdamW, clip 1.0) on data/default, then .peer/peer_bench.py
# train and .peer/peer_wiggle.py digital. Needs build-gpu (scripts/gpu-check.sh builds it) and
# data/default (carry it). Logs to $OUT (default gpu-logs/).
set -uo pipefail
cd "$(dirname "$0")/.."
out="${OUT:-gpu-logs}"
mkdir -p "$out"
if [ ! -x build-gpu/train ]; then
    cmake -S . -B build-gpu -DCMAKE_BUILD_TYPE=Release -DLUMEN_CUDA=ON -DCMAKE_CUDA_ARCHITECTURES=90 > "$out/configure.log" 2>&1
    cmake --build build-gpu -j "$(nproc)" --target train > "$out/build_train.log" 2>&1 || { tail -30 "$out/build_train.log"; exit 1; }
fi
common=(--dataset=data/default --vocab_size=50304 --batch_size=16 --gradient_accumulation_steps=1
        --max_iters=60 --warmup_iters=5 --eval_interval=1000000 --eval_iters=1 --log_interval=20
        --always_save_checkpoint=false --device=cuda --dtype=bfloat16 --loader=sequential)
for cfg in gpt2_124m wiggle_v2; do
    ./build-gpu/train "configs/$cfg.cfg" "${common[@]}" --out_dir="/tmp/lumen-$cfg" > "$out/train_$cfg.log" 2>&1
    echo "== ./train configs/$cfg.cfg (exit $?)"
    grep -E "^(iter|step|number|tokens|optimizer|error)" "$out/train_$cfg.log" | tail -8
done
if [ -d .peer ]; then
    PYTHONUNBUFFERED=1 python3 .peer/peer_bench.py train > "$out/peer_train.log" 2>&1
    grep -E "^\{" "$out/peer_train.log"
    PYTHONUNBUFFERED=1 python3 .peer/peer_wiggle.py digital > "$out/peer_wiggle.log" 2>&1
    grep -E "^\{" "$out/peer_wiggle.log"
fi
