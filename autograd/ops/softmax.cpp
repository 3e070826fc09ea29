// autograd/ops/softmax.cpp: softmax and log_softmax over the last dim, each a node with a
// dedicated backward kernel that reads the saved output. Kernels: core/kernels/softmax.h (CPU
// reference in core/cpu/softmax.cpp).
#include "autograd/node.h"
#include "autograd/ops/nn_functional.h"
#include "autograd/registry.h"
#include "core/kernels/softmax.h"

namespace lumen::ops {

static const bool registered = autograd::register_differentiable({"softmax", "log_softmax"});

Tensor softmax(const Tensor& x) {  // x: (..., n)
    check(is_floating(x.dtype()), "softmax", "expected a floating tensor", {{"x", x}});
    Tensor xc = x.detach().contiguous();                         // kernels take contiguous rows
    Tensor y = Tensor::empty(x.shape(), x.dtype(), x.device());  // (..., n)
    kernels::softmax(y, xc);
    autograd::record("softmax", y, {x}, [y = y.detach()](const Tensor& dy) {
        Tensor dx = Tensor::empty(y.shape(), y.dtype(), y.device());
        kernels::softmax_backward(dx, dy.contiguous(), y);  // dx = y·(dy − Σ dy·y)
        return autograd::Grads{dx};
    });
    return y;
}

Tensor log_softmax(const Tensor& x) {  // x: (..., n)
    check(is_floating(x.dtype()), "log_softmax", "expected a floating tensor", {{"x", x}});
    Tensor xc = x.detach().contiguous();
    Tensor y = Tensor::empty(x.shape(), x.dtype(), x.device());  // (..., n)
    kernels::log_softmax(y, xc);
    autograd::record("log_softmax", y, {x}, [y = y.detach()](const Tensor& dy) {
        Tensor dx = Tensor::empty(y.shape(), y.dtype(), y.device());
        kernels::log_softmax_backward(dx, dy.contiguous(), y);  // dx = dy − exp(y)·Σ dy
        return autograd::Grads{dx};
    });
    return y;
}

}  // namespace lumen::ops
