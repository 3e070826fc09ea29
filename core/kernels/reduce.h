// core/kernels/reduce.h: the device switch for row reductions.
//
// The public ops (autograd/ops/reduce.cpp) move the reduced dims last and make x contiguous, so
// every kernel here reduces rows: x (rows, n) contiguous -> out (rows,) contiguous.
// sum accumulates in f64 for floats (i64 for integers); max/min propagate NaN; argmax returns the
// first index of the maximum (NaN counts as the maximum) as i64.
#pragma once

#include "core/dispatch.h"
#include "core/tensor.h"

namespace lumen {

enum class ReduceOp : uint8_t { sum, max, min };

namespace cpu {
void reduce_rows(ReduceOp op, Tensor& out, const Tensor& x, int64_t n);
void argmax_rows(Tensor& out, const Tensor& x, int64_t n);
}  // namespace cpu

#ifdef LUMEN_WITH_CUDA
namespace cuda {
void reduce_rows(ReduceOp op, Tensor& out, const Tensor& x, int64_t n);
void argmax_rows(Tensor& out, const Tensor& x, int64_t n);
}  // namespace cuda
#endif

namespace kernels {
inline void reduce_rows(ReduceOp op, Tensor& out, const Tensor& x, int64_t n) {
    LUMEN_DISPATCH(out.device(), reduce_rows(op, out, x, n))
}
inline void argmax_rows(Tensor& out, const Tensor& x, int64_t n) {
    LUMEN_DISPATCH(out.device(), argmax_rows(out, x, n))
}
}  // namespace kernels

}  // namespace lumen
