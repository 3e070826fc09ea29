#!/usr/bin/env python3
"""tests/reference/make_golden.py: golden data for lumen's parity tests against PyTorch and
transformers (shared/specs/formats.md §9, the llm.c method; read by tests/golden/golden_test.cpp and
tests/golden/golden_cuda_test.cpp).

Small mode (the committed fixtures), from the repository root, on a machine with torch and
transformers:

    python3 tests/reference/make_golden.py --out tests/fixtures/golden

writes one directory per family, each holding the model's weights and golden.safetensors:

  gpt2/    transformers GPT2LMHeadModel (2 layers, 4 heads, n_embd 64, n_positions 64, vocab 500,
           gelu_new, tied head), saved with save_pretrained: config.json + model.safetensors
  llama/   transformers LlamaForCausalLM (hidden 64, intermediate 176, 2 layers, 4 heads, 2 kv heads
           (GQA), vocab 512, rms_norm_eps 1e-5, rope_theta 10000, untied head), save_pretrained
  wiggle/  a PyTorch re-implementation of lumen's WiggleGPT v2 (mlp = bio; 2 layers, 2 heads,
           n_embd 32, block 64, vocab 500, LayerNorm without bias, learned positions, tied head),
           model.safetensors with lumen's names (only wte.weight for the tied head); the lumen
           ModelConfig is the JSON string "lumen_model" in both files' __metadata__

Every family: f32, TF32 off, dropout 0, eager attention, seed SEED, on the CPU unless --device cuda.
The initial weights are the library's random init from the seed with initializer_range 0.05
(attention that is far from uniform), then every 1-D parameter is perturbed (norm weights by
N(0, 0.1²) away from 1, biases by N(0, 0.05²) away from 0) so that they matter.
One batch: B = 4, T = 32; a random (B, T+1) token sequence gives input_ids = seq[:, :T] and
targets = seq[:, 1:]. Then STEPS = 10 steps of torch.optim.AdamW(lr 1e-3, betas (0.9, 0.95), eps
1e-8, foreach=False) on the same batch with clip_grad_norm_(1.0) before each step, weight decay
0.1 for the tensors with dim >= 2 and 0 for the rest (lumen's rule G1, optim/groups.h: here every
2-D tensor is an embedding or a matrix and every 1-D one a norm, bias or oscillation parameter).

golden.safetensors (formats.md §9):
  input_ids, targets   I32 (B, T)
  logits               F32 (B, T, V) of the initial weights
  loss                 F32 [] : mean cross-entropy of logits against targets
  grad.<lumen name>    F32, for every lumen parameter, in lumen's layout (GPT-2 Conv1D weights
                       transposed to (out, in); Llama q/k/v_proj concatenated into the rows
                       [q; k; v] of blocks.{i}.attn.c_attn.weight; the tied GPT-2 wte's gradient
                       includes the lm_head contribution, as torch's shared parameter sums it)
  step_losses          F32 (STEPS,): step_losses[k] is the loss before step k's update (k = 0 is
                       `loss`)
  step_grad_norms      F32 (STEPS,): the global gradient norm clip_grad_norm_ returned at step k
  __metadata__         format "pt", family, versions, device, seed, dtype, hyper (JSON), batch,
                       init, date, command, the model config (hf_config or lumen_model), and
                       torch_f32_vs_f64: torch's own f32 error against a float64 replay of the same
                       forward and backward (relative Frobenius per tensor), which tells how much
                       of the C++ bounds torch's rounding alone uses.

Big mode (device only, never committed):

    python3 tests/reference/make_golden.py --logits-only --out /tmp/hf_parity [--device cuda]

writes gpt2_124m/ (GPT-2 124M shape: 12/12/768, vocab 50257, n_positions 1024) and smollm_135m/ (a
SmolLM-135M-like Llama: hidden 576, intermediate 1536, 30 layers, 9 heads, 3 kv heads, vocab 49152,
tied, rope_theta 10000, max_position_embeddings 2048), random init from the seed, each a
save_pretrained folder plus golden.safetensors with input_ids (I32, B = 2, T = 128), logits (F32,
f32 run on --device) and logits_bf16 (F32 holding the bf16 values of the same model cast with
model.to(torch.bfloat16) and run on CUDA; on the CPU when there is no GPU, noted in metadata).
tests/golden/golden_cuda_test.cpp reads it when LUMEN_HF_PARITY_DIR points at --out.

This script is the driver (arguments, the batch, forward/backward, the AdamW steps, the files and
their metadata); the models and the mapping of their names and gradients onto lumen's layout are in
tests/reference/golden_models.py, next to it.
"""
import argparse
import copy
import datetime
import glob
import inspect
import json
import os
import platform
import sys

