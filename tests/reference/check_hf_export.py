#!/usr/bin/env python3
"""tests/reference/check_hf_export.py: does transformers read a lumen-exported Hugging Face folder
as the same model? (shared/specs/formats.md §8, §9; the device half of the golden tests.)

    python3 tests/reference/check_hf_export.py DIR_EXPORTED GOLDEN [--device cpu|cuda] [--tol 1e-5] [--bf16]

DIR_EXPORTED is a folder written by lumen's nn::export_hf (tests/golden/golden_cuda_test.cpp writes
<parity dir>/<name>_export); GOLDEN is a golden.safetensors from tests/reference/make_golden.py (either
mode) holding input_ids and logits of the model the folder was exported from. The script loads the
folder with AutoModelForCausalLM.from_pretrained (eager attention, f32, TF32 off), fails on any missing,
unexpected or mis-shaped tensor, runs input_ids and compares the logits with the golden ones:
relative Frobenius error ||a - b|| / ||b|| <= --tol (1e-5, the f32 bound of §9). With --bf16 and a
golden file holding logits_bf16 (--logits-only mode), it also runs the model cast to bf16 and compares
with logits_bf16 at 1e-2. Prints one line per comparison; exits 1 on a failure, 2 on bad input.
"""
import argparse
import json
import sys

import torch
import transformers
from safetensors import safe_open


def rel_frobenius(a, b):
    a, b = a.detach().double().cpu(), b.detach().double().cpu()
    den = float(b.norm())
    num = float((a - b).norm())
    return num / den if den > 0 else num


def load_model(folder, device):
    kwargs = {"attn_implementation": "eager"}
    try:
        model, info = transformers.AutoModelForCausalLM.from_pretrained(folder, output_loading_info=True, **kwargs)
    except TypeError:
        model, info = transformers.AutoModelForCausalLM.from_pretrained(folder, **kwargs), {}
    problems = {k: list(v) for k, v in (info or {}).items()
                if k in ("missing_keys", "unexpected_keys", "mismatched_keys") and v}
    return model.float().to(device).eval(), problems


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("exported", help="the Hugging Face folder lumen wrote")
    ap.add_argument("golden", help="a golden.safetensors with input_ids and logits")
    ap.add_argument("--device", default=None, help="cpu or cuda (default: cuda when present)")
    ap.add_argument("--tol", type=float, default=1e-5, help="bound on the f32 logits' relative Frobenius error")
    ap.add_argument("--bf16", action="store_true", help="also compare a bf16 run with logits_bf16 (at 1e-2)")
    args = ap.parse_args()

    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    torch.set_float32_matmul_precision("highest")
    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))

    with safe_open(args.golden, framework="pt") as f:
        names = set(f.keys())
        meta = f.metadata() or {}
        for need in ("input_ids", "logits"):
            if need not in names:
                print(f"{args.golden}: no tensor '{need}' (has {sorted(names)[:8]}...)")
                sys.exit(2)
        ids = f.get_tensor("input_ids").long()
        golden = f.get_tensor("logits").float()
        golden16 = f.get_tensor("logits_bf16").float() if "logits_bf16" in names else None

    model, problems = load_model(args.exported, device)
    print(f"{args.exported}: {type(model).__name__}, transformers {transformers.__version__}, torch "
          f"{torch.__version__}, device {device}; golden {meta.get('family', '?')} from {meta.get('device', '?')}")
    failed = False
    if problems:
        print("FAIL loading: " + json.dumps(problems))
        failed = True

    with torch.no_grad():
        logits = model(input_ids=ids.to(device), use_cache=False).logits.float().cpu()
    if tuple(logits.shape) != tuple(golden.shape):
        print(f"FAIL logits shape {tuple(logits.shape)}, golden {tuple(golden.shape)}")
        sys.exit(1)
    err = rel_frobenius(logits, golden)
    ok = err <= args.tol
    failed |= not ok
    print(f"{'ok  ' if ok else 'FAIL'} f32 logits: rel. Frobenius {err:.3e} (bound {args.tol:.0e}, "
          f"{err / args.tol:.2f} of it), max |diff| {float((logits - golden).abs().max()):.3e}")

    if args.bf16:
        if golden16 is None:
            print(f"FAIL --bf16: {args.golden} has no logits_bf16")
            failed = True
        else:
            m16 = model.to(torch.bfloat16)
            with torch.no_grad():
                l16 = m16(input_ids=ids.to(device), use_cache=False).logits.float().cpu()
            err16 = rel_frobenius(l16, golden16)
            ok16 = err16 <= 1e-2
            failed |= not ok16
            print(f"{'ok  ' if ok16 else 'FAIL'} bf16 logits vs logits_bf16: rel. Frobenius {err16:.3e} "
                  f"(bound 1e-2); vs f32 golden {rel_frobenius(l16, golden):.3e}")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
