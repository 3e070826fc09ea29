// nn/optical_transform.h: the transform pass (specs/optical.md §7.1, §7.4): which modules of a GPT
// become optical under an OpticalPlan, the replacement itself, and the histogram printed with it.
//
//   nn::OpticalReport r = nn::apply_optical_transform(model, plan);   // model may already be on its device
//   fmt::print("{}", nn::format_histogram(r));
//   nn::OpticalReport dry = nn::plan_optical_transform(model, plan);  // the same selection, model untouched
//
// Candidates: every CausalSelfAttention (its Q·Kᵀ and P·V) and every Linear except the top-level
// "lm_head". An attention module ("blocks.0.attn") and its projections ("blocks.0.attn.c_attn",
// "blocks.0.attn.c_proj") are separate candidates with their own rules. Rules match the dotted name
// with std::regex_match (full match); the first matching rule wins, then "default", else an error.
// A selected Linear is replaced by an OpticalLinear wrapping the same parameter tensors; a selected
// attention module gets make_optical(). Settings with q_bypass are transformed too (they count as
// "bypassed" and stay digital in the energy count).
//
// The pass runs once, on a digital model: a model that already holds an optical module is refused
// (both by apply and by plan), so a second application cannot silently re-select or double-wrap.
#pragma once

#include "nn/gpt.h"
#include "nn/optical_settings.h"

#include <cstdint>
#include <optional>
#include <regex>
#include <string>
#include <vector>

namespace lumen::nn {

enum class OpticalUnitKind { linear, attention };

// One candidate module and what the rules decided for it.
struct OpticalModuleInfo {
    std::string name;                 // dotted module name
    OpticalUnitKind kind = OpticalUnitKind::linear;
    std::string settings;             // the settings set's name; "" = kept digital by a `none` rule
    size_t rule = 0;                  // index into OpticalReport::rules
    bool bypass = false;              // the settings set has q_bypass
    // linear: in_features / out_features; attention: n_head·head_size both
    int64_t d_in = 0, d_out = 0;
    // linear: the weight's row partition (fused q/k/v: {C, kv, kv}), {d_out} for one part
    std::vector<int64_t> row_parts;
    // attention only
    int64_t n_head = 0, n_kv_head = 0, head_size = 0;
    // linear: weight + bias elements; attention: 0 (its projections are candidates of their own)
    int64_t parameters = 0;
};

// One rule's line of the histogram.
struct OpticalRuleCount {
    std::string pattern;   // as written; "default"; or "<attention modules>" / "<other candidates>" when implied
    std::string settings;  // "" = none
    std::string where;     // where the rule was written ("" for implied rules)
    int64_t matched = 0;   // candidates this rule decided
    int64_t bypassed = 0;  // of which the settings set has q_bypass
};

struct OpticalReport {
    bool implied = false;                          // the plan had no rules (§7.1 implied rules)
    std::vector<OpticalRuleCount> rules;           // in plan order (implied: attention, then fc)
    std::vector<OpticalModuleInfo> selected;       // made optical (bypassed ones included), model order
    std::vector<OpticalModuleInfo> kept_digital;   // candidates a `none` rule kept digital
    std::vector<std::string> always_digital;       // lm_head (when untied) and the embeddings
    std::vector<std::string> norms;                // the norms (always digital too)
    int64_t optical_parameters = 0;                // weight + bias of optical, non-bypassed Linears
    int64_t bypassed_parameters = 0;               // the same for bypassed ones
    int64_t total_parameters = 0;                  // the model's parameters (a tied wte once)
};

// The compiled rules of a plan: pure name matching, no model. The constructor compiles every
// pattern once and checks that each rule's settings set exists ("attention" and "fc" always do:
// OpticalSettings defaults when the plan lacks them). Throws lumen::Error naming the rule (and its
// `where`) for a bad regex, an undefined settings set, or a second "default" rule.
class OpticalRuleMatcher {
public:
    explicit OpticalRuleMatcher(const OpticalPlan& plan);

    // The index (into rules()) of the rule deciding the candidate `name`. Throws naming the module
    // and listing the rules when nothing matches and there is no default.
    size_t match(const std::string& name, OpticalUnitKind kind) const;
    // The rules as the histogram lists them (zero counts), in order.
    const std::vector<OpticalRuleCount>& rules() const { return rules_; }
    // The settings set of rule i (its name set to the set's key), or nullptr for `none`.
    const OpticalSettings* settings(size_t rule) const;
    bool implied() const { return implied_; }

private:
    bool implied_ = false;
    std::vector<OpticalRuleCount> rules_;
    std::vector<std::regex> patterns_;      // one per rule; unused for default and implied rules
    std::vector<OpticalSettings> settings_; // one per rule; meaningful where rules_[i].settings != ""
    std::optional<size_t> default_;         // the default rule's index
};

// The selection without touching the model (the energy report, ./bench energy).
OpticalReport plan_optical_transform(const GPT& model, const OpticalPlan& plan);
// Plans, then replaces every selected Linear with an OpticalLinear (same parameter tensors) and
// makes every selected attention module optical. New buffers are placed on the device of the
// module's weights. Errors (rules, selection, settings an OpticalLinear refuses, q_quantiles on an
// attention module) are raised before the model is changed.
OpticalReport apply_optical_transform(GPT& model, const OpticalPlan& plan);

// §7.4: one line per rule (unused ones show 0), the modules kept digital by `none`, the
// always-digital modules (lm_head, embeddings, norms), and the optical parameter count against the total.
std::string format_histogram(const OpticalReport& report);

}  // namespace lumen::nn
