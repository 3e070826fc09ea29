// optim/sophia.cpp: SophiaRule (see optim/sophia.h): the fused step and the Hessian EMA over the
// group, the CPU reference of both kernels, the device statistics and the rule's registration.
//
// NOTE: the element formulas are shared with cuda/optim_sophia.cu (optim/sophia_kernels.h), so
// the two devices produce the same bits; the win count is an integer sum, exact in any order.
#include "optim/sophia.h"

#include "autograd/ops/ops.h"
#include "core/cpu/loops.h"
#include "core/dispatch.h"

#include <cmath>

namespace lumen {

namespace cpu {

void sophia_step(const std::vector<optim::SophiaTensors>& tensors, const Tensor& flags, Tensor& stats,
                 const optim::SophiaStepArgs& args) {
    const float gamma = flags.data<float>()[0];
    const bool bad = flags.data<float>()[1] != 0.f;
    int64_t* st = stats.data<int64_t>();
    if (bad) {
        st[optim::sophia_stat_pending] = 0;
        return;
    }
    const optim::SophiaUpdate update = optim::sophia_update(args, gamma);
    int64_t wins = 0;
    for (const optim::SophiaTensors& t : tensors) {
        float* p = t.param.data<float>();
        const float* g = t.grad.defined() ? t.grad.data<float>() : nullptr;
        float* m = t.exp_avg.data<float>();
        const float* h = t.hessian.data<float>();
        const int64_t n = t.param.numel();
#pragma omp parallel for schedule(static) reduction(+ : wins) if (n > parallel_grain)
        for (int64_t e = 0; e < n; ++e) wins += update(p[e], g ? g[e] : 0.f, m[e], h[e]) ? 1 : 0;
    }
    st[optim::sophia_stat_wins] = wins;
    st[optim::sophia_stat_pending] = 0;
}

void sophia_hessian(const std::vector<optim::SophiaTensors>& tensors, const Tensor& flags, Tensor& stats,
                    double beta2) {
    const float gamma = flags.data<float>()[0];
    if (flags.data<float>()[1] != 0.f) {
        stats.data<int64_t>()[optim::sophia_stat_hess_bad] += 1;
        return;
    }
    const optim::SophiaHessianUpdate update = {gamma, float(beta2), float(1.0 - beta2)};
    for (const optim::SophiaTensors& t : tensors) {
        const float* g = t.grad.defined() ? t.grad.data<float>() : nullptr;
        float* h = t.hessian.data<float>();
        parallel_for(t.hessian.numel(), parallel_grain, [&](int64_t begin, int64_t end) {
            for (int64_t e = begin; e < end; ++e) update(h[e], g ? g[e] : 0.f);
        });
    }
}

}  // namespace cpu

namespace optim {
namespace {

Device group_device(const Group& g) { return g.params.empty() ? Device::cpu() : g.params[0].tensor.device(); }

void check_grads(const std::vector<SophiaTensors>& ts, const std::vector<nn::Parameter>& params) {
    for (size_t i = 0; i < ts.size(); ++i) {
        const Tensor& g = ts[i].grad;
        check(!g.defined() || (g.shape() == ts[i].param.shape() && g.dtype() == DType::f32 && g.is_contiguous()),
              "sophia", concat_message({"the gradient of ", params[i].name, " must be a contiguous f32 tensor of its shape"}),
              {{"grad", g}});
    }
}

}  // namespace

SophiaRule::SophiaRule(const Group& group)
    : hyper_(group.hyper), params_(group.params), states_(group.params, {"exp_avg", "hessian"}) {
    const Device device = group_device(group);
    for (const nn::Parameter& p : params_) {
        check(p.tensor.dtype() == DType::f32 && p.tensor.is_contiguous() && p.tensor.device() == device, "sophia",
              concat_message({"parameter ", p.name, " must be a contiguous f32 tensor on the group's device"}),
              {{p.name, p.tensor}});
        elements_ += p.tensor.numel();
    }
    stats_ = Tensor::zeros({3}, DType::i64, device);
}

std::vector<SophiaTensors> SophiaRule::tensors() const {
    std::vector<SophiaTensors> out;
    for (size_t i = 0; i < params_.size(); ++i)
        out.push_back({params_[i].tensor, params_[i].tensor.grad(), states_.at(i, 0), states_.at(i, 1)});
    check_grads(out, params_);
    return out;
}

void SophiaRule::step(const StepInputs& in, const Tensor& t_before) {
    const double lr = hyper_.lr * in.lr_scale;
    const SophiaStepArgs args{float(lr), float(1.0 - lr * hyper_.weight_decay), float(hyper_.beta1),
                              float(1.0 - hyper_.beta1), float(hyper_.rho * hyper_.tokens_per_step)};
    const std::vector<SophiaTensors> ts = tensors();
    if (stats_.device().is_cpu()) return cpu::sophia_step(ts, in.flags, stats_, args);
#ifdef LUMEN_WITH_CUDA
    cuda::sophia_step(step_table_, ts, in.flags, stats_, args);
#else
    missing_cuda_kernel("sophia_step");
#endif
}

void SophiaRule::update_hessian(const Tensor& flags) {
    const std::vector<SophiaTensors> ts = tensors();
    if (stats_.device().is_cpu()) return cpu::sophia_hessian(ts, flags, stats_, hyper_.beta2);
#ifdef LUMEN_WITH_CUDA
    cuda::sophia_hessian(hessian_table_, ts, flags, stats_, hyper_.beta2);
#else
    missing_cuda_kernel("sophia_hessian");
#endif
}

double SophiaRule::win_rate() const {
    if (elements_ == 0) return 0.0;
    return double(stats_.to_vector<int64_t>()[sophia_stat_wins]) / double(elements_);
}

int64_t SophiaRule::hess_bad() const { return stats_.to_vector<int64_t>()[sophia_stat_hess_bad]; }

std::pair<double, double> SophiaRule::hessian_norms() const {
    double l1 = 0, l2sq = 0;
    for (size_t i = 0; i < params_.size(); ++i) {
        const Tensor& h = states_.at(i, 1);
        if (h.numel() == 0) continue;
        l1 += ops::sum(ops::abs(h)).item();
        l2sq += ops::sum(h * h).item();
    }
    return {l1, std::sqrt(l2sq)};
}

std::vector<std::pair<std::string, Tensor>> SophiaRule::state() const { return states_.named(); }

void SophiaRule::load_state(const std::map<std::string, Tensor>& tensors) { states_.load(tensors); }

int64_t SophiaRule::state_bytes() const { return states_.bytes(); }

[[maybe_unused]] static const bool registered =
    register_rule(Kind::sophia, [](Group& g) -> std::unique_ptr<Rule> { return std::make_unique<SophiaRule>(g); });

}  // namespace optim
}  // namespace lumen
