// training/train_keys_optim.cpp: the [optim] section of ./train's keys (specs/optimizers.md §§3–9):
// the optimizer, the hyper-parameters each optimizer reads, their per-optimizer defaults, and
// optim_config_defaults.
#include "training/train_keys.h"

#include <algorithm>

namespace lumen::training {

namespace keys {

bool reads(const OptimField& f, Kind k) {
    return f.kinds.empty() || std::find(f.kinds.begin(), f.kinds.end(), k) != f.kinds.end();
}

std::string per_kind_default_text(const Key& key, const OptimField& f) {
    std::vector<std::pair<std::string, std::string>> groups;  // value, kinds
    for (Kind k : kKinds) {
        if (!reads(f, k)) continue;
        const OptimConfig d = optim_config_defaults(k);
        const std::string v = format_value(key, f.get(d));
        auto it = std::find_if(groups.begin(), groups.end(), [&](const auto& g) { return g.first == v; });
        if (it == groups.end()) groups.emplace_back(v, std::string(optim::kind_name(k)));
        else it->second += ", " + std::string(optim::kind_name(k));
    }
    if (groups.size() == 1 && f.kinds.empty()) return groups[0].first;
    std::string s;
    for (const auto& [v, ks] : groups) s += (s.empty() ? "" : ", ") + fmt::format("{} ({})", v, ks);
    return s;
}

namespace {

std::string kinds_text(const std::vector<Kind>& kinds) {
    std::string s;
    for (Kind k : kinds) s += (s.empty() ? "" : " | ") + std::string(optim::kind_name(k));
    return s;
}

void add_optim_key(Registry& r, Key key, OptimField f) {
    key.default_fn = [get = f.get](const Config& c) { return get(optim_config_defaults(kind_of(c))); };
    if (!f.kinds.empty())
        key.inactive = [f](const Config& c) {
            const Kind k = kind_of(c);
            if (reads(f, k)) return std::string();
            return fmt::format("read only when optim.optimizer = {}; it is {}", kinds_text(f.kinds),
                               optim::kind_name(k));
        };
    key.default_text = per_kind_default_text(key, f);
    r.bindings[key.name] = {[put = f.put](TrainConfig& c, const Value& v) { put(c.optim, v); },
                            [get = f.get](const TrainConfig& c) { return get(c.optim); }};
    r.schema.add(std::move(key));
}

// A real field of the main group's Hyper, or of the auxiliary AdamW's under muon when `aux_under_muon`.
OptimField hyper_real(double optim::Hyper::*member, std::vector<Kind> kinds, bool aux_under_muon = false) {
    auto pick = [member, aux_under_muon](auto& o) -> auto& {
        return (aux_under_muon && o.groups.kind == Kind::muon) ? o.groups.aux_adamw.*member : o.groups.main.*member;
    };
    return {std::move(kinds), [pick](const OptimConfig& o) -> Value { return pick(o); },
            [pick](OptimConfig& o, const Value& v) { pick(o) = std::get<double>(v); }};
}
OptimField hyper_int(int64_t optim::Hyper::*member, std::vector<Kind> kinds) {
    return {std::move(kinds), [member](const OptimConfig& o) -> Value { return o.groups.main.*member; },
            [member](OptimConfig& o, const Value& v) { o.groups.main.*member = std::get<int64_t>(v); }};
}
OptimField hyper_bool(bool optim::Hyper::*member, std::vector<Kind> kinds) {
    return {std::move(kinds), [member](const OptimConfig& o) -> Value { return o.groups.main.*member; },
            [member](OptimConfig& o, const Value& v) { o.groups.main.*member = std::get<bool>(v); }};
}

}  // namespace

void add_optim_keys(Registry& r) {
    const std::vector<Kind> adam_like = {Kind::adamw, Kind::adamw8bit, Kind::muon};
    r.schema.add_section("optim", "the optimizer and its hyper-parameters (specs/optimizers.md)");
    {
        Key k = make("optim.optimizer", KeyType::choice, std::string("adamw"),
                     "the update rule; the other optim keys and learning_rate default per optimizer");
        for (Kind kind : kKinds) k.choices.emplace_back(optim::kind_name(kind));
        r.bindings[k.name] = {[](TrainConfig& c, const Value& v) {
                                  c.optim = optim_config_defaults(*optim::kind_from_name(std::get<std::string>(v)));
                              },
                              [](const TrainConfig& c) -> Value { return std::string(optim::kind_name(c.optim.kind())); }};
        r.schema.add(std::move(k));
    }
    {
        Key k = make("optim.weight_decay", KeyType::real, 0.0,
                     "decoupled weight decay lr_t·wd (SGD: L2) of the decayed group (Muon: its Muon group)");
        k.check = real_at_least(0);
        add_optim_key(r, std::move(k), hyper_real(&optim::Hyper::weight_decay, {}));
    }
    {
        Key k = make("optim.beta1", KeyType::real, 0.0,
                     "first-moment decay (Muon: its auxiliary AdamW's; Adafactor: none = no momentum)");
        k.words = {{"none", kNaN}};
        OptimField f = hyper_real(&optim::Hyper::beta1,
                                  {Kind::adamw, Kind::adamw8bit, Kind::lion, Kind::adafactor, Kind::sophia, Kind::muon},
                                  true);
        // Adafactor: none <-> use_beta1 = false.
        f.get = [get = f.get](const OptimConfig& o) -> Value {
            if (o.kind() == Kind::adafactor) return o.groups.main.use_beta1 ? o.groups.main.beta1 : kNaN;
            return get(o);
        };
        f.put = [put = f.put](OptimConfig& o, const Value& v) {
            if (o.kind() == Kind::adafactor) {
                o.groups.main.use_beta1 = !std::isnan(std::get<double>(v));
                if (o.groups.main.use_beta1) o.groups.main.beta1 = std::get<double>(v);
                return;
            }
            put(o, v);
        };
        add_optim_key(r, std::move(k), std::move(f));
    }
    {
        Key k = make("optim.beta2", KeyType::real, 0.0, "second-moment decay (Lion: its momentum; Muon: the auxiliary AdamW's)");
        add_optim_key(r, std::move(k),
                      hyper_real(&optim::Hyper::beta2,
                                 {Kind::adamw, Kind::adamw8bit, Kind::lion, Kind::sophia, Kind::muon}, true));
    }
    {
        Key k = make("optim.eps", KeyType::real, 0.0, "AdamW's denominator epsilon (Muon: the auxiliary AdamW's)");
        add_optim_key(r, std::move(k), hyper_real(&optim::Hyper::eps, adam_like, true));
    }
    {
        Key k = make("optim.grad_clip", KeyType::real, 0.0, "clip the global gradient L2 norm to this; 0 = no clipping");
        k.check = real_at_least(0);
        add_optim_key(r, std::move(k),
                      {{},
                       [](const OptimConfig& o) -> Value { return o.grad_clip; },
                       [](OptimConfig& o, const Value& v) { o.grad_clip = std::get<double>(v); }});
    }
    {
        Key k = make("optim.decay_embeddings", KeyType::boolean, true,
                     "decay wte/wpe (and a tied lm_head); false = the older minGPT grouping");
        add_optim_key(r, std::move(k),
                      {{},
                       [](const OptimConfig& o) -> Value { return o.groups.decay_embeddings; },
                       [](OptimConfig& o, const Value& v) { o.groups.decay_embeddings = std::get<bool>(v); }});
    }
    // 8-bit AdamW
    {
        Key k = make("optim.min_8bit_size", KeyType::integer, int64_t(0), "tensors with fewer elements keep f32 state");
        k.check = int_at_least(0);
        add_optim_key(r, std::move(k), hyper_int(&optim::Hyper::min_8bit_size, {Kind::adamw8bit}));
    }
    {
        Key k = make("optim.embed_fp32_state", KeyType::boolean, false, "embeddings keep f32 optimizer state");
        add_optim_key(r, std::move(k), hyper_bool(&optim::Hyper::embed_fp32_state, {Kind::adamw8bit}));
    }
    // Adafactor
    {
        Key k = make("optim.relative_step", KeyType::boolean, false,
                     "Adafactor's own step size ρ = min(1e-2, 1/sqrt(t)); then learning_rate and min_lr are not read");
        add_optim_key(r, std::move(k), hyper_bool(&optim::Hyper::relative_step, {Kind::adafactor}));
    }
    {
        Key k = make("optim.scale_parameter", KeyType::boolean, false, "scale the step by RMS(p)");
        add_optim_key(r, std::move(k), hyper_bool(&optim::Hyper::scale_parameter, {Kind::adafactor}));
    }
    {
        Key k = make("optim.warmup_init", KeyType::boolean, false, "relative step warm-up 1e-6·t (needs relative_step)");
        add_optim_key(r, std::move(k), hyper_bool(&optim::Hyper::warmup_init, {Kind::adafactor}));
    }
    for (auto [name, member, help] :
         {std::tuple{"optim.eps1", &optim::Hyper::eps1, "added to g² before averaging"},
          std::tuple{"optim.eps2", &optim::Hyper::eps2, "floor of RMS(p) under scale_parameter"},
          std::tuple{"optim.clip_threshold", &optim::Hyper::clip_threshold, "update clipping: RMS(U) ≤ this"},
          std::tuple{"optim.decay_rate", &optim::Hyper::decay_rate, "second-moment decay exponent: b = 1 − t^decay_rate"}}) {
        add_optim_key(r, make(name, KeyType::real, 0.0, help), hyper_real(member, {Kind::adafactor}));
    }
    // SophiaG
    {
        Key k = make("optim.rho", KeyType::real, 0.0, "SophiaG's clipping scale ρ (tune for a win rate of 0.1–0.5)");
        add_optim_key(r, std::move(k), hyper_real(&optim::Hyper::rho, {Kind::sophia}));
    }
    {
        Key k = make("optim.hess_interval", KeyType::integer, int64_t(0), "run the Hessian hook every k iterations");
        k.check = int_at_least(1);
        add_optim_key(r, std::move(k), hyper_int(&optim::Hyper::hess_interval, {Kind::sophia}));
    }
    // Muon and SGD
    {
        Key k = make("optim.momentum", KeyType::real, 0.0, "momentum μ");
        add_optim_key(r, std::move(k), hyper_real(&optim::Hyper::momentum, {Kind::muon, Kind::sgd}));
    }
    {
        Key k = make("optim.nesterov", KeyType::boolean, false, "Nesterov momentum");
        add_optim_key(r, std::move(k), hyper_bool(&optim::Hyper::nesterov, {Kind::muon, Kind::sgd}));
    }
    {
        Key k = make("optim.dampening", KeyType::real, 0.0, "SGD's momentum dampening τ");
        add_optim_key(r, std::move(k), hyper_real(&optim::Hyper::dampening, {Kind::sgd}));
    }
    {
        Key k = make("optim.ns_steps", KeyType::integer, int64_t(0), "Newton–Schulz iterations");
        add_optim_key(r, std::move(k), hyper_int(&optim::Hyper::ns_steps, {Kind::muon}));
    }
    {
        Key k = make("optim.muon_scale", KeyType::choice, std::string("original"),
                     "update scale: sqrt(max(1, rows/cols)) or 0.2·sqrt(max(rows, cols))");
        k.choices = {"original", "match_rms_adamw"};
        add_optim_key(r, std::move(k),
                      {{Kind::muon},
                       [](const OptimConfig& o) -> Value {
                           return std::string(o.groups.main.muon_scale == optim::MuonScale::original ? "original"
                                                                                                     : "match_rms_adamw");
                       },
                       [](OptimConfig& o, const Value& v) {
                           o.groups.main.muon_scale = std::get<std::string>(v) == "original"
                                                          ? optim::MuonScale::original
                                                          : optim::MuonScale::match_rms_adamw;
                       }});
    }
    {
        Key k = make("optim.adamw_lr", KeyType::real, 0.0,
                     "peak rate of Muon's auxiliary AdamW (embeddings, head, vectors); follows the schedule's shape");
        k.check = real_at_least(0);
        add_optim_key(r, std::move(k),
                      {{Kind::muon},
                       [](const OptimConfig& o) -> Value { return o.groups.aux_adamw.lr; },
                       [](OptimConfig& o, const Value& v) { o.groups.aux_adamw.lr = std::get<double>(v); }});
    }
    {
        Key k = make("optim.adamw_weight_decay", KeyType::real, 0.0, "weight decay of Muon's auxiliary AdamW");
        k.check = real_at_least(0);
        add_optim_key(r, std::move(k),
                      {{Kind::muon},
                       [](const OptimConfig& o) -> Value { return o.groups.aux_adamw.weight_decay; },
                       [](OptimConfig& o, const Value& v) { o.groups.aux_adamw.weight_decay = std::get<double>(v); }});
    }
}

}  // namespace keys

using keys::kNaN;
using optim::Kind;

OptimConfig optim_config_defaults(Kind kind) {
    OptimConfig c;
    c.groups.kind = kind;
    c.groups.main = optim::api_defaults(kind);
    c.groups.decay_embeddings = true;
    c.grad_clip = 1.0;
    optim::Hyper& h = c.groups.main;
    switch (kind) {
    case Kind::adamw:  // NG train.py
    case Kind::adamw8bit:  // AdamW's, "no hyperparameter tuning is required" (bnb)
        h.lr = 6e-4, h.beta1 = 0.9, h.beta2 = 0.95, h.eps = 1e-8, h.weight_decay = 0.1;
        if (kind == Kind::adamw8bit) h.min_8bit_size = 4096, h.embed_fp32_state = false;
        break;
    case Kind::lion:  // Sophia README's GPT-2 125M pair; Lion README's LLM betas; wd keeps lr·wd = 6e-5
        h.lr = 1e-4, h.beta1 = 0.95, h.beta2 = 0.98, h.weight_decay = 0.6;
        break;
    case Kind::adafactor:  // HF docstring's external-lr setting at AdamW's lr, no separate clipping
        h.lr = 6e-4, h.relative_step = false, h.scale_parameter = false, h.warmup_init = false;
        h.eps1 = 1e-30, h.eps2 = 1e-3, h.clip_threshold = 1.0, h.decay_rate = -0.8;
        h.use_beta1 = false, h.weight_decay = 0.1;
        c.grad_clip = 0.0;
        break;
    case Kind::sophia:  // Liuhong99/Sophia config/train_gpt2_small_sophiag.py
        h.lr = 6e-4, h.beta1 = 0.965, h.beta2 = 0.99, h.rho = 0.05, h.weight_decay = 0.2, h.hess_interval = 10;
        break;
    case Kind::muon:  // KellerJordan/Muon README example
        h.lr = 0.02, h.weight_decay = 0.01, h.momentum = 0.95, h.nesterov = true, h.ns_steps = 5;
        h.muon_scale = optim::MuonScale::original;
        c.groups.aux_adamw = optim::muon_aux_adamw_api_defaults();
        c.groups.aux_adamw.weight_decay = 0.01;
        break;
    case Kind::sgd:  // no sourced GPT recipe: learning_rate is required
        h.lr = kNaN, h.momentum = 0.9, h.nesterov = true, h.dampening = 0.0, h.weight_decay = 0.0;
        break;
    }
    return c;
}

}  // namespace lumen::training
