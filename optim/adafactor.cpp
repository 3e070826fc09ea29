// optim/adafactor.cpp: the Adafactor rule (see optim/adafactor.h): state allocation, the CPU step,
// save/load, and the rule's registration. The CUDA step is cuda/optim_adafactor.cu.
//
// NOTE: every sum is taken in a fixed order that does not depend on the thread count (per row or
// per fixed piece, then the partials in order), so a CPU step gives the same bits on any machine.
#include "optim/adafactor.h"

#include "core/cpu/loops.h"
#include "core/dispatch.h"

#include <algorithm>
#include <vector>

namespace lumen::optim {

FactoredShape factored_shape(const Tensor& p) {
    const int64_t rows = p.size(-2), cols = p.size(-1);
    const int64_t batch = rows * cols == 0 ? 0 : p.numel() / (rows * cols);
    return {batch, rows, cols};
}

namespace {

Tensor grad_of(const nn::Parameter& p) {
    if (!p.tensor.grad().defined())  // a parameter without a gradient steps with g = 0 (§1)
        p.tensor.set_grad(Tensor::zeros(p.tensor.shape(), DType::f32, p.tensor.device()));
    Tensor g = p.tensor.grad();
    check(g.dtype() == DType::f32 && g.shape() == p.tensor.shape() && g.is_contiguous() &&
              g.device() == p.tensor.device(),
          "adafactor", concat_message({"the gradient of ", p.name, " must be contiguous f32 of its shape"}),
          {{"param", p.tensor}, {"grad", g}});
    return g;
}

Shape without_dim(const Shape& s, size_t d) {
    Shape out = s;
    out.erase(out.begin() + int64_t(d));
    return out;
}

}  // namespace

AdafactorRule::AdafactorRule(const Group& group) : hyper_(group.hyper), params_(group.params) {
    const Device device = params_.empty() ? Device::cpu() : params_[0].tensor.device();
    for (const nn::Parameter& p : params_) {
        check(p.tensor.dtype() == DType::f32 && p.tensor.is_contiguous() && p.tensor.device() == device,
              "adafactor",
              concat_message({"parameter ", p.name, " must be a contiguous f32 tensor on the group's device"}),
              {{"param", p.tensor}});
        AdafactorTensors s;
        const Shape& shape = p.tensor.shape();
        if (shape.size() >= 2) {
            s.row = Tensor::zeros(without_dim(shape, shape.size() - 1), DType::f32, device);
            s.col = Tensor::zeros(without_dim(shape, shape.size() - 2), DType::f32, device);
        } else {
            s.sq = Tensor::zeros(shape, DType::f32, device);
        }
        if (hyper_.use_beta1) s.exp_avg = Tensor::zeros(shape, DType::f32, device);
        states_.push_back(s);
    }
}

std::vector<AdafactorTensors> AdafactorRule::tensors() const {
    std::vector<AdafactorTensors> out = states_;
    for (size_t i = 0; i < params_.size(); ++i) {
        out[i].param = params_[i].tensor;
        out[i].grad = grad_of(params_[i]);
    }
    return out;
}

AdafactorArgs AdafactorRule::args(double lr_scale) const {
    const Hyper& h = hyper_;
    AdafactorArgs a;
    a.lr = h.lr * lr_scale;  // NaN (unset) with relative_step, which ignores it
    a.eps1 = h.eps1, a.eps2 = h.eps2, a.clip_threshold = h.clip_threshold, a.decay_rate = h.decay_rate;
    a.beta1 = h.beta1, a.weight_decay = h.weight_decay;
    a.relative_step = h.relative_step, a.scale_parameter = h.scale_parameter, a.warmup_init = h.warmup_init;
    a.use_beta1 = h.use_beta1;
    return a;
}

void AdafactorRule::step(const StepInputs& in, const Tensor& t_before) {
    if (params_.empty()) return;
    const AdafactorArgs a = args(in.lr_scale);
    if (t_before.device().is_cpu()) {
        const HostStepScalars s = host_step_scalars(in, t_before);
        if (!s.bad) cpu::adafactor_step(tensors(), a, s.t, s.gamma);
        return;
    }
#ifdef LUMEN_WITH_CUDA
    cuda::adafactor_step(table_, scratch_, tensors(), a, in.flags.data<float>(), t_before.data<int64_t>(),
                         t_before.device().index);
#else
    missing_cuda_kernel("adafactor_step");
#endif
}

std::vector<std::pair<std::string, Tensor>> AdafactorRule::state() const {
    std::vector<std::pair<std::string, Tensor>> out;
    for (size_t i = 0; i < params_.size(); ++i) {
        const std::string& name = params_[i].name;
        const AdafactorTensors& s = states_[i];
        if (s.row.defined()) {
            out.emplace_back(name + ".exp_avg_sq_row", s.row);
            out.emplace_back(name + ".exp_avg_sq_col", s.col);
        } else {
            out.emplace_back(name + ".exp_avg_sq", s.sq);
        }
        if (s.exp_avg.defined()) out.emplace_back(name + ".exp_avg", s.exp_avg);
    }
    return out;
}

void AdafactorRule::load_state(const std::map<std::string, Tensor>& tensors) {
    for (size_t i = 0; i < params_.size(); ++i) {
        const std::string& name = params_[i].name;
        AdafactorTensors& s = states_[i];
        if (s.row.defined()) {
            load_state_tensor(tensors, name + ".exp_avg_sq_row", s.row);
            load_state_tensor(tensors, name + ".exp_avg_sq_col", s.col);
        } else {
            load_state_tensor(tensors, name + ".exp_avg_sq", s.sq);
        }
        if (s.exp_avg.defined()) load_state_tensor(tensors, name + ".exp_avg", s.exp_avg);
    }
}

int64_t AdafactorRule::state_bytes() const {
    int64_t total = 0;
    for (const auto& [name, t] : state()) total += t.numel() * int64_t(dtype_size(t.dtype()));
    return total;
}

namespace {
const bool registered =
    register_rule(Kind::adafactor, [](Group& g) { return std::make_unique<AdafactorRule>(g); });
}  // namespace

}  // namespace lumen::optim

