// core/elementwise_math.h: the per-element formulas of the elementwise family, written once for
// the CPU reference (core/cpu/elementwise.cpp) and the CUDA functors (cuda/elementwise.cu).
// C is the compute type: float for f32/bf16/f16, double for f64, int64_t for integers.
#pragma once

#include "core/host_device.h"
#include "core/kernels/elementwise.h"

#include <cmath>
#include <type_traits>

namespace lumen {

// gelu, tanh form: 0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³)))
inline constexpr double gelu_k = 0.7978845608028654, gelu_c = 0.044715;
// gelu_exact, erf form: 0.5·x·(1 + erf(x/√2)); its derivative adds x·exp(-x²/2)/√(2π)
inline constexpr double sqrt1_2 = 0.7071067811865476, inv_sqrt_2pi = 0.3989422804014327;

template <typename C>
LUMEN_HOST_DEVICE C apply_unary(UnaryOp op, C x) {
    using std::exp, std::log, std::sqrt, std::sin, std::cos, std::tanh, std::abs, std::erf;
    switch (op) {
    case UnaryOp::neg: return -x;
    case UnaryOp::abs: return abs(x);
    case UnaryOp::sign: return C((x > C(0)) - (x < C(0)));
    case UnaryOp::exp: return exp(x);
    case UnaryOp::log: return log(x);
    case UnaryOp::sqrt: return sqrt(x);
    case UnaryOp::rsqrt: return C(1) / sqrt(x);
    case UnaryOp::sin: return sin(x);
    case UnaryOp::cos: return cos(x);
    case UnaryOp::tanh: return tanh(x);
    case UnaryOp::sigmoid: return C(1) / (C(1) + exp(-x));
    case UnaryOp::relu: return x > C(0) ? x : C(0);
    case UnaryOp::silu: return x / (C(1) + exp(-x));
    case UnaryOp::gelu: return C(0.5) * x * (C(1) + tanh(C(gelu_k) * (x + C(gelu_c) * x * x * x)));
    case UnaryOp::gelu_exact: return C(0.5) * x * (C(1) + erf(x * C(sqrt1_2)));
    }
    return x;
}

// d op(x) / dx
template <typename C>
LUMEN_HOST_DEVICE C unary_derivative(UnaryOp op, C x) {
    using std::exp, std::log, std::sqrt, std::sin, std::cos, std::tanh, std::erf;
    switch (op) {
    case UnaryOp::neg: return C(-1);
    case UnaryOp::abs: return C((x > C(0)) - (x < C(0)));
    case UnaryOp::sign: return C(0);
    case UnaryOp::exp: return exp(x);
    case UnaryOp::log: return C(1) / x;
    case UnaryOp::sqrt: return C(0.5) / sqrt(x);
    case UnaryOp::rsqrt: return C(-0.5) / (x * sqrt(x));
    case UnaryOp::sin: return cos(x);
    case UnaryOp::cos: return -sin(x);
    case UnaryOp::tanh: { C t = tanh(x); return C(1) - t * t; }
    case UnaryOp::sigmoid: { C s = C(1) / (C(1) + exp(-x)); return s * (C(1) - s); }
    case UnaryOp::relu: return x > C(0) ? C(1) : C(0);
    case UnaryOp::silu: { C s = C(1) / (C(1) + exp(-x)); return s * (C(1) + x * (C(1) - s)); }
    case UnaryOp::gelu: {
        const C inner = C(gelu_k) * (x + C(gelu_c) * x * x * x);
        const C t = tanh(inner);
        const C dinner = C(gelu_k) * (C(1) + C(3 * gelu_c) * x * x);
        return C(0.5) * (C(1) + t) + C(0.5) * x * (C(1) - t * t) * dinner;
    }
    case UnaryOp::gelu_exact:
        return C(0.5) * (C(1) + erf(x * C(sqrt1_2))) + x * C(inv_sqrt_2pi) * exp(C(-0.5) * x * x);
    }
    return C(0);
}

template <typename C>
LUMEN_HOST_DEVICE C apply_binary(BinaryOp op, C a, C b) {
    switch (op) {
    case BinaryOp::add: return a + b;
    case BinaryOp::sub: return a - b;
    case BinaryOp::mul: return a * b;
    case BinaryOp::div: return a / b;
    case BinaryOp::pow:
        if constexpr (std::is_floating_point_v<C>) { using std::pow; return pow(a, b); }
        else {
            C r = 1;
            for (C e = b; e > 0; --e) r *= a;
            return r;
        }
    case BinaryOp::maximum: return a > b ? a : b;
    case BinaryOp::minimum: return a < b ? a : b;
    }
    return a;
}

template <typename C>
LUMEN_HOST_DEVICE bool apply_compare(CompareOp op, C a, C b) {
    switch (op) {
    case CompareOp::eq: return a == b;
    case CompareOp::ne: return a != b;
    case CompareOp::lt: return a < b;
    case CompareOp::le: return a <= b;
    case CompareOp::gt: return a > b;
    case CompareOp::ge: return a >= b;
    }
    return false;
}

}  // namespace lumen
