// autograd/ops/norm.cpp: layernorm and rmsnorm over the last dim, with dedicated kernels both ways.
//
// The forward saves per-row mean and rstd (f32, f64 for f64 x) so the backward never recomputes
// them. weight and bias are optional (an undefined Tensor for none), (C,) in x's dtype. Kernels:
// core/kernels/norm.h (CPU reference in core/cpu/norm.cpp).
#include "autograd/node.h"
#include "autograd/ops/nn_functional.h"
#include "autograd/registry.h"
#include "core/kernels/norm.h"

namespace lumen::ops {

static const bool registered = autograd::register_differentiable({"layernorm", "rmsnorm"});

namespace {

// Checks x and the optional (C,) parameters: float x, same dtype and device, right shape.
void check_norm_inputs(const char* op, const Tensor& x, const Tensor& weight, const Tensor& bias) {
    check(is_floating(x.dtype()), op, "expected a floating tensor", {{"x", x}});
    check(x.dim() >= 1, op, "x must have at least one dim (..., C)", {{"x", x}});
    const int64_t C = x.size(-1);
    const std::pair<const char*, const Tensor*> params[] = {{"weight", &weight}, {"bias", &bias}};
    for (const auto& [name, param] : params) {
        const Tensor& p = *param;
        if (!p.defined()) continue;
        check(p.shape() == Shape{C}, op,
              fmt::format("{} must be (C,) with C = x.size(-1) = {}", name, C),
              {{"x", x}, {name, p}});
        check(p.dtype() == x.dtype(), op, fmt::format("{} must have x's dtype", name),
              {{"x", x}, {name, p}});
        check(p.device() == x.device(), op, "tensors on different devices", {{"x", x}, {name, p}});
    }
}

int64_t rows_of(const Tensor& x) {
    int64_t rows = 1;
    for (int64_t d = 0; d + 1 < x.dim(); ++d) rows *= x.shape()[static_cast<size_t>(d)];
    return rows;
}

bool needs(const Tensor& t) { return t.defined() && t.requires_grad(); }

// A contiguous copy of t (or t itself) with no autograd history; undefined stays undefined.
Tensor plain(const Tensor& t) { return t.defined() ? t.detach().contiguous() : Tensor(); }

}  // namespace

Tensor layernorm(const Tensor& x, const Tensor& weight, const Tensor& bias, double eps) {
    check_norm_inputs("layernorm", x, weight, bias);
    const int64_t rows = rows_of(x), C = x.size(-1);
    Tensor xc = plain(x), wc = plain(weight), bc = plain(bias);
    Tensor y = Tensor::empty(x.shape(), x.dtype(), x.device());                        // (..., C)
    Tensor mean = Tensor::empty({rows}, norm_stats_dtype(x.dtype()), x.device());      // (rows,)
    Tensor rstd = Tensor::empty({rows}, norm_stats_dtype(x.dtype()), x.device());      // (rows,)
    kernels::layernorm(y, mean, rstd, xc, wc, bc, eps);
    autograd::record("layernorm", y, {x, weight, bias},
        [x = xc, w = wc, mean, rstd, C, need_x = needs(x), need_w = needs(weight),
         need_b = needs(bias)](const Tensor& dy) {
        Tensor dx = need_x ? Tensor::empty(x.shape(), x.dtype(), x.device()) : Tensor();
        Tensor dweight = need_w ? Tensor::empty({C}, x.dtype(), x.device()) : Tensor();
        Tensor dbias = need_b ? Tensor::empty({C}, x.dtype(), x.device()) : Tensor();
        kernels::layernorm_backward(dx, dweight, dbias, dy.contiguous(), x, mean, rstd, w);
        return autograd::Grads{dx, dweight, dbias};
    });
    return y;
}

Tensor rmsnorm(const Tensor& x, const Tensor& weight, double eps) {
    check_norm_inputs("rmsnorm", x, weight, Tensor());
    const int64_t rows = rows_of(x), C = x.size(-1);
    Tensor xc = plain(x), wc = plain(weight);
    Tensor y = Tensor::empty(x.shape(), x.dtype(), x.device());                        // (..., C)
    Tensor rstd = Tensor::empty({rows}, norm_stats_dtype(x.dtype()), x.device());      // (rows,)
    kernels::rmsnorm(y, rstd, xc, wc, eps);
    autograd::record("rmsnorm", y, {x, weight},
        [x = xc, w = wc, rstd, C, need_x = needs(x), need_w = needs(weight)](const Tensor& dy) {
        Tensor dx = need_x ? Tensor::empty(x.shape(), x.dtype(), x.device()) : Tensor();
        Tensor dweight = need_w ? Tensor::empty({C}, x.dtype(), x.device()) : Tensor();
        kernels::rmsnorm_backward(dx, dweight, dy.contiguous(), x, rstd, w);
        return autograd::Grads{dx, dweight};
    });
    return y;
}

}  // namespace lumen::ops
