// autograd/ops/softmax.cpp: softmax, log_softmax and the causal attention softmax over the last
// dim, each a node with a
// dedicated backward kernel that reads the saved output. Kernels: core/kernels/softmax.h (CPU
// reference in core/cpu/softmax.cpp).
#include "autograd/node.h"
#include "autograd/ops/nn_functional.h"
#include "autograd/registry.h"
#include "core/kernels/softmax.h"

namespace lumen::ops {

static const bool registered = autograd::register_differentiable({"softmax", "log_softmax", "causal_softmax"});

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

Tensor causal_softmax(const Tensor& x, double scale) {  // x: (..., Tq, Tk)
    check(is_floating(x.dtype()), "causal_softmax", "expected a floating tensor", {{"x", x}});
    check(x.dim() >= 2 && x.size(-2) <= x.size(-1), "causal_softmax",
          "expected scores (..., Tq, Tk) with Tq <= Tk", {{"x", x}});
    const CausalSoftmax c{x.size(-2), scale};
    Tensor xc = x.detach().contiguous();
    Tensor y = Tensor::empty(x.shape(), x.dtype(), x.device());  // (..., Tq, Tk)
    if (x.numel() > 0) kernels::causal_softmax(y, xc, c);
    autograd::record("causal_softmax", y, {x}, [y = y.detach(), c](const Tensor& dy) {
        Tensor dx = Tensor::empty(y.shape(), y.dtype(), y.device());
        if (y.numel() > 0) kernels::causal_softmax_backward(dx, dy.contiguous(), y, c);  // scale·y·(dy − Σ dy·y)
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
