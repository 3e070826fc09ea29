"""tests/reference/golden_models.py: the models behind tests/reference/make_golden.py's golden data,
each with the mapping of its parameter (and gradient) names and layout onto lumen's:

  GPT-2   transformers GPT2LMHeadModel (gpt2_config, build_gpt2); gpt2_to_lumen drops `transformer.`,
          renames h.{i} -> blocks.{i} and transposes Conv1D weights to (out, in); gpt2_expected lists
          lumen's names and shapes
  Llama   transformers LlamaForCausalLM (llama_config, build_llama; RoPE through rope_parameters in
          transformers 5, rope_theta in 4.x); llama_to_lumen renames and concatenates q/k/v_proj into
          the rows [q; k; v] of blocks.{i}.attn.c_attn.weight; llama_expected
  Wiggle  WiggleGPT, a PyTorch re-implementation of lumen's WiggleGPT v2 (mlp = bio) that already uses
          lumen's names (WIGGLE_CONFIG, build_wiggle, wiggle_expected)

The driver (batch, forward/backward, AdamW steps, files, metadata) is make_golden.py, whose docstring
describes the data.
"""
import inspect
import math
import re

import torch
import torch.nn as nn
from transformers import GPT2Config, GPT2LMHeadModel, LlamaConfig, LlamaForCausalLM

INIT_RANGE = 0.05


# ------------------------------------------------------------------ transformers helpers

def require_eager(model):
    impl = getattr(model.config, "_attn_implementation", None)
    if impl != "eager" and hasattr(model, "set_attn_implementation"):
        model.set_attn_implementation("eager")
        impl = getattr(model.config, "_attn_implementation", None)
    if impl != "eager":
        raise RuntimeError(f"{type(model).__name__}: attention implementation is {impl!r}, expected 'eager'")


# ------------------------------------------------------------------ GPT-2 (transformers)

def gpt2_config(n_layer, n_head, n_embd, n_positions, vocab):
    return GPT2Config(n_layer=n_layer, n_head=n_head, n_embd=n_embd, n_positions=n_positions,
                      vocab_size=vocab, activation_function="gelu_new", resid_pdrop=0.0, embd_pdrop=0.0,
                      attn_pdrop=0.0, layer_norm_epsilon=1e-5, initializer_range=INIT_RANGE,
                      bos_token_id=vocab - 1, eos_token_id=vocab - 1, attn_implementation="eager")


def build_gpt2(cfg, seed):
    torch.manual_seed(seed)
    model = GPT2LMHeadModel(cfg)
    require_eager(model)
    return model


def gpt2_to_lumen(model, tensors):
    """HF GPT-2 names/layout -> lumen names/layout: drop `transformer.`, h.{i} -> blocks.{i},
    transpose the weights of Conv1D modules ((in, out) -> (out, in))."""
    out = {}
    for hf_name, t in tensors.items():
        n = hf_name[len("transformer."):] if hf_name.startswith("transformer.") else hf_name
        if n == "lm_head.weight":
            raise RuntimeError("GPT-2: lm_head.weight is a separate parameter; the golden model must be tied")
        if n.startswith("h."):
            n = "blocks." + n[2:]
        owner = model.get_submodule(hf_name.rsplit(".", 1)[0])
        if type(owner).__name__ == "Conv1D" and hf_name.endswith(".weight"):
            t = t.t()
        out[n] = t.contiguous()
    return out


def gpt2_expected(cfg):
    C, V, P = cfg.n_embd, cfg.vocab_size, cfg.n_positions
    H = cfg.n_inner if cfg.n_inner else 4 * C
    e = {"wte.weight": (V, C), "wpe.weight": (P, C), "ln_f.weight": (C,), "ln_f.bias": (C,)}
    for i in range(cfg.n_layer):
        p = f"blocks.{i}."
        e.update({p + "ln_1.weight": (C,), p + "ln_1.bias": (C,), p + "ln_2.weight": (C,), p + "ln_2.bias": (C,),
                  p + "attn.c_attn.weight": (3 * C, C), p + "attn.c_attn.bias": (3 * C,),
                  p + "attn.c_proj.weight": (C, C), p + "attn.c_proj.bias": (C,),
                  p + "mlp.c_fc.weight": (H, C), p + "mlp.c_fc.bias": (H,),
                  p + "mlp.c_proj.weight": (C, H), p + "mlp.c_proj.bias": (C,)})
    return e


