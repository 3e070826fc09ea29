// optim/adamw.h: AdamW's element update (specs/optimizers.md §3, torch `_single_tensor_adamw`),
// one source for the CPU loop (optim/adamw.cpp) and the fused CUDA kernel (cuda/optim_adamw.cu),
// and usable by other rules that keep f32 AdamW state (8-bit AdamW's small tensors).
//
//   t ← t + 1;  p ← p·(1 − lr_t·wd);  m ← β1·m + (1 − β1)·g;  v ← β2·v + (1 − β2)·g²
//   p ← p − (lr_t/(1 − β1^t))·m/(sqrt(v)/sqrt(1 − β2^t) + eps)
//
// The step's scalars (bias corrections, decay factor) are computed in double from t, then rounded
// to f32; every element is updated in f32. g is the raw gradient times the clip factor γ.
#pragma once

#include "core/host_device.h"

#include <cstdint>
#include <math.h>

namespace lumen::optim {

struct AdamWArgs {
    double lr;  // lr_t = hyper.lr · lr_scale
    double beta1, beta2, eps, weight_decay;
};

// The per-element constants of one step at count t (t ≥ 1) with clip factor gamma.
struct AdamWUpdate {
    float gamma, decay, beta1, one_minus_beta1, beta2, one_minus_beta2, eps, step_size, bias2_sqrt;

    LUMEN_HOST_DEVICE void operator()(float& p, float grad, float& m, float& v) const {
        const float g = grad * gamma;
        p = p * decay;
        m = beta1 * m + one_minus_beta1 * g;
        v = beta2 * v + one_minus_beta2 * (g * g);
        const float d = sqrtf(v) / bias2_sqrt + eps;
        p = p - step_size * (m / d);
    }
};

LUMEN_HOST_DEVICE AdamWUpdate adamw_update(const AdamWArgs& a, int64_t t, float gamma) {
    const double bias1 = 1.0 - pow(a.beta1, double(t));
    const double bias2 = 1.0 - pow(a.beta2, double(t));
    AdamWUpdate u;
    u.gamma = gamma;
    u.decay = float(1.0 - a.lr * a.weight_decay);
    u.beta1 = float(a.beta1);
    u.one_minus_beta1 = float(1.0 - a.beta1);
    u.beta2 = float(a.beta2);
    u.one_minus_beta2 = float(1.0 - a.beta2);
    u.eps = float(a.eps);
    u.step_size = float(a.lr / bias1);
    u.bias2_sqrt = float(sqrt(bias2));
    return u;
}

}  // namespace lumen::optim

#ifdef LUMEN_WITH_CUDA
namespace lumen::cuda {
class MultiTensorTable;
// Slots {param, grad, exp_avg, exp_avg_sq} (f32, one numel each). flags: [γ, bad] on the device;
// t_before: the group's (1,) i64 count. Writes nothing when bad != 0.
void adamw_step(const MultiTensorTable& table, const optim::AdamWArgs& args, const float* flags,
                const int64_t* t_before, int device);
}  // namespace lumen::cuda
#endif
