// optim/sophia_kernels.h: SophiaG's fused multi-tensor kernels, the step and the Hessian EMA
// (CPU reference in optim/sophia.cpp, CUDA in cuda/optim_sophia.cu). Kept apart from
// optim/sophia.h so CUDA files need not include the optimizer interface.
#pragma once

#include "core/host_device.h"
#include "core/tensor.h"
#include "optim/f32_ops.h"

#ifdef LUMEN_WITH_CUDA
#include "cuda/multi_tensor.h"
#endif

#include <vector>

namespace lumen::optim {

// One tensor's operands for the fused kernels: parameter, gradient (undefined = zero), m, h.
struct SophiaTensors {
    Tensor param, grad, exp_avg, hessian;
};

// The scalars of one step, computed on the host from Hyper and the schedule.
struct SophiaStepArgs {
    float lr;      // lr_t
    float decay;   // 1 − lr_t·wd
    float beta1, one_minus_beta1;  // both rounded from the double β1
    float rho_bs;  // ρ·bs
};

// The element formulas, one source for the CPU loop and the CUDA kernel (f32 ops rounded once
// each, no FMA contraction): the same bits on both devices.
struct SophiaUpdate {
    float gamma, lr, decay, beta1, one_minus_beta1, rho_bs;
    // Updates p and m from the raw gradient; returns whether |m| < ρ·bs·h (a "win": not clipped).
    LUMEN_HOST_DEVICE bool operator()(float& p, float grad, float& m, float h) const {
        const float g = f32::mul(gamma, grad);
        const float decayed = f32::mul(p, decay);
        m = f32::add(f32::mul(beta1, m), f32::mul(one_minus_beta1, g));
        const float bound = f32::mul(rho_bs, h);
        const float ratio = fminf(f32::div(fabsf(m), f32::add(bound, 1e-15f)), 1.f);
        const float sign = m > 0.f ? 1.f : (m < 0.f ? -1.f : 0.f);
        p = f32::sub(decayed, f32::mul(lr, f32::mul(sign, ratio)));
        return fabsf(m) < bound;
    }
};

struct SophiaHessianUpdate {
    float gamma, beta2, one_minus_beta2;
    LUMEN_HOST_DEVICE void operator()(float& h, float grad) const {
        const float g = f32::mul(gamma, grad);
        h = f32::add(f32::mul(beta2, h), f32::mul(one_minus_beta2, f32::mul(g, g)));
    }
};

LUMEN_HOST_DEVICE SophiaUpdate sophia_update(const SophiaStepArgs& a, float gamma) {
    return {gamma, a.lr, a.decay, a.beta1, a.one_minus_beta1, a.rho_bs};
}

// stats: (3,) i64 on the device: [count of the step in flight, win count of the last good step,
// hess_bad].
inline constexpr int64_t sophia_stat_pending = 0, sophia_stat_wins = 1, sophia_stat_hess_bad = 2;

}  // namespace lumen::optim

namespace lumen {

// ---- kernels: every tensor contiguous f32 on one device; flags (2,) f32 [γ, bad] ----
namespace cpu {
// The step over every tensor; unless bad, stats[wins] ← count of |m| < k·h; stats[pending] ← 0.
void sophia_step(const std::vector<optim::SophiaTensors>& tensors, const Tensor& flags, Tensor& stats,
                 const optim::SophiaStepArgs& args);
// h ← β2·h + (1 − β2)·(γ·grad)² unless bad; when bad, stats[hess_bad] += 1.
void sophia_hessian(const std::vector<optim::SophiaTensors>& tensors, const Tensor& flags, Tensor& stats,
                    double beta2);
}  // namespace cpu

#ifdef LUMEN_WITH_CUDA
namespace cuda {
// One launch over all tensors (one block per chunk of the table), plus a one-thread finish.
void sophia_step(MultiTensorTable& table, const std::vector<optim::SophiaTensors>& tensors, const Tensor& flags,
                 Tensor& stats, const optim::SophiaStepArgs& args);
void sophia_hessian(MultiTensorTable& table, const std::vector<optim::SophiaTensors>& tensors,
                    const Tensor& flags, Tensor& stats, double beta2);
}  // namespace cuda
#endif

}  // namespace lumen
