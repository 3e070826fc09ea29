// tests/ops/elementwise_test.cpp: unary, binary, comparison and where ops: forward against f64
// references on random and awkward shapes (empty, one element, broadcast, non-contiguous), and
// gradchecks for every differentiable one.
#include "tests/harness.h"

#include "core/kernels/elementwise.h"

#include <cmath>
#include <functional>

using namespace lumen;

namespace {

// The formulas in plain double, independent of the kernels' code.
double ref_unary(UnaryOp op, double x) {
    switch (op) {
    case UnaryOp::neg: return -x;
    case UnaryOp::abs: return std::fabs(x);
    case UnaryOp::sign: return x > 0 ? 1 : x < 0 ? -1 : 0;
    case UnaryOp::exp: return std::exp(x);
    case UnaryOp::log: return std::log(x);
    case UnaryOp::sqrt: return std::sqrt(x);
    case UnaryOp::rsqrt: return 1 / std::sqrt(x);
    case UnaryOp::sin: return std::sin(x);
    case UnaryOp::cos: return std::cos(x);
    case UnaryOp::tanh: return std::tanh(x);
    case UnaryOp::sigmoid: return 1 / (1 + std::exp(-x));
    case UnaryOp::relu: return x > 0 ? x : 0;
    case UnaryOp::silu: return x / (1 + std::exp(-x));
    case UnaryOp::gelu: return 0.5 * x * (1 + std::tanh(std::sqrt(2 / M_PI) * (x + 0.044715 * x * x * x)));
    }
    return 0;
}

using UnaryFn = Tensor (*)(const Tensor&);
struct UnaryCase {
    UnaryOp op;
    UnaryFn fn;
    double lo, hi;  // input range where the function is smooth and defined
};
const UnaryCase unary_cases[] = {
    {UnaryOp::neg, ops::neg, -2, 2},     {UnaryOp::abs, ops::abs, 0.1, 2},
    {UnaryOp::sign, ops::sign, -2, 2},   {UnaryOp::exp, ops::exp, -2, 2},
    {UnaryOp::log, ops::log, 0.1, 3},    {UnaryOp::sqrt, ops::sqrt, 0.1, 3},
    {UnaryOp::rsqrt, ops::rsqrt, 0.1, 3}, {UnaryOp::sin, ops::sin, -3, 3},
    {UnaryOp::cos, ops::cos, -3, 3},     {UnaryOp::tanh, ops::tanh, -3, 3},
    {UnaryOp::sigmoid, ops::sigmoid, -4, 4}, {UnaryOp::relu, ops::relu, 0.05, 2},
    {UnaryOp::silu, ops::silu, -4, 4},   {UnaryOp::gelu, ops::gelu, -4, 4},
};

const Shape awkward_shapes[] = {{0}, {1}, {7}, {3, 5}, {2, 3, 33}, {4, 0, 3}, {1, 1, 1}, {}};

}  // namespace

LUMEN_DEVICE_TEST("unary: forward matches the f64 reference on every dtype and shape") {
    for (const UnaryCase& c : unary_cases)
        for (DType dt : {DType::f32, DType::f64, DType::bf16, DType::f16})
            for (const Shape& s : awkward_shapes) {
                INFO(unary_name(c.op) << " " << dtype_name(dt) << " " << shape_str(s));
                Tensor x = test::random(s, 11, dt, device, c.lo, c.hi);
                std::vector<double> xs = x.to_vector<double>(), expected;
                for (double v : xs) expected.push_back(ref_unary(c.op, v));
                CHECK_CLOSE(c.fn(x).to_vector<double>(), expected, test::tolerance(dt));
            }
}

LUMEN_DEVICE_TEST("unary: non-contiguous input gives the same values as its contiguous copy") {
    Tensor x = test::random({6, 5}, 3, DType::f32, device, 0.1, 2.0).transpose(0, 1);  // (5, 6) strided
    REQUIRE_FALSE(x.is_contiguous());
    for (const UnaryCase& c : unary_cases) {
        INFO(unary_name(c.op));
        CHECK_CLOSE(c.fn(x), c.fn(x.contiguous()), test::Tolerance{0, 0});
    }
}

