// core/kernels/matmul.h: the device switch for batched matrix products.
//
//   matmul(out, a, b, acc): out (batch, M, N) = a (batch, M, K) · b (batch, K, N), or += with
//   Accumulate::yes (weight gradients summed over micro-batches and broadcast batches).
//
// Conventions: out is contiguous; a and b may have any strides (transposed views, slices, batch
// stride 0 for a broadcast batch) and are read through their layouts; the kernels never need the
// caller to copy them. All three have one dtype, f32, f64 or bf16 (checked by the public op,
// autograd/ops/matmul.cpp); products are summed in f32 (f64 for f64) and rounded once to out's
// dtype. K = 0 writes zeros (adds nothing). Each output element is summed in a fixed order, so
// runs are bit-reproducible whatever the thread count.
#pragma once

#include "core/dispatch.h"
#include "core/tensor.h"

namespace lumen {

enum class Accumulate : bool { no, yes };

namespace cpu {
void matmul(Tensor& out, const Tensor& a, const Tensor& b, Accumulate acc);
}  // namespace cpu

#ifdef LUMEN_WITH_CUDA
namespace cuda {
void matmul(Tensor& out, const Tensor& a, const Tensor& b, Accumulate acc);
// f32 products on the tensor cores in TF32 (off by default, as in PyTorch).
void set_matmul_tf32(bool on);
}  // namespace cuda
#endif

namespace kernels {
inline void matmul(Tensor& out, const Tensor& a, const Tensor& b, Accumulate acc) {
    LUMEN_DISPATCH(out.device(), matmul(out, a, b, acc))
}
}  // namespace kernels

}  // namespace lumen
