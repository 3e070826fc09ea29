// autograd/ops/dropout.cpp: dropout with a Philox mask that the backward regenerates.
//
// One draw of x.numel() uniforms per call (gen.take): element i (row-major over x's shape) is
// dropped when uniform i < p, the rest are scaled by 1/(1 - p). The node saves only the RngState
// and p, and its backward runs the same kernel on dy, so no mask tensor is kept. Kernel:
// core/kernels/dropout.h (CPU reference in core/cpu/dropout.cpp).
#include "autograd/node.h"
#include "autograd/ops/nn_functional.h"
#include "autograd/registry.h"
#include "core/kernels/dropout.h"

namespace lumen::ops {

static const bool registered = autograd::register_differentiable({"dropout"});

Tensor dropout(const Tensor& x, double p, Generator& gen, Training training) {
    check(p >= 0.0 && p < 1.0, "dropout", fmt::format("p must be in [0, 1), got p = {}", p), {{"x", x}});
    check(is_floating(x.dtype()), "dropout", "expected a floating tensor", {{"x", x}});
    if (training == Training::no || p == 0.0) return x;
    const RngState rng = gen.take(x.numel());
    Tensor y = Tensor::empty(x.shape(), x.dtype(), x.device());
    kernels::dropout(y, x.detach().contiguous(), p, rng);
    autograd::record("dropout", y, {x}, [p, rng](const Tensor& dy) {
        Tensor dx = Tensor::empty(dy.shape(), dy.dtype(), dy.device());
        kernels::dropout(dx, dy.contiguous(), p, rng);   // the forward's mask, regenerated
        return autograd::Grads{dx};
    });
    return y;
}

}  // namespace lumen::ops
