// core/kernels/index.h: the device switch for indexed reads (index_select, gather) and their
// backward (an index_add / scatter_add of dy into a zero tensor of x's shape).
//
// Conventions: `out` and `dx` come first, are contiguous and are written (=); the backward kernels
// zero dx themselves. x, dy and indices may have any strides. Indices are i32 or i64 and have been
// checked to lie in [0, x.size(dim)) by the public op (autograd/ops/index.cpp); dim is normalised.
// The backward adds in index order into each output line (all dims but `dim` fixed), and only
// whole lines are split between threads, so repeated indices give the same bits on every run. It
// accumulates in f32 for f32/bf16/f16 and in f64 for f64, rounding to dx's dtype once at the end.
// The CUDA kernels (cuda/index.cu) keep that order for every dx element, so their gradients equal
// the CPU's bit for bit; like the CPU kernels they trust the public op's range check.
#pragma once

#include "core/dispatch.h"
#include "core/tensor.h"

namespace lumen {

namespace cpu {
void index_select(Tensor& out, const Tensor& x, int64_t dim, const Tensor& indices);
void index_select_backward(Tensor& dx, const Tensor& dy, int64_t dim, const Tensor& indices);
void gather(Tensor& out, const Tensor& x, int64_t dim, const Tensor& indices);
void gather_backward(Tensor& dx, const Tensor& dy, int64_t dim, const Tensor& indices);
}  // namespace cpu

#ifdef LUMEN_WITH_CUDA
namespace cuda {
void index_select(Tensor& out, const Tensor& x, int64_t dim, const Tensor& indices);
void index_select_backward(Tensor& dx, const Tensor& dy, int64_t dim, const Tensor& indices);
void gather(Tensor& out, const Tensor& x, int64_t dim, const Tensor& indices);
void gather_backward(Tensor& dx, const Tensor& dy, int64_t dim, const Tensor& indices);
}  // namespace cuda
#endif

namespace kernels {

// x (..., n, ...), indices (m,) -> out (..., m, ...): out[.., j, ..] = x[.., indices[j], ..]
inline void index_select(Tensor& out, const Tensor& x, int64_t dim, const Tensor& indices) {
    LUMEN_DISPATCH(out.device(), index_select(out, x, dim, indices))
}
// dy (..., m, ...) -> dx (..., n, ...): dx = 0; dx[.., indices[j], ..] += dy[.., j, ..] for j = 0, 1, ...
inline void index_select_backward(Tensor& dx, const Tensor& dy, int64_t dim, const Tensor& indices) {
    LUMEN_DISPATCH(dx.device(), index_select_backward(dx, dy, dim, indices))
}
// x and indices of one rank, indices no larger than x in every dim but `dim`; out has indices'
// shape: out[p] = x[p with p[dim] replaced by indices[p]].
inline void gather(Tensor& out, const Tensor& x, int64_t dim, const Tensor& indices) {
    LUMEN_DISPATCH(out.device(), gather(out, x, dim, indices))
}
// dy has indices' shape; dx has x's: dx = 0; dx[p with p[dim] = indices[p]] += dy[p], p[dim] ascending.
inline void gather_backward(Tensor& dx, const Tensor& dy, int64_t dim, const Tensor& indices) {
    LUMEN_DISPATCH(dx.device(), gather_backward(dx, dy, dim, indices))
}

}  // namespace kernels
}  // namespace lumen
