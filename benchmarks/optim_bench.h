// benchmarks/optim_bench.h: `./bench optim`: the full optimizer step of every kind on the GPT-2 124M
// parameter set (nn::gpt2_124m_config(), vocab 50304), each kind with its config defaults
// (training::optim_config_defaults). Compared with benchmarks/peer_optim.py (torch fused AdamW on
// the same shapes) in the same device session.
#pragma once

#include "core/device.h"

#include <string>
#include <vector>

namespace lumen::bench {

struct OptimResult {
    std::string kind;          // "adamw", "lion", ...
    double step_ms = 0;        // Optimizer::step with flags computed beforehand (median)
    double clip_step_ms = 0;   // clip_flags + Optimizer::step, as the trainer runs them (median)
    int64_t state_bytes = 0;   // Optimizer::state_bytes()
    int64_t num_params = 0;    // elements over all groups
    int64_t num_tensors = 0;
    std::vector<std::string> report;  // Optimizer::report()
};

struct OptimOptions {
    Device device = Device::cpu();
    bool quick = false;             // a 2-layer, 128-wide model (a smoke run)
    int iters = 20, warmup = 3;
    std::vector<std::string> kinds; // empty = every kind
    std::string shapes_path;        // "" or a file to write the parameter shapes to (JSON), for the peer
};

std::vector<OptimResult> run_optim_benchmarks(const OptimOptions& options);

}  // namespace lumen::bench
