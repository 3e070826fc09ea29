// optim/optimizer.cpp: kind names, API defaults and validation for every kind (specs/optimizers.md
// §§3–9), the rule registry, and Optimizer: construction (G5 and parameter checks, state and step
// counters), the step (every rule, then the counters advance on the device by (bad == 0)), state
// save/load and the report (§11).
#include "optim/optimizer.h"

#include "core/dispatch.h"
#include "optim/clip.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>
#include <cctype>
#include <cmath>
#include <limits>
#include <set>

namespace lumen::optim {

// ---------------------------------------------------------------- kinds and defaults

namespace {
constexpr std::pair<Kind, std::string_view> kKindNames[] = {
    {Kind::adamw, "adamw"},         {Kind::lion, "lion"},   {Kind::adamw8bit, "adamw8bit"},
    {Kind::adafactor, "adafactor"}, {Kind::sophia, "sophia"}, {Kind::muon, "muon"},
    {Kind::sgd, "sgd"},
};
}  // namespace

std::string_view kind_name(Kind k) {
    for (const auto& [kind, name] : kKindNames)
        if (kind == k) return name;
    return "?";
}

std::optional<Kind> kind_from_name(std::string_view name) {
    for (const auto& [kind, n] : kKindNames)
        if (n == name) return kind;
    return std::nullopt;
}

Hyper api_defaults(Kind kind) {
    Hyper h;
    switch (kind) {
    case Kind::adamw:  // torch.optim.AdamW
        h.lr = 1e-3, h.beta1 = 0.9, h.beta2 = 0.999, h.eps = 1e-8, h.weight_decay = 0.01;
        break;
    case Kind::lion:  // google/automl, lucidrains
        h.lr = 1e-4, h.beta1 = 0.9, h.beta2 = 0.99, h.weight_decay = 0.0;
        break;
    case Kind::adamw8bit:  // bnb AdamW8bit
        h.lr = 1e-3, h.beta1 = 0.9, h.beta2 = 0.999, h.eps = 1e-8, h.weight_decay = 1e-2;
        h.min_8bit_size = 4096, h.embed_fp32_state = false;
        break;
    case Kind::adafactor:  // HF: lr None, relative_step, scale_parameter
        h.lr = std::numeric_limits<double>::quiet_NaN();
        h.relative_step = true, h.scale_parameter = true, h.warmup_init = false;
        h.eps1 = 1e-30, h.eps2 = 1e-3, h.clip_threshold = 1.0, h.decay_rate = -0.8;
        h.use_beta1 = false, h.weight_decay = 0.0;
        break;
    case Kind::sophia:  // Liuhong99/Sophia sophia.py
        h.lr = 1e-4, h.beta1 = 0.965, h.beta2 = 0.99, h.rho = 0.04, h.weight_decay = 0.1;
        h.tokens_per_step = 5120, h.hess_interval = 10;
        break;
    case Kind::muon:  // KellerJordan/Muon muon.py
        h.lr = 0.02, h.weight_decay = 0.0, h.momentum = 0.95, h.nesterov = true;
        h.ns_steps = 5, h.muon_scale = MuonScale::original;
        break;
    case Kind::sgd:  // torch.optim.SGD
        h.lr = 1e-3, h.momentum = 0.0, h.dampening = 0.0, h.weight_decay = 0.0, h.nesterov = false;
        break;
    }
    return h;
}

Hyper muon_aux_adamw_api_defaults() {
    Hyper h = api_defaults(Kind::adamw);
    h.lr = 3e-4, h.beta1 = 0.9, h.beta2 = 0.95, h.eps = 1e-10, h.weight_decay = 0.0;
    return h;
}

// ---------------------------------------------------------------- validation

namespace {

// Checks one kind's keys; each failure names the kind, the key, the value and the accepted range.
struct Validator {
    Kind kind;

