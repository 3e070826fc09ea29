// training/optical_config.cpp: parsing, checking and printing the [optical*] sections.
#include "training/optical_config.h"

#include "core/error.h"

#include <fmt/format.h>

#include <algorithm>
#include <charconv>
#include <cmath>
#include <limits>
#include <regex>
#include <vector>

namespace lumen::training {

namespace {

const std::vector<std::string> kPhaseKeys = {"enabled", "start_iter", "learning_rate", "warmup_iters",
                                             "reset_optimizer"};
const std::vector<std::string> kSettingsKeys = {"q_levels",    "q_lut_min", "q_quantiles", "q_smooth_factor",
                                                "q_init_seed", "q_bypass",  "dither",      "out_stats"};
const std::vector<std::string> kEnergyKeys = {
    "wavelength_nm", "photons_per_mac", "photons_per_output", "efficiency", "e_dac_pj",          "e_adc_pj",
    "e_weight_pj",   "e_mem_pj",        "weight_reuse",       "context",    "digital_fj_per_mac"};

// One entry being read: its names and where it was written, for messages.
struct Item {
    const Config::OpenEntry& e;
    std::string key;  // the last component

    [[noreturn]] void fail(const std::string& why) const {
        throw Error(fmt::format("{}: {} = {}: {}", e.where, e.name, e.text, why));
    }
    double real() const {
        const std::string& t = e.text;
        double v = 0;
        const auto [end, ec] = std::from_chars(t.data(), t.data() + t.size(), v);
        if (ec != std::errc() || end != t.data() + t.size() || !std::isfinite(v)) fail("expected a number");
        return v;
    }
    int64_t integer() const {
        const std::string& t = e.text;
        int64_t v = 0;
        const auto [end, ec] = std::from_chars(t.data(), t.data() + t.size(), v);
        if (ec != std::errc() || end != t.data() + t.size()) fail("expected an integer");
        return v;
    }
    bool boolean() const {
        if (e.text == "true" || e.text == "True") return true;
        if (e.text == "false" || e.text == "False") return false;
        fail("expected true or false");
    }
    bool is_none() const { return e.text == "none" || e.text == "None"; }
    double positive() const {
        const double v = real();
        if (!(v > 0)) fail("expected a positive number");
        return v;
    }
    double non_negative() const {
        const double v = real();
        if (!(v >= 0)) fail("expected a number >= 0");
        return v;
    }
};

[[noreturn]] void unknown(const Item& it, const std::string& section, const std::vector<std::string>& keys) {
    std::string best;
    size_t d = std::numeric_limits<size_t>::max();
    for (const std::string& k : keys)
        if (size_t e = edit_distance(it.key, k); e < d) d = e, best = k;
    throw Error(fmt::format("{}: {} is not an optical key (did you mean {}.{}?)", it.e.where, it.e.name, section, best));
}

void read_phase(const Item& it, OpticalConfig& c) {
    if (it.key == "enabled") c.enabled = it.boolean();
    else if (it.key == "start_iter") {
        c.start_iter = it.integer();
        if (c.start_iter < 0) it.fail("expected an iteration >= 0");
    } else if (it.key == "learning_rate") {
        if (!it.is_none()) c.learning_rate = it.positive();
    } else if (it.key == "warmup_iters") {
        c.warmup_iters = it.integer();
        if (c.warmup_iters < 0) it.fail("expected a count >= 0");
    } else if (it.key == "reset_optimizer") c.reset_optimizer = it.boolean();
    else unknown(it, "optical", kPhaseKeys);
}

void read_settings(const Item& it, nn::OpticalSettings& s, const std::string& section) {
    if (it.key == "q_levels") {
        s.q_levels = it.integer();
        if (s.q_levels < 2 || s.q_levels > 65536) it.fail("expected an integer in 2..65536");
    } else if (it.key == "q_lut_min") {
        if (it.is_none()) {
            s.q_lut_min.reset();
        } else {
            const double v = it.real();
            if (!(v >= 0 && v < 1)) it.fail("expected a number in [0, 1) or none");
            s.q_lut_min = v;
        }
    } else if (it.key == "q_quantiles") {
        if (it.is_none()) {
            s.q_quantiles.reset();
            return;
        }
        const size_t comma = it.e.text.find(',');
        if (comma == std::string::npos) it.fail("expected none or two quantiles \"a, b\" with 0 < a < b < 1");
        const auto number = [&](std::string t) {
            t.erase(0, t.find_first_not_of(" \t"));
            t.erase(t.find_last_not_of(" \t") + 1);
            double v = 0;
            const auto [end, ec] = std::from_chars(t.data(), t.data() + t.size(), v);
            if (t.empty() || ec != std::errc() || end != t.data() + t.size())
                it.fail("expected none or two quantiles \"a, b\" with 0 < a < b < 1");
            return v;
        };
        const double a = number(it.e.text.substr(0, comma)), b = number(it.e.text.substr(comma + 1));
        if (!(0 < a && a < b && b < 1)) it.fail("expected 0 < a < b < 1");
        s.q_quantiles = std::make_pair(a, b);
    } else if (it.key == "q_smooth_factor") {
        s.q_smooth_factor = it.real();
        if (!(s.q_smooth_factor >= 0 && s.q_smooth_factor <= 1)) it.fail("expected a number in [0, 1]");
    } else if (it.key == "q_init_seed") {
        const int64_t v = it.integer();
        if (v < 0 || v > int64_t(std::numeric_limits<uint32_t>::max())) it.fail("expected an integer in [0, 2^32)");
        s.q_init_seed = uint32_t(v);
    } else if (it.key == "q_bypass") {
        s.q_bypass = it.boolean();
    } else if (it.key == "dither") {
        if (it.e.text == "element") s.dither = nn::DitherMode::element;
        else if (it.e.text == "scalar") s.dither = nn::DitherMode::scalar;
        else it.fail("expected element or scalar");
    } else if (it.key == "out_stats") {
        if (it.e.text == "product") s.out_stats = nn::OutStats::product;
        else if (it.e.text == "quantized") s.out_stats = nn::OutStats::quantized;
        else it.fail("expected product or quantized");
    } else {
        unknown(it, section, kSettingsKeys);
    }
}

void read_energy(const Item& it, nn::EnergyParams& p) {
    if (it.key == "wavelength_nm") p.wavelength_nm = it.positive();
    else if (it.key == "photons_per_mac") p.photons_per_mac = it.positive();
    else if (it.key == "photons_per_output") p.photons_per_output = it.positive();
    else if (it.key == "efficiency") {
        p.efficiency = it.positive();
        if (p.efficiency > 1) it.fail("expected an efficiency in (0, 1]");
    } else if (it.key == "e_dac_pj") p.e_dac_pj = it.non_negative();
    else if (it.key == "e_adc_pj") p.e_adc_pj = it.non_negative();
    else if (it.key == "e_weight_pj") p.e_weight_pj = it.non_negative();
    else if (it.key == "e_mem_pj") p.e_mem_pj = it.non_negative();
    else if (it.key == "weight_reuse" || it.key == "context") {
        const int64_t v = it.integer();
        if (v < 1) it.fail("expected an integer >= 1");
        (it.key == "context" ? p.context : p.weight_reuse) = v;
    } else if (it.key == "digital_fj_per_mac") p.digital_fj_per_mac = it.positive();
    else unknown(it, "optical.energy", kEnergyKeys);
}

// "PATTERN -> SETTINGS" (SETTINGS = none keeps the module digital).
nn::OpticalRule read_rule(const Item& it) {
    const size_t arrow = it.e.text.rfind("->");
    if (arrow == std::string::npos) it.fail("expected `PATTERN -> SETTINGS` (SETTINGS a settings set or none)");
    auto trim = [](std::string t) {
        t.erase(0, t.find_first_not_of(" \t"));
        t.erase(t.find_last_not_of(" \t") + 1);
        return t;
    };
    nn::OpticalRule rule{trim(it.e.text.substr(0, arrow)), trim(it.e.text.substr(arrow + 2)),
                         fmt::format("{} ({})", it.e.where, it.e.name)};
    if (rule.pattern.empty() || rule.settings.empty())
        it.fail("expected `PATTERN -> SETTINGS` (SETTINGS a settings set or none)");
    if (rule.pattern != "default") try {
            std::regex re(rule.pattern, std::regex::ECMAScript);
        } catch (const std::regex_error& e) {
            it.fail(fmt::format("the pattern is not a valid regular expression ({})", e.what()));
        }
    if (rule.settings == "none" || rule.settings == "None") rule.settings.clear();
    return rule;
}

// Rule keys in order: numbers by value, then other names alphabetically.
bool rule_key_less(const std::string& a, const std::string& b) {
    const auto digits = [](const std::string& t) {
        return !t.empty() && std::all_of(t.begin(), t.end(), [](char c) { return c >= '0' && c <= '9'; });
    };
    const bool na = digits(a), nb = digits(b);
    if (na != nb) return na;
    if (na && a.size() != b.size()) return a.size() < b.size();
    return a < b;
}

std::string real_text(double v) { return fmt::format("{}", v); }

}  // namespace

OpticalConfig parse_optical(const Config& config) {
    OpticalConfig c;
    c.plan.settings["attention"].name = "attention";
    c.plan.settings["fc"].name = "fc";
    std::vector<std::pair<std::string, nn::OpticalRule>> rules;
    for (const Config::OpenEntry& e : config.open_entries()) {
        // e.name = "optical.KEY" | "optical.SECTION.KEY"
        const std::string rest = e.name.substr(std::string("optical.").size());
        const size_t dot = rest.rfind('.');
        const std::string section = dot == std::string::npos ? "" : rest.substr(0, dot);
        const Item it{e, dot == std::string::npos ? rest : rest.substr(dot + 1)};
        if (section.empty()) {
            read_phase(it, c);
        } else if (section == "energy") {
            read_energy(it, c.energy);
        } else if (section == "rules") {
            rules.emplace_back(it.key, read_rule(it));
        } else {
            if (section.find('.') != std::string::npos)
                throw Error(fmt::format("{}: {}: optical settings sets are one level deep ([optical.NAME])", e.where,
                                        e.name));
            nn::OpticalSettings& s = c.plan.settings[section];
            s.name = section;
            read_settings(it, s, "optical." + section);
        }
    }
    if (c.energy.photons_per_mac && c.energy.photons_per_output) {
        std::string where;
        for (const Config::OpenEntry& e : config.open_entries())
            if (e.name == "optical.energy.photons_per_mac" || e.name == "optical.energy.photons_per_output")
                where += (where.empty() ? "" : " and ") + e.name + " at " + e.where;
        throw Error(fmt::format("optical.energy: set photons_per_mac or photons_per_output, not both ({})", where));
    }
    std::stable_sort(rules.begin(), rules.end(), [](const auto& a, const auto& b) { return rule_key_less(a.first, b.first); });
    for (auto& [key, rule] : rules) {
        if (!rule.settings.empty() && !c.plan.settings.count(rule.settings)) {
            std::string defined;
            for (const auto& [name, s] : c.plan.settings) defined += (defined.empty() ? "" : ", ") + name;
            throw Error(fmt::format("{}: rule `{} -> {}` names the settings set {}, which is not defined (defined: "
                                    "{}; define [optical.{}] or use none)",
                                    rule.where, rule.pattern, rule.settings, rule.settings, defined, rule.settings));
        }
        c.plan.rules.push_back(std::move(rule));
    }
    return c;
}

std::string optical_ini(const OpticalConfig& c) {
    std::string out = "\n[optical]\n";
    out += fmt::format("enabled = {}\nstart_iter = {}\nlearning_rate = {}\nwarmup_iters = {}\nreset_optimizer = {}\n",
                       c.enabled, c.start_iter, c.learning_rate ? real_text(*c.learning_rate) : "none",
                       c.warmup_iters, c.reset_optimizer);
    for (const auto& [name, s] : c.plan.settings) {
        out += fmt::format("\n[optical.{}]\n", name);
        out += fmt::format("q_levels = {}\n", s.q_levels);
        out += fmt::format("q_lut_min = {}\n", s.q_lut_min ? real_text(*s.q_lut_min) : "none");
        out += fmt::format("q_quantiles = {}\n", s.q_quantiles ? fmt::format("\"{}, {}\"", real_text(s.q_quantiles->first),
                                                                             real_text(s.q_quantiles->second))
                                                               : "none");
        out += fmt::format("q_smooth_factor = {}\nq_init_seed = {}\nq_bypass = {}\n", real_text(s.q_smooth_factor),
                           s.q_init_seed, s.q_bypass);
        out += fmt::format("dither = {}\nout_stats = {}\n", s.dither == nn::DitherMode::element ? "element" : "scalar",
                           s.out_stats == nn::OutStats::product ? "product" : "quantized");
    }
    if (!c.plan.rules.empty()) {
        out += "\n[optical.rules]\n";
        for (size_t i = 0; i < c.plan.rules.size(); ++i)
            out += fmt::format("{} = {} -> {}\n", i + 1, c.plan.rules[i].pattern,
                               c.plan.rules[i].settings.empty() ? "none" : c.plan.rules[i].settings);
    }
    const nn::EnergyParams& p = c.energy;
    out += "\n[optical.energy]\n";
    out += fmt::format("wavelength_nm = {}\nefficiency = {}\ndigital_fj_per_mac = {}\n", real_text(p.wavelength_nm),
                       real_text(p.efficiency), real_text(p.digital_fj_per_mac));
    const auto opt = [&](const char* key, const std::optional<double>& v) {
        if (v) out += fmt::format("{} = {}\n", key, real_text(*v));
        else out += fmt::format("# {}: not set\n", key);
    };
    opt("photons_per_mac", p.photons_per_mac);
    opt("photons_per_output", p.photons_per_output);
    opt("e_dac_pj", p.e_dac_pj);
    opt("e_adc_pj", p.e_adc_pj);
    opt("e_weight_pj", p.e_weight_pj);
    opt("e_mem_pj", p.e_mem_pj);
    if (p.weight_reuse) out += fmt::format("weight_reuse = {}\n", p.weight_reuse);
    else out += "# weight_reuse: the block size\n";
    if (p.context) out += fmt::format("context = {}\n", p.context);
    else out += "# context: the block size\n";
    return out;
}

std::string optical_help() {
    return R"(
[optical]  the simulated optical transformer (specs/optical.md; README "Optical simulation")
  enabled          boolean  false  transform the model's layers (rules below) into optical ones
  start_iter       integer  0      0: optical from the start; N: train digitally, switch at iteration N
  learning_rate    real     none   the optical phase's peak rate (none: the run's schedule continues)
  warmup_iters     integer  0      the optical phase's warmup, counted from start_iter
  reset_optimizer  boolean  true   fresh optimizer state when the transform is switched on mid-run

[optical.attention], [optical.fc], [optical.NAME]  settings sets (attention and fc always exist)
  q_levels         integer  256       quantization levels, 2..65536
  q_lut_min        real     0.02004   weight-side LUT floor (fraction of the range's end), [0, 1) or none
  q_quantiles      text     none      "a, b": ranges from quantiles instead of min/max (0 < a < b < 1)
  q_smooth_factor  real     0.9       EMA weight of the old range in training, [0, 1]
  q_init_seed      integer  0         dither key (the output rounding noise), [0, 2^32)
  q_bypass         boolean  false     keep the module's digital computation (counted as bypassed)
  dither           choice   element   element (per-element Philox) | scalar (the reference's one offset per launch)
  out_stats        choice   product   output range from the pre-bias product | quantized (the reference)

[optical.rules]  ordered by key: `N = PATTERN -> SETTINGS|none`; the first pattern that fully matches a
  module's dotted name wins, then `default`; without rules attention modules use `attention` and every
  other linear layer but lm_head uses `fc`

[optical.energy]  the energy report's parameters (printed at start, and by ./bench energy CONFIG)
  wavelength_nm 1550; photons_per_mac or photons_per_output (one of them; no default); efficiency 1.0;
  e_dac_pj, e_adc_pj, e_weight_pj, e_mem_pj (no defaults); weight_reuse and context (the block size);
  digital_fj_per_mac 300
)";
}

}  // namespace lumen::training
