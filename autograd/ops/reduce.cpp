// autograd/ops/reduce.cpp: sum, max, min (nodes) and mean, var (compositions), argmax.
// Each reduction moves the reduced dims last, makes the input contiguous and reduces rows with
// the kernels of core/kernels/reduce.h.
#include "autograd/ops/reduce.h"

#include "autograd/node.h"
#include "autograd/ops/elementwise.h"
#include "autograd/ops/shape.h"
#include "autograd/registry.h"
#include "core/kernels/reduce.h"

#include <algorithm>

namespace lumen::ops {

static const bool registered = autograd::register_differentiable({"sum", "max", "min"});

namespace {

struct ReducePlan {
    std::vector<bool> reduced;  // per dim of x
    Shape kept_shape;           // x's shape with reduced dims set to 1 (KeepDim::yes)
    Shape out_shape;            // the shape returned for the requested KeepDim
    int64_t rows = 1, n = 1;    // rows of n reduced elements
};

ReducePlan plan_reduce(const char* op, const Tensor& x, const std::vector<int64_t>& dims, KeepDim keep) {
    ReducePlan p;
    const int64_t rank = x.dim();
    p.reduced.assign(size_t(rank), dims.empty());
    for (int64_t d : dims) {
        const int64_t nd = normalize_dim(d, rank, op);
        if (rank == 0) continue;
        check(!p.reduced[size_t(nd)], op, fmt::format("dim {} listed twice", d), {{"x", x}});
        p.reduced[size_t(nd)] = true;
    }
    for (int64_t d = 0; d < rank; ++d) {
        const int64_t s = x.shape()[size_t(d)];
        p.kept_shape.push_back(p.reduced[size_t(d)] ? 1 : s);
        if (p.reduced[size_t(d)]) p.n *= s;
        else p.rows *= s;
        if (!p.reduced[size_t(d)] || keep == KeepDim::yes) p.out_shape.push_back(p.reduced[size_t(d)] ? 1 : s);
    }
    return p;
}

// x with the reduced dims moved last, contiguous: (rows, n) in memory.
Tensor rows_of(const Tensor& x, const ReducePlan& p) {
    std::vector<int64_t> order;
    for (int64_t d = 0; d < x.dim(); ++d) if (!p.reduced[size_t(d)]) order.push_back(d);
    for (int64_t d = 0; d < x.dim(); ++d) if (p.reduced[size_t(d)]) order.push_back(d);
    autograd::NoGradGuard no_grad;
    return permute(x, order).contiguous();
}

DType sum_dtype(DType dt) { return is_floating(dt) ? dt : DType::i64; }

Tensor extremum(ReduceOp op, const char* name, const Tensor& x, const std::vector<int64_t>& dims, KeepDim keep) {
    const ReducePlan p = plan_reduce(name, x, dims, keep);
    check(p.n > 0, name, "cannot reduce an empty dim (no identity for max/min)", {{"x", x}});
    Tensor y = Tensor::empty(p.out_shape, x.dtype(), x.device());
    kernels::reduce_rows(op, y, rows_of(x, p), p.n);
    autograd::record(name, y, {x}, [x = x.detach(), y = y.detach(), kept = p.kept_shape,
                                    reduced = p.reduced](const Tensor& dy) {
        // Ties share the gradient: dx = [x == y] · dy / count(x == y).
        std::vector<int64_t> rdims;
        for (size_t d = 0; d < reduced.size(); ++d) if (reduced[d]) rdims.push_back(int64_t(d));
        Tensor hit = eq(x, y.reshape(kept));
        Tensor count = sum(hit.to(x.dtype()), rdims, KeepDim::yes);
        Tensor share = div(dy.reshape(kept), count);
        return autograd::Grads{where(hit, share, scalar_like(0.0, x))};
    });
    return y;
}

}  // namespace

Tensor sum(const Tensor& x, const std::vector<int64_t>& dims, KeepDim keep) {
    const ReducePlan p = plan_reduce("sum", x, dims, keep);
    Tensor y = Tensor::empty(p.out_shape, sum_dtype(x.dtype()), x.device());
    kernels::reduce_rows(ReduceOp::sum, y, rows_of(x, p), p.n);
    autograd::record("sum", y, {x}, [shape = x.shape(), kept = p.kept_shape](const Tensor& dy) {
        return autograd::Grads{expand(dy.reshape(kept), shape).contiguous()};
    });
    return y;
}

Tensor mean(const Tensor& x, const std::vector<int64_t>& dims, KeepDim keep) {
    check(is_floating(x.dtype()), "mean", "expected a floating tensor", {{"x", x}});
    const ReducePlan p = plan_reduce("mean", x, dims, keep);
    return div(sum(x, dims, keep), scalar_like(double(p.n), x));
}

Tensor max(const Tensor& x, const std::vector<int64_t>& dims, KeepDim keep) {
    return extremum(ReduceOp::max, "max", x, dims, keep);
}
Tensor min(const Tensor& x, const std::vector<int64_t>& dims, KeepDim keep) {
    return extremum(ReduceOp::min, "min", x, dims, keep);
}

Tensor argmax(const Tensor& x, int64_t dim, KeepDim keep) {
    const ReducePlan p = plan_reduce("argmax", x, {dim}, keep);
    check(p.n > 0, "argmax", "cannot take argmax over an empty dim", {{"x", x}});
    Tensor y = Tensor::empty(p.out_shape, DType::i64, x.device());
    kernels::argmax_rows(y, rows_of(x, p), p.n);
    return y;
}

Tensor var(const Tensor& x, const std::vector<int64_t>& dims, int64_t correction, KeepDim keep) {
    check(is_floating(x.dtype()), "var", "expected a floating tensor", {{"x", x}});
    const ReducePlan p = plan_reduce("var", x, dims, keep);
    Tensor centered = sub(x, mean(x, dims, KeepDim::yes));
    const double denom = double(std::max<int64_t>(p.n - correction, 0));
    return div(sum(mul(centered, centered), dims, keep), scalar_like(denom, x));
}

}  // namespace lumen::ops
