// autograd/ops/embedding.cpp: embedding, a row gather from a (V, C) table, with a dedicated
// scatter-add backward to the table (never to the indices). Kernels: core/kernels/embedding.h
// (CPU reference in core/cpu/embedding.cpp).
#include "autograd/node.h"
#include "autograd/ops/nn_functional.h"
#include "autograd/registry.h"
#include "core/kernels/embedding.h"

namespace lumen::ops {

static const bool registered = autograd::register_differentiable({"embedding"});

// weight (V, C), indices (...) i32/i64 -> (..., C) in weight's dtype
Tensor embedding(const Tensor& weight, const Tensor& indices) {
    check(weight.dim() == 2, "embedding", "weight must be (V, C)",
          {{"weight", weight}, {"indices", indices}});
    check(indices.dtype() == DType::i32 || indices.dtype() == DType::i64, "embedding",
          "indices must be i32 or i64", {{"weight", weight}, {"indices", indices}});
    check(weight.device() == indices.device(), "embedding", "tensors on different devices",
          {{"weight", weight}, {"indices", indices}});
    const auto [V, C] = weight.dims<2>();
    Shape out_shape = indices.shape();
    out_shape.push_back(C);
    Tensor wc = weight.detach().contiguous();                                // (V, C)
    Tensor ic = indices.detach().contiguous();                               // (...)
    Tensor out = Tensor::empty(out_shape, weight.dtype(), weight.device());  // (..., C)
    kernels::embedding(out, wc, ic);
    autograd::record("embedding", out, {weight}, [ic, V, C, dt = weight.dtype()](const Tensor& dy) {
        Tensor dweight = Tensor::empty({V, C}, dt, dy.device());  // (V, C)
        kernels::embedding_backward(dweight, dy.contiguous(), ic);
        return autograd::Grads{dweight};
    });
    return out;
}

}  // namespace lumen::ops
