#!/usr/bin/env python3
"""tests/reference/make_optim_golden.py: golden trajectories from PyTorch's own optimizers for
lumen's optimizer tests (specs/optimizers.md §13.1 item 2; read by tests/optim/golden_test.cpp).

Writes tests/fixtures/optim/golden.json. Every array is the base64 of little-endian IEEE float32
values in row-major order (exact torch bits, and small: the file stays well under 300 KB), so the
C++ test feeds torch's own f32 gradients and compares with torch's own f32 results.

  elementwise   two parameters "w" (17, 9) and "b" (5,), p0 ~ 0.1·N(0, 1), 20 gradients
                g ~ 0.01·N(0, 1) (fixed seed), replayed through
                  adamw          torch.optim.AdamW(lr 1e-2, betas (0.9, 0.999), eps 1e-8, wd 0.1,
                                 foreach=False): params, exp_avg, exp_avg_sq after every step
                  sgd_momentum   torch.optim.SGD(lr 0.1, momentum 0.9, dampening 0, wd 0.1,
                                 nesterov False, foreach=False): params, momentum_buffer
                  sgd_nesterov   the same with nesterov True
  muon          torch.optim.Muon(lr 1, wd 0, momentum 0.95, nesterov True, ns_steps 5,
                adjust_lr_fn "original") on a 12×20 and a 24×8 matrix (p0 ~ 0.1·N(0, 1),
                g ~ 0.01·N(0, 1)), 3 steps, after each step:
                  O                p_before − p_after (torch on the CPU: bf16 Newton–Schulz)
                  O_cuda           the same run on the GPU when one is present (else absent)
                  O_exact          NOT torch.optim code: the same step's update U (torch's own
                                   momentum buffer and Nesterov mix, f32) put through the
                                   Newton–Schulz iteration in float64 and scaled by
                                   sqrt(max(1, rows/cols)): the exact-arithmetic reference for
                                   lumen's f32 NS mode
                  momentum_buffer  torch's state after the step
meta holds torch's version, Muon's signature, and diagnostics: float64 replays of the element-wise
cases (max relative distance of the f32 trajectory from the f64 one) and Muon's bf16 error
(max |O − O_exact|). Run on a machine with PyTorch (2.11 was used), from the repository root:

    python3 tests/reference/make_optim_golden.py --out tests/fixtures/optim/golden.json

--extra DIR also writes help(torch.optim.Muon) and the source of torch's Muon step there.
"""
import argparse
import base64
import importlib
import inspect
import json
import math
import os
import pydoc
import sys
import traceback

import numpy as np
import torch

SEED = 20240611
STEPS = 20
MUON_STEPS = 3


def b64(t):
    """base64 of a tensor's values as little-endian f32, row-major."""
    a = t.detach().to("cpu", torch.float32).contiguous().numpy().astype("<f4")
    return base64.b64encode(a.tobytes()).decode("ascii")


def normal(gen, shape, scale):
    return (scale * torch.randn(shape, generator=gen, dtype=torch.float32)).contiguous()


# ------------------------------------------------------------------ element-wise rules

ELEMENTWISE = [
    {
        "name": "adamw",
        "kind": "adamw",
        "torch": "torch.optim.AdamW(params, lr=1e-2, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.1, foreach=False)",
        "hyper": {"lr": 1e-2, "beta1": 0.9, "beta2": 0.999, "eps": 1e-8, "weight_decay": 0.1},
        "states": ["exp_avg", "exp_avg_sq"],
        "make": lambda ps: torch.optim.AdamW(ps, lr=1e-2, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.1,
                                             foreach=False),
    },
    {
        "name": "sgd_momentum",
        "kind": "sgd",
        "torch": "torch.optim.SGD(params, lr=0.1, momentum=0.9, dampening=0, weight_decay=0.1, nesterov=False, "
                 "foreach=False)",
        "hyper": {"lr": 0.1, "momentum": 0.9, "dampening": 0.0, "weight_decay": 0.1, "nesterov": False},
        "states": ["momentum_buffer"],
        "make": lambda ps: torch.optim.SGD(ps, lr=0.1, momentum=0.9, dampening=0, weight_decay=0.1, nesterov=False,
                                           foreach=False),
    },
    {
        "name": "sgd_nesterov",
        "kind": "sgd",
        "torch": "torch.optim.SGD(params, lr=0.1, momentum=0.9, dampening=0, weight_decay=0.1, nesterov=True, "
                 "foreach=False)",
        "hyper": {"lr": 0.1, "momentum": 0.9, "dampening": 0.0, "weight_decay": 0.1, "nesterov": True},
        "states": ["momentum_buffer"],
        "make": lambda ps: torch.optim.SGD(ps, lr=0.1, momentum=0.9, dampening=0, weight_decay=0.1, nesterov=True,
                                           foreach=False),
    },
]