import numpy as np
import safetensors
import torch
import torch.nn.functional as F
import transformers
from safetensors.torch import load_file, save_file

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # golden_models.py, next to this script
from golden_models import (INIT_RANGE, WIGGLE_CONFIG, WiggleGPT, build_gpt2, build_llama,  # noqa: E402
                           build_wiggle, gpt2_config, gpt2_expected, gpt2_to_lumen, llama_config,
                           llama_expected, llama_to_lumen, wiggle_expected)

SEED = 20260515
B, T = 4, 32
STEPS = 10
HYPER = {
    "optimizer": "torch.optim.AdamW",
    "lr": 1e-3,
    "beta1": 0.9,
    "beta2": 0.95,
    "eps": 1e-8,
    "weight_decay": 0.1,
    "foreach": False,
    "grad_clip": 1.0,
    "clip": "torch.nn.utils.clip_grad_norm_(params, 1.0) before each step",
    "groups": "weight_decay 0.1 iff dim >= 2, else 0 (lumen G1)",
    "steps": STEPS,
}
BIG_B, BIG_T = 2, 128

# Files this script writes into a family directory (removed first, so no stale file survives).
OWNED = ["config.json", "generation_config.json", "model.safetensors", "model.safetensors.index.json",
         "golden.safetensors", "model-*-of-*.safetensors"]


# ------------------------------------------------------------------ torch setup and helpers

def setup_torch():
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    torch.set_float32_matmul_precision("highest")


def versions():
    return {
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "safetensors": getattr(safetensors, "__version__", "?"),
        "numpy": np.__version__,
        "python": platform.python_version(),
    }


def device_name(device):
    if device.type == "cuda":
        return "cuda: " + torch.cuda.get_device_name(device)
    return "cpu: " + (platform.processor() or platform.machine())


def rel_frobenius(a, b):
    """||a - b|| / ||b|| in float64 (0 when both are 0)."""
    a, b = a.detach().double().cpu(), b.detach().double().cpu()
    den = float(b.norm())
    num = float((a - b).norm())
    return num / den if den > 0 else num


def clean_dir(d):
    os.makedirs(d, exist_ok=True)
    for pattern in OWNED:
        for f in glob.glob(os.path.join(d, pattern)):
            os.remove(f)


def dir_bytes(d):
    return sum(os.path.getsize(os.path.join(d, f)) for f in os.listdir(d) if os.path.isfile(os.path.join(d, f)))


def perturb_1d(model, seed):
    """Moves every 1-D parameter off its init: all-ones (norm weights) by N(0, 0.1²), the rest
    (biases at 0, oscillation parameters) by N(0, 0.05²). Deterministic for the seed."""
    gen = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():
        for _, p in model.named_parameters():
            if p.dim() != 1:
                continue
            scale = 0.1 if bool(torch.all(p == 1)) else 0.05
            noise = torch.randn(p.shape, generator=gen, dtype=torch.float32)
            p.add_((scale * noise).to(p.device, p.dtype))


