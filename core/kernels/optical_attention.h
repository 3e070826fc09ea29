// core/kernels/optical_attention.h: the device switch for the optical attention kernels
// (specs/optical.md §3.3–3.5): the forward (also run unquantized as the calibration pass) and the
// straight-through backward. CPU reference: core/cpu/optical_attention.cpp (naive, S and P in
// memory); CUDA: cuda/optical_attention.cu (two-pass flash style, no T×T tensor).
//
// Shapes: q (B, H, Tq, d), k and v (B, Hkv, Tk, d); H is a multiple of Hkv and head h reads kv head
// h / (H / Hkv); 1 ≤ Tq ≤ Tk. Query row r sits at key position Tk − Tq + r and sees the causal
// keys j ≤ Tk − Tq + r (Tq < Tk: a KV-cache decode). Every tensor is contiguous; q, k, v, y, dy
// and the gradients share one dtype (f32, bf16 or f16: the GEMM operand dtype). Ranges and
// statistics are f32 (2,) [lo, hi] in device memory.
//
// Forward (quantized = true), per causal entry (r, j) and feature e, with the element indices
//   i_S = ((b·H + h)·Tq + r)·Tk + j      i_Y = ((b·H + h)·Tq + r)·d + e
//   acc_S = Σ_e q_re·k_je                 (f32, e ascending, each product and sum rounded: no FMA)
//   S     = Q_dith(acc_S; qk_mm, qk offset(qk_base + i_S))          Z = c ⊗ S      (masked: Z = -inf)
//   m     = max_j Z,  l = Σ_j exp(Z − m),  P = exp(Z − m) ⊘ l   (f32)
//   acc_Y = Σ_{j causal} Q_det(P; [0, 1])·v_je    (f32, j ascending, no FMA)
//   Y     = Q_dith(acc_Y; av_mm, av offset(av_base + i_Y))
// q, k and v are the already quantized operands (Q_det'ed on the host side of the op). With
// quantized = false (the calibration pass) q, k, v are the float tensors and S = acc_S, P is not
// quantized, Y = acc_Y. Outputs (each optional, an undefined Tensor is not produced):
//   y (B, H, Tq, d) q's dtype;  row_max m and row_sum l (B, H, Tq) f32, which the backward reuses;
//   pv (B, H, Tq, d) f32 = P·v_float with the float P and the unquantized v (the backward's D);
//   qk_stat, av_stat (2,) f32 = [min, max] over the finite acc_S (causal entries) and acc_Y
//   (stats_of_quantized: over S and the f32 Y instead); [+inf, -inf] when nothing is finite;
//   scores (B, H, Tq, Tk) f32: S on causal entries, untouched elsewhere (tests only; CUDA then
//   materialises it).
// Backward (§3.4), from the saved m, l (so P is the forward's P bit for bit on one device):
//   S, P recomputed as above;  dP_rj = dy_r·v_j;  D_r = dy_r·pv_r
//   dS_rj = c·P_rj·(dP_rj − D_r) (0 off the causal window)
//   dq = dS·k,  dk = Σ_group dSᵀ·q,  dv = Σ_group Pᵀ·dy   (q, k, v unquantized; S from qq, kq)
// Gradients are sums in a fixed order (no atomics): the same bits on every run.
#pragma once

#include "core/dispatch.h"
#include "core/kernels/optical_stats.h"  // optical::order_key: exact min/max keys
#include "core/optical_math.h"
#include "core/tensor.h"

#include <cstdint>

namespace lumen {

// The output dither of S (stream name + "#qk") and of Y (name + "#av"), specs/optical.md §5.
// Element mode adds qk_base / av_base to the element indices i_S / i_Y: under data parallelism
// rank r of W passes r × numel(S) and r × numel(Y) of its own call, so its elements are the
// global call's (W·B, H, Tq, ·) batch entries [r·B, (r+1)·B).
struct AttentionDither {
    optical::DitherKey qk, av;  // element mode: same seed and counter n, one stream each
    uint64_t qk_base = 0;       // element mode: added to i_S (a rank's offset under DP)
    uint64_t av_base = 0;       // element mode: added to i_Y
    bool scalar = false;        // scalar mode: every element of both products uses offset r
    float r = 0.0f;
};

LUMEN_HOST_DEVICE float attention_qk_offset(const AttentionDither& d, uint64_t i) {
    return d.scalar ? d.r : optical::dither_offset(d.qk, d.qk_base + i);
}
LUMEN_HOST_DEVICE float attention_av_offset(const AttentionDither& d, uint64_t i) {
    return d.scalar ? d.r : optical::dither_offset(d.av, d.av_base + i);
}

// P from Z and the row's (m, l): the one formula both passes and the backward use.
LUMEN_HOST_DEVICE float attention_probability(float z, float m, float l) {
    return optical::div_rn(expf(optical::sub_rn(z, m)), l);
}

struct OpticalAttentionConfig {
    int32_t levels = 256;             // L of the S, P and Y quantizers (none has a LUT floor)
    float scale = 1.0f;               // c, multiplies S after its quantizer
    AttentionDither dither;
    bool quantized = true;            // false: the float calibration pass
    bool stats_of_quantized = false;  // out_stats = quantized
};

// One forward call: inputs, then the outputs it writes (=).
struct OpticalAttentionForward {
    Tensor q, k, v;              // operands (quantized, or float for the calibration pass)
    Tensor v_float;              // unquantized v, q's dtype: needed when pv is produced
    Tensor qk_mm, av_mm;         // f32 (2,), read on the device (unused by the float pass)
    Tensor y;                    // (B, H, Tq, d) q's dtype
    Tensor row_max, row_sum;     // (B, H, Tq) f32
    Tensor pv;                   // (B, H, Tq, d) f32
    Tensor qk_stat, av_stat;     // (2,) f32
    Tensor scores;               // (B, H, Tq, Tk) f32, tests only
};

// One backward call: what the forward saved, dy, and the gradients it writes (=).
struct OpticalAttentionBackward {
    Tensor dy;                   // (B, H, Tq, d) q's dtype
    Tensor q, k, v;              // unquantized
    Tensor qq, kq;               // the quantized operands of S
    Tensor qk_mm;                // the range S was quantized with (before the call's EMA)
    Tensor pv, row_max, row_sum; // from the forward
    Tensor dq;                   // (B, H, Tq, d); undefined: not produced
    Tensor dk, dv;               // (B, Hkv, Tk, d); both or neither
};

namespace cpu {
void optical_attention_forward(const OpticalAttentionForward& f, const OpticalAttentionConfig& c);
void optical_attention_backward(const OpticalAttentionBackward& g, const OpticalAttentionConfig& c);
}  // namespace cpu

#ifdef LUMEN_WITH_CUDA
namespace cuda {
void optical_attention_forward(const OpticalAttentionForward& f, const OpticalAttentionConfig& c);
void optical_attention_backward(const OpticalAttentionBackward& g, const OpticalAttentionConfig& c);
}  // namespace cuda
#endif

namespace kernels {
inline void optical_attention_forward(const OpticalAttentionForward& f, const OpticalAttentionConfig& c) {
    LUMEN_DISPATCH(f.q.device(), optical_attention_forward(f, c))
}
inline void optical_attention_backward(const OpticalAttentionBackward& g, const OpticalAttentionConfig& c) {
    LUMEN_DISPATCH(g.dy.device(), optical_attention_backward(g, c))
}
}  // namespace kernels

}  // namespace lumen
