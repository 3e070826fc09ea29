// autograd/ops/attention.cpp: tril (a node with its own kernel) and causal_attention, which is a
// composition of public ops and records no node of its own.
//
// causal_attention materialises the (B, nh, Tq, Tk) scores: it is the readable reference that the
// fused attention kernels are tested against, not the fast path. Kernel for tril:
// core/kernels/tril.h (CPU reference in core/cpu/tril.cpp).
#include "autograd/node.h"
#include "autograd/ops/elementwise.h"
#include "autograd/ops/matmul.h"
#include "autograd/ops/nn_functional.h"
#include "autograd/ops/shape.h"
#include "autograd/registry.h"
#include "core/kernels/tril.h"

#include <cmath>
#include <limits>

namespace lumen::ops {

static const bool registered = autograd::register_differentiable({"tril"});

Tensor tril(const Tensor& x, int64_t diagonal) {
    check(x.dim() >= 2, "tril", "x must have at least two dims (..., R, K)", {{"x", x}});
    Tensor y = Tensor::empty(x.shape(), x.dtype(), x.device());
    kernels::tril(y, x.detach().contiguous(), diagonal);
    autograd::record("tril", y, {x}, [diagonal](const Tensor& dy) {
        return autograd::Grads{tril(dy, diagonal)};   // the kept elements pass dy through
    });
    return y;
}

namespace {

// (B, nkv, Tk, hs) -> (B, nkv·rep, Tk, hs): head h reads kv head h / rep.
Tensor repeat_kv(const Tensor& t, int64_t rep) {
    if (rep == 1) return t;
    const auto [B, nkv, T, hs] = t.dims<4>();
    return t.unsqueeze(2).expand({B, nkv, rep, T, hs}).reshape({B, nkv * rep, T, hs});
}

}  // namespace

Tensor causal_attention(const Tensor& q, const Tensor& k, const Tensor& v, std::optional<double> scale) {
    const char* op = "causal_attention";
    check(q.dim() == 4 && k.dim() == 4 && v.dim() == 4, op,
          "expected q (B, nh, Tq, hs), k and v (B, nkv, Tk, hs)", {{"q", q}, {"k", k}, {"v", v}});
    check(q.dtype() == k.dtype() && q.dtype() == v.dtype(), op, "dtypes differ",
          {{"q", q}, {"k", k}, {"v", v}});
    check(is_floating(q.dtype()), op, "expected floating tensors", {{"q", q}, {"k", k}, {"v", v}});
    check(q.device() == k.device() && q.device() == v.device(), op, "tensors on different devices",
          {{"q", q}, {"k", k}, {"v", v}});
    const auto [B, nh, Tq, hs] = q.dims<4>();
    const auto [Bk, nkv, Tk, hsk] = k.dims<4>();
    check(k.shape() == v.shape(), op, "k and v must have the same shape (B, nkv, Tk, hs)",
          {{"q", q}, {"k", k}, {"v", v}});
    check(Bk == B, op, fmt::format("batch sizes differ (B = {} in q, {} in k)", B, Bk),
          {{"q", q}, {"k", k}, {"v", v}});
    check(Tq <= Tk, op,
          fmt::format("q has more positions than k (Tq = {} in q, Tk = {} in k; need Tq <= Tk)", Tq, Tk),
          {{"q", q}, {"k", k}, {"v", v}});
    check(hsk == hs, op, fmt::format("head sizes differ (hs = {} in q, {} in k)", hs, hsk),
          {{"q", q}, {"k", k}, {"v", v}});
    check(nkv > 0 && nh % nkv == 0, op,
          fmt::format("nh ({}) must be a multiple of nkv ({})", nh, nkv), {{"q", q}, {"k", k}, {"v", v}});

    const double s = scale.value_or(1.0 / std::sqrt(double(hs)));
    Tensor kr = repeat_kv(k, nh / nkv);                                   // (B, nh, Tk, hs)
    Tensor vr = repeat_kv(v, nh / nkv);                                   // (B, nh, Tk, hs)
    Tensor att = matmul(q, kr.transpose(2, 3));                           // (B, nh, Tq, Tk)
    // Query i sits at position Tk - Tq + i and sees keys j <= Tk - Tq + i; scaling and the mask
    // happen inside the softmax's two passes.
    return matmul(causal_softmax(att, s), vr);                            // (B, nh, Tq, hs)
}

}  // namespace lumen::ops
