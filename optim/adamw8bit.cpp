// optim/adamw8bit.cpp: the 8-bit AdamW rule (see optim/adamw8bit.h): state allocation and routing
// (8-bit or f32 per tensor), the CPU block-wise step, save/load with the map check, and the
// rule's registration. The CUDA step is cuda/optim_adamw8bit.cu (8-bit tensors) plus AdamW's fused
// kernel (cuda/optim_adamw.cu) for the f32-state tensors.
#include "optim/adamw8bit.h"

#include "core/cpu/loops.h"
#include "core/dispatch.h"
#include "optim/adamw.h"

#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <string>

namespace lumen::optim {

namespace {

inline constexpr int64_t f32_chunk_elems = 65536;

// The gradient, or for a parameter that has none yet a zero buffer set as its gradient (it steps
// with g = 0, §1), kept so that fused kernels see stable pointers from then on.
Tensor grad_of(const nn::Parameter& p) {
    if (!p.tensor.grad().defined())
        p.tensor.set_grad(Tensor::zeros(p.tensor.shape(), DType::f32, p.tensor.device()));
    Tensor g = p.tensor.grad();
    check(g.dtype() == DType::f32 && g.shape() == p.tensor.shape() && g.is_contiguous() &&
              g.device() == p.tensor.device(),
          "adamw8bit", concat_message({"the gradient of ", p.name, " must be contiguous f32 of its shape"}),
          {{"param", p.tensor}, {"grad", g}});
    return g;
}

void check_param(const nn::Parameter& p, Device device) {
    check(p.tensor.dtype() == DType::f32 && p.tensor.is_contiguous(), "adamw8bit",
          concat_message({"parameter ", p.name, " must be a contiguous f32 tensor"}), {{"param", p.tensor}});
    check(p.tensor.device() == device, "adamw8bit",
          concat_message({"parameter ", p.name, " is on another device than the group's first"}),
          {{"param", p.tensor}});
}

}  // namespace

AdamW8bitRule::AdamW8bitRule(const Group& group) : hyper_(group.hyper), params_(group.params) {
    const Device device = params_.empty() ? Device::cpu() : params_[0].tensor.device();
    for (const nn::Parameter& p : params_) {
        check_param(p, device);
        const int64_t n = p.tensor.numel();
        const bool f32_state =
            n < hyper_.min_8bit_size || (hyper_.embed_fp32_state && p.role == nn::Role::embedding);
        if (f32_state) {
            slot_.push_back({false, f32_.size()});
            f32_param_.push_back(slot_.size() - 1);
            f32_.push_back({Tensor::zeros(p.tensor.shape(), DType::f32, device),
                            Tensor::zeros(p.tensor.shape(), DType::f32, device)});
        } else {
            slot_.push_back({true, q8_.size()});
            AdamW8bitTensors q;
            q.param = p.tensor;
            // Initial codes and absmax 0: every value dequantizes to 0.
            q.state1 = Tensor::zeros(p.tensor.shape(), DType::u8, device);
            q.state2 = Tensor::zeros(p.tensor.shape(), DType::u8, device);
            q.absmax1 = Tensor::zeros({quant_blocks(n)}, DType::f32, device);
            q.absmax2 = Tensor::zeros({quant_blocks(n)}, DType::f32, device);
            q8_.push_back(q);
        }
    }
    qmap1_ = dynamic_map_tensor(true, device);
    qmap2_ = dynamic_map_tensor(false, device);
}

std::vector<AdamW8bitTensors> AdamW8bitRule::quantized_tensors() const {
    std::vector<AdamW8bitTensors> out = q8_;
    for (size_t i = 0; i < params_.size(); ++i)
        if (slot_[i].quantized) out[slot_[i].index].grad = grad_of(params_[i]);
    return out;
}

void AdamW8bitRule::step(const StepInputs& in, const Tensor& t_before) {
    const AdamW8bitArgs args{hyper_.lr * in.lr_scale, hyper_.beta1, hyper_.beta2, hyper_.eps,
                             hyper_.weight_decay};
    if (params_.empty()) return;
    if (t_before.device().is_cpu()) return cpu_step(args, in, t_before);
#ifdef LUMEN_WITH_CUDA
    const std::vector<AdamW8bitTensors> q = quantized_tensors();
    const int device = t_before.device().index;
    const float* flags = in.flags.data<float>();
    const int64_t* t = t_before.data<int64_t>();
    if (!q.empty()) {
        std::vector<cuda::TensorSlot> slots;
        for (const AdamW8bitTensors& x : q) {
            cuda::TensorSlot s{};
            s.ptr[0] = x.param.data_ptr();
            s.ptr[1] = x.grad.data_ptr();
            s.ptr[2] = x.state1.data_ptr();
            s.ptr[3] = x.state2.data_ptr();
            s.ptr[4] = x.absmax1.data_ptr();
            s.ptr[5] = x.absmax2.data_ptr();
            s.numel = x.param.numel();
            slots.push_back(s);
        }
        // NOTE: chunks of exactly one quantization block: chunk k of a slot is block k.
        q8_table_.set(slots, quant_block, t_before.device());
        cuda::adamw8bit_step(q8_table_, qmap1_.data<float>(), qmap2_.data<float>(), args, flags, t, device);
    }
    if (!f32_.empty()) {
        std::vector<cuda::TensorSlot> slots;
        for (size_t k = 0; k < f32_.size(); ++k) {
            const nn::Parameter& p = params_[f32_param_[k]];
            cuda::TensorSlot s{};
            s.ptr[0] = p.tensor.data_ptr();
            s.ptr[1] = grad_of(p).data_ptr();
            s.ptr[2] = f32_[k].exp_avg.data_ptr();
            s.ptr[3] = f32_[k].exp_avg_sq.data_ptr();
            s.numel = p.tensor.numel();
            slots.push_back(s);
        }
        f32_table_.set(slots, f32_chunk_elems, t_before.device());
        cuda::adamw_step(f32_table_, AdamWArgs{args.lr, args.beta1, args.beta2, args.eps, args.weight_decay},
                         flags, t, device);
    }
#else
    missing_cuda_kernel("adamw8bit_step");
#endif
}

void AdamW8bitRule::cpu_step(const AdamW8bitArgs& args, const StepInputs& in, const Tensor& t_before) {
    const HostStepScalars s = host_step_scalars(in, t_before);
    if (s.bad) return;
    cpu::adamw8bit_step(quantized_tensors(), qmap1_, qmap2_, adamw8bit_update(args, s.t, s.gamma));
    const AdamWUpdate update =
        adamw_update(AdamWArgs{args.lr, args.beta1, args.beta2, args.eps, args.weight_decay}, s.t, s.gamma);
    for (size_t k = 0; k < f32_.size(); ++k) {
        const nn::Parameter& param = params_[f32_param_[k]];
        float* p = param.tensor.data<float>();
        const float* g = grad_of(param).data<float>();
        float* m = f32_[k].exp_avg.data<float>();
        float* v = f32_[k].exp_avg_sq.data<float>();
        cpu::parallel_for(param.tensor.numel(), cpu::parallel_grain, [&](int64_t begin, int64_t end) {
            for (int64_t j = begin; j < end; ++j) update(p[j], g[j], m[j], v[j]);
        });
    }
}

std::vector<std::pair<std::string, Tensor>> AdamW8bitRule::state() const {
    std::vector<std::pair<std::string, Tensor>> out;
    for (size_t i = 0; i < params_.size(); ++i) {
        const std::string& name = params_[i].name;
        if (slot_[i].quantized) {
            const AdamW8bitTensors& q = q8_[slot_[i].index];
            out.emplace_back(name + ".state1", q.state1);
            out.emplace_back(name + ".state2", q.state2);
            out.emplace_back(name + ".absmax1", q.absmax1);
            out.emplace_back(name + ".absmax2", q.absmax2);
        } else {
            out.emplace_back(name + ".exp_avg", f32_[slot_[i].index].exp_avg);
            out.emplace_back(name + ".exp_avg_sq", f32_[slot_[i].index].exp_avg_sq);
        }
    }
    out.emplace_back("qmap1", qmap1_);
    out.emplace_back("qmap2", qmap2_);
    return out;
}

void AdamW8bitRule::load_state(const std::map<std::string, Tensor>& tensors) {
    // The maps first (codes mean nothing under another map): both are checked before either is
    // copied, so a rejected state changes nothing.
    Tensor loaded[2];
    for (int k = 0; k < 2; ++k) {
        const bool is_signed = k == 0;
        const std::string key = is_signed ? "qmap1" : "qmap2";
        loaded[k] = Tensor::zeros({256}, DType::f32, Device::cpu());
        load_state_tensor(tensors, key, loaded[k]);
        const std::vector<float> got = loaded[k].to_vector<float>();
        const QuantMap& built = dynamic_map(is_signed);
        for (size_t i = 0; i < 256; ++i)
            if (ulp_distance(got[i], built[i]) > 1)
                fail("load_state", fmt::format("optimizer state {} entry {} is {}, more than 1 ulp from the {} dynamic "
                                               "map's {}",
                                               key, i, got[i], is_signed ? "signed" : "unsigned", built[i]));
    }
    qmap1_.copy_(loaded[0].to(qmap1_.device()));
    qmap2_.copy_(loaded[1].to(qmap2_.device()));
    for (size_t i = 0; i < params_.size(); ++i) {
        const std::string& name = params_[i].name;
        if (slot_[i].quantized) {
            AdamW8bitTensors& q = q8_[slot_[i].index];
            load_state_tensor(tensors, name + ".state1", q.state1);
            load_state_tensor(tensors, name + ".state2", q.state2);
            load_state_tensor(tensors, name + ".absmax1", q.absmax1);
            load_state_tensor(tensors, name + ".absmax2", q.absmax2);
        } else {
            load_state_tensor(tensors, name + ".exp_avg", f32_[slot_[i].index].exp_avg);
            load_state_tensor(tensors, name + ".exp_avg_sq", f32_[slot_[i].index].exp_avg_sq);
        }
    }
}

int64_t AdamW8bitRule::state_bytes() const {
    int64_t total = 0;
    for (const auto& [name, t] : state()) total += t.numel() * int64_t(dtype_size(t.dtype()));
    return total;
}

std::string AdamW8bitRule::report_note() const {
    std::string why = "numel < " + std::to_string(hyper_.min_8bit_size);
    if (hyper_.embed_fp32_state) why += " or embedding";
    return std::to_string(f32_.size()) + " with f32 state: " + why;
}

namespace {
const bool registered =
    register_rule(Kind::adamw8bit, [](Group& g) { return std::make_unique<AdamW8bitRule>(g); });
}  // namespace

}  // namespace lumen::optim

