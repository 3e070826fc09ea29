# benchmarks/peer_ddp.py: the PyTorch peer of data-parallel `./train`: shared/perf's nanoGPT GPT-2 124M
# (.peer/peer_bench.py's GPT: vocab 50304, tied head, bf16 autocast, fused AdamW, clip 1.0) wrapped in
# DistributedDataParallel over NCCL, 16 × 1024 random tokens per rank and step, eager and torch.compile
# (and, on one rank, the same model without DDP).
# Rank 0 prints one JSON line per mode: ms/step and tokens/s over all ranks, measured after warm-up
# between two synchronisations. Runs on the device machine (torch there); start it with
#
#   NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1 torchrun --standalone --nproc_per_node N \
#       benchmarks/peer_ddp.py [--steps 30] [--modes plain,eager,plain_compile,compile]
#
# With N = 1 it measures DDP's own cost on one GPU; scaling efficiency = tok/s at N / (N × tok/s at 1).
import argparse
import json
import os
import sys
import time

import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel as DDP

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".peer"))
import peer_bench  # noqa: E402  (shared/perf's model, copied to .peer/)

GPT2 = dict(vocab=50304, block=1024, n_layer=12, n_head=12, n_embd=768, rmsnorm=False, rope=False, osc=False)


def run(mode, steps, batch, rank, world, local_rank):
    torch.manual_seed(0)
    model = peer_bench.GPT(GPT2).to(f"cuda:{local_rank}")
    decay = [p for p in model.parameters() if p.dim() >= 2]
    no_decay = [p for p in model.parameters() if p.dim() < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.1}, {"params": no_decay, "weight_decay": 0.0}],
                            lr=6e-4, betas=(0.9, 0.95), fused=True)
    # "plain" / "plain_compile": the model without DDP (one rank only): what DDP itself costs
    ddp = model if mode.startswith("plain") else DDP(model, device_ids=[local_rank])
    fwd = torch.compile(ddp) if mode.endswith("compile") else ddp
    T = GPT2["block"]
    gen = torch.Generator(device=f"cuda:{local_rank}").manual_seed(1000 + rank)
    data = torch.randint(0, GPT2["vocab"], (steps, batch, T + 1), device=f"cuda:{local_rank}", generator=gen)

    def step(i):
        x, y = data[i, :, :-1], data[i, :, 1:]
        with torch.autocast("cuda", dtype=torch.bfloat16):
            loss = fwd(x, y)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)

    warm = 5
    for i in range(warm):
        step(i)
    torch.cuda.synchronize()
    dist.barrier()
    t0 = time.time()
    for i in range(warm, steps):
        step(i)
    torch.cuda.synchronize()
    dist.barrier()
    dt = (time.time() - t0) / (steps - warm)
    if rank == 0:
        print(json.dumps({"what": f"ddp_gpt2_124m_{mode}", "world": world, "B": batch, "T": T,
                          "ms_per_step": dt * 1e3, "tok_per_s": world * batch * T / dt,
                          "peak_mem_gb": torch.cuda.max_memory_allocated() / 1e9}), flush=True)
    del ddp, fwd, model, opt, data
    torch.cuda.empty_cache()


def main():
    ap = argparse.ArgumentParser(description="PyTorch DDP peer of data-parallel ./train (GPT-2 124M)")
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--modes", default="plain,eager,plain_compile,compile",
                    help="plain[_compile]: no DDP (skipped with more than one rank); eager, compile: DDP")
    args = ap.parse_args()
    assert os.environ.get("NCCL_NVLS_ENABLE") == "0", "set NCCL_NVLS_ENABLE=0 (README: Data-parallel training)"
    rank, world, local_rank = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"]), int(os.environ["LOCAL_RANK"])
    torch.cuda.set_device(local_rank)
    dist.init_process_group("nccl", device_id=torch.device(f"cuda:{local_rank}"))
    for mode in args.modes.split(","):
        if not (mode.startswith("plain") and world > 1):
            run(mode, args.steps, args.batch, rank, world, local_rank)
    dist.destroy_process_group()


if __name__ == "__main__":
    main()
