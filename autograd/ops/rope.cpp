// autograd/ops/rope.cpp: the rotary position embedding op and its autograd record.
//
// The backward is the same op turned the other way (rotation by −α), recorded in turn, so
// gradients of any order flow through it. Kernel: core/kernels/rope.h (CPU reference in
// core/cpu/rope.cpp).
#include "autograd/node.h"
#include "autograd/ops/rope.h"
#include "autograd/registry.h"
#include "core/error.h"
#include "core/kernels/rope.h"

#include <cmath>

namespace lumen::ops {

static const bool registered = autograd::register_differentiable({"rope"});

namespace {

// x (B, nh, T, hs) -> the rotated (B, nh, T, hs), contiguous; records the node.
Tensor rotate(const Tensor& x, const RopeParams& params) {
    Tensor y = Tensor::empty(x.shape(), x.dtype(), x.device());   // (B, nh, T, hs)
    kernels::rope(y, x.detach(), params);
    autograd::record("rope", y, {x}, [params](const Tensor& dy) {
        RopeParams back = params;
        back.inverse = !params.inverse;
        return autograd::Grads{rotate(dy, back)};
    });
    return y;
}

}  // namespace

Tensor rope(const Tensor& x, int64_t pos0, double theta, RopePairing pairing) {
    const char* op = "rope";
    check(x.dim() == 4, op, "expected x (B, nh, T, hs)", {{"x", x}});
    check(is_floating(x.dtype()), op, "expected a floating tensor", {{"x", x}});
    const int64_t hs = x.size(3);
    check(hs % 2 == 0, op, fmt::format("the head size hs = {} must be even", hs), {{"x", x}});
    check(pos0 >= 0, op, fmt::format("pos0 = {} must be >= 0", pos0), {{"x", x}});
    check(std::isfinite(theta) && theta > 0, op, fmt::format("theta = {} must be positive", theta),
          {{"x", x}});
    return rotate(x, RopeParams{pos0, theta, pairing == RopePairing::interleaved, false});
}

}  // namespace lumen::ops
