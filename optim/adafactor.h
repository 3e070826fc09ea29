// optim/adafactor.h: Adafactor (specs/optimizers.md §6, HF `transformers.optimization.Adafactor`):
// the step's scalars and element formulas shared by the CPU step (optim/adafactor.cpp) and the
// CUDA kernels (cuda/optim_adafactor.cu), the rule, and its kernel entry points.
//
// Per tensor P (numel N) with g = γ·grad, t = t_before + 1:
//   rms_p = sqrt(Σ P²/N)   (pre-update)      ρ = lr_t, or min(warmup_init ? 1e-6·t : 1e-2, 1/sqrt(t))
//   α = (scale_parameter ? max(eps2, rms_p) : 1)·ρ          b = 1 − t^decay_rate
//   G2 = g·g + eps1
//   dim ≥ 2, over the last two dims (n rows, m cols; leading dims are a batch):
//     R_i ← b·R_i + (1 − b)·mean_j G2_ij ;  C_j ← b·C_j + (1 − b)·mean_i G2_ij
//     U_ij = (1/sqrt(R_i/mean(R)) · 1/sqrt(C_j)) · g_ij
//   else: V ← b·V + (1 − b)·G2 ;  U = (1/sqrt(V))·g
//   U ← (U / max(1, RMS(U)/clip_threshold))·α          RMS(U) = sqrt(Σ U²/N)
//   with beta1: M ← β1·M + (1 − β1)·U ; U ← M
//   P ← P + (−wd·α)·P  (wd > 0) ;  P ← P − U
// Scalars and sums (Σ P², Σ U², row, column and R means) in double, in a fixed order; every
// element in f32 with optim/f32_ops.h's unfused operations, so the CPU and CUDA agree to the
// rounding of the double sums. State: "<p>.exp_avg_sq_row" (shape[:-1]), "<p>.exp_avg_sq_col"
// (shape[:-2] + shape[-1:]) or "<p>.exp_avg_sq" (p's shape), and "<p>.exp_avg" with beta1.
#pragma once

#include "core/host_device.h"
#include "optim/f32_ops.h"

#include "core/tensor.h"

#include <cstdint>
#include <math.h>
#include <vector>

#ifndef __CUDACC__
#include "optim/optimizer.h"
#ifdef LUMEN_WITH_CUDA
#include "cuda/multi_tensor.h"
#endif
#endif

namespace lumen::optim {

struct AdafactorArgs {
    double lr;  // lr_t = hyper.lr · lr_scale (used when not relative_step)
    double eps1, eps2, clip_threshold, decay_rate, beta1, weight_decay;
    bool relative_step, scale_parameter, warmup_init, use_beta1;
};

// ρ: the relative step or lr_t.
LUMEN_HOST_DEVICE double adafactor_rho(const AdafactorArgs& a, int64_t t) {
    if (!a.relative_step) return a.lr;
    const double min_step = a.warmup_init ? 1e-6 * double(t) : 1e-2;
    return fmin(min_step, 1.0 / sqrt(double(t)));
}
// α from ρ and the sum of squares of the pre-update parameter.
LUMEN_HOST_DEVICE double adafactor_alpha(const AdafactorArgs& a, int64_t t, double sum_p2, int64_t numel) {
    const double rms_p = sqrt(sum_p2 / double(numel));
    return (a.scale_parameter ? fmax(a.eps2, rms_p) : 1.0) * adafactor_rho(a, t);
}

// The second-moment decay of step t: b = 1 − t^decay_rate, as f32 weights (b, 1 − b).
struct AdafactorDecay {
    float b, one_minus_b, eps1;

