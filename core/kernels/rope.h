// core/kernels/rope.h: the device switch for the rotary position embedding (forward and backward).
//
// Conventions: x is (B, nh, T, hs) with any strides (a transposed (B, T, nh, hs) view needs no
// copy), hs even; y (same shape, contiguous) is written (=). Token t sits at position
// p = pos0 + t; pair i of hs/2 (dims (i, i + hs/2), or (2i, 2i + 1) when interleaved) turns by
// α = p·theta^(−2i/hs): (a, b) -> (a·cos α − b·sin α, a·sin α + b·cos α). `inverse` turns by −α
// instead (the backward: the transposed rotation applied to dy). The angle and its cos and sin
// are computed in f64; the rotation itself in f32 (f64 for f64).
#pragma once

#include "core/dispatch.h"
#include "core/tensor.h"

#include <cmath>

namespace lumen {

struct RopeParams {
    int64_t pos0 = 0;          // position of token 0 (the KV-cache length)
    double theta = 10000.0;    // frequency base
    bool interleaved = false;  // pairs (2i, 2i + 1) instead of (i, i + hs/2)
    bool inverse = false;      // rotate by −α (the backward)
};

// theta^(−2i/hs), the angular frequency of pair i, in f64 (the CPU and CUDA kernels share it).
inline double rope_inv_freq(double theta, int64_t i, int64_t hs) {
    return std::pow(theta, -2.0 * double(i) / double(hs));
}

namespace cpu {
void rope(Tensor& y, const Tensor& x, const RopeParams& params);
}  // namespace cpu

#ifdef LUMEN_WITH_CUDA
namespace cuda {
void rope(Tensor& y, const Tensor& x, const RopeParams& params);
}  // namespace cuda
#endif

namespace kernels {
inline void rope(Tensor& y, const Tensor& x, const RopeParams& params) {
    LUMEN_DISPATCH(y.device(), rope(y, x, params))
}
}  // namespace kernels

}  // namespace lumen
