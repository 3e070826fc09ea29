// tests/golden/golden_testing.h: what the golden parity tests share (shared/specs/formats.md §9, the
// llm.c method): loading a family's golden directory (written by tests/reference/make_golden.py into
// tests/fixtures/golden/<family>/), building the lumen model from the same weights, the tolerance
// bounds of §9's table, comparisons that report each tensor's error as a fraction of its bound, and
// the training steps run the trainer's way (loss, backward, clip_flags, AdamW step, zero_grad).
//
//   golden::Golden g = golden::load("llama");              // batch, logits, loss, grads, step losses
//   auto model = golden::build_model(g);                   // nn::load_hf_model, or lumen_model + weights
//   golden::Comparison c = golden::compare("logits", model->forward(g.input_ids), g.logits, golden::f32_bound);
//   CHECK_MESSAGE(c.ok(), c.line());
#pragma once

#include "tests/harness.h"

#include "core/shape.h"
#include "data/safetensors.h"
#include "nn/gpt.h"
#include "nn/hf_model.h"
#include "optim/clip.h"
#include "optim/groups.h"
#include "optim/optimizer.h"

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <nlohmann/json.hpp>

#include <cmath>
#include <map>
#include <memory>
#include <string>
#include <vector>

namespace lumen::golden {

inline std::string fixtures_dir() { return std::string(LUMEN_SOURCE_DIR) + "/tests/fixtures/golden"; }

// The small families of the committed fixtures.
inline const std::vector<std::string>& families() {
    static const std::vector<std::string> names{"gpt2", "llama", "wiggle"};
    return names;
}

// ---------------------------------------------------------------- bounds (formats.md §9)

// ||a − r||/||r|| ≤ rel_frobenius, and, when elem_of_max ≥ 0, every element
// |a − r| ≤ elem_of_max·max|r| + elem_rel·|r|.
struct Bound {
    double rel_frobenius;
    double elem_of_max = -1.0;
    double elem_rel = 0.0;
};
// CPU f32 and GPU f32 (no TF32) against golden f32: logits and every gradient.
inline constexpr Bound f32_bound{1e-5, 1e-5, 1e-4};
// GPU bf16 compute against golden f32: rel. Frobenius only.
inline constexpr Bound bf16_logits_bound{1e-2};
inline constexpr Bound bf16_grad_bound{3e-2};
// |Δ| bounds of the scalars.
inline constexpr double f32_loss_bound = 1e-5, f32_step_loss_bound = 1e-4;
inline constexpr double bf16_loss_bound = 1e-2, bf16_step_loss_bound = 5e-2;

// One tensor's comparison. The fractions are the measured error over its bound (≤ 1 passes).
struct Comparison {
    std::string name;
    std::string problem;          // non-empty: shapes differ or a value is not finite
    bool scalar = false;          // compare_scalar: rel_frobenius holds |Δ|
    double rel_frobenius = 0.0;
    double frob_fraction = 0.0;
    double elem_fraction = 0.0;   // the worst element's |Δ| over its bound (0 without an element bound)
    int64_t worst = -1;           // that element's flat index
    double worst_actual = 0.0, worst_expected = 0.0;

