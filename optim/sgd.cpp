// optim/sgd.cpp: the SGD rule (specs/optimizers.md §9): a f32 momentum_buffer per parameter only
// when momentum ≠ 0 (plain SGD keeps no state); the CPU path loops over each tensor, the CUDA path
// is one fused launch per group (cuda/optim_sgd.cu). The element math is in optim/sgd.h. The
// first step (t = 1, read from the group's counter) copies g into the buffer, so a resumed run
// must restore t, which the optimizer's state dict does.
#include "optim/sgd.h"

#include "core/dispatch.h"
#include "optim/optimizer.h"
#include "optim/param_state.h"

#ifdef LUMEN_WITH_CUDA
#include "cuda/multi_tensor.h"
#endif

namespace lumen::optim {
namespace {

inline constexpr int64_t kChunkElems = 65536;

std::vector<std::string> sgd_state_names(const Hyper& h) {
    return h.momentum != 0 ? std::vector<std::string>{"momentum_buffer"} : std::vector<std::string>{};
}

class SgdRule final : public Rule {
public:
    explicit SgdRule(Group& group) : group_(group), states_(group.params, sgd_state_names(group.hyper)) {}

    void step(const StepInputs& in, const Tensor& t_before) override {
        const Hyper& h = group_.hyper;
        const SgdArgs args{h.lr * in.lr_scale, h.momentum, h.dampening, h.weight_decay, h.nesterov};
        if (t_before.device().is_cpu()) return cpu_step(args, host_step_scalars(in, t_before));
#ifdef LUMEN_WITH_CUDA
        std::vector<cuda::TensorSlot> slots;
        for (size_t i = 0; i < group_.params.size(); ++i) {
            const Tensor& p = group_.params[i].tensor;
            cuda::TensorSlot slot{};
            slot.ptr[0] = p.data_ptr();
            slot.ptr[1] = p.grad().data_ptr();
            if (has_buffer()) slot.ptr[2] = states_.at(i, 0).data_ptr();
            slot.numel = p.numel();
            slots.push_back(slot);
        }
        table_.set(slots, kChunkElems, t_before.device());
        cuda::sgd_step(table_, args, in.flags.data<float>(), t_before.data<int64_t>(), t_before.device().index);
#else
        missing_cuda_kernel("sgd_step");
#endif
    }

    std::vector<std::pair<std::string, Tensor>> state() const override { return states_.named(); }
    void load_state(const std::map<std::string, Tensor>& tensors) override { states_.load(tensors); }
    int64_t state_bytes() const override { return states_.bytes(); }

private:
    bool has_buffer() const { return group_.hyper.momentum != 0; }

    void cpu_step(const SgdArgs& args, const HostStepScalars& s) {
        if (s.bad) return;
        const SgdUpdate update = sgd_update(args, s.t, s.gamma);
        for (size_t i = 0; i < group_.params.size(); ++i) {
            const Tensor& param = group_.params[i].tensor;
            float* p = param.data<float>();
            const float* g = param.grad().data<float>();
            const int64_t n = param.numel();
            if (has_buffer()) {
                float* buf = states_.at(i, 0).data<float>();
#pragma omp parallel for schedule(static) if (n > 32768)
                for (int64_t j = 0; j < n; ++j) update(p[j], g[j], buf[j]);
            } else {
#pragma omp parallel for schedule(static) if (n > 32768)
                for (int64_t j = 0; j < n; ++j) update(p[j], g[j]);
            }
        }
    }

    Group& group_;
    ParamStates states_;
#ifdef LUMEN_WITH_CUDA
    cuda::MultiTensorTable table_;
#endif
};

[[maybe_unused]] const bool registered =
    register_rule(Kind::sgd, [](Group& g) { return std::make_unique<SgdRule>(g); });

}  // namespace
}  // namespace lumen::optim
