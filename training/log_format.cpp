// training/log_format.cpp: the log lines, their JSON records, FLOPs per token and MFU.
#include "training/log_format.h"

#include <fmt/format.h>

namespace lumen::training {

double flops_per_token(const nn::ModelConfig& c, int64_t reported_params, int64_t input_embedding) {
    const double N = double(reported_params - input_embedding);
    return 6.0 * N + 12.0 * double(c.n_layer) * double(c.n_head) * double(c.head_size()) * double(c.block_size);
}

std::optional<double> mfu(double flops_per_token, int64_t tokens, double seconds, double peak_flops) {
    if (peak_flops <= 0 || seconds <= 0) return std::nullopt;
    return flops_per_token * double(tokens) / seconds / peak_flops;
}

std::string format_iter_line(const IterLine& l) {
    std::string s = fmt::format("iter {}: loss {:.4f}, time {:.2f}ms, mfu {}", l.iteration, l.loss, l.time_ms,
                                l.mfu ? fmt::format("{:.2f}%", 100 * *l.mfu) : std::string("-"));
    if (l.sparsity) s += fmt::format(", sparsity {:.2f}%", 100 * *l.sparsity);
    s += fmt::format(", lr {:.3e}, tok/s {:.0f}, mem {:.2f}GiB, gnorm {:.4f}", l.lr, l.tokens_per_s, l.mem_gib,
                     l.grad_norm);
    if (l.hessian_ms) s += fmt::format(", hess {:.1f}ms", *l.hessian_ms);
    if (l.bad_steps > 0) s += fmt::format(", skipped {} non-finite step(s)", l.bad_steps);
    return s;
}

nlohmann::json iter_json(const IterLine& l) {
    nlohmann::json j = {{"type", "iter"}, {"iter", l.iteration}, {"loss", l.loss}, {"time_ms", l.time_ms},
                        {"lr", l.lr},     {"tok_s", l.tokens_per_s}, {"mem_gib", l.mem_gib},
                        {"gnorm", l.grad_norm}, {"bad_steps", l.bad_steps}};
    j["mfu"] = l.mfu ? nlohmann::json(*l.mfu) : nlohmann::json(nullptr);
    if (l.hessian_ms) j["hess_ms"] = *l.hessian_ms;
    if (l.sparsity) {
        j["sparsity"] = *l.sparsity;
        j["sparsity_layers"] = l.sparsity_layers;
    }
    return j;
}

std::string format_eval_line(const EvalLine& l) {
    std::string s = fmt::format("step {}: train loss {:.4f}, val loss {:.4f}", l.iteration, l.train_loss, l.val_loss);
    if (l.sparsity) s += fmt::format(", sparsity {:.2f}%", 100 * *l.sparsity);
    return s;
}

nlohmann::json eval_json(const EvalLine& l) {
    nlohmann::json j = {{"type", "eval"}, {"iter", l.iteration}, {"train_loss", l.train_loss}, {"val_loss", l.val_loss}};
    if (l.sparsity) {
        j["sparsity"] = *l.sparsity;
        j["sparsity_layers"] = l.sparsity_layers;
    }
    return j;
}

}  // namespace lumen::training