    LUMEN_HOST_DEVICE float g2(float g) const { return f32::add(f32::mul(g, g), eps1); }
    LUMEN_HOST_DEVICE float ema(float old, float mean) const {
        return f32::add(f32::mul(b, old), f32::mul(one_minus_b, mean));
    }
};
LUMEN_HOST_DEVICE AdafactorDecay adafactor_decay(const AdafactorArgs& a, int64_t t) {
    const double b = 1.0 - pow(double(t), a.decay_rate);
    return {float(b), float(1.0 - b), float(a.eps1)};
}

// 1/sqrt(x), rounded twice (no approximate rsqrt).
LUMEN_HOST_DEVICE float inv_sqrt(float x) { return f32::div(1.0f, f32::sqrt(x)); }
// The factored update's row factor 1/sqrt(R_i/mean(R)) and the element's U.
LUMEN_HOST_DEVICE float adafactor_row_factor(float r, float mean_r) { return inv_sqrt(f32::div(r, mean_r)); }
LUMEN_HOST_DEVICE float adafactor_u(float row_factor, float col_factor, float g) {
    return f32::mul(f32::mul(row_factor, col_factor), g);
}

// The last part of the step for one element, from the unclipped U.
struct AdafactorApply {
    float divisor, alpha, beta1, one_minus_beta1, neg_wd_alpha;
    bool use_beta1, decay_on;

    LUMEN_HOST_DEVICE void operator()(float& p, float* m, float u) const {
        u = f32::mul(f32::div(u, divisor), alpha);
        if (use_beta1) {
            *m = f32::add(f32::mul(beta1, *m), f32::mul(one_minus_beta1, u));
            u = *m;
        }
        if (decay_on) p = f32::add(p, f32::mul(neg_wd_alpha, p));
        p = f32::sub(p, u);
    }
};
LUMEN_HOST_DEVICE AdafactorApply adafactor_apply(const AdafactorArgs& a, double alpha, double sum_u2, int64_t numel) {
    const double rms_u = sqrt(sum_u2 / double(numel));
    AdafactorApply r;
    r.divisor = float(fmax(1.0, rms_u / a.clip_threshold));
    r.alpha = float(alpha);
    r.beta1 = float(a.beta1);
    r.one_minus_beta1 = float(1.0 - a.beta1);
    r.neg_wd_alpha = float(-a.weight_decay * alpha);
    r.use_beta1 = a.use_beta1;
    r.decay_on = a.weight_decay > 0.0;
    return r;
}

// One tensor's operands: parameter, gradient; row and col (factored) or sq (V); exp_avg (beta1)
// or undefined.
struct AdafactorTensors {
    Tensor param, grad, row, col, sq, exp_avg;
};

// (batch, rows, cols) of a factored tensor (dim ≥ 2), leading dims folded into the batch.
struct FactoredShape {
    int64_t batch, rows, cols;
};
FactoredShape factored_shape(const Tensor& p);

#ifndef __CUDACC__

class AdafactorRule final : public Rule {
public:
    explicit AdafactorRule(const Group& group);

    void step(const StepInputs& in, const Tensor& t_before) override;
    std::vector<std::pair<std::string, Tensor>> state() const override;
    void load_state(const std::map<std::string, Tensor>& tensors) override;
    int64_t state_bytes() const override;

private:
    std::vector<AdafactorTensors> tensors() const;
    AdafactorArgs args(double lr_scale) const;

    Hyper hyper_;
    std::vector<nn::Parameter> params_;
    std::vector<AdafactorTensors> states_;  // param and grad filled in by tensors()
#ifdef LUMEN_WITH_CUDA
    cuda::MultiTensorTable table_;
    Tensor scratch_;  // f64 partial sums on the device (cuda/optim_adafactor.cu)
#endif
};

#endif  // __CUDACC__

}  // namespace lumen::optim

#ifndef __CUDACC__
namespace lumen::cpu {
// The step over every tensor (contiguous f32); the caller skips bad steps.
void adafactor_step(const std::vector<optim::AdafactorTensors>& tensors, const optim::AdafactorArgs& args,
                    int64_t t, float gamma);
}  // namespace lumen::cpu
#endif

#ifdef LUMEN_WITH_CUDA
namespace lumen::cuda {
class MultiTensorTable;
// Four launches per group (moments, factors, RMS(U), apply) over the tiles of every tensor;
// `scratch` is the rule's f64 partial-sum buffer, (re)allocated here when too small. flags: [γ,
// bad]; t_before: the group's (1,) i64 count. Writes nothing when bad != 0.
void adafactor_step(MultiTensorTable& table, Tensor& scratch, const std::vector<optim::AdafactorTensors>& tensors,
                    const optim::AdafactorArgs& args, const float* flags, const int64_t* t_before, int device);
}  // namespace lumen::cuda
#endif
