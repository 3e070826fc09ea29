#!/usr/bin/env bash
# scripts/main.sh: the README's main job: builds lumen, prepares data/default if it is missing,
# trains a WiggleGPT v2 model (bio MLP) on it and prints a sample. On a machine with a GPU it trains
# configs/wiggle_v2.cfg's model; without one it trains configs/tiny.cfg (same MLP kind, 2 layers,
# 64 wide) so that the run finishes in minutes on a CPU, and says so.
set -euo pipefail
cd "$(dirname "$0")/.."
make -s
[ -f data/default/dataset.json ] || ./prepare
if nvidia-smi -L > /dev/null 2>&1; then
    ./train configs/wiggle_v2.cfg --dataset=data/default --vocab_size=auto --loader=sequential \
        --out_dir=out-main --max_iters=2000 --lr_decay_iters=2000 --warmup_iters=100 \
        --eval_interval=500 --eval_iters=20 --batch_size=16 --gradient_accumulation_steps=2
else
    echo "no GPU found: training configs/tiny.cfg (2 layers, 64 wide, bio MLP) instead of the"
    echo "WiggleGPT v2 shape, so that the run finishes in a few minutes on a CPU"
    ./train configs/tiny.cfg --out_dir=out-main --device=cpu
fi
./sample --ckpt out-main --max_new_tokens 200 --prompt "The "