def replay(case, p0, grads, dtype):
    """Runs one case from p0 with the given gradients; returns per step (params, {state: [...]})."""
    ps = [p.to(dtype).clone().requires_grad_(True) for p in p0]
    opt = case["make"](ps)
    out = []
    for gs in grads:
        for p, g in zip(ps, gs):
            p.grad = g.to(dtype).clone()
        opt.step()
        params = [p.detach().clone() for p in ps]
        states = {s: [opt.state[p][s].detach().clone() for p in ps] for s in case["states"]}
        out.append((params, states))
    return out


def tolerance_ratio(a, b):
    """max over the elements of |a − b| / (1e-6 + 1e-5·|b|): the f32 run's distance from its f64
    replay in units of the C++ test's tolerance (below 1: torch's f32 rounding is harmless)."""
    a, b = a.double(), b.double()
    return float(((a - b).abs() / (1e-6 + 1e-5 * b.abs())).max())


def elementwise_section(gen, meta):
    names, shapes = ["w", "b"], [[17, 9], [5]]
    p0 = [normal(gen, s, 0.1) for s in shapes]
    grads = [[normal(gen, s, 0.01) for s in shapes] for _ in range(STEPS)]
    cases = []
    for case in ELEMENTWISE:
        f32 = replay(case, p0, grads, torch.float32)
        f64 = replay(case, p0, grads, torch.float64)
        worst = 0.0
        for (p32, s32), (p64, s64) in zip(f32, f64):
            for a, b in zip(p32, p64):
                worst = max(worst, tolerance_ratio(a, b))
            for s in case["states"]:
                for a, b in zip(s32[s], s64[s]):
                    worst = max(worst, tolerance_ratio(a, b))
        key = case["name"] + ": max |f32 − f64| / (1e-6 + 1e-5·|f64|), params and states, 20 steps"
        meta["diagnostics"][key] = worst
        steps = []
        for params, states in f32:
            step = {"params": [b64(p) for p in params]}
            for s, ts in states.items():
                step[s] = [b64(t) for t in ts]
            steps.append(step)
        cases.append({k: case[k] for k in ("name", "kind", "torch", "hyper", "states")} | {"steps": steps})
        print(f"{case['name']}: {len(steps)} steps, f32 vs f64 in units of the test tolerance {worst:.3e}")
    return {
        "names": names,
        "shapes": shapes,
        "params0": [b64(p) for p in p0],
        "grads": [[b64(g) for g in gs] for gs in grads],
        "cases": cases,
    }


# ------------------------------------------------------------------ Muon

MUON_HYPER = {"lr": 1.0, "weight_decay": 0.0, "momentum": 0.95, "nesterov": True, "ns_steps": 5,
              "adjust_lr_fn": "original"}


def make_muon(ps, signature):
    kwargs = dict(lr=1.0, weight_decay=0.0, momentum=0.95, nesterov=True, ns_steps=5)
    if "adjust_lr_fn" in signature.parameters:
        kwargs["adjust_lr_fn"] = "original"
    return torch.optim.Muon(ps, **kwargs), kwargs


def ns_exact(u, coeffs, steps, eps):
    """§8's iteration in float64 (no bf16): wide side, X / max(||X||, eps), steps × quintic."""
    a, b, c = coeffs
    x = u.double()
    tall = x.size(0) > x.size(1)
    if tall:
        x = x.T
    x = x / x.norm().clamp(min=eps)
    for _ in range(steps):
        g = x @ x.T
        x = a * x + (b * g + c * g @ g) @ x
    return x.T if tall else x


def muon_run(p0, grads, device, signature):
    p = p0.to(device).clone().requires_grad_(True)
    opt, kwargs = make_muon([p], signature)
    group = opt.param_groups[0]
    coeffs = group.get("ns_coefficients", (3.4445, -4.7750, 2.0315))
    eps = group.get("eps", 1e-7)
    rows, cols = p0.shape
    scale = math.sqrt(max(1.0, rows / cols))
    out = []
    for g in grads:
        p.grad = g.to(device).clone()
        before = p.detach().clone()
        opt.step()
        o = (before - p.detach()).cpu()
        buf = opt.state[p]["momentum_buffer"].detach().cpu().clone()
        # The update torch orthogonalised: grad.lerp(buf, μ) with the post-step buffer (f32).
        u = g.lerp(buf, 0.95)
        exact = scale * ns_exact(u, coeffs, 5, eps)
        out.append({"O": o, "O_exact": exact, "momentum_buffer": buf})
    return out, kwargs