# ------------------------------------------------------------------ Llama (transformers)

def rope_theta_of(cfg):
    rp = getattr(cfg, "rope_parameters", None)
    if isinstance(rp, dict) and "rope_theta" in rp:
        return float(rp["rope_theta"])
    theta = getattr(cfg, "rope_theta", None)
    return float(theta) if theta is not None else None


def llama_config(rope_theta, **kw):
    """LlamaConfig with eager attention and default RoPE at `rope_theta`: transformers 5 takes
    rope_parameters, 4.x rope_theta."""
    fields = getattr(LlamaConfig, "__dataclass_fields__", {})
    sig = inspect.signature(LlamaConfig.__init__).parameters
    if "rope_parameters" in fields or "rope_parameters" in sig:
        kw["rope_parameters"] = {"rope_type": "default", "rope_theta": float(rope_theta)}
    else:
        kw["rope_theta"] = float(rope_theta)
    cfg = LlamaConfig(attn_implementation="eager", **kw)
    got = rope_theta_of(cfg)
    if got is None or abs(got - rope_theta) > 1e-9:
        raise RuntimeError(f"LlamaConfig: rope_theta is {got}, expected {rope_theta}")
    return cfg


def build_llama(cfg, seed):
    torch.manual_seed(seed)
    model = LlamaForCausalLM(cfg)
    require_eager(model)
    return model


LLAMA_RENAMES = [
    (r"model\.embed_tokens\.weight", "wte.weight"),
    (r"model\.norm\.weight", "ln_f.weight"),
    (r"lm_head\.weight", "lm_head.weight"),
    (r"model\.layers\.(\d+)\.input_layernorm\.weight", r"blocks.\1.ln_1.weight"),
    (r"model\.layers\.(\d+)\.post_attention_layernorm\.weight", r"blocks.\1.ln_2.weight"),
    (r"model\.layers\.(\d+)\.self_attn\.o_proj\.weight", r"blocks.\1.attn.c_proj.weight"),
    (r"model\.layers\.(\d+)\.mlp\.gate_proj\.weight", r"blocks.\1.mlp.c_gate.weight"),
    (r"model\.layers\.(\d+)\.mlp\.up_proj\.weight", r"blocks.\1.mlp.c_fc.weight"),
    (r"model\.layers\.(\d+)\.mlp\.down_proj\.weight", r"blocks.\1.mlp.c_proj.weight"),
]
LLAMA_QKV = re.compile(r"model\.layers\.(\d+)\.self_attn\.([qkv])_proj\.weight")


def llama_to_lumen(model, tensors):
    """HF Llama names -> lumen names; q/k/v_proj (nn.Linear (out, in), no transpose) become the
    rows [q; k; v] of blocks.{i}.attn.c_attn.weight."""
    out, qkv = {}, {}
    for hf_name, t in tensors.items():
        m = LLAMA_QKV.fullmatch(hf_name)
        if m:
            qkv.setdefault(int(m.group(1)), {})[m.group(2)] = t
            continue
        for pattern, repl in LLAMA_RENAMES:
            if re.fullmatch(pattern, hf_name):
                out[re.sub(pattern, repl, hf_name)] = t.contiguous()
                break
        else:
            raise RuntimeError(f"Llama: no lumen name for {hf_name}")
    for i, parts in qkv.items():
        if sorted(parts) != ["k", "q", "v"]:
            raise RuntimeError(f"Llama layer {i}: q/k/v_proj incomplete ({sorted(parts)})")
        out[f"blocks.{i}.attn.c_attn.weight"] = torch.cat([parts["q"], parts["k"], parts["v"]], 0).contiguous()
    return out


