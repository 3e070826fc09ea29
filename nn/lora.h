// nn/lora.h: LoRA adapters (Hu et al. 2021, as Hugging Face PEFT implements them): a Linear whose
// frozen weight W gets a trainable low-rank update, y = x·Wᵀ + b + dropout(x)·Aᵀ·Bᵀ·(alpha/r).
//
//   nn::LoraSettings s;                          // r 32, alpha 32, dropout 0, targets: see below
//   s.targets = nn::kLoraDefaultTargets;         // every Linear inside the blocks
//   s.seed = config.init_seed;
//   nn::LoraReport r = nn::apply_lora(model, s); // before the optical transform and the optimizer
//   auto state = nn::merged_state_dict(model);   // --merge_lora: W + (alpha/r)·B·A, no lora_* entries
//
// Parameters (under the Linear's dotted name, beside its `weight` and `bias`):
//   lora_A (r, in)  ~ U(-1/√in, 1/√in): PEFT's kaiming_uniform_(a = √5), whose bound is
//                   gain·√(3/fan_in) with gain = √(2/(1+a²)) = √(1/3), i.e. 1/√in
//   lora_B (out, r) = 0, so the model is unchanged at step 0
// both Role::matrix, in the base weight's dtype and on its device. A is drawn from
// Philox(seed, stream = "lora" << 32 | fnv1a32(module name)), so a module's draw does not depend on
// which other modules match. apply_lora freezes every parameter of the model (requires_grad false:
// no gradient buffer, no optimizer group, optim/groups.h G5); only lora_A and lora_B train.
//
// Optical layers: an OpticalLinear built from a LoraLinear keeps the adapter (same tensors and names)
// and quantizes the merged weight W + scale·B·A (specs/optical.md §1); see nn/optical_linear.h.
// The merged form has no place for dropout on the adapter's input, so that constructor refuses a
// LoraLinear with dropout > 0. apply_lora refuses a model that is already optical: apply LoRA first.
#pragma once

#include "core/philox.h"
#include "nn/layers.h"

#include <cstdint>
#include <string>
#include <vector>

namespace lumen::nn {

class GPT;

// Every Linear inside the transformer blocks (attention projections and MLP layers); lm_head and the
// embeddings stay frozen without adapters.
inline constexpr const char* kLoraDefaultTargets = R"(blocks\.\d+\..*)";

struct LoraSettings {
    int64_t r = 32;        // rank, > 0 (config key lora.r)
    double alpha = 32;     // scale = alpha / r, > 0 (lora.alpha)
    double dropout = 0;    // on the adapter's input, [0, 1) (lora.dropout)
    // ECMAScript regex, full-matched against each Linear's dotted module name (lora.targets),
    // e.g. R"(blocks\.\d+\.(attn\.c_attn|attn\.c_proj|mlp\..*))"
    std::string targets = kLoraDefaultTargets;
    uint64_t seed = 0;     // with the module name, keys the draw of A
};

// One layer's adapter: the trainable pair and its scale.
struct LoraAdapter {
    Tensor A;            // (r, in)
    Tensor B;            // (out, r)
    double scale = 1.0;  // alpha / r
};

// x (..., in) -> (..., out) = ((x·Aᵀ)·scale)·Bᵀ, in x's dtype (A and B cast to it, as Linear does).
Tensor lora_delta(const Tensor& x, const LoraAdapter& adapter);
// W + scale·(B·A), built from autograd ops in W's dtype (gradients reach A and B when they require
// grad; under NoGradGuard a plain computation). W (out, in).
Tensor lora_merge(const Tensor& weight, const LoraAdapter& adapter);

class LoraLinear : public Linear {
public:
    // Wraps `base`'s weight and bias (the same tensors, names and roles) and adds the adapter.
    // `name` is the module's dotted name (keys the draw of A and names it in errors); `dropout_gen`
    // is the model's dropout generator (used only when settings.dropout > 0).
    LoraLinear(const Linear& base, const LoraSettings& settings, const std::string& name, Generator* dropout_gen);
    // x (..., in) -> (..., out) = x·Wᵀ + b + lora_delta(dropout(x)); dropout only in training mode.
    Tensor forward(const Tensor& x) override;

    const LoraAdapter& adapter() const { return adapter_; }
    const Tensor& lora_A() const { return adapter_.A; }
    const Tensor& lora_B() const { return adapter_.B; }
    double scale() const { return adapter_.scale; }
    int64_t rank() const { return adapter_.A.size(0); }
    double dropout() const { return dropout_; }
    const std::string& name() const { return name_; }
    // W + scale·B·A computed in f32 without autograd, returned in W's dtype: (out, in).
    Tensor merged_weight() const;

private:
    LoraAdapter adapter_;
    double dropout_;
    Generator* dropout_gen_;
    std::string name_;
};

struct LoraReport {
    std::vector<std::string> modules;   // module names given adapters, in model order
    int64_t adapter_parameters = 0;     // elements of every lora_A and lora_B (trainable)
    int64_t frozen_parameters = 0;      // elements of the model's own parameters, now frozen
    int64_t frozen_tensors = 0;
    // Memory not allocated for the frozen parameters: f32 gradient buffers, and optimizer state at
    // `state_bytes_per_param` bytes per element (AdamW's f32 m and v: 8; Lion, SGD with momentum: 4;
    // 8-bit AdamW: about 2).
    int64_t grad_bytes_saved() const { return frozen_parameters * 4; }
    int64_t optimizer_bytes_saved(double state_bytes_per_param) const {
        return int64_t(double(frozen_parameters) * state_bytes_per_param);
    }
};

// Freezes every parameter of `model` and replaces each Linear whose dotted name full-matches
// s.targets by a LoraLinear. Errors (before anything changes): lora.r <= 0, lora.alpha <= 0,
// lora.dropout outside [0, 1), an invalid lora.targets regex, no Linear matching (the message lists
// the Linear names), a model that already has adapters or optical modules.
LoraReport apply_lora(GPT& model, const LoraSettings& s);

// The state dict with every adapted layer's weight replaced by its merged weight (LoraLinear and
// OpticalLinear with an adapter alike) and no lora_A / lora_B entries: what a model without LoRA
// (digital, or optical with the same transform) loads. For exporting with --merge_lora.
std::vector<NamedTensor> merged_state_dict(const Module& model);

}  // namespace lumen::nn
