// core/kernels/matmul.h: the device switch for batched matrix products.
//
//   matmul(out, a, b, acc, bias): out (batch, M, N) = a (batch, M, K) · b (batch, K, N) [+ bias (N,)],
//   or += with Accumulate::yes (weight gradients summed over micro-batches and broadcast batches).
//
// Conventions: out is contiguous; a and b may have any strides (transposed views, slices, batch
// stride 0 for a broadcast batch) and are read through their layouts; the kernels never need the
// caller to copy them. a and b have one dtype, f32, f64, bf16 or f16 (checked by the public op,
// autograd/ops/matmul.cpp); out (and bias, when given) has that dtype too, or f32 for bf16/f16
// operands (so bf16 weight gradients accumulate into an f32 buffer). Products are summed in f32
// (f64 for f64) and rounded once to out's dtype; the bias is added before that rounding (the
// cuBLASLt bias epilogue on CUDA). K = 0 writes zeros (adds nothing), plus the bias. Each output element is summed in a fixed order, so
// runs are bit-reproducible whatever the thread count.
#pragma once

#include "core/dispatch.h"
#include "core/tensor.h"

namespace lumen {

enum class Accumulate : bool { no, yes };

namespace cpu {
void matmul(Tensor& out, const Tensor& a, const Tensor& b, Accumulate acc, const Tensor& bias = {});
}  // namespace cpu

#ifdef LUMEN_WITH_CUDA
namespace cuda {
void matmul(Tensor& out, const Tensor& a, const Tensor& b, Accumulate acc, const Tensor& bias = {});
// f32 products on the tensor cores in TF32 (off by default, as in PyTorch).
void set_matmul_tf32(bool on);
}  // namespace cuda
#endif

namespace kernels {
inline void matmul(Tensor& out, const Tensor& a, const Tensor& b, Accumulate acc,
                   const Tensor& bias = {}) {
    LUMEN_DISPATCH(out.device(), matmul(out, a, b, acc, bias))
}
}  // namespace kernels

}  // namespace lumen
