// nn/optical_transform.cpp: rule matching, the dry-run selection, the replacement pass and the
// histogram (specs/optical.md §7.1, §7.4).
#include "nn/optical_transform.h"

#include "core/error.h"
#include "nn/optical_linear.h"

#include <fmt/format.h>

#include <algorithm>

namespace lumen::nn {

namespace {

constexpr const char* kOp = "optical transform";

std::string rule_text(const OpticalRuleCount& r) {
    std::string s = fmt::format("`{} -> {}`", r.pattern, r.settings.empty() ? "none" : r.settings);
    if (!r.where.empty()) s += fmt::format(" ({})", r.where);
    return s;
}

// The settings set called `name`: the plan's, else the built-in defaults of "attention" and "fc".
const OpticalSettings* find_settings(const OpticalPlan& plan, const std::string& name, OpticalSettings& builtin) {
    if (auto it = plan.settings.find(name); it != plan.settings.end()) {
        builtin = it->second;
        builtin.name = name;
        return &builtin;
    }
    if (name == "attention" || name == "fc") {
        builtin = OpticalSettings{};
        builtin.name = name;
        return &builtin;
    }
    return nullptr;
}

std::string defined_sets(const OpticalPlan& plan) {
    std::vector<std::string> names = {"attention", "fc"};
    for (const auto& [name, s] : plan.settings)
        if (std::find(names.begin(), names.end(), name) == names.end()) names.push_back(name);
    std::string out;
    for (const auto& n : names) out += (out.empty() ? "" : ", ") + n;
    return out;
}

// The descendant at dotted `path` (nullptr if none).
Module* find_module(Module& root, const std::string& path) {
    Module* m = &root;
    size_t start = 0;
    while (m && start <= path.size()) {
        const size_t dot = path.find('.', start);
        m = m->child(path.substr(start, dot == std::string::npos ? std::string::npos : dot - start));
        if (dot == std::string::npos) break;
        start = dot + 1;
    }
    return m;
}

// The device of a module's first parameter (a Linear's weight; an attention module's c_attn).
Device parameter_device(const Module& m) {
    const auto ps = m.parameters();
    check(!ps.empty(), kOp, "a selected module has no parameters to take a device from");
    return ps.front().tensor.device();
}

OpticalModuleInfo describe_linear(const std::string& name, const Linear& lin) {
    OpticalModuleInfo info;
    info.name = name;
    info.kind = OpticalUnitKind::linear;
    info.d_in = lin.in_features();
    info.d_out = lin.out_features();
    for (const Parameter& p : lin.parameters())
        if (p.name == "weight") info.row_parts = p.row_parts;
    if (info.row_parts.empty()) info.row_parts = {info.d_out};
    info.parameters = lin.num_parameters();
    return info;
}

OpticalModuleInfo describe_attention(const std::string& name, const CausalSelfAttention& attn) {
    OpticalModuleInfo info;
    info.name = name;
    info.kind = OpticalUnitKind::attention;
    info.n_head = attn.n_head();
    info.n_kv_head = attn.n_kv_head();
    info.head_size = attn.head_size();
    info.d_in = info.d_out = info.n_head * info.head_size;
    return info;
}

OpticalReport plan_with(const OpticalRuleMatcher& matcher, const GPT& model) {
    OpticalReport r;
    r.implied = matcher.implied();
    r.rules = matcher.rules();
    r.total_parameters = model.num_parameters();
    // NOTE: modules() is non-const only because it hands out mutable pointers; nothing is changed here.
    for (auto& [name, m] : const_cast<GPT&>(model).modules()) {
        if (name.empty()) continue;
        OpticalModuleInfo info;
        if (dynamic_cast<const Embedding*>(m)) {
            r.always_digital.push_back(name);
            continue;
        }
        if (dynamic_cast<const Norm*>(m)) {
            r.norms.push_back(name);
            continue;
        }
        if (const auto* attn = dynamic_cast<const CausalSelfAttention*>(m)) {
            check(!attn->is_optical(), kOp,
                  fmt::format("the model is already optical ({} is an optical attention module); the transform "
                              "applies once, to a digital model",
                              name));
            info = describe_attention(name, *attn);
        } else if (const auto* lin = dynamic_cast<const Linear*>(m)) {
            check(!dynamic_cast<const OpticalLinear*>(m), kOp,
                  fmt::format("the model is already optical ({} is an OpticalLinear); the transform applies "
                              "once, to a digital model",
                              name));
            if (name == "lm_head") {  // never optical (§7.1)
                r.always_digital.insert(r.always_digital.begin(), name);
                continue;
            }
            info = describe_linear(name, *lin);
        } else {
            continue;
        }
        info.rule = matcher.match(name, info.kind);
        OpticalRuleCount& count = r.rules[info.rule];
        ++count.matched;
        const OpticalSettings* s = matcher.settings(info.rule);
        if (!s) {
            r.kept_digital.push_back(std::move(info));
            continue;
        }
        // NOTE: make_optical refuses quantile ranges for attention; refused here too, naming the rule, so
        // that the dry run reports it and apply fails before changing anything
        check(info.kind != OpticalUnitKind::attention || !s->q_quantiles, kOp,
              fmt::format("rule {} gives the attention module {} the settings set '{}', which sets q_quantiles; "
                          "optical attention takes min/max ranges only (give attention modules a set without "
                          "q_quantiles)",
                          rule_text(r.rules[info.rule]), name, s->name));
        info.settings = s->name;
        info.bypass = s->q_bypass;
        if (info.bypass) ++count.bypassed;
        (info.bypass ? r.bypassed_parameters : r.optical_parameters) += info.parameters;
        r.selected.push_back(std::move(info));
    }
    return r;
}

}  // namespace

OpticalRuleMatcher::OpticalRuleMatcher(const OpticalPlan& plan) : implied_(plan.implied()) {
    OpticalSettings s;
    if (implied_) {
        rules_ = {{"<attention modules>", "attention", "", 0, 0}, {"<other candidates>", "fc", "", 0, 0}};
        for (const auto& r : rules_) {
            find_settings(plan, r.settings, s);
            settings_.push_back(s);
            patterns_.emplace_back();
        }
        return;
    }
    for (const OpticalRule& rule : plan.rules) {
        OpticalRuleCount count{rule.pattern, rule.settings, rule.where, 0, 0};
        if (rule.settings.empty()) {
            settings_.emplace_back();
        } else {
            check(find_settings(plan, rule.settings, s) != nullptr, kOp,
                  fmt::format("rule {} names the settings set '{}', which is not defined (defined: {})",
                              rule_text(count), rule.settings, defined_sets(plan)));
            settings_.push_back(s);
        }
        if (rule.pattern == "default") {
            check(!default_, kOp,
                  fmt::format("rule {} is a second default rule (the first is {})", rule_text(count),
                              default_ ? rule_text(rules_[*default_]) : ""));
            default_ = rules_.size();
            patterns_.emplace_back();
        } else {
            try {
                patterns_.emplace_back(rule.pattern, std::regex::ECMAScript);
            } catch (const std::regex_error& e) {
                fail(kOp, fmt::format("rule {}: the pattern is not a valid regular expression ({})", rule_text(count),
                                      e.what()));
            }
        }
        rules_.push_back(std::move(count));
    }
}

size_t OpticalRuleMatcher::match(const std::string& name, OpticalUnitKind kind) const {
    if (implied_) return kind == OpticalUnitKind::attention ? 0 : 1;
    for (size_t i = 0; i < rules_.size(); ++i)
        if ((!default_ || i != *default_) && std::regex_match(name, patterns_[i])) return i;
    if (default_) return *default_;
    std::string listed;
    for (size_t i = 0; i < rules_.size(); ++i) listed += fmt::format("{}{}. {}", i ? "; " : "", i + 1, rule_text(rules_[i]));
    fail(kOp, fmt::format("module {} matches no rule and there is no default rule (rules: {}); add `default -> "
                          "SETTINGS` or `default -> none`",
                          name, listed.empty() ? "none" : listed));
}

const OpticalSettings* OpticalRuleMatcher::settings(size_t rule) const {
    return rules_.at(rule).settings.empty() ? nullptr : &settings_[rule];
}

OpticalReport plan_optical_transform(const GPT& model, const OpticalPlan& plan) {
    return plan_with(OpticalRuleMatcher(plan), model);
}

OpticalReport apply_optical_transform(GPT& model, const OpticalPlan& plan) {
    const OpticalRuleMatcher matcher(plan);
    OpticalReport r = plan_with(matcher, model);  // rule and selection errors are raised here
    // The replacements are built before the model changes (their constructors check the settings).
    std::vector<std::pair<std::string, std::shared_ptr<OpticalLinear>>> linears;
    std::vector<std::pair<const OpticalModuleInfo*, CausalSelfAttention*>> attentions;
    for (const OpticalModuleInfo& info : r.selected) {
        const OpticalSettings& s = *matcher.settings(info.rule);
        Module* m = find_module(model, info.name);
        check(m != nullptr, kOp, fmt::format("module {} is not in the model", info.name));
        if (info.kind == OpticalUnitKind::linear) {
            auto optical = std::make_shared<OpticalLinear>(static_cast<const Linear&>(*m), s, info.name);
            // NOTE: a no-op while the new buffers follow the weight's device; the parameters are the same
            // tensors, already there
            optical->to(parameter_device(*m));
            linears.emplace_back(info.name, std::move(optical));
        } else {
            attentions.emplace_back(&info, static_cast<CausalSelfAttention*>(m));
        }
    }
    for (auto& [info, attn] : attentions) {
        attn->make_optical(*matcher.settings(info->rule), info->name);
        attn->to(parameter_device(*attn));
    }
    for (auto& [name, optical] : linears) model.replace_module(name, std::move(optical));
    // The new layers take the model's data-parallel slice (GPT::set_data_parallel).
    model.set_data_parallel(model.data_parallel_rank(), model.data_parallel_world());
    return r;
}

std::string format_histogram(const OpticalReport& r) {
    int64_t attention = 0, bypassed = 0;
    for (const auto& m : r.selected) {
        attention += m.kind == OpticalUnitKind::attention;
        bypassed += m.bypass;
    }
    std::string out = fmt::format(
        "optical transform ({}): {} optical modules ({} attention, {} linear; {} bypassed), {} kept digital by none\n",
        r.implied ? "implied rules" : fmt::format("{} rules", r.rules.size()), r.selected.size(), attention,
        int64_t(r.selected.size()) - attention, bypassed, r.kept_digital.size());
    size_t pattern_width = 0, settings_width = 4;
    for (const auto& rule : r.rules) {
        pattern_width = std::max(pattern_width, rule.pattern.size());
        settings_width = std::max(settings_width, rule.settings.size());
    }
    for (size_t i = 0; i < r.rules.size(); ++i) {
        const OpticalRuleCount& rule = r.rules[i];
        out += fmt::format("  {:>2}. {:<{}} -> {:<{}}  matched {:>4}", i + 1, rule.pattern, pattern_width,
                           rule.settings.empty() ? "none" : rule.settings, settings_width, rule.matched);
        if (!rule.settings.empty()) out += fmt::format("  bypassed {}", rule.bypassed);
        out += "\n";
    }
    constexpr size_t kListed = 12;
    const auto list = [&](const std::vector<std::string>& names) { return list_names(names, kListed); };
    std::vector<std::string> kept;
    for (const auto& m : r.kept_digital) kept.push_back(m.name);
    if (!kept.empty()) out += fmt::format("  kept digital by none ({}): {}\n", kept.size(), list(kept));
    std::string always = list(r.always_digital);
    if (!r.norms.empty()) always += fmt::format("{}{} norm{}", always.empty() ? "" : ", ", r.norms.size(),
                                                r.norms.size() == 1 ? "" : "s");
    out += fmt::format("  always digital: {}\n", always.empty() ? "nothing" : always);
    const double share = r.total_parameters > 0 ? 100.0 * double(r.optical_parameters) / double(r.total_parameters) : 0;
    out += fmt::format("  optical parameters: {} of {} ({:.1f} %)", fmt::group_digits(r.optical_parameters),
                       fmt::group_digits(r.total_parameters), share);
    if (r.bypassed_parameters > 0)
        out += fmt::format(", {} more in bypassed modules", fmt::group_digits(r.bypassed_parameters));
    out += "\n";
    return out;
}

}  // namespace lumen::nn
