// optim/muon.cpp: MuonRule (see optim/muon.h): per tensor, the momentum kernel, Newton–Schulz on
// each row part, the decayed update; plus the CPU reference of the element-wise kernels and the
// rule's registration.
#include "optim/muon.h"

#include "core/cpu/loops.h"

#include <algorithm>
#include <cmath>

namespace lumen {

namespace cpu {
namespace {

bool bad_step(const Tensor& flags) { return flags.data<float>()[1] != 0.f; }

}  // namespace

void muon_momentum(Tensor& u, Tensor& m, const Tensor& g, const Tensor& flags, double mu, bool nesterov) {
    const optim::MuonMomentum mix{flags.data<float>()[0], float(mu), float(1.0 - mu), nesterov};
    const bool bad = bad_step(flags);
    float* us = u.data<float>();
    float* ms = m.data<float>();
    const float* gs = g.defined() ? g.data<float>() : nullptr;
    parallel_for(u.numel(), parallel_grain, [&](int64_t begin, int64_t end) {
        for (int64_t e = begin; e < end; ++e) {
            float m_new;
            us[e] = mix(gs ? gs[e] : 0.f, ms[e], m_new);
            if (!bad) ms[e] = m_new;
        }
    });
}

void muon_update(Tensor& p, const Tensor& o, const Tensor& flags, float lr, float decay) {
    if (bad_step(flags)) return;
    float* ps = p.data<float>();
    const float* os = o.data<float>();
    parallel_for(p.numel(), parallel_grain, [&](int64_t begin, int64_t end) {
        for (int64_t e = begin; e < end; ++e) ps[e] = optim::muon_apply(ps[e], os[e], lr, decay);
    });
}

}  // namespace cpu

namespace optim {
namespace {

Device group_device(const Group& g) { return g.params.empty() ? Device::cpu() : g.params[0].tensor.device(); }

// A contiguous (shape) f32 view of the start of buf.
Tensor view_of(const Tensor& buf, const Shape& shape) {
    return Tensor::over(buf.storage(), Layout::contiguous(shape), buf.dtype());
}

}  // namespace

double MuonRule::shape_scale(MuonScale scale, int64_t rows, int64_t cols) {
    if (scale == MuonScale::match_rms_adamw) return 0.2 * std::sqrt(double(std::max(rows, cols)));
    return std::sqrt(std::max(1.0, double(rows) / double(cols)));
}

MuonRule::MuonRule(const Group& group)
    : hyper_(group.hyper), params_(group.params), momentum_(group.params, {"momentum_buffer"}),
      ns_(group.hyper.ns_f32 ? DType::f32 : DType::bf16, group_device(group)) {
    const Device device = group_device(group);
    int64_t max_numel = 0, max_n2 = 0, max_nm = 0;
    for (const nn::Parameter& p : params_) {
        const Tensor& w = p.tensor;
        check(w.dim() == 2, "muon", concat_message({"parameter ", p.name, " is not a matrix: Muon takes 2-D tensors only"}),
              {{p.name, w}});
        check(w.dtype() == DType::f32 && w.is_contiguous() && w.device() == device, "muon",
              concat_message({"parameter ", p.name, " must be a contiguous f32 tensor on the group's device"}),
              {{p.name, w}});
        std::vector<int64_t> parts = p.row_parts.empty() ? std::vector<int64_t>{w.size(0)} : p.row_parts;
        int64_t total = 0;
        for (int64_t rows : parts) {
            check(rows >= 0, "muon", concat_message({"parameter ", p.name, ": row parts must not be negative"}), {{p.name, w}});
            total += rows;
            const int64_t n = std::min(rows, w.size(1)), m = std::max(rows, w.size(1));
            max_n2 = std::max(max_n2, n * n);
            max_nm = std::max(max_nm, n * m);
        }
        check(total == w.size(0), "muon",
              concat_message({"parameter ", p.name, ": row parts sum to ", std::to_string(total), ", not to the ",
                              std::to_string(w.size(0)), " rows"}),
              {{p.name, w}});
        parts_.push_back(std::move(parts));
        max_numel = std::max(max_numel, w.numel());
    }
    update_ = Tensor::empty({max_numel}, DType::f32, device);
    ns_.reserve_elements(max_n2, max_nm);  // the workspace is allocated once, here
}

void MuonRule::step(const StepInputs& in, const Tensor& t_before) {
    const double lr = hyper_.lr * in.lr_scale;
    const float decay = float(1.0 - lr * hyper_.weight_decay);
    for (size_t i = 0; i < params_.size(); ++i) {
        Tensor& w = params_[i].tensor;
        const Tensor g = w.grad();
        check(!g.defined() || (g.shape() == w.shape() && g.dtype() == DType::f32 && g.is_contiguous()), "muon",
              concat_message({"the gradient of ", params_[i].name, " must be a contiguous f32 tensor of its shape"}),
              {{"grad", g}});
        Tensor u = view_of(update_, w.shape());  // (rows, cols)
        Tensor m = momentum_.at(i, 0);
        kernels::muon_momentum(u, m, g, in.flags, hyper_.momentum, hyper_.nesterov);
        const int64_t cols = w.size(1);
        int64_t first = 0;
        for (int64_t rows : parts_[i]) {
            Tensor part = u.narrow(0, first, rows);  // (rows, cols), orthogonalised in place
            ns_.orthogonalize(part, part, hyper_.ns_steps, shape_scale(hyper_.muon_scale, rows, cols));
            first += rows;
        }
        kernels::muon_update(w, u, in.flags, float(lr), decay);
    }
}

std::vector<std::pair<std::string, Tensor>> MuonRule::state() const { return momentum_.named(); }

void MuonRule::load_state(const std::map<std::string, Tensor>& tensors) { momentum_.load(tensors); }

int64_t MuonRule::state_bytes() const { return momentum_.bytes(); }

int64_t MuonRule::workspace_bytes() const { return update_.numel() * 4 + ns_.workspace_bytes(); }

[[maybe_unused]] static const bool registered =
    register_rule(Kind::muon, [](Group& g) -> std::unique_ptr<Rule> { return std::make_unique<MuonRule>(g); });

}  // namespace optim
}  // namespace lumen
