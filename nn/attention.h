// nn/attention.h: causal self-attention, multi-head or grouped-query, with learned (outside),
// rotary or no positions, and a KV cache for generation.
//
// c_attn (C → C + 2·kv) gives q = columns [0, C), k = [C, C+kv), v = [C+kv, C+2kv) with
// kv = n_kv_head·hs; head h of q is columns [h·hs, (h+1)·hs). The weight registers the row
// partition {C, kv, kv} so Muon orthogonalises Q, K and V separately.
#pragma once

#include "nn/config.h"
#include "nn/layers.h"
#include "nn/optical_settings.h"

#include <memory>

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

    // Sends Q·Kᵀ and P·V through the optical unit from now on (specs/optical.md §3.3), registering
    // the range buffers and call counters under this module; `name` is its dotted name (the dither
    // streams are name + "#qk" and name + "#av"). The projections are separate Linear children.
    void make_optical(const OpticalSettings& settings, const std::string& name);
    bool is_optical() const { return optical_ != nullptr; }
    const OpticalSettings* optical_settings() const;
    // Data parallelism (specs/optical.md §5): rank r of W offsets the optical element-mode dither
    // indices of S and Y by r × (numel of this call's S, Y), so its batch entries are the global
    // call's [r·B, (r+1)·B). Kept while digital, so a later make_optical inherits it; default (0, 1).
    // nn::GPT::set_data_parallel sets it (defined in nn/optical_attention.cpp).
    void set_data_parallel(int rank, int world);
    int data_parallel_rank() const { return dp_rank_; }
    int data_parallel_world() const { return dp_world_; }
    int64_t n_head() const { return n_head_; }
    int64_t n_kv_head() const { return n_kv_head_; }
    int64_t head_size() const { return hs_; }

private:
    int64_t n_head_, n_kv_head_, hs_;
    PosKind pos_;
    double rope_theta_;
    RopePairingKind pairing_;
    double dropout_;
    Generator* dropout_gen_;
    int dp_rank_ = 0, dp_world_ = 1;
    Child<Linear> c_attn_, c_proj_;
    Child<Dropout> resid_dropout_;
    struct OpticalState;                    // nn/optical_attention.cpp
    std::shared_ptr<OpticalState> optical_;  // null while digital
    // The attention core while optical: q (B, nh, Tq, hs), k and v (B, nkv, Tk, hs) -> (B, nh, Tq, hs).
    Tensor optical_attention(const Tensor& q, const Tensor& k, const Tensor& v);
    void on_state_loaded() override;         // re-reads the counters and calibration flags
};

}  // namespace lumen::nn
