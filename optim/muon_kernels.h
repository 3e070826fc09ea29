// optim/muon_kernels.h: Muon's element-wise kernels, the momentum/Nesterov mix and the decayed
// update (CPU reference in optim/muon.cpp, CUDA in cuda/optim_muon.cu). Kept apart from
// optim/muon.h so CUDA files need not include the optimizer interface.
#pragma once

#include "core/dispatch.h"
#include "core/host_device.h"
#include "core/tensor.h"
#include "optim/f32_ops.h"

namespace lumen::optim {

// The element formulas, one source for the CPU loops and the CUDA kernels (f32 ops rounded once
// each, no FMA contraction): the same bits on both devices.
struct MuonMomentum {
    float gamma, mu, one_minus_mu;
    bool nesterov;
    // Returns U; writes the new momentum to m_new (the caller stores it unless the step is bad).
    LUMEN_HOST_DEVICE float operator()(float grad, float m, float& m_new) const {
        const float g = f32::mul(one_minus_mu, f32::mul(gamma, grad));
        m_new = f32::add(f32::mul(mu, m), g);
        return nesterov ? f32::add(g, f32::mul(mu, m_new)) : m_new;
    }
};

// p ← p·decay − lr·o
LUMEN_HOST_DEVICE float muon_apply(float p, float o, float lr, float decay) {
    return f32::sub(f32::mul(p, decay), f32::mul(lr, o));
}

}  // namespace lumen::optim

namespace lumen {

// ---- kernels: contiguous f32 tensors of one numel on one device; flags (2,) f32 [γ, bad] ----
namespace cpu {
// u ← (1 − μ)·g' + μ·m' if nesterov else m', with g' = γ·g and m' = μ·m + (1 − μ)·g';
// m ← m' unless bad. An undefined g is a zero gradient.
void muon_momentum(Tensor& u, Tensor& m, const Tensor& g, const Tensor& flags, double mu, bool nesterov);
// Unless bad: p ← p·decay − lr·o (decay = 1 − lr·wd, two roundings in that order).
void muon_update(Tensor& p, const Tensor& o, const Tensor& flags, float lr, float decay);
}  // namespace cpu

#ifdef LUMEN_WITH_CUDA
namespace cuda {
void muon_momentum(Tensor& u, Tensor& m, const Tensor& g, const Tensor& flags, double mu, bool nesterov);
void muon_update(Tensor& p, const Tensor& o, const Tensor& flags, float lr, float decay);
}  // namespace cuda
#endif

namespace kernels {
inline void muon_momentum(Tensor& u, Tensor& m, const Tensor& g, const Tensor& flags, double mu, bool nesterov) {
    LUMEN_DISPATCH(u.device(), muon_momentum(u, m, g, flags, mu, nesterov))
}
inline void muon_update(Tensor& p, const Tensor& o, const Tensor& flags, float lr, float decay) {
    LUMEN_DISPATCH(p.device(), muon_update(p, o, flags, lr, decay))
}
}  // namespace kernels

}  // namespace lumen
