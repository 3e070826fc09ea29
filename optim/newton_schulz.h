// optim/newton_schulz.h: Muon's quintic Newton–Schulz orthogonalisation of one matrix
// (specs/optimizers.md §8), with its element-wise kernels (CPU here, CUDA in cuda/optim_muon.cu).
//
//   NewtonSchulz ns(DType::bf16, device);   // one per rule: the workspace is reused
//   ns.reserve(768, 3072);                  // optional: allocate once for the largest part
//   ns.orthogonalize(out, u, 5, scale);     // out (rows, cols) f32 ← scale · NS(u)
//
// For u (rows, cols) the iteration runs on the wide side (A is n × n, n = min(rows, cols)). In the
// working dtype W (bf16 in production, f32 as a test switch), with (a, b, c) = (3.4445, −4.7750,
// 2.0315), for a wide u (rows ≤ cols):
//   X ← W(u)                                   (round to nearest even)
//   X ← W(X / W(W(||X||_F) + 1e-7))            ||X||² summed in f32 from the W values
//   repeat steps times:
//     A ← W(X·Xᵀ)                              GEMM: W operands, f32 accumulation, W result
//     B ← W(b·A + c·P)    P = A·A in f32       GEMM with an f32 result, combined in f32
//     X ← W(a·X + Q)      Q = B·X in f32
//   out ← scale · f32(X)                       the shape scale applied in f32
// so A, B and X are the only rounded values (each assignment of §8 rounds once). A tall u runs
// the same iteration from the right (A = Xᵀ·X, Q = X·B), which is §8's "transpose, iterate,
// transpose back" without transposed copies (A and B are symmetric). The GEMMs are
// lumen's kernels::matmul (cuBLASLt on CUDA); the norm is summed in fixed 4096-element chunks and
// then by kernels::reduce_rows, and the division reads the sum on the device: no host wait.
#pragma once

#include "core/dispatch.h"
#include "core/tensor.h"

namespace lumen::optim {

inline constexpr double ns_a = 3.4445, ns_b = -4.7750, ns_c = 2.0315;
inline constexpr float ns_norm_eps = 1e-7f;
// Elements per partial sum of ||X||² (the first stage of the norm).
inline constexpr int64_t ns_norm_chunk = 4096;

class NewtonSchulz {
public:
    // dtype: bf16 (production) or f32 (Hyper::ns_f32).
    NewtonSchulz(DType dtype, Device device);
    // Sizes the workspace for an n × m matrix (n = narrow side, m = wide side), growing only.
    void reserve(int64_t n, int64_t m) { reserve_elements(n * n, n * m); }
    // Sizes it for n·n ≤ nn and n·m ≤ nm (the maxima over several matrices), growing only.
    void reserve_elements(int64_t nn, int64_t nm);
    // out (rows, cols) f32, any strides, may be u itself ← scale · NS^steps(u); u (rows, cols) f32.
    void orthogonalize(const Tensor& out, const Tensor& u, int64_t steps, double scale);
    // Bytes of workspace currently allocated.
    int64_t workspace_bytes() const;
    DType dtype() const { return dtype_; }

private:
    DType dtype_;
    Device device_;
    int64_t cap_n2_ = 0, cap_nm_ = 0;
    Tensor x_, a_, b_;    // W: X (n·m), A and B (n, n)
    Tensor p_, q_;        // f32: A·A (n, n) and the X update (n·m)
    Tensor partials_;     // f32: chunk sums of ||X||²
    Tensor sumsq_;        // f32 (1,)
};

// O = NS^steps(g) with scale 1 on a fresh workspace (tests, tools).
Tensor newton_schulz(const Tensor& g, int64_t steps, DType dtype);

}  // namespace lumen::optim

namespace lumen {

// ---- kernels: W = x's dtype (bf16 or f32); every tensor on one device ----
namespace cpu {
// x (n, m) contiguous ← W(src (n, m) f32, any strides); partials (ceil(n·m / ns_norm_chunk),) f32:
// chunk k holds the sum of f32(x)² over elements [k·chunk, (k+1)·chunk) in row-major order.
void ns_load(Tensor& x, Tensor& partials, const Tensor& src);
// x ← W(x / W(W(sqrt(sumsq[0])) + 1e-7))
void ns_normalize(Tensor& x, const Tensor& sumsq);
// out ← W(alpha·x + beta·p); out and x contiguous W (may be the same), p contiguous f32.
void ns_combine(Tensor& out, const Tensor& x, const Tensor& p, float alpha, float beta);
// dst (rows, cols) f32, any strides ← scale · f32(src (rows, cols) W, any strides)
void ns_store(Tensor& dst, const Tensor& src, float scale);
}  // namespace cpu

#ifdef LUMEN_WITH_CUDA
namespace cuda {
void ns_load(Tensor& x, Tensor& partials, const Tensor& src);
void ns_normalize(Tensor& x, const Tensor& sumsq);
void ns_combine(Tensor& out, const Tensor& x, const Tensor& p, float alpha, float beta);
void ns_store(Tensor& dst, const Tensor& src, float scale);
}  // namespace cuda
#endif

namespace kernels {
inline void ns_load(Tensor& x, Tensor& partials, const Tensor& src) {
    LUMEN_DISPATCH(x.device(), ns_load(x, partials, src))
}
inline void ns_normalize(Tensor& x, const Tensor& sumsq) { LUMEN_DISPATCH(x.device(), ns_normalize(x, sumsq)) }
inline void ns_combine(Tensor& out, const Tensor& x, const Tensor& p, float alpha, float beta) {
    LUMEN_DISPATCH(out.device(), ns_combine(out, x, p, alpha, beta))
}
inline void ns_store(Tensor& dst, const Tensor& src, float scale) {
    LUMEN_DISPATCH(dst.device(), ns_store(dst, src, scale))
}
}  // namespace kernels

}  // namespace lumen