LUMEN_GRADCHECK_COVERS("neg", "abs", "sign", "exp", "log", "sqrt", "rsqrt", "sin", "cos", "tanh",
                       "sigmoid", "relu", "silu", "gelu");

TEST_CASE("unary: gradcheck") {
    for (const UnaryCase& c : unary_cases) {
        INFO(unary_name(c.op));
        UnaryFn fn = c.fn;
        CHECK_GRADCHECK([fn](const std::vector<Tensor>& in) { return fn(in[0]); },
                        {test::leaf({3, 4}, 5, c.lo, c.hi)});
    }
}

namespace {
struct BinaryCase {
    const char* name;
    std::function<Tensor(const Tensor&, const Tensor&)> fn;
    std::function<double(double, double)> ref;
    double lo, hi;
};
const std::vector<BinaryCase>& binary_cases() {
    static const std::vector<BinaryCase> cases = {
        {"add", ops::add, [](double a, double b) { return a + b; }, -2, 2},
        {"sub", ops::sub, [](double a, double b) { return a - b; }, -2, 2},
        {"mul", ops::mul, [](double a, double b) { return a * b; }, -2, 2},
        {"div", ops::div, [](double a, double b) { return a / b; }, 0.5, 2},
        {"pow", [](const Tensor& a, const Tensor& b) { return ops::pow(a, b); },
         [](double a, double b) { return std::pow(a, b); }, 0.5, 2},
        {"maximum", ops::maximum, [](double a, double b) { return std::max(a, b); }, -2, 2},
        {"minimum", ops::minimum, [](double a, double b) { return std::min(a, b); }, -2, 2},
    };
    return cases;
}
}  // namespace

LUMEN_DEVICE_TEST("binary: forward with broadcasting matches the f64 reference") {
    const std::pair<Shape, Shape> pairs[] = {{{3, 4}, {3, 4}}, {{3, 4}, {4}},    {{2, 1, 5}, {3, 1}},
                                             {{0, 3}, {3}},    {{1}, {2, 3}},    {{}, {4, 2}},
                                             {{5, 1}, {1, 7}}, {{1, 1}, {1, 1}}};
    for (const BinaryCase& c : binary_cases())
        for (DType dt : {DType::f32, DType::f64, DType::bf16})
            for (const auto& [sa, sb] : pairs) {
                INFO(c.name << " " << dtype_name(dt) << " " << shape_str(sa) << " " << shape_str(sb));
                Tensor a = test::random(sa, 21, dt, device, c.lo, c.hi);
                Tensor b = test::random(sb, 22, dt, device, c.lo, c.hi);
                Tensor y = c.fn(a, b);
                const Shape shape = broadcast_shapes(sa, sb, "test");
                REQUIRE(y.shape() == shape);
                // Reference: index both inputs through their broadcast views on the host.
                Tensor ea = a.expand(shape).contiguous(), eb = b.expand(shape).contiguous();
                std::vector<double> va = ea.to_vector<double>(), vb = eb.to_vector<double>(), expected;
                for (size_t i = 0; i < va.size(); ++i) expected.push_back(c.ref(va[i], vb[i]));
                CHECK_CLOSE(y.to_vector<double>(), expected, test::tolerance(dt));
            }
}

LUMEN_DEVICE_TEST("binary: integer arithmetic and scalar operands") {
    Tensor a = Tensor::from<int32_t>({1, -2, 7, 9}, {4}, device);
    Tensor b = Tensor::from<int32_t>({3, 3, -2, 0}, {4}, device);
    CHECK(ops::add(a, b).to_vector<int32_t>() == std::vector<int32_t>{4, 1, 5, 9});
    CHECK(ops::mul(a, b).to_vector<int32_t>() == std::vector<int32_t>{3, -6, -14, 0});
    CHECK(ops::maximum(a, b).to_vector<int32_t>() == std::vector<int32_t>{3, 3, 7, 9});
    Tensor x = Tensor::from<float>({1.f, 2.f, 3.f}, {3}, device);
    CHECK((x * 2.0 + 1.0).to_vector<float>() == std::vector<float>{3.f, 5.f, 7.f});
    CHECK((1.0 - x).to_vector<float>() == std::vector<float>{0.f, -1.f, -2.f});
    CHECK((6.0 / x).to_vector<float>() == std::vector<float>{6.f, 3.f, 2.f});
}

