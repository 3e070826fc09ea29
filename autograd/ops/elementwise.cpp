// autograd/ops/elementwise.cpp: unary, binary, comparison and where ops, forward and backward
// together. Kernels: core/kernels/elementwise.h (CPU reference in core/cpu/elementwise.cpp).
#include "autograd/ops/elementwise.h"

#include "autograd/node.h"
#include "autograd/ops/reduce.h"
#include "autograd/registry.h"
#include "core/kernels/elementwise.h"

namespace lumen::ops {

static const bool registered = autograd::register_differentiable(
    {"neg", "abs", "sign", "exp", "log", "sqrt", "rsqrt", "sin", "cos", "tanh", "sigmoid", "relu",
     "silu", "gelu", "gelu_exact", "add", "sub", "mul", "div", "pow", "maximum", "minimum", "where"});

Tensor scalar_like(double value, const Tensor& like) {
    return Tensor::scalar(value, like.dtype(), like.device());
}

namespace {

// x's layout broadcast (stride 0) to `shape`, same storage.
Tensor broadcast_view(const Tensor& x, const Shape& shape) {
    return x.shape() == shape ? x : Tensor::over(x.storage(), x.layout().expand(shape), x.dtype());
}

Tensor unary_op(UnaryOp op, const Tensor& x) {
    const auto name = unary_name(op);
    check(is_floating(x.dtype()) || op == UnaryOp::neg || op == UnaryOp::abs || op == UnaryOp::sign,
          name, "expected a floating tensor", {{"x", x}});
    Tensor y = Tensor::empty(x.shape(), x.dtype(), x.device());
    kernels::unary(op, y, x);
    autograd::record(name, y, {x}, [op, x = x.detach()](const Tensor& dy) {
        Tensor dx = Tensor::empty(x.shape(), x.dtype(), x.device());
        kernels::unary_backward(op, dx, dy, x);
        return autograd::Grads{dx};
    });
    return y;
}

// Checks a binary op's operands and returns the broadcast shape.
Shape binary_shape(std::string_view name, const Tensor& a, const Tensor& b) {
    check(a.dtype() == b.dtype(), name, "dtypes differ (cast one with .to())", {{"a", a}, {"b", b}});
    check(a.device() == b.device(), name, "tensors on different devices", {{"a", a}, {"b", b}});
    const size_t rank = std::max(a.shape().size(), b.shape().size());
    Shape out(rank);
    for (size_t i = 0; i < rank; ++i) {
        const int64_t da = i < rank - a.shape().size() ? 1 : a.shape()[i - (rank - a.shape().size())];
        const int64_t db = i < rank - b.shape().size() ? 1 : b.shape()[i - (rank - b.shape().size())];
        check(da == db || da == 1 || db == 1, name, "shapes do not broadcast", {{"a", a}, {"b", b}});
        out[i] = da == 1 ? db : da;
    }
    return out;
}

Tensor binary_forward(BinaryOp op, const Tensor& a, const Tensor& b, const Shape& shape) {
    Tensor out = Tensor::empty(shape, a.dtype(), a.device());
    kernels::binary(op, out, broadcast_view(a, shape), broadcast_view(b, shape));
    return out;
}

Tensor compare_op(CompareOp op, const Tensor& a, const Tensor& b) {
    const Shape shape = binary_shape(compare_name(op), a, b);
    Tensor out = Tensor::empty(shape, DType::boolean, a.device());
    kernels::compare(op, out, broadcast_view(a, shape), broadcast_view(b, shape));
    return out;
}

}  // namespace

Tensor neg(const Tensor& x) { return unary_op(UnaryOp::neg, x); }
Tensor abs(const Tensor& x) { return unary_op(UnaryOp::abs, x); }
Tensor sign(const Tensor& x) { return unary_op(UnaryOp::sign, x); }
Tensor exp(const Tensor& x) { return unary_op(UnaryOp::exp, x); }
Tensor log(const Tensor& x) { return unary_op(UnaryOp::log, x); }
Tensor sqrt(const Tensor& x) { return unary_op(UnaryOp::sqrt, x); }
Tensor rsqrt(const Tensor& x) { return unary_op(UnaryOp::rsqrt, x); }
Tensor sin(const Tensor& x) { return unary_op(UnaryOp::sin, x); }
Tensor cos(const Tensor& x) { return unary_op(UnaryOp::cos, x); }
Tensor tanh(const Tensor& x) { return unary_op(UnaryOp::tanh, x); }
Tensor sigmoid(const Tensor& x) { return unary_op(UnaryOp::sigmoid, x); }
Tensor relu(const Tensor& x) { return unary_op(UnaryOp::relu, x); }
Tensor silu(const Tensor& x) { return unary_op(UnaryOp::silu, x); }
Tensor gelu(const Tensor& x) { return unary_op(UnaryOp::gelu, x); }
Tensor gelu_exact(const Tensor& x) { return unary_op(UnaryOp::gelu_exact, x); }

Tensor add(const Tensor& a, const Tensor& b) {
    const Shape shape = binary_shape("add", a, b);
    Tensor y = binary_forward(BinaryOp::add, a, b, shape);
    autograd::record("add", y, {a, b}, [sa = a.shape(), sb = b.shape()](const Tensor& dy) {
        return autograd::Grads{autograd::sum_to(dy, sa), autograd::sum_to(dy, sb)};
    });
    return y;
}

Tensor sub(const Tensor& a, const Tensor& b) {
    const Shape shape = binary_shape("sub", a, b);
    Tensor y = binary_forward(BinaryOp::sub, a, b, shape);
    autograd::record("sub", y, {a, b}, [sa = a.shape(), sb = b.shape()](const Tensor& dy) {
        return autograd::Grads{autograd::sum_to(dy, sa), autograd::sum_to(neg(dy), sb)};
    });
    return y;
}

Tensor mul(const Tensor& a, const Tensor& b) {
    const Shape shape = binary_shape("mul", a, b);
    Tensor y = binary_forward(BinaryOp::mul, a, b, shape);
    const bool ga = a.requires_grad(), gb = b.requires_grad();
    // NOTE: each input's gradient needs the other input; save only what is needed.
    autograd::record("mul", y, {a, b},
                     [a = gb ? a.detach() : Tensor(), b = ga ? b.detach() : Tensor(),
                      sa = a.shape(), sb = b.shape()](const Tensor& dy) {
        return autograd::Grads{b.defined() ? autograd::sum_to(mul(dy, b), sa) : Tensor(),
                               a.defined() ? autograd::sum_to(mul(dy, a), sb) : Tensor()};
    });
    return y;
}

Tensor div(const Tensor& a, const Tensor& b) {
    const Shape shape = binary_shape("div", a, b);
    Tensor y = binary_forward(BinaryOp::div, a, b, shape);
    autograd::record("div", y, {a, b}, [b = b.detach(), y = y.detach(), sa = a.shape()](const Tensor& dy) {
        Tensor da = div(dy, b);                                   // d(a/b)/da = 1/b
        return autograd::Grads{autograd::sum_to(da, sa), autograd::sum_to(neg(mul(da, y)), b.shape())};  // -a/b² = -y/b
    });
    return y;
}

Tensor pow(const Tensor& a, const Tensor& b) {
    const Shape shape = binary_shape("pow", a, b);
    Tensor y = binary_forward(BinaryOp::pow, a, b, shape);
    autograd::record("pow", y, {a, b}, [a = a.detach(), b = b.detach(), y = y.detach(),
                                        need_b = b.requires_grad()](const Tensor& dy) {
        // d/da = b·a^(b-1); d/db = y·ln(a) where a > 0 (0 elsewhere, the limit at a = 0)
        Tensor da = mul(dy, mul(b, pow(a, sub(b, scalar_like(1.0, b)))));
        Tensor db;
        if (need_b) {
            Tensor log_a = log(where(gt(a, scalar_like(0.0, a)), a, scalar_like(1.0, a)));
            db = autograd::sum_to(mul(dy, mul(y, log_a)), b.shape());
        }
        return autograd::Grads{autograd::sum_to(da, a.shape()), db};
    });
    return y;
}

Tensor pow(const Tensor& a, double exponent) { return pow(a, scalar_like(exponent, a)); }

namespace {
// maximum/minimum: the chosen operand gets dy, ties split it in half.
Tensor extremum(BinaryOp op, const char* name, const Tensor& a, const Tensor& b) {
    const Shape shape = binary_shape(name, a, b);
    Tensor y = binary_forward(op, a, b, shape);
    autograd::record(name, y, {a, b}, [op, a = a.detach(), b = b.detach()](const Tensor& dy) {
        Tensor a_wins = op == BinaryOp::maximum ? gt(a, b) : lt(a, b);
        Tensor tie = eq(a, b);
        Tensor half_dy = mul(dy, scalar_like(0.5, dy));
        Tensor zero = scalar_like(0.0, dy);
        Tensor da = where(a_wins, dy, where(tie, half_dy, zero));
        Tensor db = where(a_wins, zero, where(tie, half_dy, dy));
        return autograd::Grads{autograd::sum_to(da, a.shape()), autograd::sum_to(db, b.shape())};
    });
    return y;
}
}  // namespace

Tensor maximum(const Tensor& a, const Tensor& b) { return extremum(BinaryOp::maximum, "maximum", a, b); }
Tensor minimum(const Tensor& a, const Tensor& b) { return extremum(BinaryOp::minimum, "minimum", a, b); }

Tensor eq(const Tensor& a, const Tensor& b) { return compare_op(CompareOp::eq, a, b); }
Tensor ne(const Tensor& a, const Tensor& b) { return compare_op(CompareOp::ne, a, b); }
Tensor lt(const Tensor& a, const Tensor& b) { return compare_op(CompareOp::lt, a, b); }
Tensor le(const Tensor& a, const Tensor& b) { return compare_op(CompareOp::le, a, b); }
Tensor gt(const Tensor& a, const Tensor& b) { return compare_op(CompareOp::gt, a, b); }
Tensor ge(const Tensor& a, const Tensor& b) { return compare_op(CompareOp::ge, a, b); }

Tensor where(const Tensor& cond, const Tensor& a, const Tensor& b) {
    check(cond.dtype() == DType::boolean, "where", "cond must be boolean", {{"cond", cond}, {"a", a}, {"b", b}});
    check(cond.device() == a.device(), "where", "tensors on different devices", {{"cond", cond}, {"a", a}});
    Shape shape = binary_shape("where", a, b);
    shape = broadcast_shapes(cond.shape(), shape, "where");
    Tensor y = Tensor::empty(shape, a.dtype(), a.device());
    kernels::where(y, broadcast_view(cond, shape), broadcast_view(a, shape), broadcast_view(b, shape));
    autograd::record("where", y, {cond, a, b}, [cond = cond.detach(), sa = a.shape(), sb = b.shape()](const Tensor& dy) {
        Tensor zero = scalar_like(0.0, dy);
        return autograd::Grads{Tensor(), autograd::sum_to(where(cond, dy, zero), sa),
                               autograd::sum_to(where(cond, zero, dy), sb)};
    });
    return y;
}

}  // namespace lumen::ops

