// nn/attention.cpp: CausalSelfAttention. The attention itself is ops::causal_attention, so a fused
// kernel slots in there; with attention dropout in training the composed path below applies the
// dropout to the probabilities. An optical module (make_optical) runs its core in
// nn/optical_attention.cpp instead.
#include "nn/attention.h"

#include "autograd/ops/ops.h"
#include "autograd/ops/rope.h"

#include <cmath>
#include <limits>

namespace lumen::nn {

namespace {

// (B, T, n·hs) -> (B, n, T, hs), a view.
Tensor split_heads(const Tensor& x, int64_t n, int64_t hs) {
    const auto [B, T, C] = x.dims<3>();
    return x.reshape({B, T, n, hs}).transpose(1, 2);
}

// softmax(q·kᵀ/√hs + causal mask) with dropout on the probabilities, then ·v. q, k, v
// (B, nh, T, hs) (k and v already repeated to nh heads).
Tensor attention_with_dropout(const Tensor& q, const Tensor& k, const Tensor& v, double p, Generator& gen) {
    const int64_t hs = q.size(3);
    Tensor att = ops::matmul(q, k.transpose(2, 3));                                    // (B, nh, T, T)
    att = ops::dropout(ops::causal_softmax(att, 1.0 / std::sqrt(double(hs))), p, gen, Training::yes);
    return ops::matmul(att, v);                                                        // (B, nh, T, hs)
}

Tensor repeat_heads(const Tensor& t, int64_t rep) {
    if (rep == 1) return t;
    const auto [B, nkv, T, hs] = t.dims<4>();
    return t.unsqueeze(2).expand({B, nkv, rep, T, hs}).reshape({B, nkv * rep, T, hs});
}

}  // namespace

CausalSelfAttention::CausalSelfAttention(const ModelConfig& c, Generator& gen, Generator* dropout_gen)
    : n_head_(c.n_head), n_kv_head_(c.kv_heads()), hs_(c.head_size()), pos_(c.pos),
      rope_theta_(c.rope_theta), pairing_(c.rope_pairing), dropout_(c.dropout), dropout_gen_(dropout_gen) {
    const int64_t C = c.n_embd, kv = n_kv_head_ * hs_;
    c_attn_ = register_module("c_attn", std::make_shared<Linear>(C, C + 2 * kv, c.bias, gen, 0.02,
                                                                 Role::matrix, std::vector<int64_t>{C, kv, kv}));
    c_proj_ = register_module("c_proj", std::make_shared<Linear>(C, C, c.bias, gen,
                                                                 0.02 / std::sqrt(2.0 * double(c.n_layer))));
    resid_dropout_ = register_module("resid_dropout", std::make_shared<Dropout>(c.dropout, dropout_gen));
}

Tensor CausalSelfAttention::forward(const Tensor& x, KVCache* cache, int64_t pos0) {
    const auto [B, T, C] = x.dims<3>();
    const int64_t kv = n_kv_head_ * hs_;
    Tensor qkv = c_attn_->forward(x);                                   // (B, T, C + 2kv)
    Tensor q = split_heads(qkv.narrow(2, 0, C), n_head_, hs_);          // (B, nh, T, hs)
    Tensor k = split_heads(qkv.narrow(2, C, kv), n_kv_head_, hs_);      // (B, nkv, T, hs)
    Tensor v = split_heads(qkv.narrow(2, C + kv, kv), n_kv_head_, hs_); // (B, nkv, T, hs)
    if (pos_ == PosKind::rope) {
        const auto pairing = pairing_ == RopePairingKind::half ? ops::RopePairing::half
                                                               : ops::RopePairing::interleaved;
        q = ops::rope(q, pos0, rope_theta_, pairing);
        k = ops::rope(k, pos0, rope_theta_, pairing);
    }
    if (cache) {
        if (cache->length() > 0) {
            k = ops::cat({cache->k, k}, 2);                             // (B, nkv, Tc + T, hs)
            v = ops::cat({cache->v, v}, 2);
        }
        cache->k = k.detach().contiguous();
        cache->v = v.detach().contiguous();
    }
    Tensor y;
    if (optical_ && !optical_settings()->q_bypass) {                // bypass: the digital path below
        y = optical_attention(q, k, v);                                 // nn/optical_attention.cpp
    } else if (training() && dropout_ > 0.0 && !cache) {
        const int64_t rep = n_head_ / n_kv_head_;
        y = attention_with_dropout(q, repeat_heads(k, rep), repeat_heads(v, rep), dropout_, *dropout_gen_);
    } else {
        y = ops::causal_attention(q, k, v);                             // (B, nh, T, hs)
    }
    y = y.transpose(1, 2).reshape({B, T, C});                           // (B, T, C)
    return resid_dropout_->forward(c_proj_->forward(y));
}

}  // namespace lumen::nn
