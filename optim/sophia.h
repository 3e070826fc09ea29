// optim/sophia.h: the SophiaG update rule (specs/optimizers.md §7) and what the trainer's Hessian
// hook needs from it. Fused multi-tensor kernels: optim/sophia_kernels.h.
//
// Step, per element, with g = γ·grad (bs = Hyper::tokens_per_step, k = f32(ρ·bs)):
//   p ← p·(1 − lr_t·wd) ;  m ← β1·m + (1 − β1)·g ;  r ← min(|m|/(k·h + 1e-15), 1) ;  p ← p − lr_t·sign(m)·r
// Hook (§7.2; the trainer samples labels, runs the extra backward and clips, then calls):
//   rule.update_hessian(flags);   // h ← β2·h + (1 − β2)·(γ·grad)², skipped when flags[1] != 0
// The trainer reaches the rule through the optimizer:
//   if (auto* sophia = dynamic_cast<optim::SophiaRule*>(&opt.rule(g))) sophia->update_hessian(flags);
// Statistics live on the device (no host wait in the step) and are read for logs:
//   win rate = fraction of elements with |m| < k·h at the last good step (not clipped: r < 1),
//   hess_bad = hook calls skipped because the estimator gradient was not finite.
#pragma once

#include "optim/optimizer.h"
#include "optim/param_state.h"
#include "optim/sophia_kernels.h"

namespace lumen::optim {

class SophiaRule final : public Rule {
public:
    explicit SophiaRule(const Group& group);

    void step(const StepInputs& in, const Tensor& t_before) override;
    // "<parameter>.exp_avg" and "<parameter>.hessian" per tensor.
    std::vector<std::pair<std::string, Tensor>> state() const override;
    void load_state(const std::map<std::string, Tensor>& tensors) override;
    int64_t state_bytes() const override;

    // h ← β2·h + (1 − β2)·(flags[0]·grad)² over the current gradients; when flags[1] != 0, h is
    // left as it is and hess_bad counts one. No host synchronisation.
    void update_hessian(const Tensor& flags);

    // (3,) i64 device tensor, see sophia_stat_*.
    const Tensor& stats() const { return stats_; }
    // Host reads for logs (they wait for the device).
    double win_rate() const;          // wins / elements at the last good step (0 before any)
    int64_t hess_bad() const;
    // Sum of |h| and sqrt(sum of h²) over the group (the hook's log line): per tensor by ops::sum
    // (f64 accumulation on the CPU, f32 on CUDA), tensors added in f64.
    std::pair<double, double> hessian_norms() const;
    int64_t num_elements() const { return elements_; }
    int64_t hess_interval() const { return hyper_.hess_interval; }

private:
    std::vector<SophiaTensors> tensors() const;

    Hyper hyper_;
    std::vector<nn::Parameter> params_;
    ParamStates states_;  // "exp_avg", "hessian": f32, shape of each parameter
    Tensor stats_;
    int64_t elements_ = 0;
#ifdef LUMEN_WITH_CUDA
    cuda::MultiTensorTable step_table_, hessian_table_;
#endif
};

}  // namespace lumen::optim
