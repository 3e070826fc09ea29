// optim/lion.h: Lion's element update (specs/optimizers.md §4, google/automl `lion_pytorch.py`),
// one source for the CPU loop (optim/lion.cpp) and the fused CUDA kernel (cuda/optim_lion.cu).
//
//   p ← p·(1 − lr_t·wd);  c ← β1·m + (1 − β1)·g;  p ← p − lr_t·sign(c);  m ← β2·m + (1 − β2)·g
//
// No bias correction: t is not read. sign(0) = 0 (no move). g is the raw gradient times γ.
#pragma once

#include "core/host_device.h"

#include <cstdint>

namespace lumen::optim {

struct LionArgs {
    double lr;  // lr_t
    double beta1, beta2, weight_decay;
};

struct LionUpdate {
    float gamma, decay, lr, beta1, one_minus_beta1, beta2, one_minus_beta2;

    LUMEN_HOST_DEVICE void operator()(float& p, float grad, float& m) const {
        const float g = grad * gamma;
        p = p * decay;
        const float c = beta1 * m + one_minus_beta1 * g;
        const float sign = c > 0.0f ? 1.0f : c < 0.0f ? -1.0f : 0.0f;
        p = p - lr * sign;
        m = beta2 * m + one_minus_beta2 * g;
    }
};

LUMEN_HOST_DEVICE LionUpdate lion_update(const LionArgs& a, float gamma) {
    LionUpdate u;
    u.gamma = gamma;
    u.decay = float(1.0 - a.lr * a.weight_decay);
    u.lr = float(a.lr);
    u.beta1 = float(a.beta1);
    u.one_minus_beta1 = float(1.0 - a.beta1);
    u.beta2 = float(a.beta2);
    u.one_minus_beta2 = float(1.0 - a.beta2);
    return u;
}

}  // namespace lumen::optim

#ifdef LUMEN_WITH_CUDA
namespace lumen::cuda {
class MultiTensorTable;
// Slots {param, grad, exp_avg}. Writes nothing when flags[1] != 0.
void lion_step(const MultiTensorTable& table, const optim::LionArgs& args, const float* flags, int device);
}  // namespace lumen::cuda
#endif
