// core/kernels/embedding.h: the device switch for the embedding gather and its backward.
//
// Conventions: weight (V, C) and indices (N...) are contiguous, indices i32 or i64; out is
// (N..., C) and dweight (V, C), both contiguous and written (=). The CPU forward validates every
// index before writing anything: one outside [0, V) throws, naming the value and V. The CUDA
// forward cannot throw without a host read of the indices (a sync), so there such an index gathers
// a row of all-one bits (NaN for float dtypes) and the backward drops its dy row
// (cuda/embedding.cu). The backward zeroes dweight and adds the rows of dy into it in index order
// (so repeated indices accumulate the same way on every run), accumulating in f32 (f64 for f64).
#pragma once

#include "core/dispatch.h"
#include "core/tensor.h"

namespace lumen {

namespace cpu {
void embedding(Tensor& out, const Tensor& weight, const Tensor& indices);
void embedding_backward(Tensor& dweight, const Tensor& dy, const Tensor& indices);
}  // namespace cpu

#ifdef LUMEN_WITH_CUDA
namespace cuda {
void embedding(Tensor& out, const Tensor& weight, const Tensor& indices);
void embedding_backward(Tensor& dweight, const Tensor& dy, const Tensor& indices);
}  // namespace cuda
#endif

namespace kernels {
// out[n] = weight[indices[n]]
inline void embedding(Tensor& out, const Tensor& weight, const Tensor& indices) {
    LUMEN_DISPATCH(out.device(), embedding(out, weight, indices))
}
// dweight = 0; dweight[indices[n]] += dy[n] for n = 0, 1, ...
inline void embedding_backward(Tensor& dweight, const Tensor& dy, const Tensor& indices) {
    LUMEN_DISPATCH(dweight.device(), embedding_backward(dweight, dy, indices))
}
}  // namespace kernels

}  // namespace lumen