def muon_section(gen, meta):
    signature = inspect.signature(torch.optim.Muon.__init__)
    cuda = torch.cuda.is_available()
    cases = []
    for shape in ([12, 20], [24, 8]):
        p0 = normal(gen, shape, 0.1)
        grads = [normal(gen, shape, 0.01) for _ in range(MUON_STEPS)]
        cpu_run, kwargs = muon_run(p0, grads, "cpu", signature)
        cuda_run = None
        if cuda:
            try:
                cuda_run = muon_run(p0, grads, "cuda", signature)[0]
            except Exception as e:  # keep the CPU data
                meta["diagnostics"]["muon cuda error"] = repr(e)
                print("muon on cuda failed:", repr(e))
        steps = []
        name = f"{shape[0]}x{shape[1]}"
        for i, r in enumerate(cpu_run):
            step = {"O": b64(r["O"]), "O_exact": b64(r["O_exact"]), "momentum_buffer": b64(r["momentum_buffer"])}
            d = float((r["O"].double() - r["O_exact"]).abs().max())
            meta["diagnostics"][f"muon {name} step {i + 1}: max |O_cpu − O_exact|"] = d
            msg = f"muon {name} step {i + 1}: max|O_cpu - O_exact| {d:.4f}"
            if cuda_run is not None:
                c = cuda_run[i]
                step["O_cuda"] = b64(c["O"])
                dc = float((c["O"].double() - r["O_exact"]).abs().max())
                dcc = float((c["O"].double() - r["O"].double()).abs().max())
                dm = float((c["momentum_buffer"].double() - r["momentum_buffer"].double()).abs().max())
                meta["diagnostics"][f"muon {name} step {i + 1}: max |O_cuda − O_exact|"] = dc
                meta["diagnostics"][f"muon {name} step {i + 1}: max |O_cuda − O_cpu|"] = dcc
                msg += f", max|O_cuda - O_exact| {dc:.4f}, max|O_cuda - O_cpu| {dcc:.4f}, buf cuda-cpu {dm:.2e}"
            print(msg)
            steps.append(step)
        cases.append({"name": name, "shape": shape, "p0": b64(p0), "grads": [b64(g) for g in grads],
                      "steps": steps})
    torch_call = "torch.optim.Muon(params, " + ", ".join(f"{k}={v!r}" for k, v in kwargs.items()) + ")"
    return {"torch": torch_call, "hyper": MUON_HYPER, "cases": cases}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default="tests/fixtures/optim/golden.json")
    ap.add_argument("--extra", default=None, help="folder for Muon's help text and source")
    args = ap.parse_args()
    torch.set_num_threads(1)
    gen = torch.Generator().manual_seed(SEED)
    meta = {
        "generator": "tests/reference/make_optim_golden.py",
        "torch": torch.__version__,
        "python": sys.version.split()[0],
        "cuda_device": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        "seed": SEED,
        "encoding": "every array: base64 of little-endian IEEE float32 values, row-major",
        "diagnostics": {},
    }
    data = {"meta": meta}
    # Each section is guarded so that one failure still leaves the others' data and the error.
    try:
        data["elementwise"] = elementwise_section(gen, meta)
    except Exception:
        meta["elementwise_error"] = traceback.format_exc()
        print(meta["elementwise_error"])
    print("torch", torch.__version__)
    if not hasattr(torch.optim, "Muon"):
        meta["muon_signature"] = None
        print("torch.optim.Muon is missing")
    else:
        meta["muon_signature"] = "torch.optim.Muon" + str(inspect.signature(torch.optim.Muon.__init__))
        print("Muon signature:", meta["muon_signature"])
        try:
            data["muon"] = muon_section(gen, meta)
        except Exception:
            meta["muon_error"] = traceback.format_exc()
            print(meta["muon_error"])
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    with open(args.out, "w") as f:
        json.dump(data, f, indent=1)
        f.write("\n")
    print(f"wrote {args.out}: {os.path.getsize(args.out)} bytes")
    if args.extra and hasattr(torch.optim, "Muon"):
        try:
            text = pydoc.render_doc(torch.optim.Muon, renderer=pydoc.plaintext)
            print("\n".join(text.splitlines()[:25]))
            os.makedirs(args.extra, exist_ok=True)
            with open(os.path.join(args.extra, "muon_help.txt"), "w") as f:
                f.write(text)
            with open(os.path.join(args.extra, "muon_source.txt"), "w") as f:
                # Muon.__module__ is "torch.optim" (2.11): read the defining module by name.
                f.write(inspect.getsource(importlib.import_module("torch.optim._muon")))
        except Exception:
            traceback.print_exc()

if __name__ == "__main__":
    main()
