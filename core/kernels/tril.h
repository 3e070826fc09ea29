// core/kernels/tril.h: the device switch for tril (the lower triangle of the last two dims).
//
// x is contiguous (..., R, K), any dtype; out (same shape, contiguous) is written (=): element
// (r, k) of each matrix is x's when k - r <= diagonal, zero otherwise.
#pragma once

#include "core/dispatch.h"
#include "core/tensor.h"

namespace lumen {

namespace cpu {
void tril(Tensor& out, const Tensor& x, int64_t diagonal);
}  // namespace cpu

#ifdef LUMEN_WITH_CUDA
namespace cuda {
void tril(Tensor& out, const Tensor& x, int64_t diagonal);
}  // namespace cuda
#endif

namespace kernels {
inline void tril(Tensor& out, const Tensor& x, int64_t diagonal) {
    LUMEN_DISPATCH(out.device(), tril(out, x, diagonal))
}
}  // namespace kernels

}  // namespace lumen
