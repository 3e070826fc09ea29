// optim/optimizer.h: the optimizer: parameter groups, each stepped by one update rule, with
// device-resident step counters and exact state save/load. specs/optimizers.md is the contract.
//
//   auto groups = optim::make_groups(model.parameters(), config);     // optim/groups.h
//   optim::Optimizer opt(std::move(groups));
//   loss.backward();
//   Tensor flags = optim::clip_flags(opt.parameters(), grad_clip, loss);  // optim/clip.h
//   opt.step({.lr_scale = schedule(it), .flags = flags});
//   opt.zero_grad();
//
// A step never reads a device value on the host: the clip factor γ and the "bad step" flag live
// in a device tensor (`flags`), every group's step count t lives on the device and advances only
// when the step was good. Each rule is one file (optim/<kind>.cpp, CUDA in cuda/optim_<kind>.cu)
// and registers its factory with register_rule(), so adding a kind edits no central switch.
#pragma once

#include "core/tensor.h"
#include "nn/parameter.h"

#include <nlohmann/json.hpp>

#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace lumen::optim {

enum class Kind { adamw, lion, adamw8bit, adafactor, sophia, muon, sgd };
std::string_view kind_name(Kind k);
std::optional<Kind> kind_from_name(std::string_view name);

enum class MuonScale { original, match_rms_adamw };

// Every hyper-parameter of every kind; a rule reads the fields its kind documents
// (specs/optimizers.md §§3–9). These member initialisers are no reference's defaults: api_defaults(kind) gives the
// reference constructor's defaults, training::optim_config_defaults (training/train_config.h) the config ones.
struct Hyper {
    // peak rate: a step uses lr · StepInputs::lr_scale. Adafactor only: NaN means "not set"
    // (required iff relative_step = false; setting it with relative_step is an error).
    double lr = 1e-3;
    double beta1 = 0.9, beta2 = 0.999, eps = 1e-8, weight_decay = 0.0;
    // sgd
    double momentum = 0.0, dampening = 0.0;
    bool nesterov = false;
    // adamw8bit: tensors with numel < min_8bit_size keep f32 state; embed_fp32_state keeps f32
    // state for role = embedding.
    int64_t min_8bit_size = 4096;
    bool embed_fp32_state = false;
    // adafactor (beta1 is used only when use_beta1)
    bool use_beta1 = false, relative_step = false, scale_parameter = false, warmup_init = false;
    double eps1 = 1e-30, eps2 = 1e-3, clip_threshold = 1.0, decay_rate = -0.8;
    // sophia: rho and bs = tokens per optimizer step (set by the trainer)
    double rho = 0.04, tokens_per_step = 5120;
    int64_t hess_interval = 10;
    // muon (ns_f32 is a test switch: Newton–Schulz in f32 instead of bf16 GEMMs)
    int64_t ns_steps = 5;
    MuonScale muon_scale = MuonScale::original;
    bool ns_f32 = false;
};

// The reference implementation's constructor defaults for `kind` (torch, automl, bnb, HF, ...).
// For muon: the Muon group's; muon_aux_adamw_api_defaults() gives its auxiliary AdamW's
// (`MuonWithAuxAdam`: lr 3e-4, betas (0.9, 0.95), eps 1e-10, wd 0).
Hyper api_defaults(Kind kind);
Hyper muon_aux_adamw_api_defaults();
// Throws naming the key, the value and the accepted range when a field the kind reads is invalid.
void validate(Kind kind, const Hyper& h);

struct Group {
    std::string label;  // "decay", "no_decay", "muon", ... (for reports)
    Kind kind = Kind::adamw;
    Hyper hyper;
    std::vector<nn::Parameter> params;  // f32 master weights; .grad() f32 of the same shape
};

// What a step reads. `flags` is (2,) f32 on the parameters' device: [γ, bad]: every gradient is
// multiplied by γ on load; bad != 0 means write nothing (parameters, states and t unchanged).
struct StepInputs {
    double lr_scale = 1.0;  // the schedule's multiplier s(it)
    Tensor flags;
};

