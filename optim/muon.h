// optim/muon.h: the Muon update rule (specs/optimizers.md §8, §2 G3) and its element-wise
// kernels (optim/muon_kernels.h). Orthogonalisation: optim/newton_schulz.h.
//
// Per tensor W (rows, cols) with gradient G, momentum M and row parts from Parameter::row_parts:
//   M ← μ·M + (1 − μ)·γG                          (whole tensor)
//   U ← (1 − μ)·γG + μ·M if nesterov else M       (a scratch buffer: the gradient is never written)
//   O_part ← NS(U_part) · shape_scale(part)       (each part separately: Q, K, V of a fused c_attn)
//   W ← W·(1 − lr_t·wd) − lr_t·O
// When flags[1] (bad) is set, neither M nor W is written (the NS work still runs on scratch).
#pragma once

#include "optim/muon_kernels.h"
#include "optim/newton_schulz.h"
#include "optim/optimizer.h"
#include "optim/param_state.h"

namespace lumen::optim {

class MuonRule final : public Rule {
public:
    explicit MuonRule(const Group& group);

    void step(const StepInputs& in, const Tensor& t_before) override;
    // "<parameter>.momentum_buffer" per tensor.
    std::vector<std::pair<std::string, Tensor>> state() const override;
    void load_state(const std::map<std::string, Tensor>& tensors) override;
    int64_t state_bytes() const override;

    // The per-part scale: original sqrt(max(1, rows/cols)); match_rms_adamw 0.2·sqrt(max(rows, cols)).
    static double shape_scale(MuonScale scale, int64_t rows, int64_t cols);
    // The row parts of parameter i (one part = all rows when the parameter registered none).
    const std::vector<int64_t>& parts(size_t i) const { return parts_[i]; }
    // Bytes of transient workspace (the NS buffers and the update scratch), allocated once.
    int64_t workspace_bytes() const;

private:
    Hyper hyper_;
    std::vector<nn::Parameter> params_;
    std::vector<std::vector<int64_t>> parts_;
    ParamStates momentum_;          // "momentum_buffer": f32, shape of each parameter
    Tensor update_;                 // f32 scratch of the largest parameter: U, then O in place
    NewtonSchulz ns_;
};

}  // namespace lumen::optim
