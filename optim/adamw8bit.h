// optim/adamw8bit.h: 8-bit AdamW (specs/optimizers.md §5, bnb `AdamW8bit` block-wise): the element
// update shared by the CPU loop (optim/adamw8bit.cpp) and the fused kernel
// (cuda/optim_adamw8bit.cu), the rule, and its kernel entry points.
//
// A tensor with numel ≥ min_8bit_size (and, with embed_fp32_state, role ≠ embedding) keeps its
// moments as u8 codes, state1 (m, signed map) and state2 (v, unsigned map), with one f32 absmax
// per block of 256 elements (absmax1, absmax2). Per block, in f32, g = γ·grad:
//   m_j ← β1·(Cs[q1_j]·A1) + (1 − β1)·g_j ;  v_j ← β2·(Cu[q2_j]·A2) + (1 − β2)·g_j·g_j
//   A1 ← max |m_j| ;  A2 ← max v_j                    (the block's valid elements only)
//   p_j ← p_j − step_size·m_j/(sqrt(v_j) + eps·c2) ;  p_j ← p_j·(1 − lr_t·wd) if wd > 0  (after)
//   q1_j ← Qs(m_j/A1) with the sign fix ;  q2_j ← Qu(v_j/A2)    (A = 0: codes 127 and 0)
// with c1 = 1 − β1^t, c2 = sqrt(1 − β2^t), step_size = lr_t·c2/c1 (scalars in double, then f32).
// The update uses the f32 m, v, not their re-quantized values. Other tensors keep f32 exp_avg,
// exp_avg_sq with AdamW's math (optim/adamw.h, decay before the update).
//
// State names: "<p>.state1", "<p>.state2" (u8, p's shape), "<p>.absmax1", "<p>.absmax2" (f32,
// ceil(numel/256)); "<p>.exp_avg", "<p>.exp_avg_sq" for f32-state tensors; "qmap1", "qmap2" once.
#pragma once

#include "core/host_device.h"
#include "optim/f32_ops.h"
#include "optim/quant8.h"

#include <cstdint>
#include <math.h>

#ifndef __CUDACC__
#include "optim/optimizer.h"
#ifdef LUMEN_WITH_CUDA
#include "cuda/multi_tensor.h"
#endif
#endif

namespace lumen::optim {

struct AdamW8bitArgs {
    double lr;  // lr_t = hyper.lr · lr_scale
    double beta1, beta2, eps, weight_decay;
};

// The per-element constants of one step at count t (t ≥ 1) with clip factor gamma.
struct AdamW8bitUpdate {
    float gamma, beta1, one_minus_beta1, beta2, one_minus_beta2, step_size, eps_c2, decay;
    bool decay_on;

    // m and v of one element from the dequantized old values (map value times absmax).
    LUMEN_HOST_DEVICE void moments(float grad, float m_old, float v_old, float& m, float& v) const {
        const float g = f32::mul(grad, gamma);
        m = f32::add(f32::mul(beta1, m_old), f32::mul(one_minus_beta1, g));
        v = f32::add(f32::mul(beta2, v_old), f32::mul(f32::mul(one_minus_beta2, g), g));
    }
    // The parameter after the update (bnb order: decay after).
    LUMEN_HOST_DEVICE float param(float p, float m, float v) const {
        p = f32::sub(p, f32::mul(step_size, f32::div(m, f32::add(f32::sqrt(v), eps_c2))));
        return decay_on ? f32::mul(p, decay) : p;
    }
};

LUMEN_HOST_DEVICE AdamW8bitUpdate adamw8bit_update(const AdamW8bitArgs& a, int64_t t, float gamma) {
    const double c1 = 1.0 - pow(a.beta1, double(t));
    const double c2 = sqrt(1.0 - pow(a.beta2, double(t)));
    AdamW8bitUpdate u;
    u.gamma = gamma;
    u.beta1 = float(a.beta1);
    u.one_minus_beta1 = float(1.0 - a.beta1);
    u.beta2 = float(a.beta2);
    u.one_minus_beta2 = float(1.0 - a.beta2);
    u.step_size = float(a.lr * c2 / c1);
    u.eps_c2 = float(a.eps * c2);
    u.decay = float(1.0 - a.lr * a.weight_decay);
    u.decay_on = a.weight_decay > 0.0;
    return u;
}

#ifndef __CUDACC__

// One 8-bit tensor's operands: parameter, gradient, codes and absmax.
struct AdamW8bitTensors {
    Tensor param, grad, state1, state2, absmax1, absmax2;
};

class AdamW8bitRule final : public Rule {
public:
    explicit AdamW8bitRule(const Group& group);

    void step(const StepInputs& in, const Tensor& t_before) override;
    std::vector<std::pair<std::string, Tensor>> state() const override;
    // Besides the per-tensor checks, qmap1 / qmap2 must be within 1 ulp of the built maps.
    void load_state(const std::map<std::string, Tensor>& tensors) override;
    int64_t state_bytes() const override;
    std::string report_note() const override;

    // Whether parameter i (group order) keeps 8-bit state.
    bool is_8bit(size_t i) const { return slot_[i].quantized; }
    size_t num_f32_state() const { return f32_.size(); }

private:
    struct Slot {
        bool quantized;
        size_t index;  // into q8_ or f32_
    };
    struct F32State {
        Tensor exp_avg, exp_avg_sq;
    };
    std::vector<AdamW8bitTensors> quantized_tensors() const;
    void cpu_step(const AdamW8bitArgs& args, const StepInputs& in, const Tensor& t_before);

    Hyper hyper_;
    std::vector<nn::Parameter> params_;
    std::vector<Slot> slot_;
    std::vector<AdamW8bitTensors> q8_;  // grad filled in at each step
    std::vector<F32State> f32_;
    std::vector<size_t> f32_param_;  // parameter index of each f32_ entry
    Tensor qmap1_, qmap2_;           // (256,) f32 on the parameters' device
#ifdef LUMEN_WITH_CUDA
    cuda::MultiTensorTable q8_table_, f32_table_;
#endif
};

#endif  // __CUDACC__

}  // namespace lumen::optim

#ifndef __CUDACC__
namespace lumen::cpu {
// The block-wise step over every 8-bit tensor (contiguous f32 param and grad, u8 codes, f32 absmax);
// qmap1 signed, qmap2 unsigned (256,) f32. The caller skips bad steps.
void adamw8bit_step(const std::vector<optim::AdamW8bitTensors>& tensors, const Tensor& qmap1,
                    const Tensor& qmap2, const optim::AdamW8bitUpdate& update);
}  // namespace lumen::cpu
#endif

#ifdef LUMEN_WITH_CUDA
namespace lumen::cuda {
class MultiTensorTable;
// Slots {param, grad, state1, state2, absmax1, absmax2}, split into chunks of exactly 256
// elements (one CUDA block per quantization block). qmap1 / qmap2: (256,) f32 device pointers;
// flags: [γ, bad]; t_before: the group's (1,) i64 count. Writes nothing when bad != 0.
void adamw8bit_step(const MultiTensorTable& table, const float* qmap1, const float* qmap2,
                    const optim::AdamW8bitArgs& args, const float* flags, const int64_t* t_before, int device);
}  // namespace lumen::cuda
#endif
