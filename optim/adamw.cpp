// optim/adamw.cpp: the AdamW rule (specs/optimizers.md §3): f32 exp_avg and exp_avg_sq per
// parameter; the CPU path loops over each tensor, the CUDA path is one fused launch per group over
// the multi-tensor table (cuda/optim_adamw.cu). The element math is in optim/adamw.h.
#include "optim/adamw.h"

#include "core/dispatch.h"
#include "optim/optimizer.h"
#include "optim/param_state.h"

#ifdef LUMEN_WITH_CUDA
#include "cuda/multi_tensor.h"
#endif

namespace lumen::optim {
namespace {

inline constexpr int64_t kChunkElems = 65536;

class AdamWRule final : public Rule {
public:
    explicit AdamWRule(Group& group) : group_(group), states_(group.params, {"exp_avg", "exp_avg_sq"}) {}

    void step(const StepInputs& in, const Tensor& t_before) override {
        const Hyper& h = group_.hyper;
        const AdamWArgs args{h.lr * in.lr_scale, h.beta1, h.beta2, h.eps, h.weight_decay};
        if (t_before.device().is_cpu()) return cpu_step(args, host_step_scalars(in, t_before));
#ifdef LUMEN_WITH_CUDA
        std::vector<cuda::TensorSlot> slots;
        for (size_t i = 0; i < group_.params.size(); ++i) {
            const Tensor& p = group_.params[i].tensor;
            cuda::TensorSlot slot{};
            slot.ptr[0] = p.data_ptr();
            slot.ptr[1] = p.grad().data_ptr();
            slot.ptr[2] = states_.at(i, 0).data_ptr();
            slot.ptr[3] = states_.at(i, 1).data_ptr();
            slot.numel = p.numel();
            slots.push_back(slot);
        }
        table_.set(slots, kChunkElems, t_before.device());
        cuda::adamw_step(table_, args, in.flags.data<float>(), t_before.data<int64_t>(), t_before.device().index);
#else
        missing_cuda_kernel("adamw_step");
#endif
    }

    std::vector<std::pair<std::string, Tensor>> state() const override { return states_.named(); }
    void load_state(const std::map<std::string, Tensor>& tensors) override { states_.load(tensors); }
    int64_t state_bytes() const override { return states_.bytes(); }

private:
    void cpu_step(const AdamWArgs& args, const HostStepScalars& s) {
        if (s.bad) return;
        const AdamWUpdate update = adamw_update(args, s.t, s.gamma);
        for (size_t i = 0; i < group_.params.size(); ++i) {
            const Tensor& param = group_.params[i].tensor;
            float* p = param.data<float>();
            const float* g = param.grad().data<float>();
            float* m = states_.at(i, 0).data<float>();
            float* v = states_.at(i, 1).data<float>();
            const int64_t n = param.numel();
#pragma omp parallel for schedule(static) if (n > 32768)
            for (int64_t j = 0; j < n; ++j) update(p[j], g[j], m[j], v[j]);
        }
    }

    Group& group_;
    ParamStates states_;
#ifdef LUMEN_WITH_CUDA
    cuda::MultiTensorTable table_;
#endif
};

[[maybe_unused]] const bool registered = register_rule(Kind::adamw, [](Group& g) { return std::make_unique<AdamWRule>(g); });

}  // namespace
}  // namespace lumen::optim
