// core/kernels/softmax.h: the device switch for softmax and log_softmax over the last dim,
// forward and backward.
//
// Conventions: every tensor is contiguous and holds rows of n = size(-1) elements (a 0-d tensor
// is one row of one element); all tensors of one call share a dtype. Outputs come first and are
// written (=). The forward subtracts the row max and computes in f32 (f64 for f64). A row that is
// entirely -inf gives NaN (as PyTorch); a -inf element in any other row gets probability 0.
// CUDA kernels: cuda/softmax.cu.
// Backward kernels take the saved forward output y:
//   softmax:      dx = y · (dy − Σ dy·y)
//   log_softmax:  dx = dy − exp(y) · Σ dy
// The causal variant (the attention probabilities) reads x as (..., Tq, Tk) rows: row r is query
// i = r mod Tq, which sees keys j ≤ i + (Tk − Tq); y = softmax over those of scale·x, 0 elsewhere
// (no mask tensor, no separate scaling pass). Its backward is scale · y · (dy − Σ dy·y).
#pragma once

#include "core/dispatch.h"
#include "core/tensor.h"

namespace lumen {

// Parameters of the causal variant: queries per matrix (rows are grouped by Tq) and the scale.
struct CausalSoftmax {
    int64_t tq = 0;
    double scale = 1.0;
};

namespace cpu {
void causal_softmax(Tensor& y, const Tensor& x, const CausalSoftmax& c);
void causal_softmax_backward(Tensor& dx, const Tensor& dy, const Tensor& y, const CausalSoftmax& c);
void softmax(Tensor& y, const Tensor& x);
void softmax_backward(Tensor& dx, const Tensor& dy, const Tensor& y);
void log_softmax(Tensor& y, const Tensor& x);
void log_softmax_backward(Tensor& dx, const Tensor& dy, const Tensor& y);
}  // namespace cpu

#ifdef LUMEN_WITH_CUDA
namespace cuda {
void causal_softmax(Tensor& y, const Tensor& x, const CausalSoftmax& c);
void causal_softmax_backward(Tensor& dx, const Tensor& dy, const Tensor& y, const CausalSoftmax& c);
void softmax(Tensor& y, const Tensor& x);
void softmax_backward(Tensor& dx, const Tensor& dy, const Tensor& y);
void log_softmax(Tensor& y, const Tensor& x);
void log_softmax_backward(Tensor& dx, const Tensor& dy, const Tensor& y);
}  // namespace cuda
#endif

namespace kernels {
// y = exp(x − max) / Σ exp(x − max), per row
inline void softmax(Tensor& y, const Tensor& x) { LUMEN_DISPATCH(y.device(), softmax(y, x)) }
inline void softmax_backward(Tensor& dx, const Tensor& dy, const Tensor& y) {
    LUMEN_DISPATCH(dx.device(), softmax_backward(dx, dy, y))
}
// y = x − max − log Σ exp(x − max), per row
// y = softmax(scale·x) over each row's causal window, 0 past it
inline void causal_softmax(Tensor& y, const Tensor& x, const CausalSoftmax& c) {
    LUMEN_DISPATCH(y.device(), causal_softmax(y, x, c))
}
inline void causal_softmax_backward(Tensor& dx, const Tensor& dy, const Tensor& y, const CausalSoftmax& c) {
    LUMEN_DISPATCH(dx.device(), causal_softmax_backward(dx, dy, y, c))
}
inline void log_softmax(Tensor& y, const Tensor& x) {
    LUMEN_DISPATCH(y.device(), log_softmax(y, x))
}
inline void log_softmax_backward(Tensor& dx, const Tensor& dy, const Tensor& y) {
    LUMEN_DISPATCH(dx.device(), log_softmax_backward(dx, dy, y))
}
}  // namespace kernels

}  // namespace lumen