namespace lumen::cpu {
namespace {

using optim::f32::mul;

inline constexpr int64_t sum_piece = 4096;

// Σ_{i<n} term(i) in double: fixed pieces of sum_piece terms (summed in parallel), then the pieces
// in order.
template <typename Term>
double ordered_sum(int64_t n, const Term& term) {
    const int64_t pieces = (n + sum_piece - 1) / sum_piece;
    std::vector<double> partial(size_t(std::max<int64_t>(pieces, 0)), 0.0);
    parallel_for(pieces, std::max<int64_t>(1, parallel_grain / sum_piece), [&](int64_t b, int64_t e) {
        for (int64_t k = b; k < e; ++k) {
            double acc = 0.0;
            for (int64_t i = k * sum_piece, end = std::min(n, i + sum_piece); i < end; ++i) acc += term(i);
            partial[size_t(k)] = acc;
        }
    });
    double total = 0.0;
    for (double x : partial) total += x;
    return total;
}

void step_factored(const optim::AdafactorTensors& x, const optim::AdafactorArgs& a, int64_t t, float gamma,
                   double alpha, const optim::AdafactorDecay& dec) {
    const auto [B, n, m] = optim::factored_shape(x.param);
    float* p = x.param.data<float>();
    const float* grad = x.grad.data<float>();
    float* R = x.row.data<float>();  // (B, n)
    float* C = x.col.data<float>();  // (B, m)
    float* M = x.exp_avg.defined() ? x.exp_avg.data<float>() : nullptr;
    const int64_t rows = B * n;
    const int64_t row_grain = std::max<int64_t>(1, parallel_grain / m);
    // R: the row means of G2.
    parallel_for(rows, row_grain, [&](int64_t r0, int64_t r1) {
        for (int64_t r = r0; r < r1; ++r) {
            double acc = 0.0;
            for (int64_t j = 0; j < m; ++j) acc += dec.g2(mul(grad[r * m + j], gamma));
            R[r] = dec.ema(R[r], float(acc / double(m)));
        }
    });
    // C: the column means of G2, each column summed over the rows in order.
    constexpr int64_t col_block = 64;
    const int64_t col_blocks = (m + col_block - 1) / col_block;
    parallel_for(B * col_blocks, std::max<int64_t>(1, parallel_grain / (n * col_block)), [&](int64_t b0, int64_t b1) {
        double acc[col_block];
        for (int64_t b = b0; b < b1; ++b) {
            const int64_t k = b / col_blocks, j0 = (b % col_blocks) * col_block, j1 = std::min(m, j0 + col_block);
            std::fill(acc, acc + col_block, 0.0);
            for (int64_t i = 0; i < n; ++i) {
                const float* gr = grad + (k * n + i) * m;
                for (int64_t j = j0; j < j1; ++j) acc[j - j0] += dec.g2(mul(gr[j], gamma));
            }
            for (int64_t j = j0; j < j1; ++j) C[k * m + j] = dec.ema(C[k * m + j], float(acc[j - j0] / double(n)));
        }
    });
    // The factors: 1/sqrt(R_i/mean R) per row (mean over the batch's rows), 1/sqrt(C_j) per column.
    std::vector<float> row_factor(static_cast<size_t>(rows)), col_factor(static_cast<size_t>(B * m));
    for (int64_t k = 0; k < B; ++k) {
        double acc = 0.0;
        for (int64_t i = 0; i < n; ++i) acc += R[k * n + i];
        const float mean_r = float(acc / double(n));
        for (int64_t i = 0; i < n; ++i) row_factor[size_t(k * n + i)] = optim::adafactor_row_factor(R[k * n + i], mean_r);
    }
    for (int64_t j = 0; j < B * m; ++j) col_factor[size_t(j)] = optim::inv_sqrt(C[j]);
    auto u_at = [&](int64_t r, int64_t j) {
        const int64_t k = r / n;
        return optim::adafactor_u(row_factor[size_t(r)], col_factor[size_t(k * m + j)], mul(grad[r * m + j], gamma));
    };
    // Σ U² per row, then the rows in order.
    std::vector<double> row_u2(static_cast<size_t>(rows));
    parallel_for(rows, row_grain, [&](int64_t r0, int64_t r1) {
        for (int64_t r = r0; r < r1; ++r) {
            double acc = 0.0;
            for (int64_t j = 0; j < m; ++j) {
                const double u = u_at(r, j);
                acc += u * u;
            }
            row_u2[size_t(r)] = acc;
        }
    });
    double sum_u2 = 0.0;
    for (double s : row_u2) sum_u2 += s;
    const optim::AdafactorApply apply = optim::adafactor_apply(a, alpha, sum_u2, x.param.numel());
    parallel_for(rows, row_grain, [&](int64_t r0, int64_t r1) {
        for (int64_t r = r0; r < r1; ++r)
            for (int64_t j = 0; j < m; ++j) {
                const int64_t e = r * m + j;
                apply(p[e], M ? M + e : nullptr, u_at(r, j));
            }
    });
}

void step_unfactored(const optim::AdafactorTensors& x, const optim::AdafactorArgs& a, float gamma, double alpha,
                     const optim::AdafactorDecay& dec) {
    const int64_t N = x.param.numel();
    float* p = x.param.data<float>();
    const float* grad = x.grad.data<float>();
    float* V = x.sq.data<float>();
    float* M = x.exp_avg.defined() ? x.exp_avg.data<float>() : nullptr;
    parallel_for(N, parallel_grain, [&](int64_t b, int64_t e) {
        for (int64_t i = b; i < e; ++i) V[i] = dec.ema(V[i], dec.g2(mul(grad[i], gamma)));
    });
    auto u_at = [&](int64_t i) { return mul(optim::inv_sqrt(V[i]), mul(grad[i], gamma)); };
    const double sum_u2 = ordered_sum(N, [&](int64_t i) {
        const double u = u_at(i);
        return u * u;
    });
    const optim::AdafactorApply apply = optim::adafactor_apply(a, alpha, sum_u2, N);
    parallel_for(N, parallel_grain, [&](int64_t b, int64_t e) {
        for (int64_t i = b; i < e; ++i) apply(p[i], M ? M + i : nullptr, u_at(i));
    });
}

}  // namespace

void adafactor_step(const std::vector<optim::AdafactorTensors>& tensors, const optim::AdafactorArgs& a, int64_t t,
                    float gamma) {
    const optim::AdafactorDecay dec = optim::adafactor_decay(a, t);
    for (const optim::AdafactorTensors& x : tensors) {
        const int64_t N = x.param.numel();
        if (N == 0) continue;
        const float* p = x.param.data<float>();
        const double sum_p2 = ordered_sum(N, [&](int64_t i) { return double(p[i]) * double(p[i]); });
        const double alpha = optim::adafactor_alpha(a, t, sum_p2, N);
        if (x.row.defined()) step_factored(x, a, t, gamma, alpha, dec);
        else step_unfactored(x, a, gamma, alpha, dec);
    }
}

}  // namespace lumen::cpu
