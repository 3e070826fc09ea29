// nn/lora.cpp: LoraLinear, the adapter arithmetic, apply_lora and the merged export (see nn/lora.h).
#include "nn/lora.h"

#include "autograd/node.h"
#include "autograd/ops/ops.h"
#include "core/error.h"
#include "core/optical_math.h"
#include "nn/gpt.h"
#include "nn/optical_linear.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <map>
#include <memory>
#include <regex>
#include <utility>

namespace lumen::nn {

namespace {

constexpr const char* kOp = "lora";
constexpr uint64_t kLoraStreamTag = 0x6c6f7261;  // "lora": keeps A's streams apart from the model's 0, 1, 3

void check_settings(const LoraSettings& s) {
    check(s.r > 0, kOp, fmt::format("lora.r must be a positive integer, got {}", s.r));
    check(s.alpha > 0 && std::isfinite(s.alpha), kOp, fmt::format("lora.alpha must be positive, got {}", s.alpha));
    check(s.dropout >= 0 && s.dropout < 1, kOp, fmt::format("lora.dropout must be in [0, 1), got {}", s.dropout));
}

uint64_t stream_for(const std::string& name) {
    return (kLoraStreamTag << 32) | optical::fnv1a32(name.data(), name.size());
}

// "blocks.0.attn.c_attn.weight" -> {"blocks.0.attn.c_attn", "weight"}; "weight" -> {"", "weight"}
std::pair<std::string, std::string> split_name(const std::string& name) {
    const size_t dot = name.rfind('.');
    if (dot == std::string::npos) return {"", name};
    return {name.substr(0, dot), name.substr(dot + 1)};
}

}  // namespace

Tensor lora_delta(const Tensor& x, const LoraAdapter& adapter) {
    const int64_t in = adapter.A.size(1), out = adapter.B.size(0);
    Shape out_shape = x.shape();
    out_shape.back() = out;
    Tensor x2 = x.reshape({-1, in});                                                   // (N, in)
    Tensor h = ops::matmul(x2, cast_to(adapter.A, x.dtype()).transpose(0, 1));         // (N, r)
    Tensor d = ops::matmul(h * adapter.scale, cast_to(adapter.B, x.dtype()).transpose(0, 1));  // (N, out)
    return d.reshape(out_shape);                                                       // (..., out)
}

Tensor lora_merge(const Tensor& weight, const LoraAdapter& adapter) {
    const DType dt = weight.dtype();
    // (out, r)·(r, in) -> (out, in), PEFT's merge order: W + (B·A)·scale
    return weight + ops::matmul(cast_to(adapter.B, dt), cast_to(adapter.A, dt)) * adapter.scale;
}

namespace {

// W + scale·B·A in f32 without autograd, back in W's dtype.
Tensor merged_f32(const Tensor& weight, const LoraAdapter& adapter) {
    autograd::NoGradGuard no_grad;
    const LoraAdapter a32{adapter.A.to(DType::f32), adapter.B.to(DType::f32), adapter.scale};
    return lora_merge(weight.to(DType::f32), a32).to(weight.dtype());
}

}  // namespace

LoraLinear::LoraLinear(const Linear& base, const LoraSettings& s, const std::string& name, Generator* dropout_gen)
    : Linear(Adopt{}, base), dropout_(s.dropout), dropout_gen_(dropout_gen), name_(name) {
    check(!dynamic_cast<const LoraLinear*>(&base), kOp, fmt::format("{} already has a LoRA adapter", name_));
    check_settings(s);
    check(s.dropout == 0 || dropout_gen_ != nullptr, kOp,
          fmt::format("{}: lora.dropout = {} needs the model's dropout generator", name_, s.dropout));
    check(in_ > 0 && out_ > 0, kOp,
          fmt::format("{}: a Linear with no inputs or outputs cannot take an adapter", name_));
    const double bound = 1.0 / std::sqrt(double(in_));  // kaiming_uniform_(a = √5) over fan_in = in
    Generator gen(s.seed, stream_for(name_));
    const DType dt = weight_.dtype();
    const Device device = weight_.device();
    adapter_.A = register_parameter("lora_A", ops::rand({s.r, in_}, gen, -bound, bound).to(dt).to(device),
                                    Role::matrix);                                  // (r, in)
    adapter_.B = register_parameter("lora_B", Tensor::zeros({out_, s.r}, dt, device), Role::matrix);  // (out, r)
    adapter_.scale = s.alpha / double(s.r);
}

Tensor LoraLinear::forward(const Tensor& x) {
    Tensor y = Linear::forward(x);  // (..., out), W and b frozen
    const Tensor xd = training() && dropout_ > 0 ? ops::dropout(x, dropout_, *dropout_gen_, Training::yes) : x;
    return y + lora_delta(xd, adapter_);
}

Tensor LoraLinear::merged_weight() const { return merged_f32(weight_, adapter_); }

LoraReport apply_lora(GPT& model, const LoraSettings& s) {
    check_settings(s);
    std::regex targets;
    try {
        targets = std::regex(s.targets, std::regex::ECMAScript);
    } catch (const std::regex_error& e) {
        fail(kOp, fmt::format("lora.targets = '{}' is not a valid regular expression ({})", s.targets, e.what()));
    }
    LoraReport r;
    std::vector<std::string> linears;
    std::vector<std::pair<std::string, const Linear*>> chosen;
    for (auto& [name, m] : model.modules()) {
        if (const auto* attn = dynamic_cast<const CausalSelfAttention*>(m))
            check(!attn->is_optical(), kOp,
                  fmt::format("the model is already optical ({} is an optical attention module); apply LoRA "
                              "before the optical transform",
                              name));
        const auto* lin = dynamic_cast<const Linear*>(m);
        if (!lin) continue;
        check(!dynamic_cast<const OpticalLinear*>(m), kOp,
              fmt::format("the model is already optical ({} is an OpticalLinear); apply LoRA before the optical "
                          "transform",
                          name));
        check(!dynamic_cast<const LoraLinear*>(m), kOp,
              fmt::format("the model already has LoRA adapters ({}); apply_lora runs once", name));
        linears.push_back(name);
        if (std::regex_match(name, targets)) chosen.emplace_back(name, lin);
    }
    check(!chosen.empty(), kOp,
          fmt::format("lora.targets = '{}' matches no Linear (it must match a whole dotted name; the Linears are: {})",
                      s.targets, (linears.empty() ? std::string("none") : list_names(linears, 24))));

    // Build every replacement first (their constructors check), then change the model.
    std::vector<std::pair<std::string, std::shared_ptr<LoraLinear>>> replacements;
    for (const auto& [name, lin] : chosen)
        replacements.emplace_back(name, std::make_shared<LoraLinear>(*lin, s, name, &model.dropout_generator()));
    for (Parameter& p : model.parameters()) {
        p.tensor.set_requires_grad(false);
        p.tensor.zero_grad();  // a gradient left from earlier training would otherwise stay allocated
        r.frozen_parameters += p.tensor.numel();
        ++r.frozen_tensors;
    }
    for (auto& [name, lora] : replacements) {
        r.modules.push_back(name);
        r.adapter_parameters += lora->lora_A().numel() + lora->lora_B().numel();
        model.replace_module(name, std::move(lora));
    }
    return r;
}

std::vector<NamedTensor> merged_state_dict(const Module& model) {
    std::map<std::string, Tensor> merged;  // module name -> its merged weight
    // NOTE: modules() is non-const only because it hands out mutable pointers; nothing is changed here.
    for (auto& [name, m] : const_cast<Module&>(model).modules()) {
        if (const auto* lora = dynamic_cast<const LoraLinear*>(m)) merged[name] = lora->merged_weight();
        else if (const auto* optical = dynamic_cast<const OpticalLinear*>(m); optical && optical->lora())
            merged[name] = merged_f32(optical->weight(), *optical->lora());
    }
    std::vector<NamedTensor> out;
    for (auto& [name, t] : model.state_dict()) {
        const auto [module, leaf] = split_name(name);
        const auto it = merged.find(module);
        if (it == merged.end()) {
            out.emplace_back(name, t);
        } else if (leaf == "weight") {
            out.emplace_back(name, it->second);
        } else if (leaf != "lora_A" && leaf != "lora_B") {
            out.emplace_back(name, t);
        }
    }
    return out;
}

}  // namespace lumen::nn