namespace lumen {

Tensor operator-(const Tensor& x) { return ops::neg(x); }
Tensor operator+(const Tensor& a, const Tensor& b) { return ops::add(a, b); }
Tensor operator-(const Tensor& a, const Tensor& b) { return ops::sub(a, b); }
Tensor operator*(const Tensor& a, const Tensor& b) { return ops::mul(a, b); }
Tensor operator/(const Tensor& a, const Tensor& b) { return ops::div(a, b); }
Tensor operator+(const Tensor& a, double b) { return ops::add(a, ops::scalar_like(b, a)); }
Tensor operator-(const Tensor& a, double b) { return ops::sub(a, ops::scalar_like(b, a)); }
Tensor operator*(const Tensor& a, double b) { return ops::mul(a, ops::scalar_like(b, a)); }
Tensor operator/(const Tensor& a, double b) { return ops::div(a, ops::scalar_like(b, a)); }
Tensor operator+(double a, const Tensor& b) { return ops::add(ops::scalar_like(a, b), b); }
Tensor operator-(double a, const Tensor& b) { return ops::sub(ops::scalar_like(a, b), b); }
Tensor operator*(double a, const Tensor& b) { return ops::mul(ops::scalar_like(a, b), b); }
Tensor operator/(double a, const Tensor& b) { return ops::div(ops::scalar_like(a, b), b); }
Tensor operator<(const Tensor& a, double b) { return ops::lt(a, ops::scalar_like(b, a)); }
Tensor operator<=(const Tensor& a, double b) { return ops::le(a, ops::scalar_like(b, a)); }
Tensor operator>(const Tensor& a, double b) { return ops::gt(a, ops::scalar_like(b, a)); }
Tensor operator>=(const Tensor& a, double b) { return ops::ge(a, ops::scalar_like(b, a)); }

}  // namespace lumen
