// core/kernels/loss.h: the device switch for the fused cross-entropy kernels.
//
// Conventions: logits (rows, V) and target (rows,) are contiguous; target is i32 or i64. The
// forward writes (=) the scalar mean loss, the per-row logsumexp that the backward reads, and the
// count of rows whose target is not ignore_index, all on the device: no value goes to the host.
// loss and lse are f32 for f32/bf16/f16 logits and f64 for f64 logits (the compute type); count
// is an i64 scalar. With no counted row the loss is 0. The CPU forward validates every target
// before writing anything: a target outside [0, V) that is not ignore_index throws, naming the
// value and V. The CUDA forward cannot throw without a host read of the targets (a sync), so there
// such a target is a counted row whose loss and lse are NaN: the loss is NaN, and so are that
// row's dlogits (cuda/loss.cu).
//   loss = Σ_counted (lse[r] − logits[r, target[r]]) / count        (0 when count = 0)
// The backward writes dlogits (=) in logits' dtype, reading the scalar dloss on the device:
//   dlogits[r] = (exp(logits[r] − lse[r]) − onehot(target[r])) · dloss / count,
//   and 0 in rows whose target is ignore_index.
#pragma once

#include "core/dispatch.h"
#include "core/tensor.h"

namespace lumen {

namespace cpu {
void cross_entropy(Tensor& loss, Tensor& lse, Tensor& count, const Tensor& logits,
                   const Tensor& target, int64_t ignore_index);
void cross_entropy_backward(Tensor& dlogits, const Tensor& dloss, const Tensor& logits,
                            const Tensor& target, const Tensor& lse, const Tensor& count,
                            int64_t ignore_index);
}  // namespace cpu

#ifdef LUMEN_WITH_CUDA
namespace cuda {
void cross_entropy(Tensor& loss, Tensor& lse, Tensor& count, const Tensor& logits,
                   const Tensor& target, int64_t ignore_index);
void cross_entropy_backward(Tensor& dlogits, const Tensor& dloss, const Tensor& logits,
                            const Tensor& target, const Tensor& lse, const Tensor& count,
                            int64_t ignore_index);
}  // namespace cuda
#endif

namespace kernels {
inline void cross_entropy(Tensor& loss, Tensor& lse, Tensor& count, const Tensor& logits,
                          const Tensor& target, int64_t ignore_index) {
    LUMEN_DISPATCH(loss.device(), cross_entropy(loss, lse, count, logits, target, ignore_index))
}
inline void cross_entropy_backward(Tensor& dlogits, const Tensor& dloss, const Tensor& logits,
                                   const Tensor& target, const Tensor& lse, const Tensor& count,
                                   int64_t ignore_index) {
    LUMEN_DISPATCH(dlogits.device(), cross_entropy_backward(dlogits, dloss, logits, target, lse,
                                                            count, ignore_index))
}
}  // namespace kernels

}  // namespace lumen
