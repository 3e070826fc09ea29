// core/kernels/optical_stats.h: the device switch for the optical layers' range statistics and the
// operand quantizer (specs/optical.md §2, §4), shared by OpticalLinear and the optical attention.
//
// Ranges are f32 tensors of two elements [lo, hi] on the layer's device (a row of a (P, 2) buffer
// is fine); kernels read and write them in device memory, so no call synchronises with the host.
//
//   min_max(out, x):          out = [min, max] over the finite elements of x; [+inf, -inf] when none
//                             (-0 counts as below +0: both devices compare order keys, below)
//   quantiles(out, x, a, b):  out = the (a, b) quantiles of the finite elements (§4.1: sorted values,
//                             pos = a·(n-1) in f64, linear interpolation in f32); [+inf, -inf] if none
//   range_update(mm, batch, f, g, training): §4.2. batch without finite values (lo > hi): mm unchanged;
//                             mm uncalibrated (lo > hi): mm = batch in any mode; calibrated and training:
//                             mm = f·mm + g·batch per component (f32, no FMA); eval: unchanged.
//   quantize(out, x, range, p): out = Q_det(x; range, p) per element (core/optical_math.h), x any float
//                             dtype and strides, out contiguous of x's shape in f32, bf16 or f16 (the
//                             GEMM operand dtype: the f32 level rounded once); a NaN result is
//                             stored as the canonical quiet NaN (optical::canonical_nan) everywhere.
#pragma once

#include "core/dispatch.h"
#include "core/optical_math.h"
#include "core/tensor.h"

#include <cstring>

namespace lumen {

namespace optical {

// A total order on f32 as unsigned keys (-0 sorts before +0): min/max by keys is exact and does not
// depend on the order of evaluation (CUDA: atomicMin/atomicMax on the keys), and sorting the keys
// sorts the values. The identities are the keys of +inf (for min) and -inf (for max).
LUMEN_HOST_DEVICE uint32_t order_key(float v) {
#if defined(__CUDA_ARCH__)
    const uint32_t u = __float_as_uint(v);
#else
    uint32_t u;
    memcpy(&u, &v, sizeof u);
#endif
    return (u & 0x80000000u) ? ~u : (u | 0x80000000u);
}
LUMEN_HOST_DEVICE float from_order_key(uint32_t key) {
    const uint32_t u = (key & 0x80000000u) ? (key & 0x7FFFFFFFu) : ~key;
#if defined(__CUDA_ARCH__)
    return __uint_as_float(u);
#else
    float v;
    memcpy(&v, &u, sizeof v);
    return v;
#endif
}
// NaN as the one quiet NaN 0x7FC00000 (what the kernels store for a NaN result on every device, so
// CPU and CUDA outputs agree bit for bit; rounded to bf16 it is 0x7FC0, to f16 0x7E00).
LUMEN_HOST_DEVICE float canonical_nan(float v) {
#if defined(__CUDA_ARCH__)
    return v != v ? __uint_as_float(0x7FC00000u) : v;
#else
    const uint32_t quiet = 0x7FC00000u;
    float nan;
    memcpy(&nan, &quiet, sizeof nan);
    return v != v ? nan : v;
#endif
}

inline constexpr uint32_t min_identity_key = 0xFF800000u;  // order_key(+inf)
inline constexpr uint32_t max_identity_key = 0x007FFFFFu;  // order_key(-inf)

// The §4.1 quantile of n sorted finite values at fraction a: pos = a·(n-1) in f64, j = ⌊pos⌋,
// w = f32(pos - j), v_j + w·(v_{j+1} - v_j) in f32 without FMA. `at(j)` reads v_j. One guard: w = 0
// with an infinite difference (v_{j+1} - v_j overflowed) returns v_j, where the formula gives NaN.
template <typename At>
LUMEN_HOST_DEVICE float sorted_quantile(At at, int64_t n, double a) {
    const double pos = a * double(n - 1);
    int64_t j = int64_t(floor(pos));
    if (j < 0) j = 0;
    if (j > n - 1) j = n - 1;
    const float w = float(pos - double(j));
    const float vj = at(j);
    if (j + 1 >= n) return vj;
    const float diff = sub_rn(at(j + 1), vj);
    if (w == 0.0f && !(diff <= 3.4028234664e38f)) return vj;
    return add_rn(vj, mul_rn(w, diff));
}

}  // namespace optical

namespace cpu {
void optical_min_max(Tensor& out, const Tensor& x);
void optical_quantiles(Tensor& out, const Tensor& x, double a, double b);
void optical_range_update(Tensor& mm, const Tensor& batch, float f, float g, bool training);
void optical_quantize(Tensor& out, const Tensor& x, const Tensor& range, const optical::QuantParams& p);
}  // namespace cpu

#ifdef LUMEN_WITH_CUDA
namespace cuda {
void optical_min_max(Tensor& out, const Tensor& x);
void optical_quantiles(Tensor& out, const Tensor& x, double a, double b);
void optical_range_update(Tensor& mm, const Tensor& batch, float f, float g, bool training);
void optical_quantize(Tensor& out, const Tensor& x, const Tensor& range, const optical::QuantParams& p);
}  // namespace cuda
#endif

namespace kernels {
inline void optical_min_max(Tensor& out, const Tensor& x) { LUMEN_DISPATCH(out.device(), optical_min_max(out, x)) }
inline void optical_quantiles(Tensor& out, const Tensor& x, double a, double b) {
    LUMEN_DISPATCH(out.device(), optical_quantiles(out, x, a, b))
}
inline void optical_range_update(Tensor& mm, const Tensor& batch, float f, float g, bool training) {
    LUMEN_DISPATCH(mm.device(), optical_range_update(mm, batch, f, g, training))
}
inline void optical_quantize(Tensor& out, const Tensor& x, const Tensor& range, const optical::QuantParams& p) {
    LUMEN_DISPATCH(out.device(), optical_quantize(out, x, range, p))
}
}  // namespace kernels

}  // namespace lumen
