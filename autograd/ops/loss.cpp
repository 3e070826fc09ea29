// autograd/ops/loss.cpp: cross_entropy, one fused node: the forward kernel writes the mean loss,
// the per-row logsumexp and the count of counted rows on the device, and the backward kernel
// turns them into dlogits without recomputing the forward. Kernels: core/kernels/loss.h (CPU
// reference in core/cpu/loss.cpp). The gradient goes to logits only.
#include "autograd/node.h"
#include "autograd/ops/nn_functional.h"
#include "autograd/registry.h"
#include "core/kernels/loss.h"

namespace lumen::ops {

static const bool registered = autograd::register_differentiable({"cross_entropy"});

// logits (..., V) float, target (...) i32/i64 -> () f32 (f64 for f64 logits)
Tensor cross_entropy(const Tensor& logits, const Tensor& target, int64_t ignore_index) {
    check(is_floating(logits.dtype()), "cross_entropy", "logits must be f32, f64, bf16 or f16",
          {{"logits", logits}, {"target", target}});
    check(target.dtype() == DType::i32 || target.dtype() == DType::i64, "cross_entropy",
          "target must be i32 or i64", {{"logits", logits}, {"target", target}});
    check(logits.device() == target.device(), "cross_entropy", "tensors on different devices",
          {{"logits", logits}, {"target", target}});
    check(logits.dim() >= 1, "cross_entropy", "logits must be (..., V)",
          {{"logits", logits}, {"target", target}});
    const Shape lead(logits.shape().begin(), logits.shape().end() - 1);
    check(target.shape() == lead, "cross_entropy",
          fmt::format("target must have the shape of logits without its last dim, {}",
                      shape_str(lead)),
          {{"logits", logits}, {"target", target}});

    const DType acc = logits.dtype() == DType::f64 ? DType::f64 : DType::f32;
    Tensor lc = logits.detach().contiguous();                    // (..., V)
    Tensor tc = target.detach().contiguous();                    // (...)
    Tensor loss = Tensor::empty(Shape{}, acc, logits.device());  // ()
    Tensor lse = Tensor::empty(lead, acc, logits.device());      // (...)
    Tensor count = Tensor::empty(Shape{}, DType::i64, logits.device());
    kernels::cross_entropy(loss, lse, count, lc, tc, ignore_index);
    autograd::record(
        "cross_entropy", loss, {logits}, [lc, tc, lse, count, ignore_index](const Tensor& dloss) {
            Tensor dlogits = Tensor::empty(lc.shape(), lc.dtype(), lc.device());  // (..., V)
            kernels::cross_entropy_backward(dlogits, dloss, lc, tc, lse, count, ignore_index);
            return autograd::Grads{dlogits};
        });
    return loss;
}

}  // namespace lumen::ops
