// autograd/ops/matmul.h: matrix products.
//
// matmul(a, b): a (..., M, K), b (..., K, N) -> (..., M, N), batch dims broadcast; a 1-D operand
// is a vector (as numpy). f32, f64, bf16 and f16 inputs (same dtype), accumulated in f32 (f64 for
// f64), output in the inputs' dtype. Transposed and strided operands are read through their
// layouts (no copies of the caller's tensors are required).
#pragma once

#include "core/tensor.h"

namespace lumen::ops {

Tensor matmul(const Tensor& a, const Tensor& b);

}  // namespace lumen::ops