def llama_expected(cfg):
    C, V, I = cfg.hidden_size, cfg.vocab_size, cfg.intermediate_size
    hd = C // cfg.num_attention_heads
    kv = cfg.num_key_value_heads * hd
    e = {"wte.weight": (V, C), "ln_f.weight": (C,)}
    if not cfg.tie_word_embeddings:
        e["lm_head.weight"] = (V, C)
    for i in range(cfg.num_hidden_layers):
        p = f"blocks.{i}."
        e.update({p + "ln_1.weight": (C,), p + "ln_2.weight": (C,), p + "attn.c_attn.weight": (C + 2 * kv, C),
                  p + "attn.c_proj.weight": (C, C), p + "mlp.c_gate.weight": (I, C), p + "mlp.c_fc.weight": (I, C),
                  p + "mlp.c_proj.weight": (C, I)})
    return e


# ------------------------------------------------------------------ WiggleGPT v2 (lumen's math)
#
# Restated from lumen's nn/gpt.cpp, nn/attention.cpp, nn/layers.cpp, nn/mlp.cpp,
# autograd/ops/wiggle.h and shared/specs/wiggle.md §§1-3 (bio = v2):
#   x0 = wte[idx] + wpe[0..T-1]; per block x += attn(ln_1(x)); x += mlp(ln_2(x)); logits = ln_f(x)·wteᵀ
#   LayerNorm: biased variance, eps 1e-5, weight only (bias = false)
#   attn: c_attn (3C, C) rows [q; k; v], heads contiguous; softmax(q·kᵀ/√hs + causal)·v; c_proj (C, C)
#   bio MLP: h = c_fc(x); a = osc1(h); v = σ(a·W_gᵀ); s = σ(5·(v − θ)); m = a ⊙ s;
#            o = osc2(m·W_tᵀ); y = c_proj(o)          with osc(x) = sin(ω·x + φ)·tanh(x) + b
# No GELU anywhere in a bio model; all Linear layers without bias.

WIGGLE_CONFIG = {
    "n_layer": 2, "n_head": 2, "n_kv_head": 0, "n_embd": 32, "block_size": 64, "vocab_size": 500,
    "bias": False, "dropout": 0.0, "norm": "layernorm", "norm_eps": 1e-5, "pos": "learned",
    "rope_theta": 10000.0, "rope_pairing": "half", "mlp": "bio", "mlp_ratio": 4.0, "mlp_hidden": 0,
    "bio_threshold": 0.25, "tie_embeddings": True,
}


class Osc(nn.Module):
    def __init__(self, h):
        super().__init__()
        self.omega = nn.Parameter(torch.ones(h))
        self.phi = nn.Parameter(torch.zeros(h))
        self.baseline = nn.Parameter(torch.zeros(h))

    def forward(self, x):  # (..., H)
        return torch.sin(self.omega * x + self.phi) * torch.tanh(x) + self.baseline


class SparseGate(nn.Module):
    def __init__(self, h, threshold, bias):
        super().__init__()
        self.threshold = threshold
        self.gate = nn.Linear(h, h, bias=bias)
        self.transform = nn.Linear(h, h, bias=bias)
        self.activation = Osc(h)

    def forward(self, a):  # (N, H)
        v = torch.sigmoid(self.gate(a))
        s = torch.sigmoid(5.0 * (v - self.threshold))
        return self.activation(self.transform(a * s))


class BioMlp(nn.Module):
    def __init__(self, c):
        super().__init__()
        C, H = c["n_embd"], int(round(c["mlp_ratio"] * c["n_embd"]))
        self.c_fc = nn.Linear(C, H, bias=c["bias"])
        self.oscillating = Osc(H)
        self.sparse_gate = SparseGate(H, c["bio_threshold"], c["bias"])
        self.c_proj = nn.Linear(H, C, bias=c["bias"])

    def forward(self, x):  # (B, T, C)
        b, t, _ = x.shape
        a = self.oscillating(self.c_fc(x))
        o = self.sparse_gate(a.reshape(b * t, -1))
        return self.c_proj(o.reshape(b, t, -1))


