// training/log_format.h: what ./train prints and writes to metrics.jsonl (specs/wiggle.md §8.2,
// §8.3): the iter and step lines (reference fields first, in the reference's format, then
// lumen's), FLOPs per token and MFU.
#pragma once

#include "nn/config.h"

#include <nlohmann/json.hpp>

#include <optional>
#include <string>
#include <vector>

namespace lumen::training {

// nanoGPT's estimate (PaLM appendix B): 6N + 12·L·nh·hs·block_size, N the reported parameter
// count (for an untied model the input embedding is dropped too: `input_embedding` = V·C).
double flops_per_token(const nn::ModelConfig& c, int64_t reported_params, int64_t input_embedding = 0);
// flops_per_token · tokens / seconds / peak; nullopt when the peak is unknown (≤ 0).
std::optional<double> mfu(double flops_per_token, int64_t tokens, double seconds, double peak_flops);

struct IterLine {
    int64_t iteration = 0;
    double loss = 0, time_ms = 0;
    std::optional<double> mfu;       // printed "-" when absent
    std::optional<double> sparsity;  // bio MLPs only
    std::vector<double> sparsity_layers;
    double lr = 0, tokens_per_s = 0, mem_gib = 0, grad_norm = 0;
    int64_t bad_steps = 0;           // skipped (non-finite) steps since the last line
    std::optional<double> hessian_ms;  // SophiaG: its Hessian hook's time since the last line
};
// "iter 10: loss 4.2311, time 12.30ms, mfu 35.20%, sparsity 12.00%, lr 6.000e-04, tok/s 1234, mem 1.20GiB, gnorm 0.9000"
std::string format_iter_line(const IterLine& l);
nlohmann::json iter_json(const IterLine& l);

struct EvalLine {
    int64_t iteration = 0;
    double train_loss = 0, val_loss = 0;
    std::optional<double> sparsity;
    std::vector<double> sparsity_layers;
};
// "step 2000: train loss 3.7473, val loss 3.7661, sparsity 12.00%"
std::string format_eval_line(const EvalLine& l);
nlohmann::json eval_json(const EvalLine& l);

}  // namespace lumen::training
