// autograd/ops/wiggle.cpp: the oscillating activation and the bio gate (autograd/ops/wiggle.h),
// forward and backward. Both save only their inputs; the kernels (core/kernels/wiggle.h, CPU
// reference in core/cpu/wiggle.cpp) recompute sin/cos/tanh and the gate values in backward.
#include "autograd/ops/wiggle.h"

#include "autograd/checkpoint.h"
#include "autograd/node.h"
#include "autograd/registry.h"
#include "core/kernels/wiggle.h"

namespace lumen::ops {

static const bool registered = autograd::register_differentiable({"oscillate", "bio_gate"});

namespace {

bool needs(const Tensor& t) { return t.defined() && t.requires_grad(); }

// A contiguous copy of t (or t itself) with no autograd history.
Tensor plain(const Tensor& t) { return t.detach().contiguous(); }

Tensor empty_if(bool needed, const Shape& shape, const Tensor& like) {
    return needed ? Tensor::empty(shape, like.dtype(), like.device()) : Tensor();
}

}  // namespace

Tensor oscillate(const Tensor& x, const Tensor& omega, const Tensor& phi, const Tensor& baseline) {
    check(x.defined() && omega.defined() && phi.defined() && baseline.defined(), "oscillate",
          "x, omega, phi and baseline must all be defined");
    check(is_floating(x.dtype()), "oscillate", "expected a floating tensor", {{"x", x}});
    check(x.dim() >= 1, "oscillate", "x must have at least one dim (..., H)", {{"x", x}});
    const int64_t H = x.size(-1);
    const std::pair<const char*, const Tensor*> params[] = {
        {"omega", &omega}, {"phi", &phi}, {"baseline", &baseline}};
    for (const auto& [name, param] : params) {
        const Tensor& p = *param;
        check(p.shape() == Shape{H}, "oscillate",
              fmt::format("{} must be (H,) with H = x.size(-1) = {}", name, H), {{"x", x}, {name, p}});
        check(p.dtype() == x.dtype(), "oscillate", fmt::format("{} must have x's dtype", name),
              {{"x", x}, {name, p}});
        check(p.device() == x.device(), "oscillate", "tensors on different devices",
              {{"x", x}, {name, p}});
    }
    Tensor xc = plain(x), wc = plain(omega), pc = plain(phi);
    Tensor y = Tensor::empty(x.shape(), x.dtype(), x.device());  // (..., H)
    kernels::oscillate(y, xc, wc, pc, plain(baseline));
    // Backward reads x, omega and phi; baseline's gradient is a sum of dy and needs no tensor.
    autograd::record("oscillate", y, {x, omega, phi, baseline},
        [x = xc, omega = wc, phi = pc, H, need_x = needs(x), need_w = needs(omega),
         need_p = needs(phi), need_b = needs(baseline)](const Tensor& dy) {
        Tensor dx = empty_if(need_x, x.shape(), x);       // (..., H)
        Tensor domega = empty_if(need_w, {H}, x);         // (H,)
        Tensor dphi = empty_if(need_p, {H}, x);           // (H,)
        Tensor dbaseline = empty_if(need_b, {H}, x);      // (H,)
        kernels::oscillate_backward(dx, domega, dphi, dbaseline, dy.contiguous(), x, omega, phi);
        return autograd::Grads{dx, domega, dphi, dbaseline};
    });
    return y;
}

Tensor bio_gate(const Tensor& a, const Tensor& z, double threshold, Tensor* counts) {
    check(a.defined() && z.defined(), "bio_gate", "a and z must both be defined");
    check(is_floating(a.dtype()), "bio_gate", "expected a floating tensor", {{"a", a}, {"z", z}});
    check(a.shape() == z.shape(), "bio_gate", "a and z must have the same shape", {{"a", a}, {"z", z}});
    check(a.dtype() == z.dtype(), "bio_gate", "a and z must have the same dtype", {{"a", a}, {"z", z}});
    check(a.device() == z.device(), "bio_gate", "tensors on different devices", {{"a", a}, {"z", z}});
    if (counts) {
        check(counts->defined(), "bio_gate", "counts must be a defined tensor (or nullptr for none)");
        check(counts->shape() == Shape{2} && counts->dtype() == DType::i64, "bio_gate",
              "counts must be a (2,) i64 tensor [active, total]", {{"a", a}, {"counts", *counts}});
        check(counts->device() == a.device(), "bio_gate", "counts must be on a's device",
              {{"a", a}, {"counts", *counts}});
    }
    Tensor ac = plain(a), zc = plain(z);
    Tensor m = Tensor::empty(a.shape(), a.dtype(), a.device());  // a's shape
    // NOTE: a checkpoint's recompute repeats a forward that was already counted.
    Tensor* counting = counts && !autograd::in_checkpoint_recompute() ? counts : nullptr;
    kernels::bio_gate(m, ac, zc, threshold, counting);
    // da = dm·s reads only z; dz also reads a.
    const bool need_a = needs(a), need_z = needs(z);
    autograd::record("bio_gate", m, {a, z},
        [a = need_z ? ac : Tensor(), z = zc, threshold, need_a, need_z](const Tensor& dm) {
        Tensor da = empty_if(need_a, z.shape(), z);
        Tensor dz = empty_if(need_z, z.shape(), z);
        kernels::bio_gate_backward(da, dz, dm.contiguous(), a, z, threshold);
        return autograd::Grads{da, dz};
    });
    return m;
}

}  // namespace lumen::ops
