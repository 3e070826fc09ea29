#!/usr/bin/env bash
# scripts/main.sh: the README's main job: builds lumen, prepares data/default if it is missing, trains
# configs/wiggle_optical.cfg (WiggleGPT v2, digital first, then the simulated optical transformer) and
# prints a sample. On a machine with a GPU it runs the config as written; without one it passes
# smaller sizes on the command line (and says so) so that the run finishes in minutes on a CPU.
set -euo pipefail
cd "$(dirname "$0")/.."
make -s
[ -f data/default/dataset.json ] || ./prepare
if nvidia-smi -L > /dev/null 2>&1; then
    ./train configs/wiggle_optical.cfg --out_dir=out-main
else
    small=(--device=cpu --dtype=float32 --n_layer=2 --n_head=4 --n_embd=64 --block_size=64 --batch_size=8
           --gradient_accumulation_steps=1 --max_iters=300 --lr_decay_iters=300 --warmup_iters=20
           --learning_rate=3e-3 --optical.start_iter=200 --optical.learning_rate=1e-3 --optical.warmup_iters=10
           --eval_interval=100 --eval_iters=8 --log_interval=20)
    echo "no GPU found: training configs/wiggle_optical.cfg at CPU sizes: ${small[*]}"
    ./train configs/wiggle_optical.cfg --out_dir=out-main "${small[@]}"
fi
./sample --ckpt out-main --max_new_tokens 200 --prompt "The "