def make_batch(vocab, seed, b=B, t=T):
    gen = torch.Generator().manual_seed(seed + 2)
    seq = torch.randint(0, vocab, (b, t + 1), generator=gen, dtype=torch.int64)
    return seq[:, :t].contiguous(), seq[:, 1:].contiguous()


def save_hf(model, d):
    """save_pretrained as safetensors (transformers 5 always writes safetensors and may not take
    safe_serialization; 4.x needs it)."""
    params = inspect.signature(model.save_pretrained).parameters
    if "safe_serialization" in params:
        model.save_pretrained(d, safe_serialization=True)
    else:
        model.save_pretrained(d)
    if not (os.path.exists(os.path.join(d, "model.safetensors"))
            or os.path.exists(os.path.join(d, "model.safetensors.index.json"))):
        raise RuntimeError(f"save_pretrained wrote no safetensors into {d}: {sorted(os.listdir(d))}")


# ------------------------------------------------------------------ forward, backward, steps

def hf_logits(model, ids):
    return model(input_ids=ids, use_cache=False).logits


def wiggle_logits(model, ids):
    return model(ids)


def loss_of(logits, targets):
    V = logits.shape[-1]
    return F.cross_entropy(logits.reshape(-1, V), targets.reshape(-1))


def check_names(lumen, expected, family):
    got = {k: tuple(v.shape) for k, v in lumen.items()}
    missing = sorted(set(expected) - set(got))
    extra = sorted(set(got) - set(expected))
    wrong = sorted(k for k in set(got) & set(expected) if got[k] != tuple(expected[k]))
    if missing or extra or wrong:
        raise RuntimeError(f"{family}: lumen names/shapes differ: missing {missing}, unexpected {extra}, "
                           f"wrong shapes {[(k, got[k], expected[k]) for k in wrong]}")


def forward_backward(model, logits_fn, ids, targets):
    """One forward/backward from zero gradients; returns logits, loss and {hf name: grad}."""
    model.zero_grad(set_to_none=True)
    logits = logits_fn(model, ids)
    loss = loss_of(logits, targets)
    loss.backward()
    grads = {n: p.grad.detach().clone() for n, p in model.named_parameters() if p.grad is not None}
    return logits.detach().clone(), loss.detach().clone(), grads


def adamw_steps(model, logits_fn, ids, targets):
    """STEPS steps of AdamW + clip on the batch; the loss and grad norm before each update."""
    params = [p for p in model.parameters() if p.requires_grad]
    decay = [p for p in params if p.dim() >= 2]
    no_decay = [p for p in params if p.dim() < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": HYPER["weight_decay"]},
                             {"params": no_decay, "weight_decay": 0.0}],
                            lr=HYPER["lr"], betas=(HYPER["beta1"], HYPER["beta2"]), eps=HYPER["eps"],
                            foreach=False)
    losses, norms = [], []
    for _ in range(STEPS):
        opt.zero_grad(set_to_none=True)
        loss = loss_of(logits_fn(model, ids), targets)
        loss.backward()
        norm = torch.nn.utils.clip_grad_norm_(params, HYPER["grad_clip"])
        losses.append(float(loss.detach()))
        norms.append(float(norm.detach()))
        opt.step()
    return losses, norms


def f64_diagnostics(model, logits_fn, to_lumen, ids, targets, logits32, loss32, grads32):
    """torch's own f32 error: the same forward/backward in float64 (relative Frobenius)."""
    m64 = copy.deepcopy(model).double()
    logits64, loss64, grads64 = forward_backward(m64, logits_fn, ids, targets)
    g32, g64 = to_lumen(model, grads32), to_lumen(m64, grads64)
    d = {"logits": rel_frobenius(logits32, logits64), "loss_abs": abs(float(loss32) - float(loss64))}
    for name in sorted(g32):
        d["grad." + name] = rel_frobenius(g32[name], g64[name])
    return d