// A CPU step's view of the device scalars (reading memory is fine on the CPU): bad = flags[1] != 0,
// gamma = flags[0], t = t_before + 1.
struct HostStepScalars {
    bool bad;
    float gamma;
    int64_t t;
};
HostStepScalars host_step_scalars(const StepInputs& in, const Tensor& t_before);

// One group's update rule and the state it keeps.
class Rule {
public:
    virtual ~Rule() = default;
    // `t_before` is the group's (1,) i64 step count before this step, on the parameters' device;
    // the rule uses t = t_before + 1 (when the step is good) and must not modify it.
    virtual void step(const StepInputs& in, const Tensor& t_before) = 0;
    // State tensors named "<parameter>.<state>" (specs/optimizers.md §11), plus shared entries
    // such as "qmap1". load_state takes the same names back; wrong or missing entries throw
    // naming the tensor.
    virtual std::vector<std::pair<std::string, Tensor>> state() const = 0;
    virtual void load_state(const std::map<std::string, Tensor>& tensors) = 0;
    // Allocated bytes of state (what the trainer prints).
    virtual int64_t state_bytes() const = 0;
    // An optional remark for the report's group line, e.g. "98 with f32 state: numel < 4096"
    // ("" = none). The total line sums notes "<count> <text>" whose text is the same.
    virtual std::string report_note() const { return {}; }
};

// For Rule::load_state: copies tensors[name] into dst after checking that it exists and has
// dst's shape and dtype and (floating dtypes) only finite values; each error names the tensor.
void load_state_tensor(const std::map<std::string, Tensor>& tensors, const std::string& name, Tensor& dst);

// G5 against the model: every trainable parameter of `model` (requires_grad) is in exactly one
// group, and no group holds a parameter `model` lacks or a frozen one. Errors name the parameter.
void check_one_group_each(const std::vector<Group>& groups, const std::vector<nn::Parameter>& model);

using RuleFactory = std::function<std::unique_ptr<Rule>(Group& group)>;
// Called once per kind at static-initialisation time from the kind's own file.
bool register_rule(Kind kind, RuleFactory factory);

// A saved optimizer: state tensors plus JSON metadata (kind, step counts, hyper-parameters).
struct StateDict {
    std::vector<std::pair<std::string, Tensor>> tensors;
    nlohmann::json meta;
};

class Optimizer {
public:
    // Validates each group's hyper-parameters, asserts G5 (no parameter in two groups; f32,
    // contiguous, trainable, one device), allocates every rule's state and the step counters.
    explicit Optimizer(std::vector<Group> groups);

    // One update of every group. No host synchronisation.
    void step(const StepInputs& in);
    // The API form (tests, scripts): flags computed here with γ = 1 and bad = any non-finite
    // gradient (specs/optimizers.md §10).
    void step(double lr_scale = 1.0);
    // Zeroes every gradient in place (keeps the buffers, so fused kernels see stable pointers).
    void zero_grad();

    const std::vector<Group>& groups() const { return groups_; }
    std::vector<nn::Parameter> parameters() const;
    Rule& rule(size_t group) { return *rules_[group]; }
    const Rule& rule(size_t group) const { return *rules_[group]; }
    // Group g's step count (a device read: for reports and checkpoints, not the step).
    int64_t step_count(size_t group) const;

    StateDict state_dict() const;
    void load_state_dict(const StateDict& state);  // exact: the next step equals the saved run's
    int64_t state_bytes() const;
    // "optimizer adamw: 2 groups, 148 tensors, state 995.52 MB = 8.000 B/param" plus one line per
    // group.
    std::vector<std::string> report() const;

    // The kinds of the groups, in order of first appearance, joined by '+' ("adamw",
    // "muon+adamw"): the metadata's lumen_optimizer and the report's name.
    std::string name() const;
    Device device() const { return device_; }
    int64_t num_params() const;  // elements over all groups

private:
    std::vector<Group> groups_;
    std::vector<std::unique_ptr<Rule>> rules_;
    Device device_;
    Tensor steps_all_;           // (groups,) i64 on the parameters' device; advanced by one launch
    std::vector<Tensor> steps_;  // per group, (1,) i64 views of steps_all_
};

}  // namespace lumen::optim