namespace lumen::cpu {

void adamw8bit_step(const std::vector<optim::AdamW8bitTensors>& tensors, const Tensor& qmap1,
                    const Tensor& qmap2, const optim::AdamW8bitUpdate& u) {
    const float* cs = qmap1.data<float>();
    const float* cu = qmap2.data<float>();
    for (const optim::AdamW8bitTensors& x : tensors) {
        float* p = x.param.data<float>();
        const float* g = x.grad.data<float>();
        uint8_t* q1 = x.state1.data<uint8_t>();
        uint8_t* q2 = x.state2.data<uint8_t>();
        float* a1 = x.absmax1.data<float>();
        float* a2 = x.absmax2.data<float>();
        const int64_t n = x.param.numel();
        parallel_for(optim::quant_blocks(n), parallel_grain / optim::quant_block, [&](int64_t b0, int64_t b1) {
            std::array<float, optim::quant_block> m, v;
            for (int64_t b = b0; b < b1; ++b) {
                const int64_t begin = b * optim::quant_block;
                const int64_t count = std::min(n - begin, optim::quant_block);
                float amax1 = 0.f, amax2 = 0.f;
                for (int64_t j = 0; j < count; ++j) {
                    const int64_t e = begin + j;
                    u.moments(g[e], optim::f32::mul(cs[q1[e]], a1[b]), optim::f32::mul(cu[q2[e]], a2[b]), m[j], v[j]);
                    amax1 = std::max(amax1, std::fabs(m[j]));
                    amax2 = std::max(amax2, v[j]);
                }
                for (int64_t j = 0; j < count; ++j) {
                    const int64_t e = begin + j;
                    p[e] = u.param(p[e], m[j], v[j]);
                    q1[e] = optim::quantize_state1(cs, m[j], amax1);
                    q2[e] = optim::quantize_state2(cu, v[j], amax2);
                }
                a1[b] = amax1;
                a2[b] = amax2;
            }
        });
    }
}

}  // namespace lumen::cpu