def write_golden(path, tensors, meta):
    save_file({k: v.detach().cpu().contiguous() for k, v in tensors.items()}, path,
              metadata={k: (v if isinstance(v, str) else json.dumps(v)) for k, v in meta.items()})


def base_meta(family, device, args):
    return {
        "format": "pt",
        "generator": "tests/reference/make_golden.py",
        "family": family,
        "command": "python3 " + " ".join(sys.argv),
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "versions": versions(),
        "device": device_name(device),
        "seed": str(args.seed),
        "dtype": "float32",
    }


def small_family(family, args, device):
    out = os.path.join(args.out, family)
    clean_dir(out)
    seed = args.seed
    meta = base_meta(family, device, args)
    if family == "gpt2":
        cfg = gpt2_config(n_layer=2, n_head=4, n_embd=64, n_positions=64, vocab=500)
        model = build_gpt2(cfg, seed)
        to_lumen, expected, logits_fn = gpt2_to_lumen, gpt2_expected(cfg), hf_logits
        vocab = cfg.vocab_size
        conv1d = sorted({type(m).__name__ for n, m in model.named_modules() if n.endswith(("c_attn", "c_proj", "c_fc"))})
        meta["gpt2_projection_modules"] = ",".join(conv1d)
        if conv1d != ["Conv1D"]:
            print(f"WARNING: GPT-2 projections are {conv1d}, not Conv1D: the saved file's layout differs from "
                  "formats.md §8.1 (grads are still mapped by module type)")
    elif family == "llama":
        cfg = llama_config(10000.0, hidden_size=64, intermediate_size=176, num_hidden_layers=2,
                           num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=64,
                           vocab_size=512, rms_norm_eps=1e-5, tie_word_embeddings=False, attention_dropout=0.0,
                           initializer_range=INIT_RANGE, bos_token_id=1, eos_token_id=2)
        model = build_llama(cfg, seed)
        to_lumen, expected, logits_fn = llama_to_lumen, llama_expected(cfg), hf_logits
        vocab = cfg.vocab_size
    else:
        c = dict(WIGGLE_CONFIG)
        model = build_wiggle(c, seed)
        to_lumen, expected, logits_fn = (lambda m, t: dict(t)), wiggle_expected(c), wiggle_logits
        vocab = c["vocab_size"]
        meta["lumen_model"] = json.dumps(c)
    perturb_1d(model, seed)
    model.to(device).eval()

    weights = to_lumen(model, {n: p.detach() for n, p in model.named_parameters()})
    check_names(weights, expected, family)

    # The weights as the C++ test loads them (before any step changes them).
    if family == "wiggle":
        save_file({k: v.detach().cpu().contiguous() for k, v in weights.items()},
                  os.path.join(out, "model.safetensors"),
                  metadata={"format": "pt", "lumen_model": meta["lumen_model"]})
    else:
        save_hf(model, out)
        meta["hf_config"] = model.config.to_json_string(use_diff=False)

    ids, targets = make_batch(vocab, seed)
    ids, targets = ids.to(device), targets.to(device)
    logits, loss, grads_hf = forward_backward(model, logits_fn, ids, targets)
    grads = to_lumen(model, grads_hf)
    check_names(grads, expected, family)

    # The saved folder/file must reproduce the logits.
    if family == "wiggle":
        fresh = WiggleGPT(WIGGLE_CONFIG)
        fresh.load_state_dict(load_file(os.path.join(out, "model.safetensors")), strict=True)
        fresh.to(device).eval()
        with torch.no_grad():
            again = wiggle_logits(fresh, ids)
    else:
        fresh = transformers.AutoModelForCausalLM.from_pretrained(out, attn_implementation="eager")
        fresh = fresh.float().to(device).eval()
        with torch.no_grad():
            again = hf_logits(fresh, ids)
    reload_err = rel_frobenius(again, logits)
    if reload_err > 1e-6:
        raise RuntimeError(f"{family}: the saved weights give other logits (rel. Frobenius {reload_err:.3e})")

    try:  # a diagnostic: its failure must not cost the golden data
        diag = f64_diagnostics(model, logits_fn, to_lumen, ids, targets, logits, loss, grads_hf)
    except Exception as e:  # noqa: BLE001
        diag = {"error": repr(e)}
        print(f"{family}: the float64 replay failed: {e!r}")
    losses, norms = adamw_steps(model, logits_fn, ids, targets)
    if abs(losses[0] - float(loss)) > 1e-6:
        raise RuntimeError(f"{family}: step 0 loss {losses[0]} differs from the golden loss {float(loss)}")

    tensors = {
        "input_ids": ids.to(torch.int32),
        "targets": targets.to(torch.int32),
        "logits": logits.float(),
        "loss": loss.float().reshape(()),
        "step_losses": torch.tensor(losses, dtype=torch.float32),
        "step_grad_norms": torch.tensor(norms, dtype=torch.float32),
    }
    for name, g in grads.items():
        tensors["grad." + name] = g.float()
    meta.update({
        "hyper": HYPER,
        "batch": {"B": B, "T": T, "vocab_size": vocab,
                  "how": "seq = randint(0, V, (B, T+1)); input_ids = seq[:, :T]; targets = seq[:, 1:]"},
        "init": f"library init, torch.manual_seed({seed}), initializer_range {INIT_RANGE}; 1-D parameters "
                "perturbed (norm weights + N(0, 0.1^2), others + N(0, 0.05^2))"
                + ("; wiggle: see build_wiggle" if family == "wiggle" else ""),
        "reload_logits_rel_frobenius": repr(reload_err),
        "torch_f32_vs_f64": diag,
    })
    write_golden(os.path.join(out, "golden.safetensors"), tensors, meta)

    numeric = [(v, k) for k, v in diag.items() if k != "loss_abs" and isinstance(v, float)]
    worst = max(numeric) if numeric else (float("nan"), "none")
    print(f"{family}: loss {float(loss):.6f}, {len(grads)} gradients, step losses "
          f"{' '.join(f'{x:.6f}' for x in losses)}")
    print(f"{family}: torch f32 vs f64: {json.dumps(diag)[:200]}..., worst {worst[1]} {worst[0]:.2e}")
    print(f"{family}: wrote {out} ({dir_bytes(out)} bytes: "
          + ", ".join(f"{f} {os.path.getsize(os.path.join(out, f))}" for f in sorted(os.listdir(out))) + ")")
    return {"family": family, "bytes": dir_bytes(out), "loss": float(loss), "step_losses": losses,
            "f64_worst": worst}