LUMEN_DEVICE_TEST("binary: errors name the op and operands") {
    Tensor a = Tensor::zeros({4, 3}, DType::f32, device), b = Tensor::zeros({5}, DType::f32, device);
    CHECK_THROWS_CONTAINING(ops::add(a, b), "add: shapes do not broadcast: a (4, 3) f32");
    Tensor c = Tensor::zeros({4, 3}, DType::bf16, device);
    CHECK_THROWS_CONTAINING(ops::mul(a, c), "mul: dtypes differ");
}

LUMEN_DEVICE_TEST("compare and where") {
    Tensor a = Tensor::from<float>({1.f, 2.f, 3.f, NAN}, {4}, device);
    Tensor b = Tensor::from<float>({2.f, 2.f, 2.f, 2.f}, {4}, device);
    CHECK(ops::lt(a, b).to_vector<bool>() == std::vector<bool>{true, false, false, false});
    CHECK(ops::le(a, b).to_vector<bool>() == std::vector<bool>{true, true, false, false});
    CHECK(ops::eq(a, b).to_vector<bool>() == std::vector<bool>{false, true, false, false});
    CHECK(ops::ne(a, b).to_vector<bool>() == std::vector<bool>{true, false, true, true});
    CHECK(ops::gt(a, b).to_vector<bool>() == std::vector<bool>{false, false, true, false});
    CHECK(ops::ge(a, b).to_vector<bool>() == std::vector<bool>{false, true, true, false});
    Tensor cond = Tensor::from<bool>({true, false, true}, {3, 1}, device);
    Tensor y = ops::where(cond, Tensor::ones({3, 2}, DType::f32, device), ops::scalar_like(-1.0, a));
    CHECK(y.to_vector<float>() == std::vector<float>{1, 1, -1, -1, 1, 1});
    CHECK_THROWS_CONTAINING(ops::where(a, a, b), "where: cond must be boolean");
}

LUMEN_GRADCHECK_COVERS("add", "sub", "mul", "div", "pow", "maximum", "minimum", "where");

TEST_CASE("binary: gradcheck, with broadcasting") {
    for (const BinaryCase& c : binary_cases()) {
        INFO(c.name);
        auto fn = c.fn;
        CHECK_GRADCHECK([fn](const std::vector<Tensor>& in) { return fn(in[0], in[1]); },
                        {test::leaf({3, 4}, 31, c.lo, c.hi), test::leaf({3, 4}, 32, c.lo, c.hi)});
        CHECK_GRADCHECK([fn](const std::vector<Tensor>& in) { return fn(in[0], in[1]); },
                        {test::leaf({2, 1, 4}, 33, c.lo, c.hi), test::leaf({3, 1}, 34, c.lo, c.hi)});
    }
    Tensor cond = test::random({3, 4}, 9) > 0.0;
    CHECK_GRADCHECK([cond](const std::vector<Tensor>& in) { return ops::where(cond, in[0], in[1]); },
                    {test::leaf({3, 4}, 35), test::leaf({4}, 36)});
}

TEST_CASE("maximum: ties split the gradient in half") {
    Tensor a = Tensor::from<double>({1.0, 2.0, 3.0}).requires_grad_();
    Tensor b = Tensor::from<double>({1.0, 5.0, 0.0}).requires_grad_();
    ops::sum(ops::maximum(a, b)).backward();
    CHECK(a.grad().to_vector<double>() == std::vector<double>{0.5, 0.0, 1.0});
    CHECK(b.grad().to_vector<double>() == std::vector<double>{0.5, 1.0, 0.0});
}
