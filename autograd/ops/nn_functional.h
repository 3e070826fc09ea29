// autograd/ops/nn_functional.h: the neural-network ops: softmax, log-softmax, cross-entropy,
// embedding, layernorm, rmsnorm, dropout, causal attention, tril.
//
// Shapes use nanoGPT's letters: B batch, T sequence, C channels, V vocabulary, nh heads, nkv
// key/value heads, hs head size.
#pragma once

#include "core/philox.h"
#include "core/tensor.h"

#include <optional>

namespace lumen {
enum class Training : bool { no, yes };
}

namespace lumen::ops {

// Over the last dim, computed with the row max subtracted, in f32 (f64 for f64).
Tensor softmax(const Tensor& x);
Tensor log_softmax(const Tensor& x);
// Attention probabilities: x (..., Tq, Tk) scores with Tq ≤ Tk; query i sees keys j ≤ i + Tk − Tq.
// y = softmax(scale·x) over those keys and 0 past them, in one pass (no mask tensor).
Tensor causal_softmax(const Tensor& x, double scale);

// logits (..., V) float, target (...) i32/i64 -> scalar f32 loss (f64 for f64 logits): the mean
// over targets that are not ignore_index of -log softmax(logits)[target]. A target outside [0, V)
// that is not ignore_index is an error on the CPU; on CUDA, where checking would need a host sync,
// it makes the loss (and that row's gradient) NaN. With every target ignored, the loss is 0 and so
// is the gradient.
Tensor cross_entropy(const Tensor& logits, const Tensor& target, int64_t ignore_index = -1);

// weight (V, C), indices (...) i32/i64 -> (..., C). Backward scatter-adds rows in index order
// (deterministic). An index outside [0, V) is an error on the CPU; on CUDA, where checking would
// need a host sync, it gathers a row of all-one bits (NaN for floats) and gets no gradient.
Tensor embedding(const Tensor& weight, const Tensor& indices);

// x (..., C); weight (C) and bias (C) optional (undefined Tensor for none). Statistics in f32.
Tensor layernorm(const Tensor& x, const Tensor& weight, const Tensor& bias, double eps = 1e-5);
// x (..., C); weight (C) optional. y = x / sqrt(mean(x²) + eps) · weight.
Tensor rmsnorm(const Tensor& x, const Tensor& weight, double eps = 1e-6);

// Zeroes each element with probability p and scales the rest by 1/(1-p), with the mask drawn
// from `gen` (uniform element i < p drops). Training::no (or p = 0) returns x unchanged.
Tensor dropout(const Tensor& x, double p, Generator& gen, Training training = Training::yes);

// Keeps the elements on and below the `diagonal`-th diagonal of the last two dims, zeroes the rest.
Tensor tril(const Tensor& x, int64_t diagonal = 0);

// q (B, nh, Tq, hs), k and v (B, nkv, Tk, hs) with nh a multiple of nkv and Tq <= Tk ->
// (B, nh, Tq, hs). softmax(q·kᵀ·scale + causal mask)·v, composed from primitives (materialises
// (B, nh, Tq, Tk)): the reference for the fused attention kernels. The queries are the last Tq
// positions: query i sits at position Tk − Tq + i and sees keys j <= Tk − Tq + i (KV-cache decoding;
// Tq = 1 sees every key, Tq = Tk is plain causal attention). scale defaults to 1/sqrt(hs).
Tensor causal_attention(const Tensor& q, const Tensor& k, const Tensor& v,
                        std::optional<double> scale = std::nullopt);

}  // namespace lumen::ops