def write_readme(out, results, args):
    lines = [
        "# Golden parity data (generated; do not edit)",
        "",
        "Written by `tests/reference/make_golden.py` (see its docstring for every detail) with",
        "",
        "    " + "python3 " + " ".join(sys.argv),
        "",
        f"on {datetime.datetime.now(datetime.timezone.utc).strftime('%Y-%m-%d')} with "
        + ", ".join(f"{k} {v}" for k, v in versions().items()) + ".",
        "Read by tests/golden/golden_test.cpp (CPU) and tests/golden/golden_cuda_test.cpp (GPU).",
        "",
        "| family | bytes | loss | step 9 loss | torch f32 vs f64, worst tensor |",
        "|---|---|---|---|---|",
    ]
    for r in results:
        lines.append(f"| {r['family']} | {r['bytes']} | {r['loss']:.6f} | {r['step_losses'][-1]:.6f} | "
                     f"{r['f64_worst'][1]} {r['f64_worst'][0]:.2e} |")
    with open(os.path.join(out, "README.md"), "w") as f:
        f.write("\n".join(lines) + "\n")


# ------------------------------------------------------------------ big mode (--logits-only)

def big_family(name, args, device):
    out = os.path.join(args.out, name)
    clean_dir(out)
    seed = args.seed
    meta = base_meta(name, device, args)
    if name == "gpt2_124m":
        cfg = gpt2_config(n_layer=12, n_head=12, n_embd=768, n_positions=1024, vocab=50257)
        cfg.initializer_range = 0.02
        model = build_gpt2(cfg, seed)
    else:
        cfg = llama_config(10000.0, hidden_size=576, intermediate_size=1536, num_hidden_layers=30,
                           num_attention_heads=9, num_key_value_heads=3, max_position_embeddings=2048,
                           vocab_size=49152, rms_norm_eps=1e-5, tie_word_embeddings=True, attention_dropout=0.0,
                           initializer_range=0.02, bos_token_id=1, eos_token_id=2)
        model = build_llama(cfg, seed)
    perturb_1d(model, seed)
    model.eval()
    save_hf(model, out)
    ids, _ = make_batch(cfg.vocab_size, seed, BIG_B, BIG_T)
    with torch.no_grad():
        logits = hf_logits(model.to(device), ids.to(device)).float().cpu()
    bf16_device = torch.device("cuda") if torch.cuda.is_available() else torch.device("cpu")
    m16 = copy.deepcopy(model).to(bf16_device).to(torch.bfloat16).eval()
    with torch.no_grad():
        logits16 = hf_logits(m16, ids.to(bf16_device))
    if logits16.dtype != torch.bfloat16:
        raise RuntimeError(f"{name}: the bf16 model returned {logits16.dtype} logits")
    logits16 = logits16.float().cpu()
    meta.update({
        "hf_config": model.config.to_json_string(use_diff=False),
        "bf16_device": device_name(bf16_device),
        "batch": {"B": BIG_B, "T": BIG_T, "vocab_size": cfg.vocab_size},
        "init": f"library init, torch.manual_seed({seed}), initializer_range 0.02; 1-D parameters perturbed",
        "bf16_vs_f32_logits_rel_frobenius": repr(rel_frobenius(logits16, logits)),
    })
    write_golden(os.path.join(out, "golden.safetensors"),
                 {"input_ids": ids.to(torch.int32), "logits": logits, "logits_bf16": logits16}, meta)
    print(f"{name}: {sum(p.numel() for p in model.parameters())} parameters, logits {tuple(logits.shape)}, "
          f"bf16 vs f32 rel. Frobenius {rel_frobenius(logits16, logits):.3e}, wrote {out}")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", required=True, help="output folder (one subfolder per family)")
    ap.add_argument("--device", default="cpu", help="cpu (default) or cuda")
    ap.add_argument("--seed", type=int, default=SEED)
    ap.add_argument("--families", default=None,
                    help="comma-separated subset (small: gpt2,llama,wiggle; big: gpt2_124m,smollm_135m)")
    ap.add_argument("--logits-only", action="store_true",
                    help="device-only full-size models: logits in f32 and bf16, no gradients")
    args = ap.parse_args()
    setup_torch()
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        sys.exit("--device cuda: no GPU visible to torch")
    print("versions:", json.dumps(versions()), "device:", device_name(device))
    os.makedirs(args.out, exist_ok=True)
    if args.logits_only:
        families = args.families.split(",") if args.families else ["gpt2_124m", "smollm_135m"]
        for name in families:
            if name not in ("gpt2_124m", "smollm_135m"):
                sys.exit(f"--families: unknown big family {name!r} (gpt2_124m, smollm_135m)")
            big_family(name, args, device)
        return
    families = args.families.split(",") if args.families else ["gpt2", "llama", "wiggle"]
    for name in families:
        if name not in ("gpt2", "llama", "wiggle"):
            sys.exit(f"--families: unknown family {name!r} (gpt2, llama, wiggle)")
    results = [small_family(name, args, device) for name in families]
    write_readme(args.out, results, args)


if __name__ == "__main__":
    main()