    bool ok() const { return problem.empty() && frob_fraction <= 1.0 && elem_fraction <= 1.0; }
    // The larger of the two fractions: how much of its bound this tensor uses.
    double fraction() const { return std::max(frob_fraction, elem_fraction); }
    std::string line() const {
        if (!problem.empty()) return fmt::format("{}: FAIL: {}", name, problem);
        if (scalar)
            return fmt::format("{}: {:.3f} of bound (|Δ| {:.2e}: {:.8g} vs {:.8g}){}", name, fraction(), rel_frobenius,
                               worst_actual, worst_expected, ok() ? "" : " FAIL");
        std::string s = fmt::format("{}: {:.3f} of bound (rel. Frobenius {:.2e}", name, fraction(), rel_frobenius);
        if (worst >= 0)
            s += fmt::format(", worst element [{}] {:.6g} vs {:.6g}", worst, worst_actual, worst_expected);
        return s + (ok() ? ")" : ") FAIL");
    }
};

inline Comparison compare(const std::string& name, const Tensor& actual, const Tensor& expected, const Bound& b) {
    Comparison c;
    c.name = name;
    if (actual.shape() != expected.shape()) {
        c.problem = fmt::format("shape {} vs golden {}", shape_str(actual.shape()), shape_str(expected.shape()));
        return c;
    }
    const std::vector<double> a = actual.to_vector<double>(), r = expected.to_vector<double>();
    double diff2 = 0.0, ref2 = 0.0, ref_max = 0.0;
    for (size_t i = 0; i < a.size(); ++i) {
        if (!std::isfinite(a[i])) {
            c.problem = fmt::format("element [{}] is {}", i, a[i]);
            return c;
        }
        diff2 += (a[i] - r[i]) * (a[i] - r[i]);
        ref2 += r[i] * r[i];
        ref_max = std::max(ref_max, std::fabs(r[i]));
    }
    c.rel_frobenius = ref2 > 0 ? std::sqrt(diff2 / ref2) : std::sqrt(diff2);
    c.frob_fraction = c.rel_frobenius / b.rel_frobenius;
    if (b.elem_of_max >= 0) {
        for (size_t i = 0; i < a.size(); ++i) {
            const double bound = b.elem_of_max * ref_max + b.elem_rel * std::fabs(r[i]);
            const double d = std::fabs(a[i] - r[i]);
            const double f = bound > 0 ? d / bound : (d > 0 ? INFINITY : 0.0);
            if (f > c.elem_fraction || c.worst < 0) {
                c.elem_fraction = std::max(c.elem_fraction, f);
                c.worst = int64_t(i);
                c.worst_actual = a[i];
                c.worst_expected = r[i];
            }
        }
    }
    return c;
}

// A scalar's |Δ| against `bound`, as a Comparison (rel_frobenius holds |Δ|).
inline Comparison compare_scalar(const std::string& name, double actual, double expected, double bound) {
    Comparison c;
    c.name = name;
    c.scalar = true;
    if (!std::isfinite(actual)) c.problem = fmt::format("value {}", actual);
    c.rel_frobenius = std::fabs(actual - expected);
    c.frob_fraction = c.rel_frobenius / bound;
    c.worst = 0;
    c.worst_actual = actual;
    c.worst_expected = expected;
    return c;
}

// Collects comparisons and prints them as one block (every tensor's fraction of its bound).
struct Report {
    std::string title;
    std::vector<Comparison> rows;
    void add(const Comparison& c) { rows.push_back(c); }
    int64_t failures() const {
        int64_t n = 0;
        for (const Comparison& c : rows) n += c.ok() ? 0 : 1;
        return n;
    }
    std::string text() const {
        std::string s = title;
        double worst = 0.0;
        std::string worst_name;
        for (const Comparison& c : rows) {
            s += "\n  " + c.line();
            if (c.fraction() >= worst) {
                worst = c.fraction();
                worst_name = c.name;
            }
        }
        return s + fmt::format("\n  worst: {} at {:.3f} of its bound; {} of {} outside", worst_name, worst, failures(),
                               rows.size());
    }
};

// ---------------------------------------------------------------- the golden data

struct Golden {
    std::string family, dir;
    std::map<std::string, std::string> meta;  // golden.safetensors' __metadata__
    nlohmann::json hyper;                     // meta["hyper"]
    Tensor input_ids, targets;                // (B, T) i64, CPU
    Tensor logits;                            // (B, T, V) f32
    double loss = 0.0;
    std::vector<double> step_losses, step_grad_norms;
    std::map<std::string, Tensor> grads;      // lumen parameter name -> f32 gradient
};

inline Golden load(const std::string& family) {
    Golden g;
    g.family = family;
    g.dir = fixtures_dir() + "/" + family;
    const data::SafetensorsFile f = data::open_safetensors(g.dir + "/golden.safetensors");
    g.meta = f.metadata();
    REQUIRE_MESSAGE(g.meta.count("hyper"), g.dir << "/golden.safetensors: no 'hyper' metadata");
    g.hyper = nlohmann::json::parse(g.meta.at("hyper"));
    g.input_ids = f.load("input_ids").to(DType::i64);
    g.targets = f.load("targets").to(DType::i64);
    g.logits = f.load("logits");
    g.loss = f.load("loss").item();
    g.step_losses = f.load("step_losses").to_vector<double>();
    g.step_grad_norms = f.load("step_grad_norms").to_vector<double>();
    for (const data::SafetensorsEntry& e : f.entries())
        if (e.name.rfind("grad.", 0) == 0) g.grads[e.name.substr(5)] = f.load(e.name);
    return g;
}

// The model config of a lumen-named family ("lumen_model" metadata): every key must be known.
inline nn::ModelConfig lumen_model_config(const nlohmann::json& j) {
    nn::ModelConfig c;
    for (const auto& [key, v] : j.items()) {
        if (key == "n_layer") c.n_layer = v.get<int64_t>();
        else if (key == "n_head") c.n_head = v.get<int64_t>();
        else if (key == "n_kv_head") c.n_kv_head = v.get<int64_t>();
        else if (key == "n_embd") c.n_embd = v.get<int64_t>();
        else if (key == "block_size") c.block_size = v.get<int64_t>();
        else if (key == "vocab_size") c.vocab_size = v.get<int64_t>();
        else if (key == "bias") c.bias = v.get<bool>();
        else if (key == "dropout") c.dropout = v.get<double>();
        else if (key == "norm_eps") c.norm_eps = v.get<double>();
        else if (key == "rope_theta") c.rope_theta = v.get<double>();
        else if (key == "mlp_ratio") c.mlp_ratio = v.get<double>();
        else if (key == "mlp_hidden") c.mlp_hidden = v.get<int64_t>();
        else if (key == "bio_threshold") c.bio_threshold = v.get<double>();
        else if (key == "tie_embeddings") c.tie_embeddings = v.get<bool>();
        else if (key == "norm") {
            auto k = nn::parse_norm(v.get<std::string>());
            REQUIRE_MESSAGE(k.has_value(), "lumen_model: unknown norm " << v);
            c.norm = *k;
        } else if (key == "pos") {
            auto k = nn::parse_pos(v.get<std::string>());
            REQUIRE_MESSAGE(k.has_value(), "lumen_model: unknown pos " << v);
            c.pos = *k;
        } else if (key == "mlp") {
            auto k = nn::parse_mlp(v.get<std::string>());
            REQUIRE_MESSAGE(k.has_value(), "lumen_model: unknown mlp " << v);
            c.mlp = *k;
        } else if (key == "rope_pairing") {
            auto k = nn::parse_rope_pairing(v.get<std::string>());
            REQUIRE_MESSAGE(k.has_value(), "lumen_model: unknown rope_pairing " << v);
            c.rope_pairing = *k;
        } else {
            FAIL("lumen_model: unknown key " << key);
        }
    }
    return c;
}

inline bool is_hf_family(const Golden& g) { return !g.meta.count("lumen_model"); }

// The family's architecture, without weights: what a fresh model is built from before a load.
inline nn::ModelConfig model_config(const Golden& g) {
    if (is_hf_family(g)) return nn::read_hf_config(g.dir).config;
    return lumen_model_config(nlohmann::json::parse(g.meta.at("lumen_model")));
}

// The golden model on the CPU in f32: Hugging Face folders through nn::load_hf_model, the lumen-named
// family from its config and model.safetensors.
inline std::unique_ptr<nn::GPT> build_model(const Golden& g) {
    if (is_hf_family(g)) return nn::load_hf_model(g.dir);
    std::unique_ptr<nn::GPT> model;
    {
        nn::NoInitGuard no_init;
        model = std::make_unique<nn::GPT>(model_config(g));
    }
    const data::SafetensorsFile f = data::open_safetensors(g.dir + "/model.safetensors");
    std::map<std::string, Tensor> state;
    for (const data::SafetensorsEntry& e : f.entries()) state[e.name] = f.load(e.name);
    model->load_state_dict(state);
    return model;
}

// ---------------------------------------------------------------- the optimizer steps

// AdamW with the golden hyper-parameters, grouped by lumen's rule G1 (optim/groups.h), as the
// trainer builds it.
inline optim::Optimizer make_optimizer(nn::GPT& model, const nlohmann::json& hyper) {
    optim::GroupConfig cfg;
    cfg.kind = optim::Kind::adamw;
    cfg.main = optim::api_defaults(optim::Kind::adamw);
    cfg.main.lr = hyper.at("lr").get<double>();
    cfg.main.beta1 = hyper.at("beta1").get<double>();
    cfg.main.beta2 = hyper.at("beta2").get<double>();
    cfg.main.eps = hyper.at("eps").get<double>();
    cfg.main.weight_decay = hyper.at("weight_decay").get<double>();
    cfg.decay_embeddings = true;
    return optim::Optimizer(optim::make_groups(model.parameters(), cfg));
}

struct StepRun {
    std::vector<double> losses;  // the loss before each step's update
    std::vector<double> norms;   // clip_flags' global gradient norm at each step
};

// `count` steps the trainer's way: loss, backward, clip_flags(grad_clip, loss), step, zero_grad.
inline StepRun run_steps(nn::GPT& model, optim::Optimizer& opt, const Tensor& idx, const Tensor& targets,
                         double grad_clip, int count) {
    StepRun run;
    for (int k = 0; k < count; ++k) {
        Tensor loss = model.loss(idx, targets);  // () f32
        loss.backward();
        const Tensor flags = optim::clip_flags(opt.parameters(), grad_clip, loss);
        opt.step({1.0, flags});
        opt.zero_grad();
        run.losses.push_back(loss.item());
        run.norms.push_back(flags.to_vector<double>()[2]);
    }
    return run;
}

// The lumen gradient of every parameter (f32, CPU), by name.
inline std::map<std::string, Tensor> gradients(const nn::GPT& model) {
    std::map<std::string, Tensor> out;
    for (const nn::Parameter& p : model.parameters()) {
        const Tensor g = p.tensor.grad();
        out[p.name] = g.defined() ? g.to(Device::cpu()).to(DType::f32) : Tensor::zeros(p.tensor.shape());
    }
    return out;
}

}  // namespace lumen::golden
