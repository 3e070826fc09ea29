// tests/optical/attention_testing.h: what the optical attention tests share: shapes, inputs,
// fresh range buffers, quantized operands, and an independent reference of the §3.3 forward
// written from the spec (per element, in f32 where the spec fixes f32, P in double).
#pragma once

#include "autograd/ops/optical_attention.h"
#include "core/kernels/optical_stats.h"
#include "tests/harness.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

namespace lumen::test::optical_attention {

struct Dims {
    int64_t B, H, Hkv, Tq, Tk, d;
};

inline std::string str(const Dims& n) {
    return "B " + std::to_string(n.B) + " H " + std::to_string(n.H) + " Hkv " + std::to_string(n.Hkv) + " Tq " +
           std::to_string(n.Tq) + " Tk " + std::to_string(n.Tk) + " d " + std::to_string(n.d);
}

struct Qkv {
    Tensor q, k, v;  // (B, H, Tq, d), (B, Hkv, Tk, d) x2
};

inline Qkv random_qkv(const Dims& n, uint64_t seed, DType dt, Device device, double scale = 1.0) {
    return {test::random({n.B, n.H, n.Tq, n.d}, seed, dt, device, -scale, scale),
            test::random({n.B, n.Hkv, n.Tk, n.d}, seed + 1, dt, device, -scale, scale),
            test::random({n.B, n.Hkv, n.Tk, n.d}, seed + 2, dt, device, -scale, scale)};
}

inline Tensor uncalibrated(Device device) {
    const float inf = std::numeric_limits<float>::infinity();
    return Tensor::from(std::vector<float>{inf, -inf}).to(device);
}
inline Tensor range(float lo, float hi, Device device) { return Tensor::from(std::vector<float>{lo, hi}).to(device); }

inline ops::OpticalAttentionRanges fresh_ranges(Device device) {
    return {uncalibrated(device), uncalibrated(device), uncalibrated(device), uncalibrated(device),
            uncalibrated(device)};
}

inline std::vector<float> values(const Tensor& t) { return t.to(Device::cpu()).to_vector<float>(); }

// Q_det(x; range, p) through the stats kernel (the op's own operand path), contiguous in x's dtype.
inline Tensor quantized(const Tensor& x, const Tensor& range, const optical::QuantParams& p) {
    Tensor out = Tensor::empty(x.shape(), x.dtype(), x.device());
    kernels::optical_quantize(out, x, range, p);
    return out;
}

// Element-mode dither of one call.
inline AttentionDither element_dither(uint32_t seed, uint32_t stream_qk, uint32_t stream_av, uint64_t n) {
    AttentionDither d;
    d.qk = {seed, stream_qk, n};
    d.av = {seed, stream_av, n};
    return d;
}

// The §3.3 forward from quantized operands, element by element:
//   S   = Q_dith(acc; qk) with acc = Σ_e q·k (f32, e ascending), i = ((b·H + h)·Tq + r)·Tk + j
//   P   = softmax(c·S) over j ≤ Tk − Tq + r, evaluated in double
//   y   = Q_dith(Σ_j Q_det(P)·v; av), i = ((b·H + h)·Tq + r)·d + e
// S and y are f32 vectors in the kernels' layouts (S: NaN on masked entries).
struct Reference {
    std::vector<float> S, y;
    std::vector<double> P;  // (B, H, Tq, Tk), 0 on masked entries
    float s_lo = INFINITY, s_hi = -INFINITY;  // range of the S accumulators (causal entries)
    float y_lo = INFINITY, y_hi = -INFINITY;  // range of the y accumulators
};

inline Reference reference_forward(const Dims& n, const std::vector<float>& qq, const std::vector<float>& kq,
                                   const std::vector<float>& vq, float qk_lo, float qk_hi, float av_lo,
                                   float av_hi, int32_t levels, float scale, const AttentionDither& dither) {
    const optical::QuantParams out{levels, false, 0.0f};
    const int64_t rep = n.H / n.Hkv, off = n.Tk - n.Tq;
    Reference ref;
    ref.S.assign(size_t(n.B * n.H * n.Tq * n.Tk), std::numeric_limits<float>::quiet_NaN());
    ref.P.assign(ref.S.size(), 0.0);
    ref.y.assign(size_t(n.B * n.H * n.Tq * n.d), 0.0f);
    for (int64_t b = 0; b < n.B; ++b)
        for (int64_t h = 0; h < n.H; ++h)
            for (int64_t r = 0; r < n.Tq; ++r) {
                const int64_t row = (b * n.H + h) * n.Tq + r, kvh = b * n.Hkv + h / rep;
                std::vector<double> z;
                for (int64_t j = 0; j <= off + r; ++j) {
                    float acc = 0.0f;
                    for (int64_t e = 0; e < n.d; ++e)
                        acc = optical::add_rn(acc, optical::mul_rn(qq[size_t(row * n.d + e)],
                                                                   kq[size_t((kvh * n.Tk + j) * n.d + e)]));
                    ref.s_lo = std::min(ref.s_lo, acc);
                    ref.s_hi = std::max(ref.s_hi, acc);
                    const uint64_t i = uint64_t(row * n.Tk + j);
                    const float s = optical::quantize_dithered(acc, qk_lo, qk_hi, attention_qk_offset(dither, i), out);
                    ref.S[size_t(i)] = s;
                    z.push_back(double(scale) * double(s));
                }
                double m = -INFINITY, l = 0.0;
                for (double zj : z) m = std::max(m, zj);
                for (double zj : z) l += std::exp(zj - m);
                for (size_t j = 0; j < z.size(); ++j) ref.P[size_t(row * n.Tk) + j] = std::exp(z[j] - m) / l;
                for (int64_t e = 0; e < n.d; ++e) {
                    float acc = 0.0f;
                    for (size_t j = 0; j < z.size(); ++j) {
                        const float pq = optical::quantize_det(float(ref.P[size_t(row * n.Tk) + j]), 0.0f, 1.0f, out);
                        acc = optical::add_rn(acc, optical::mul_rn(pq, vq[size_t((kvh * n.Tk + int64_t(j)) * n.d + e)]));
                    }
                    ref.y_lo = std::min(ref.y_lo, acc);
                    ref.y_hi = std::max(ref.y_hi, acc);
                    const uint64_t i = uint64_t(row * n.d + e);
                    ref.y[size_t(i)] = optical::quantize_dithered(acc, av_lo, av_hi, attention_av_offset(dither, i), out);
                }
            }
    return ref;
}

}  // namespace lumen::test::optical_attention