    [[noreturn]] void reject(std::string_view key, std::string_view value, std::string_view accepted) const {
        fail(fmt::format("optimizer {}", kind_name(kind)),
             fmt::format("{} = {} is out of range: accepted {}", key, value, accepted));
    }
    void require(bool ok, std::string_view key, double value, std::string_view accepted) const {
        if (!ok) reject(key, fmt::format("{}", value), accepted);
    }
    void learning_rate(double lr) const {
        require(std::isfinite(lr) && lr >= 0, "learning_rate", lr, "finite, >= 0");
    }
    void unit(std::string_view key, double v) const {  // [0, 1)
        require(v >= 0 && v < 1, key, v, "[0, 1)");
    }
    void non_negative(std::string_view key, double v) const {
        require(std::isfinite(v) && v >= 0, key, v, "finite, >= 0");
    }
    void positive(std::string_view key, double v) const {
        require(std::isfinite(v) && v > 0, key, v, "finite, > 0");
    }
    void decay(double lr, double wd) const {  // wd >= 0 and lr·wd < 1 (the decay factor stays positive)
        non_negative("weight_decay", wd);
        if (!(lr * wd < 1))
            reject("weight_decay", fmt::format("{}", wd),
                   fmt::format(">= 0 with learning_rate·weight_decay < 1 (learning_rate = {}: {})", lr, lr * wd));
    }
    void adamw(const Hyper& h) const {
        learning_rate(h.lr);
        unit("beta1", h.beta1);
        unit("beta2", h.beta2);
        positive("eps", h.eps);
        decay(h.lr, h.weight_decay);
    }
};

}  // namespace

void validate(Kind kind, const Hyper& h) {
    const Validator v{kind};
    switch (kind) {
    case Kind::adamw:
        v.adamw(h);
        break;
    case Kind::lion:
        v.learning_rate(h.lr);
        v.unit("beta1", h.beta1);
        v.unit("beta2", h.beta2);
        v.decay(h.lr, h.weight_decay);
        break;
    case Kind::adamw8bit:
        v.adamw(h);
        v.require(h.min_8bit_size >= 0, "min_8bit_size", double(h.min_8bit_size), "an integer >= 0");
        break;
    case Kind::adafactor:
        if (h.relative_step) {
            if (!std::isnan(h.lr))
                v.reject("learning_rate", fmt::format("{}", h.lr),
                         "unset when relative_step = true (the step size is relative; HF raises)");
        } else {
            if (std::isnan(h.lr)) v.reject("learning_rate", "unset", "required when relative_step = false");
            v.learning_rate(h.lr);
        }
        if (h.warmup_init && !h.relative_step)
            v.reject("warmup_init", "true", "true only with relative_step = true (HF raises)");
        v.positive("eps1", h.eps1);
        v.non_negative("eps2", h.eps2);
        v.positive("clip_threshold", h.clip_threshold);
        v.require(h.decay_rate >= -1 && h.decay_rate < 0, "decay_rate", h.decay_rate, "[-1, 0)");
        if (h.use_beta1) v.unit("beta1", h.beta1);
        v.non_negative("weight_decay", h.weight_decay);
        break;
    case Kind::sophia:
        v.learning_rate(h.lr);
        v.unit("beta1", h.beta1);
        v.unit("beta2", h.beta2);
        v.positive("rho", h.rho);
        v.non_negative("weight_decay", h.weight_decay);
        v.require(h.hess_interval >= 1, "hess_interval", double(h.hess_interval), "an integer >= 1");
        v.positive("tokens_per_step", h.tokens_per_step);
        break;
    case Kind::muon:
        v.learning_rate(h.lr);
        v.decay(h.lr, h.weight_decay);
        v.unit("momentum", h.momentum);
        v.require(h.ns_steps >= 1 && h.ns_steps <= 20, "ns_steps", double(h.ns_steps), "an integer in [1, 20]");
        if (h.muon_scale != MuonScale::original && h.muon_scale != MuonScale::match_rms_adamw)
            v.reject("muon_scale", fmt::format("{}", int(h.muon_scale)), "original | match_rms_adamw");
        break;
    case Kind::sgd:
        v.learning_rate(h.lr);
        v.unit("momentum", h.momentum);
        v.require(h.dampening >= 0 && h.dampening <= 1, "dampening", h.dampening, "[0, 1]");
        v.non_negative("weight_decay", h.weight_decay);
        if (h.nesterov && !(h.momentum > 0 && h.dampening == 0))
            v.reject("nesterov", "true",
                     fmt::format("true only with momentum > 0 and dampening = 0 (momentum = {}, dampening = {})",
                                 h.momentum, h.dampening));
        break;
    }
}

// ---------------------------------------------------------------- registry and helpers

namespace {
std::map<Kind, RuleFactory>& registry() {
    static std::map<Kind, RuleFactory> factories;
    return factories;
}

bool all_finite(const Tensor& t) {
    if (!is_floating(t.dtype())) return true;
    for (double x : t.to_vector<double>())
        if (!std::isfinite(x)) return false;
    return true;
}
}  // namespace

bool register_rule(Kind kind, RuleFactory factory) {
    registry()[kind] = std::move(factory);
    return true;
}

HostStepScalars host_step_scalars(const StepInputs& in, const Tensor& t_before) {
    const float* f = in.flags.data<float>();
    return {f[1] != 0.0f, f[0], t_before.data<int64_t>()[0] + 1};
}

void load_state_tensor(const std::map<std::string, Tensor>& tensors, const std::string& name, Tensor& dst) {
    const auto it = tensors.find(name);
    check(it != tensors.end(), "load_state", fmt::format("the state has no tensor {}", name));
    const Tensor& src = it->second;
    check(src.defined() && src.shape() == dst.shape() && src.dtype() == dst.dtype(), "load_state",
          fmt::format("tensor {} has the wrong shape or dtype (expected {})", name, describe(dst)), {{name, src}});
    check(all_finite(src), "load_state", fmt::format("tensor {} holds a non-finite value", name), {{name, src}});
    dst.copy_(src);
}

void check_one_group_each(const std::vector<Group>& groups, const std::vector<nn::Parameter>& model) {
    std::map<const TensorImpl*, std::string> in_group;  // parameter -> its group's label
    for (const Group& g : groups)
        for (const nn::Parameter& p : g.params) {
            const auto [it, fresh] = in_group.emplace(&p.tensor.impl(), g.label);
            check(fresh, "optimizer groups",
                  fmt::format("parameter {} is in two groups ({} and {})", p.name, it->second, g.label));
        }
    std::set<const TensorImpl*> in_model;
    for (const nn::Parameter& p : model) {
        in_model.insert(&p.tensor.impl());
        const bool grouped = in_group.count(&p.tensor.impl()) > 0;
        if (p.tensor.requires_grad())
            check(grouped, "optimizer groups", fmt::format("parameter {} is in no group", p.name));
        else
            check(!grouped, "optimizer groups",
                  fmt::format("parameter {} is frozen (requires_grad = false) but in group {}", p.name,
                              in_group[&p.tensor.impl()]));
    }
    for (const Group& g : groups)
        for (const nn::Parameter& p : g.params)
            check(in_model.count(&p.tensor.impl()) > 0, "optimizer groups",
                  fmt::format("parameter {} of group {} is not a parameter of the model", p.name, g.label));
}

// ---------------------------------------------------------------- Optimizer

Optimizer::Optimizer(std::vector<Group> groups) : groups_(std::move(groups)) {
    check(!groups_.empty(), "Optimizer", "no parameter groups");
    std::map<const TensorImpl*, std::string> owner;  // parameter -> "group i (label)"
    std::map<std::string, const TensorImpl*> by_name;
    bool have_device = false;
    for (size_t gi = 0; gi < groups_.size(); ++gi) {
        const Group& g = groups_[gi];
        const std::string where = fmt::format("group {} ({})", gi, g.label);
        try {
            validate(g.kind, g.hyper);
        } catch (const Error& e) {
            throw Error(fmt::format("{}: {}", where, e.what()));
        }
        check(registry().count(g.kind) > 0, "Optimizer",
              fmt::format("{}: no update rule is registered for kind {}", where, kind_name(g.kind)));
        for (const nn::Parameter& p : g.params) {
            check(p.tensor.defined(), "Optimizer", fmt::format("parameter {} of {} is undefined", p.name, where));
            const auto [it, fresh] = owner.emplace(&p.tensor.impl(), where);
            check(fresh, "Optimizer",
                  fmt::format("parameter {} is in more than one group ({} and {}); each parameter belongs to "
                              "exactly one",
                              p.name, it->second, where));
            const auto [nit, fresh_name] = by_name.emplace(p.name, &p.tensor.impl());
            check(fresh_name, "Optimizer", fmt::format("two parameters are named {}", p.name));
            check(p.tensor.requires_grad(), "Optimizer",
                  fmt::format("parameter {} is frozen (requires_grad = false): a frozen parameter belongs to no "
                              "group",
                              p.name));
            check(p.tensor.dtype() == DType::f32 && p.tensor.is_contiguous(), "Optimizer",
                  fmt::format("parameter {} must be a contiguous f32 tensor (the master weights)", p.name),
                  {{p.name, p.tensor}});
            if (!have_device) device_ = p.tensor.device(), have_device = true;
            check(p.tensor.device() == device_, "Optimizer",
                  fmt::format("parameter {} is on {}, the others on {}", p.name, p.tensor.device().str(),
                              device_.str()));
        }
    }
    check(have_device, "Optimizer", "the groups hold no parameters");
    for (Group& g : groups_) rules_.push_back(registry().at(g.kind)(g));
    steps_all_ = Tensor::zeros({int64_t(groups_.size())}, DType::i64, device_);
    for (size_t gi = 0; gi < groups_.size(); ++gi)
        steps_.push_back(steps_all_.slice(0, int64_t(gi), int64_t(gi) + 1));
}

std::vector<nn::Parameter> Optimizer::parameters() const {
    std::vector<nn::Parameter> out;
    for (const Group& g : groups_) out.insert(out.end(), g.params.begin(), g.params.end());
    return out;
}

int64_t Optimizer::num_params() const {
    int64_t n = 0;
    for (const Group& g : groups_)
        for (const nn::Parameter& p : g.params) n += p.tensor.numel();
    return n;
}

std::string Optimizer::name() const {
    std::vector<std::string_view> kinds;
    for (const Group& g : groups_)
        if (std::find(kinds.begin(), kinds.end(), kind_name(g.kind)) == kinds.end()) kinds.push_back(kind_name(g.kind));
    return fmt::format("{}", fmt::join(kinds, "+"));
}

void Optimizer::step(const StepInputs& in) {
    check(in.flags.defined() && in.flags.dtype() == DType::f32 && in.flags.numel() >= 2 &&
              in.flags.device() == device_,
          "Optimizer::step", fmt::format("flags must be [γ, bad, ...]: f32, >= 2 elements, on {}", device_.str()),
          {{"flags", in.flags}});
    check(std::isfinite(in.lr_scale) && in.lr_scale >= 0, "Optimizer::step",
          fmt::format("lr_scale = {} must be finite and >= 0", in.lr_scale));
    const StepInputs local{in.lr_scale, in.flags.is_contiguous() ? in.flags : in.flags.contiguous()};
    // Every parameter steps every step (§1): a missing gradient is zeros.
    for (const Group& g : groups_)
        for (const nn::Parameter& p : g.params) {
            Tensor grad = p.tensor.grad();
            if (!grad.defined()) {
                p.tensor.set_grad(Tensor::zeros(p.tensor.shape(), DType::f32, device_));
                continue;
            }
            check(grad.dtype() == DType::f32 && grad.device() == device_, "Optimizer::step",
                  fmt::format("the gradient of {} must be f32 on {}", p.name, device_.str()), {{"grad", grad}});
            if (!grad.is_contiguous()) p.tensor.set_grad(grad.contiguous());
        }
    for (size_t gi = 0; gi < groups_.size(); ++gi) rules_[gi]->step(local, steps_[gi]);
    if (device_.is_cpu()) {
        if (local.flags.data<float>()[1] == 0.0f)
            for (int64_t gi = 0; gi < steps_all_.numel(); ++gi) steps_all_.data<int64_t>()[gi] += 1;
    } else {
#ifdef LUMEN_WITH_CUDA
        cuda::advance_step_counts(steps_all_, local.flags);
#else
        missing_cuda_kernel("advance_step_counts");
#endif
    }
}

void Optimizer::step(double lr_scale) {
    step({lr_scale, clip_flags(parameters(), 0.0)});
}

void Optimizer::zero_grad() {
    for (const Group& g : groups_)
        for (const nn::Parameter& p : g.params) {
            Tensor grad = p.tensor.grad();
            if (grad.defined()) grad.fill_(0.0);
        }
}

int64_t Optimizer::step_count(size_t group) const {
    check(group < steps_.size(), "step_count", fmt::format("no group {} ({} groups)", group, steps_.size()));
    return steps_[group].to_vector<int64_t>()[0];
}

namespace {

nlohmann::json hyper_json(const Hyper& h) {
    nlohmann::json j;
    j["learning_rate"] = h.lr;
    j["beta1"] = h.beta1, j["beta2"] = h.beta2, j["eps"] = h.eps, j["weight_decay"] = h.weight_decay;
    j["momentum"] = h.momentum, j["dampening"] = h.dampening, j["nesterov"] = h.nesterov;
    j["min_8bit_size"] = h.min_8bit_size, j["embed_fp32_state"] = h.embed_fp32_state;
    j["use_beta1"] = h.use_beta1, j["relative_step"] = h.relative_step;
    j["scale_parameter"] = h.scale_parameter, j["warmup_init"] = h.warmup_init;
    j["eps1"] = h.eps1, j["eps2"] = h.eps2, j["clip_threshold"] = h.clip_threshold;
    j["decay_rate"] = h.decay_rate;
    j["rho"] = h.rho, j["tokens_per_step"] = h.tokens_per_step, j["hess_interval"] = h.hess_interval;
    j["ns_steps"] = h.ns_steps;
    j["muon_scale"] = h.muon_scale == MuonScale::original ? "original" : "match_rms_adamw";
    j["ns_f32"] = h.ns_f32;
    return j;
}

}  // namespace

StateDict Optimizer::state_dict() const {
    StateDict out;
    std::set<std::string> names;
    for (const auto& rule : rules_)
        for (const auto& [name, tensor] : rule->state())
            if (names.insert(name).second) out.tensors.emplace_back(name, tensor.clone());  // a snapshot
    std::vector<int64_t> group_steps = steps_all_.to_vector<int64_t>();
    nlohmann::json groups = nlohmann::json::array();
    for (const Group& g : groups_)
        groups.push_back({{"label", g.label},
                          {"kind", kind_name(g.kind)},
                          {"tensors", g.params.size()},
                          {"hyper", hyper_json(g.hyper)}});
    out.meta["lumen_optimizer"] = name();
    out.meta["step"] = group_steps.empty() ? 0 : *std::max_element(group_steps.begin(), group_steps.end());
    out.meta["group_steps"] = group_steps;
    out.meta["groups"] = groups;
    return out;
}

void Optimizer::load_state_dict(const StateDict& state) {
    const nlohmann::json& meta = state.meta;
    check(meta.is_object() && meta.contains("lumen_optimizer") && meta.contains("group_steps") &&
              meta.contains("groups"),
          "load_state_dict", "the metadata lacks lumen_optimizer, group_steps or groups");
    const std::string saved = meta["lumen_optimizer"].get<std::string>();
    check(saved == name(), "load_state_dict",
          fmt::format("the state is for optimizer {}, this optimizer is {}", saved, name()));
    const nlohmann::json& groups = meta["groups"];
    const nlohmann::json& group_steps = meta["group_steps"];
    check(groups.is_array() && groups.size() == groups_.size() && group_steps.is_array() &&
              group_steps.size() == groups_.size(),
          "load_state_dict",
          fmt::format("the state has {} groups and {} group_steps, this optimizer {} groups",
                      groups.is_array() ? groups.size() : 0, group_steps.is_array() ? group_steps.size() : 0,
                      groups_.size()));
    std::vector<int64_t> steps;
    for (size_t gi = 0; gi < groups_.size(); ++gi) {
        const std::string kind = groups[gi].value("kind", std::string());
        check(kind == kind_name(groups_[gi].kind), "load_state_dict",
              fmt::format("group {} ({}) is {} in the state but {} here", gi, groups_[gi].label, kind,
                          kind_name(groups_[gi].kind)));
        check(group_steps[gi].is_number_integer() && group_steps[gi].get<int64_t>() >= 0, "load_state_dict",
              fmt::format("group_steps[{}] is not a count", gi));
        steps.push_back(group_steps[gi].get<int64_t>());
    }
    std::map<std::string, Tensor> tensors;
    for (const auto& [name, tensor] : state.tensors)
        check(tensors.emplace(name, tensor).second, "load_state_dict", fmt::format("tensor {} appears twice", name));
    // Check everything before changing anything: names, shapes, dtypes, finiteness.
    std::set<std::string> expected;
    for (const auto& rule : rules_)
        for (const auto& [name, current] : rule->state()) {
            expected.insert(name);
            const auto it = tensors.find(name);
            check(it != tensors.end(), "load_state_dict", fmt::format("the state has no tensor {}", name));
            check(it->second.defined() && it->second.shape() == current.shape() &&
                      it->second.dtype() == current.dtype(),
                  "load_state_dict", fmt::format("tensor {} has the wrong shape or dtype (expected {})", name,
                                                 describe(current)),
                  {{name, it->second}});
            check(all_finite(it->second), "load_state_dict",
                  fmt::format("tensor {} holds a non-finite value", name), {{name, it->second}});
        }
    for (const auto& [name, tensor] : tensors)
        check(expected.count(name) > 0, "load_state_dict", fmt::format("unexpected tensor {} in the state", name));
    for (const auto& rule : rules_) rule->load_state(tensors);
    steps_all_.copy_(Tensor::from(steps, {int64_t(steps.size())}, Device::cpu()));
}

int64_t Optimizer::state_bytes() const {
    int64_t total = 0;
    for (const auto& rule : rules_) total += rule->state_bytes();
    return total;
}

namespace {

std::string bytes_per_param(int64_t bytes, int64_t params) {
    return fmt::format("state {:.2f} MB = {:.3f} B/param", double(bytes) / 1e6,
                       params > 0 ? double(bytes) / double(params) : 0.0);
}

// Rules' notes "<count> <text>" with the same text add up: "98 with f32 state: numel < 4096".
std::string combined_note(const std::vector<std::string>& notes) {
    std::map<std::string, int64_t> counts;
    std::vector<std::string> order, plain;
    for (const std::string& note : notes) {
        if (note.empty()) continue;
        size_t digits = 0;
        while (digits < note.size() && std::isdigit(static_cast<unsigned char>(note[digits]))) ++digits;
        if (digits == 0 || digits >= note.size() || note[digits] != ' ') {
            if (std::find(plain.begin(), plain.end(), note) == plain.end()) plain.push_back(note);
            continue;
        }
        const std::string text = note.substr(digits + 1);
        if (!counts.count(text)) order.push_back(text);
        counts[text] += std::stoll(note.substr(0, digits));
    }
    std::vector<std::string> parts;
    for (const std::string& text : order) parts.push_back(fmt::format("{} {}", counts[text], text));
    parts.insert(parts.end(), plain.begin(), plain.end());
    return fmt::format("{}", fmt::join(parts, "; "));
}

}  // namespace

std::vector<std::string> Optimizer::report() const {
    std::vector<std::string> lines;
    int64_t tensors = 0;
    std::vector<std::string> notes;
    for (size_t gi = 0; gi < groups_.size(); ++gi) {
        tensors += int64_t(groups_[gi].params.size());
        notes.push_back(rules_[gi]->report_note());
    }
    const std::string note = combined_note(notes);
    lines.push_back(fmt::format("optimizer {}: {} group{}, {} tensors{}, {}", name(), groups_.size(),
                                groups_.size() == 1 ? "" : "s", tensors, note.empty() ? "" : " (" + note + ")",
                                bytes_per_param(state_bytes(), num_params())));
    for (size_t gi = 0; gi < groups_.size(); ++gi) {
        const Group& g = groups_[gi];
        int64_t params = 0;
        for (const nn::Parameter& p : g.params) params += p.tensor.numel();
        const std::string& gnote = notes[gi];
        lines.push_back(fmt::format("  group {} {}: {} tensors{}, {} params, lr {}, weight_decay {}, {}", g.label,
                                    kind_name(g.kind), g.params.size(), gnote.empty() ? "" : " (" + gnote + ")",
                                    params, g.hyper.lr, g.hyper.weight_decay,
                                    bytes_per_param(rules_[gi]->state_bytes(), params)));
    }
    return lines;
}

}  // namespace lumen::optim
