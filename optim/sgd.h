// optim/sgd.h: SGD's element update (specs/optimizers.md §9, torch `sgd.py`), one source for the
// CPU loop (optim/sgd.cpp) and the fused CUDA kernel (cuda/optim_sgd.cu).
//
//   g ← γ·g + wd·p                                     (L2, coupled)
//   if μ ≠ 0:  buf ← g if t = 1 else μ·buf + (1 − τ)·g;  g ← g + μ·buf if nesterov else buf
//   p ← p − lr_t·g
//
// Without momentum there is no buffer (the update takes p and g only).
#pragma once

#include "core/host_device.h"

#include <cstdint>

namespace lumen::optim {

struct SgdArgs {
    double lr;  // lr_t
    double momentum, dampening, weight_decay;
    bool nesterov;
};

struct SgdUpdate {
    float gamma, lr, weight_decay, momentum, one_minus_dampening;
    bool first, nesterov;  // first: t = 1, the buffer becomes a copy of g

    // With a momentum buffer.
    LUMEN_HOST_DEVICE void operator()(float& p, float grad, float& buf) const {
        float g = grad * gamma + weight_decay * p;
        buf = first ? g : momentum * buf + one_minus_dampening * g;
        g = nesterov ? g + momentum * buf : buf;
        p = p - lr * g;
    }
    // Plain SGD (μ = 0).
    LUMEN_HOST_DEVICE void operator()(float& p, float grad) const {
        const float g = grad * gamma + weight_decay * p;
        p = p - lr * g;
    }
};

LUMEN_HOST_DEVICE SgdUpdate sgd_update(const SgdArgs& a, int64_t t, float gamma) {
    SgdUpdate u;
    u.gamma = gamma;
    u.lr = float(a.lr);
    u.weight_decay = float(a.weight_decay);
    u.momentum = float(a.momentum);
    u.one_minus_dampening = float(1.0 - a.dampening);
    u.first = t == 1;
    u.nesterov = a.nesterov;
    return u;
}

}  // namespace lumen::optim

#ifdef LUMEN_WITH_CUDA
namespace lumen::cuda {
class MultiTensorTable;
// Slots {param, grad, momentum_buffer} (only {param, grad} when args.momentum == 0).
void sgd_step(const MultiTensorTable& table, const optim::SgdArgs& args, const float* flags,
              const int64_t* t_before, int device);
}  // namespace lumen::cuda
#endif
