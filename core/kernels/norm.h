// core/kernels/norm.h: the device switch for layernorm and rmsnorm, forward and backward.
//
// Conventions: x and dy are contiguous (rows, C) (any leading shape, C = the last dim); weight and
// bias are contiguous (C,) in x's dtype, or undefined for none. The forward writes y (=) and the
// per-row statistics it saves for the backward: mean and rstd (rows,), f32 (f64 for f64 x).
// The backward writes (=) dx, dweight and dbias; an undefined output is not computed. dweight and
// dbias are sums over rows taken in a fixed order (fixed row blocks, then a fixed-order sum of the
// blocks' partial sums), so two runs give the same bits whatever the thread count.
#pragma once

#include "core/dispatch.h"
#include "core/tensor.h"

namespace lumen {

// The dtype of the saved statistics for an x of dtype `dt`.
inline DType norm_stats_dtype(DType dt) { return dt == DType::f64 ? DType::f64 : DType::f32; }

namespace cpu {
void layernorm(Tensor& y, Tensor& mean, Tensor& rstd, const Tensor& x, const Tensor& weight,
               const Tensor& bias, double eps);
void layernorm_backward(Tensor& dx, Tensor& dweight, Tensor& dbias, const Tensor& dy,
                        const Tensor& x, const Tensor& mean, const Tensor& rstd,
                        const Tensor& weight);
void rmsnorm(Tensor& y, Tensor& rstd, const Tensor& x, const Tensor& weight, double eps);
void rmsnorm_backward(Tensor& dx, Tensor& dweight, const Tensor& dy, const Tensor& x,
                      const Tensor& rstd, const Tensor& weight);
}  // namespace cpu

#ifdef LUMEN_WITH_CUDA
namespace cuda {
void layernorm(Tensor& y, Tensor& mean, Tensor& rstd, const Tensor& x, const Tensor& weight,
               const Tensor& bias, double eps);
void layernorm_backward(Tensor& dx, Tensor& dweight, Tensor& dbias, const Tensor& dy,
                        const Tensor& x, const Tensor& mean, const Tensor& rstd,
                        const Tensor& weight);
void rmsnorm(Tensor& y, Tensor& rstd, const Tensor& x, const Tensor& weight, double eps);
void rmsnorm_backward(Tensor& dx, Tensor& dweight, const Tensor& dy, const Tensor& x,
                      const Tensor& rstd, const Tensor& weight);
}  // namespace cuda
#endif

namespace kernels {

// y = (x - mean) · rstd · weight + bias, rstd = 1 / sqrt(var + eps) (biased variance)
inline void layernorm(Tensor& y, Tensor& mean, Tensor& rstd, const Tensor& x, const Tensor& weight,
                      const Tensor& bias, double eps) {
    LUMEN_DISPATCH(y.device(), layernorm(y, mean, rstd, x, weight, bias, eps))
}
inline void layernorm_backward(Tensor& dx, Tensor& dweight, Tensor& dbias, const Tensor& dy,
                               const Tensor& x, const Tensor& mean, const Tensor& rstd,
                               const Tensor& weight) {
    LUMEN_DISPATCH(dy.device(), layernorm_backward(dx, dweight, dbias, dy, x, mean, rstd, weight))
}
// y = x · rstd · weight, rstd = 1 / sqrt(mean(x²) + eps)
inline void rmsnorm(Tensor& y, Tensor& rstd, const Tensor& x, const Tensor& weight, double eps) {
    LUMEN_DISPATCH(y.device(), rmsnorm(y, rstd, x, weight, eps))
}
inline void rmsnorm_backward(Tensor& dx, Tensor& dweight, const Tensor& dy, const Tensor& x,
                             const Tensor& rstd, const Tensor& weight) {
    LUMEN_DISPATCH(dy.device(), rmsnorm_backward(dx, dweight, dy, x, rstd, weight))
}

}  // namespace kernels
}  // namespace lumen
