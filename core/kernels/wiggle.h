// core/kernels/wiggle.h: the device switch for WiggleGPT's element-wise kernels: the oscillating
// activation and the bio gate, forward and backward.
//
// Conventions: x, dy, a, z, dm are contiguous, (rows, H) for oscillate (H = the last dim, any
// leading shape); omega, phi, baseline are contiguous (H,) in x's dtype. Math is in f32 (f64 for
// f64) with full-accuracy sin, cos, tanh and exp. Outputs are written (=); an undefined output is
// not computed. oscillate's parameter gradients are sums over rows in a fixed order (fixed row
// blocks, then a fixed-order sum of the blocks' partial sums, as core/kernels/norm.h), so two runs
// give the same bits; zero rows give zeros.
// bio_gate's counts: nullptr for none, else a (2,) i64 tensor (any stride) on the inputs' device:
// counts[0] += count(v > threshold), counts[1] += numel, with integer atomics (order-independent)
// and no host synchronisation.
#pragma once

#include "core/dispatch.h"
#include "core/host_device.h"
#include "core/tensor.h"

#include <cmath>

namespace lumen {

// The gate's fixed spike gain: s = σ(bio_gate_gain·(v − θ)).
inline constexpr double bio_gate_gain = 5.0;

// The per-element formulas, written once for the CPU reference and the CUDA kernels. A is the
// compute type (float, or double for f64).
namespace wiggle_math {

template <typename A>
LUMEN_HOST_DEVICE A oscillate(A x, A omega, A phi, A baseline) {
    using std::sin, std::tanh;
    return sin(omega * x + phi) * tanh(x) + baseline;
}

// One element's backward: writes dx's value and q = g·cos(u)·t (dphi's term; domega's is x·q).
template <typename A>
LUMEN_HOST_DEVICE void oscillate_backward(A g, A x, A omega, A phi, A& dx, A& q) {
    using std::sin, std::cos, std::tanh;
    const A u = omega * x + phi, t = tanh(x), su = sin(u), cu = cos(u);
    q = g * cu * t;
    dx = g * (omega * cu * t + su * (A(1) - t * t));
}

template <typename A>
LUMEN_HOST_DEVICE A sigmoid(A z) {
    using std::exp;
    return A(1) / (A(1) + exp(-z));
}

// The gate's voltage v = σ(z) and spike strength s = σ(5·(v − threshold)).
template <typename A>
struct Gate {
    A v, s;
};
template <typename A>
LUMEN_HOST_DEVICE Gate<A> gate(A z, A threshold) {
    const A v = sigmoid(z);
    return {v, sigmoid(A(bio_gate_gain) * (v - threshold))};
}

}  // namespace wiggle_math

namespace cpu {
void oscillate(Tensor& y, const Tensor& x, const Tensor& omega, const Tensor& phi,
               const Tensor& baseline);
void oscillate_backward(Tensor& dx, Tensor& domega, Tensor& dphi, Tensor& dbaseline,
                        const Tensor& dy, const Tensor& x, const Tensor& omega, const Tensor& phi);
void bio_gate(Tensor& m, const Tensor& a, const Tensor& z, double threshold, Tensor* counts);
void bio_gate_backward(Tensor& da, Tensor& dz, const Tensor& dm, const Tensor& a, const Tensor& z,
                       double threshold);
}  // namespace cpu

#ifdef LUMEN_WITH_CUDA
namespace cuda {
void oscillate(Tensor& y, const Tensor& x, const Tensor& omega, const Tensor& phi,
               const Tensor& baseline);
void oscillate_backward(Tensor& dx, Tensor& domega, Tensor& dphi, Tensor& dbaseline,
                        const Tensor& dy, const Tensor& x, const Tensor& omega, const Tensor& phi);
void bio_gate(Tensor& m, const Tensor& a, const Tensor& z, double threshold, Tensor* counts);
void bio_gate_backward(Tensor& da, Tensor& dz, const Tensor& dm, const Tensor& a, const Tensor& z,
                       double threshold);
}  // namespace cuda
#endif

namespace kernels {

// y = sin(omega·x + phi)·tanh(x) + baseline
inline void oscillate(Tensor& y, const Tensor& x, const Tensor& omega, const Tensor& phi,
                      const Tensor& baseline) {
    LUMEN_DISPATCH(y.device(), oscillate(y, x, omega, phi, baseline))
}
// u = omega·x + phi, t = tanh(x), q = dy·cos(u)·t:
//   dx = dy·(omega·cos(u)·t + sin(u)·(1 − t²)),  domega = Σ_rows x·q,  dphi = Σ_rows q,
//   dbaseline = Σ_rows dy
inline void oscillate_backward(Tensor& dx, Tensor& domega, Tensor& dphi, Tensor& dbaseline,
                               const Tensor& dy, const Tensor& x, const Tensor& omega,
                               const Tensor& phi) {
    LUMEN_DISPATCH(dy.device(), oscillate_backward(dx, domega, dphi, dbaseline, dy, x, omega, phi))
}
// m = a·s, v = σ(z), s = σ(5·(v − threshold)); counts as above
inline void bio_gate(Tensor& m, const Tensor& a, const Tensor& z, double threshold, Tensor* counts) {
    LUMEN_DISPATCH(m.device(), bio_gate(m, a, z, threshold, counts))
}
// da = dm·s,  dz = dm·a·5·s·(1 − s)·v·(1 − v)
inline void bio_gate_backward(Tensor& da, Tensor& dz, const Tensor& dm, const Tensor& a,
                              const Tensor& z, double threshold) {
    LUMEN_DISPATCH(dm.device(), bio_gate_backward(da, dz, dm, a, z, threshold))
}

}  // namespace kernels
}  // namespace lumen
