# benchmarks/peer_optim.py: the PyTorch peer of `./bench optim`: torch.optim.AdamW(fused=True) over
# the GPT-2 124M parameter set (f32), nanoGPT's two groups (weight decay 0.1 on dim >= 2, 0 on the
# rest), lr 6e-4, betas (0.9, 0.95). Prints one JSON line: the median ms of optimizer.step() and of
# clip_grad_norm_(1.0) + step(), CUDA events, after warm-up. Runs on the device machine (needs torch).
#
#   python3 benchmarks/peer_optim.py [--shapes shapes.json] [--iters 20]
#
# --shapes reads the parameter list `./bench optim --shapes FILE` wrote (the same tensors); without
# it the shapes are nanoGPT's GPT-2 124M with bias=False, vocab 50304, tied lm_head.
import argparse
import json
import statistics

import torch


def gpt2_124m_shapes(n_layer=12, n_embd=768, vocab=50304, block=1024):
    shapes = [[vocab, n_embd], [block, n_embd]]
    for _ in range(n_layer):
        shapes += [[n_embd], [3 * n_embd, n_embd], [n_embd, n_embd], [n_embd], [4 * n_embd, n_embd],
                   [n_embd, 4 * n_embd]]
    shapes.append([n_embd])
    return shapes


def median_ms(fn, warmup, iters):
    for _ in range(warmup):
        fn()
    torch.cuda.synchronize()
    times = []
    for _ in range(iters):
        start, stop = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        fn()
        stop.record()
        stop.synchronize()
        times.append(start.elapsed_time(stop))
    return statistics.median(times)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--shapes", default="")
    ap.add_argument("--iters", type=int, default=20)
    ap.add_argument("--warmup", type=int, default=3)
    args = ap.parse_args()
    if args.shapes:
        with open(args.shapes) as f:
            shapes = [p["shape"] for p in json.load(f)]
    else:
        shapes = gpt2_124m_shapes()

    gen = torch.Generator(device="cuda").manual_seed(1234)
    params = []
    for s in shapes:
        p = torch.nn.Parameter(torch.rand(s, device="cuda", generator=gen) * 0.2 - 0.1)
        p.grad = torch.rand(s, device="cuda", generator=gen) * 0.2 - 0.1
        params.append(p)
    decay = [p for p in params if p.dim() >= 2]
    no_decay = [p for p in params if p.dim() < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.1}, {"params": no_decay, "weight_decay": 0.0}],
                            lr=6e-4, betas=(0.9, 0.95), eps=1e-8, fused=True)

    def clip_step():
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()

    step_ms = median_ms(opt.step, args.warmup, args.iters)
    clip_step_ms = median_ms(clip_step, args.warmup, args.iters)
    state_bytes = sum(t.numel() * t.element_size() for st in opt.state.values() for t in st.values()
                      if torch.is_tensor(t))
    numel = sum(p.numel() for p in params)
    print(json.dumps({"what": "peer_optim_adamw_fused", "ms": step_ms, "clip_step_ms": clip_step_ms,
                      "num_params": numel, "num_tensors": len(params), "state_bytes": state_bytes,
                      "iters": args.iters, "torch": torch.__version__, "device": torch.cuda.get_device_name()}))


if __name__ == "__main__":
    main()
