// nn/attention.h: causal self-attention, multi-head or grouped-query, with learned (outside),
// rotary or no positions, and a KV cache for generation.
//
// c_attn (C → C + 2·kv) gives q = columns [0, C), k = [C, C+kv), v = [C+kv, C+2kv) with
// kv = n_kv_head·hs; head h of q is columns [h·hs, (h+1)·hs). The weight registers the row
// partition {C, kv, kv} so Muon orthogonalises Q, K and V separately.
#pragma once

#include "nn/config.h"
#include "nn/layers.h"

namespace lumen::nn {

// One layer's cached keys and values: (B, nkv, Tc, hs) each, undefined when empty.
struct KVCache {
    Tensor k, v;
    int64_t length() const { return k.defined() ? k.size(2) : 0; }
};

class CausalSelfAttention : public Module {
public:
    CausalSelfAttention(const ModelConfig& c, Generator& gen, Generator* dropout_gen);
    // x (B, T, C) -> (B, T, C). Token t sits at position pos0 + t (RoPE). With a cache, the new
    // keys/values are appended to it and attention runs over the cached ones too.
    Tensor forward(const Tensor& x, KVCache* cache = nullptr, int64_t pos0 = 0);

private:
    int64_t n_head_, n_kv_head_, hs_;
    PosKind pos_;
    double rope_theta_;
    RopePairingKind pairing_;
    double dropout_;
    Generator* dropout_gen_;
    Child<Linear> c_attn_, c_proj_;
    Child<Dropout> resid_dropout_;
};

}  // namespace lumen::nn
