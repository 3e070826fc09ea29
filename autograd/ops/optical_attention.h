// autograd/ops/optical_attention.h: causal attention through the simulated optical unit
// (specs/optical.md §3.3–3.5) as an autograd op (node "optical_causal_attention").
//
//   S = Q_dith(Q_det(q; query)·Q_det(k; key, λ)ᵀ; qk)      Z = c·S + causal mask
//   P = softmax(Z) (f32)                                   y = Q_dith(Q_det(P; [0, 1])·Q_det(v; value, λ); av)
//
// The op owns the statistics order of §3.3: query/key/value ranges updated from the unrepeated
// tensors before quantizing; qk and av assigned from one float pass (unscaled q·kᵀ over the causal
// entries, the float attention output) when the caller says they are uncalibrated; the EMA of qk
// and av from the kernel's accumulators (or quantized outputs) after it, in training only. Ranges
// live in device memory and are updated in place; nothing is read back to the host.
// Backward: straight-through (§3.4), from the quantized S with the same dither bits, D from the
// float P·v (saved by the forward: (B, H, Tq, d) f32).
// Operand dtype: bf16 when q is bf16, f32 otherwise; y has q's dtype. Attention dropout is not
// part of the op (nn::CausalSelfAttention refuses it in optical training).
#pragma once

#include "core/kernels/optical_attention.h"
#include "core/tensor.h"

#include <optional>

namespace lumen::ops {

// The five ranges of one optical attention: f32 (2,) [lo, hi] each, on q's device, [+inf, -inf]
// while uncalibrated.
struct OpticalAttentionRanges {
    Tensor query, key, value, qk, av;
};

struct OpticalAttentionCall {
    OpticalAttentionRanges ranges;       // updated in place unless update_ranges is false
    int32_t levels = 256;                // L of every quantizer
    std::optional<float> lut_min = 0.020040f;  // LUT floor λ on the weight-side operands k and v
    float smooth_f = 0.9f, smooth_g = 0.1f;    // EMA mm = f·mm + g·batch (f32 of f and 1 − f)
    bool training = true;                // EMA of calibrated ranges, and the qk/av EMA at all
    bool update_ranges = true;           // false: quantize with the ranges as given, change nothing
    bool calibrate_qk = false;           // qk uncalibrated: assign it from the float pass first
    bool calibrate_av = false;           // av uncalibrated: the same
    bool stats_of_quantized = false;     // out_stats = quantized: the EMA measures S and y
    AttentionDither dither;              // keys and counter (element) or the one offset (scalar)
    std::optional<double> scale;         // c; default 1/√d
    OpticalAttentionRanges* used = nullptr;  // when set: receives copies of the ranges quantized with
};

// q (B, H, Tq, d), k and v (B, Hkv, Tk, d), any strides, one floating dtype, Tq ≤ Tk (query r at
// key position Tk − Tq + r) -> y (B, H, Tq, d) in q's dtype.
Tensor optical_causal_attention(const Tensor& q, const Tensor& k, const Tensor& v, const OpticalAttentionCall& call);

}  // namespace lumen::ops
