// core/kernels/elementwise.h: the one device switch for elementwise kernels (unary, binary,
// comparisons, where, fill, copy/cast, arange, random draws).
//
// Conventions: `out` comes first and is written (=). Inputs have already been broadcast to out's
// shape by the public op (stride-0 views) and may have any strides; out may be strided too (copy_
// into a slice). Dtypes are checked by the public op: unary/binary inputs have out's dtype,
// compare/where conditions are boolean, copy converts between any pair of dtypes.
#pragma once

#include "core/dispatch.h"
#include "core/philox.h"
#include "core/tensor.h"

namespace lumen {

enum class UnaryOp : uint8_t {
    neg, abs, sign, exp, log, sqrt, rsqrt, sin, cos, tanh, sigmoid, relu, silu, gelu, gelu_exact
};
enum class BinaryOp : uint8_t { add, sub, mul, div, pow, maximum, minimum };
enum class CompareOp : uint8_t { eq, ne, lt, le, gt, ge };

std::string_view unary_name(UnaryOp op);
std::string_view binary_name(BinaryOp op);
std::string_view compare_name(CompareOp op);

namespace cpu {
void unary(UnaryOp op, Tensor& out, const Tensor& x);
void unary_backward(UnaryOp op, Tensor& dx, const Tensor& dy, const Tensor& x);
void binary(BinaryOp op, Tensor& out, const Tensor& a, const Tensor& b);
void compare(CompareOp op, Tensor& out, const Tensor& a, const Tensor& b);
void where(Tensor& out, const Tensor& cond, const Tensor& a, const Tensor& b);
void fill(Tensor& out, double value);
void copy(Tensor& out, const Tensor& src);
void arange(Tensor& out, double start, double step);
void uniform(Tensor& out, const RngState& rng, double lo, double hi);
void normal(Tensor& out, const RngState& rng, double mean, double std);
}  // namespace cpu

#ifdef LUMEN_WITH_CUDA
namespace cuda {
void unary(UnaryOp op, Tensor& out, const Tensor& x);
void unary_backward(UnaryOp op, Tensor& dx, const Tensor& dy, const Tensor& x);
void binary(BinaryOp op, Tensor& out, const Tensor& a, const Tensor& b);
void compare(CompareOp op, Tensor& out, const Tensor& a, const Tensor& b);
void where(Tensor& out, const Tensor& cond, const Tensor& a, const Tensor& b);
void fill(Tensor& out, double value);
void copy(Tensor& out, const Tensor& src);
void arange(Tensor& out, double start, double step);
void uniform(Tensor& out, const RngState& rng, double lo, double hi);
void normal(Tensor& out, const RngState& rng, double mean, double std);
}  // namespace cuda
#endif


namespace kernels {

// out = op(x)
inline void unary(UnaryOp op, Tensor& out, const Tensor& x) {
    LUMEN_DISPATCH(out.device(), unary(op, out, x))
}
// dx = dy · op'(x)
inline void unary_backward(UnaryOp op, Tensor& dx, const Tensor& dy, const Tensor& x) {
    LUMEN_DISPATCH(dx.device(), unary_backward(op, dx, dy, x))
}
inline void binary(BinaryOp op, Tensor& out, const Tensor& a, const Tensor& b) {
    LUMEN_DISPATCH(out.device(), binary(op, out, a, b))
}
inline void compare(CompareOp op, Tensor& out, const Tensor& a, const Tensor& b) {
    LUMEN_DISPATCH(out.device(), compare(op, out, a, b))
}
inline void where(Tensor& out, const Tensor& cond, const Tensor& a, const Tensor& b) {
    LUMEN_DISPATCH(out.device(), where(out, cond, a, b))
}
inline void fill(Tensor& out, double value) { LUMEN_DISPATCH(out.device(), fill(out, value)) }
// out = src converted to out's dtype; host<->device transfers are the CUDA backend's.
inline void copy(Tensor& out, const Tensor& src) {
    if (out.device().is_cpu() && src.device().is_cpu()) return cpu::copy(out, src);
#ifdef LUMEN_WITH_CUDA
    cuda::copy(out, src);
#else
    missing_cuda_kernel("copy");
#endif
}
inline void arange(Tensor& out, double start, double step) {
    LUMEN_DISPATCH(out.device(), arange(out, start, step))
}
inline void uniform(Tensor& out, const RngState& rng, double lo, double hi) {
    LUMEN_DISPATCH(out.device(), uniform(out, rng, lo, hi))
}
inline void normal(Tensor& out, const RngState& rng, double mean, double std) {
    LUMEN_DISPATCH(out.device(), normal(out, rng, mean, std))
}

}  // namespace kernels
}  // namespace lumen
