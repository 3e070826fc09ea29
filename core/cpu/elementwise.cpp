// core/cpu/elementwise.cpp: CPU reference kernels for the elementwise family (see
// core/kernels/elementwise.h for the conventions). Each formula is written once, per element, in
// the compute type (f32 for f32/bf16/f16, f64 for f64, i64 for integers).
#include "core/cpu/loops.h"
#include "core/elementwise_math.h"
#include "core/kernels/elementwise.h"

#include <cmath>

namespace lumen {

void missing_cuda_kernel(const char* op) {
    throw Error(fmt::format("{}: a CUDA tensor, but this build has no CUDA support (rebuild with "
                            "LUMEN_CUDA=ON on a machine with nvcc and cuBLAS)", op));
}

std::string_view unary_name(UnaryOp op) {
    constexpr std::string_view names[] = {"neg", "abs", "sign", "exp", "log", "sqrt", "rsqrt",
                                          "sin", "cos", "tanh", "sigmoid", "relu", "silu", "gelu",
                                          "gelu_exact"};
    return names[size_t(op)];
}
std::string_view binary_name(BinaryOp op) {
    constexpr std::string_view names[] = {"add", "sub", "mul", "div", "pow", "maximum", "minimum"};
    return names[size_t(op)];
}
std::string_view compare_name(CompareOp op) {
    constexpr std::string_view names[] = {"eq", "ne", "lt", "le", "gt", "ge"};
    return names[size_t(op)];
}

namespace cpu {
namespace {

template <typename T>
T* at(const Tensor& t, int64_t offset) {
    return static_cast<T*>(t.storage()->data()) + offset;
}

}  // namespace

void unary(UnaryOp op, Tensor& out, const Tensor& x) {
    dispatch_all(x.dtype(), "unary", [&]<typename T>() {
        using C = std::conditional_t<std::is_floating_point_v<compute_t<T>>, compute_t<T>, double>;
        for_each_strided<2>(out.shape(), {&out.layout(), &x.layout()}, [&](const auto& o) {
            *at<T>(out, o[0]) = convert<T>(apply_unary<C>(op, convert<C>(*at<T>(x, o[1]))));
        });
    });
}

void unary_backward(UnaryOp op, Tensor& dx, const Tensor& dy, const Tensor& x) {
    dispatch_float(x.dtype(), "unary_backward", [&]<typename T>() {
        using C = compute_t<T>;
        for_each_strided<3>(dx.shape(), {&dx.layout(), &dy.layout(), &x.layout()}, [&](const auto& o) {
            const C g = convert<C>(*at<T>(dy, o[1]));
            *at<T>(dx, o[0]) = convert<T>(g * unary_derivative<C>(op, convert<C>(*at<T>(x, o[2]))));
        });
    });
}

void binary(BinaryOp op, Tensor& out, const Tensor& a, const Tensor& b) {
    dispatch_all(out.dtype(), "binary", [&]<typename T>() {
        using C = std::conditional_t<std::is_same_v<T, bool>, int64_t, compute_t<T>>;
        for_each_strided<3>(out.shape(), {&out.layout(), &a.layout(), &b.layout()}, [&](const auto& o) {
            *at<T>(out, o[0]) =
                convert<T>(apply_binary<C>(op, convert<C>(*at<T>(a, o[1])), convert<C>(*at<T>(b, o[2]))));
        });
    });
}

void compare(CompareOp op, Tensor& out, const Tensor& a, const Tensor& b) {
    dispatch_all(a.dtype(), "compare", [&]<typename T>() {
        using C = compute_t<T>;
        for_each_strided<3>(out.shape(), {&out.layout(), &a.layout(), &b.layout()}, [&](const auto& o) {
            *at<bool>(out, o[0]) =
                apply_compare<C>(op, convert<C>(*at<T>(a, o[1])), convert<C>(*at<T>(b, o[2])));
        });
    });
}

void where(Tensor& out, const Tensor& cond, const Tensor& a, const Tensor& b) {
    dispatch_all(out.dtype(), "where", [&]<typename T>() {
        for_each_strided<4>(out.shape(), {&out.layout(), &cond.layout(), &a.layout(), &b.layout()},
                            [&](const auto& o) {
            *at<T>(out, o[0]) = *at<bool>(cond, o[1]) ? *at<T>(a, o[2]) : *at<T>(b, o[3]);
        });
    });
}

void fill(Tensor& out, double value) {
    dispatch_all(out.dtype(), "fill", [&]<typename T>() {
        const T v = convert<T>(value);
        for_each_strided<1>(out.shape(), {&out.layout()}, [&](const auto& o) { *at<T>(out, o[0]) = v; });
    });
}

void copy(Tensor& out, const Tensor& src) {
    dispatch_all(out.dtype(), "copy", [&]<typename To>() {
        dispatch_all(src.dtype(), "copy", [&]<typename From>() {
            for_each_strided<2>(out.shape(), {&out.layout(), &src.layout()}, [&](const auto& o) {
                *at<To>(out, o[0]) = convert<To>(*at<From>(src, o[1]));
            });
        });
    });
}

void arange(Tensor& out, double start, double step) {
    dispatch_all(out.dtype(), "arange", [&]<typename T>() {
        T* p = at<T>(out, out.offset());
        const int64_t n = out.numel();
        for (int64_t i = 0; i < n; ++i) p[i] = convert<T>(start + double(i) * step);
    });
}

void uniform(Tensor& out, const RngState& rng, double lo, double hi) {
    dispatch_float(out.dtype(), "uniform", [&]<typename T>() {
        T* p = at<T>(out, out.offset());
        const float flo = float(lo), span = float(hi - lo);
        parallel_for(out.numel(), 4096, [&](int64_t begin, int64_t end) {
            for (int64_t i = begin; i < end; ++i)
                p[i] = convert<T>(flo + span * philox_uniform(rng, uint64_t(i)));
        });
    });
}

void normal(Tensor& out, const RngState& rng, double mean, double std) {
    dispatch_float(out.dtype(), "normal", [&]<typename T>() {
        T* p = at<T>(out, out.offset());
        const float fmean = float(mean), fstd = float(std);
        parallel_for(out.numel(), 4096, [&](int64_t begin, int64_t end) {
            for (int64_t i = begin; i < end; ++i)
                p[i] = convert<T>(fmean + fstd * philox_normal(rng, uint64_t(i)));
        });
    });
}

}  // namespace cpu
}  // namespace lumen