class Attention(nn.Module):
    def __init__(self, c):
        super().__init__()
        C = c["n_embd"]
        self.n_head = c["n_head"]
        self.c_attn = nn.Linear(C, 3 * C, bias=c["bias"])
        self.c_proj = nn.Linear(C, C, bias=c["bias"])

    def forward(self, x):  # (B, T, C)
        b, t, C = x.shape
        hs = C // self.n_head
        q, k, v = self.c_attn(x).split(C, dim=2)
        q, k, v = (z.view(b, t, self.n_head, hs).transpose(1, 2) for z in (q, k, v))  # (B, nh, T, hs)
        att = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(hs))
        mask = torch.ones(t, t, dtype=torch.bool, device=x.device).tril()
        att = att.masked_fill(~mask, float("-inf")).softmax(dim=-1)
        y = (att @ v).transpose(1, 2).reshape(b, t, C)
        return self.c_proj(y)


class Block(nn.Module):
    def __init__(self, c):
        super().__init__()
        C = c["n_embd"]
        self.ln_1 = nn.LayerNorm(C, eps=c["norm_eps"], bias=c["bias"])
        self.attn = Attention(c)
        self.ln_2 = nn.LayerNorm(C, eps=c["norm_eps"], bias=c["bias"])
        self.mlp = BioMlp(c)

    def forward(self, x):
        x = x + self.attn(self.ln_1(x))
        return x + self.mlp(self.ln_2(x))


class WiggleGPT(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.c = dict(c)
        C = c["n_embd"]
        self.wte = nn.Embedding(c["vocab_size"], C)
        self.wpe = nn.Embedding(c["block_size"], C)
        self.blocks = nn.ModuleList([Block(c) for _ in range(c["n_layer"])])
        self.ln_f = nn.LayerNorm(C, eps=c["norm_eps"], bias=c["bias"])

    def forward(self, idx):  # (B, T) -> (B, T, V)
        t = idx.shape[1]
        x = self.wte(idx) + self.wpe(torch.arange(t, device=idx.device))
        for block in self.blocks:
            x = block(x)
        return self.ln_f(x) @ self.wte.weight.t()


def build_wiggle(c, seed):
    """lumen's init structure with a larger scale so that every nonlinearity is exercised:
    matrices and embeddings N(0, INIT_RANGE²), residual projections (names ending c_proj.weight)
    N(0, (INIT_RANGE/√(2L))²), the gate and transform matrices N(0, 0.15²) (so that v = σ(z)
    spreads across θ), ω ~ N(1, 0.3²), φ ~ N(0, 0.3²), baseline and norms via make_golden.py's perturb_1d."""
    torch.manual_seed(seed)
    model = WiggleGPT(c)
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.dim() == 2:
                std = INIT_RANGE
                if name.endswith("c_proj.weight"):
                    std = INIT_RANGE / math.sqrt(2 * c["n_layer"])
                if ".sparse_gate.gate." in name or ".sparse_gate.transform." in name:
                    std = 0.15
                p.copy_(std * torch.randn(p.shape, generator=gen))
            elif name.endswith(".omega"):
                p.copy_(1.0 + 0.3 * torch.randn(p.shape, generator=gen))
            elif name.endswith(".phi"):
                p.copy_(0.3 * torch.randn(p.shape, generator=gen))
    return model


def wiggle_expected(c):
    C, V = c["n_embd"], c["vocab_size"]
    H = int(round(c["mlp_ratio"] * C))
    e = {"wte.weight": (V, C), "wpe.weight": (c["block_size"], C), "ln_f.weight": (C,)}
    for i in range(c["n_layer"]):
        p = f"blocks.{i}."
        e.update({p + "ln_1.weight": (C,), p + "ln_2.weight": (C,), p + "attn.c_attn.weight": (3 * C, C),
                  p + "attn.c_proj.weight": (C, C), p + "mlp.c_fc.weight": (H, C), p + "mlp.c_proj.weight": (C, H),
                  p + "mlp.sparse_gate.gate.weight": (H, H), p + "mlp.sparse_gate.transform.weight": (H, H)})
        for osc in ("mlp.oscillating.", "mlp.sparse_gate.activation."):
            for k in ("omega", "phi", "baseline"):
                e[p + osc + k] = (H,)
    return e
