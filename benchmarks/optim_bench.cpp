// benchmarks/optim_bench.cpp: `./bench optim` (see benchmarks/optim_bench.h). The model is built with
// NoInitGuard (no random init), moved to the device, and every parameter and gradient is filled
// with uniform values in [-0.1, 0.1] (finite, not zeros). Each kind gets a fresh Optimizer over
// the same parameters; its state is freed before the next kind.
#include "benchmarks/optim_bench.h"

#include "autograd/node.h"
#include "autograd/ops/creation.h"
#include "benchmarks/timer.h"
#include "core/error.h"
#include "nn/gpt.h"
#include "nn/layers.h"
#include "optim/clip.h"
#include "optim/groups.h"
#include "optim/optimizer.h"
#include "training/train_config.h"

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <memory>

namespace lumen::bench {

namespace {

constexpr optim::Kind kAllKinds[] = {optim::Kind::adamw, optim::Kind::adamw8bit, optim::Kind::lion,
                                     optim::Kind::adafactor, optim::Kind::sophia, optim::Kind::muon,
                                     optim::Kind::sgd};

void write_shapes(const std::vector<nn::Parameter>& params, const std::string& path) {
    nlohmann::json list = nlohmann::json::array();
    for (const auto& p : params)
        list.push_back({{"name", p.name}, {"shape", p.tensor.shape()}});
    std::ofstream out(path);
    if (!out) throw Error(fmt::format("bench optim: cannot write {}", path));
    out << list.dump() << "\n";
}

OptimResult run_kind(optim::Kind kind, const std::vector<nn::Parameter>& params, const OptimOptions& o) {
    training::OptimConfig config = training::optim_config_defaults(kind);
    if (std::isnan(config.groups.main.lr)) config.groups.main.lr = 6e-4;  // sgd: no default rate
    optim::Optimizer opt(optim::make_groups(params, config.groups));
    const double grad_clip = config.grad_clip;
    autograd::NoGradGuard no_grad;

    OptimResult r;
    r.kind = std::string(optim::kind_name(kind));
    r.state_bytes = opt.state_bytes();
    r.num_params = opt.num_params();
    r.num_tensors = int64_t(opt.parameters().size());
    r.report = opt.report();

    const std::vector<nn::Parameter> ps = opt.parameters();
    Tensor flags = optim::clip_flags(ps, grad_clip);
    const int warmup = o.quick ? 1 : o.warmup;
    r.step_ms = median_ms(o.device, [&] { opt.step({.lr_scale = 1.0, .flags = flags}); }, warmup, o.iters);
    r.clip_step_ms = median_ms(o.device, [&] {
        Tensor f = optim::clip_flags(ps, grad_clip);
        opt.step({.lr_scale = 1.0, .flags = f});
    }, warmup, o.iters);
    synchronize(o.device);
    return r;
}

}  // namespace

std::vector<OptimResult> run_optim_benchmarks(const OptimOptions& o) {
    nn::ModelConfig mc = nn::gpt2_124m_config();
    mc.vocab_size = 50304;
    if (o.quick) mc.n_layer = 2, mc.n_head = 2, mc.n_embd = 128, mc.block_size = 64, mc.vocab_size = 512;

    std::unique_ptr<nn::GPT> model;
    {
        nn::NoInitGuard no_init;
        model = std::make_unique<nn::GPT>(mc);
    }
    model->to(o.device);
    const std::vector<nn::Parameter> params = model->parameters();
    Generator gen(1234);
    autograd::NoGradGuard no_grad;
    for (const auto& p : params) {
        Tensor leaf = p.tensor;
        leaf.copy_(ops::rand(p.tensor.shape(), gen, -0.1, 0.1, DType::f32, o.device));
        p.tensor.set_grad(ops::rand(p.tensor.shape(), gen, -0.1, 0.1, DType::f32, o.device));
    }
    if (!o.shapes_path.empty()) write_shapes(params, o.shapes_path);

    std::vector<OptimResult> results;
    for (optim::Kind kind : kAllKinds) {
        const std::string name(optim::kind_name(kind));
        if (!o.kinds.empty() && std::find(o.kinds.begin(), o.kinds.end(), name) == o.kinds.end()) continue;
        results.push_back(run_kind(kind, params, o));
    }
    return results;
}

}  // namespace lumen::bench
