// nn/optical_settings.h: one settings set of the optical transform (specs/optical.md §7.2), as the
// config's [optical.attention], [optical.fc] or [optical.NAME] sections give it. Defaults are the
// reference's.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <utility>

namespace lumen::nn {

// element: per-element Philox offsets (§5, lumen's default); scalar: one offset per launch, the
// reference kernels' behaviour (compatibility).
enum class DitherMode { element, scalar };
// product: the output range follows the pre-bias accumulator; quantized: the quantized output with
// the bias (the reference, §6 row 11).
enum class OutStats { product, quantized };

struct OpticalSettings {
    std::string name = "fc";                 // the settings set's name (histogram, errors)
    int64_t q_levels = 256;                  // 2..65536
    std::optional<double> q_lut_min = 0.020040;  // [0, 1), or none: no LUT floor
    std::optional<std::pair<double, double>> q_quantiles;  // (a, b), 0 < a < b < 1; none: min/max
    double q_smooth_factor = 0.9;            // [0, 1]: EMA weight of the old range
    uint32_t q_init_seed = 0;                // dither key word 0
    bool q_bypass = false;                   // behave digitally: no statistics, no counters
    DitherMode dither = DitherMode::element;
    OutStats out_stats = OutStats::product;
};

}  // namespace lumen::nn

#include <map>
#include <vector>

namespace lumen::nn {

// One rule of [optical.rules]: a module's dotted name that fully matches `pattern` (ECMAScript) gets
// the settings set `settings`, or stays digital when `settings` is empty ("none"). pattern
// "default" is the fallback rule.
struct OpticalRule {
    std::string pattern;
    std::string settings;  // "" = none
    std::string where;     // where the rule was written ("run.cfg:40"), for messages
};

// What the transform pass applies: the settings sets by name and the ordered rules. Without rules
// (implied = true) attention modules take "attention" and the other candidates "fc" (§7.1).
struct OpticalPlan {
    std::map<std::string, OpticalSettings> settings;
    std::vector<OpticalRule> rules;
    bool implied() const { return rules.empty(); }
};

// [optical.energy] (§8.2): user parameters of the energy report; unset optionals print "not set".
struct EnergyParams {
    double wavelength_nm = 1550;
    std::optional<double> photons_per_mac, photons_per_output;  // exactly one is set for E_opt
    double efficiency = 1.0;                                     // η: detected photons per emitted
    std::optional<double> e_dac_pj, e_adc_pj, e_weight_pj, e_mem_pj;
    int64_t weight_reuse = 0;  // 0 = block_size
    int64_t context = 0;       // 0 = block_size
    double digital_fj_per_mac = 300;
};

// The optical layers' buffers by dotted name (nn/optical_linear.h, nn/attention.h): range statistics
// end in "_min_max" (f32 [lo, hi]; [+inf, -inf] while uncalibrated), call counters are
// "dither_calls" and "dither_eval_calls".
inline bool is_optical_range_name(const std::string& name) {
    const std::string last = name.substr(name.rfind('.') + 1);
    return last.size() > 8 && last.compare(last.size() - 8, 8, "_min_max") == 0;
}
inline bool is_optical_state_name(const std::string& name) {
    const std::string last = name.substr(name.rfind('.') + 1);
    return is_optical_range_name(name) || last == "dither_calls" || last == "dither_eval_calls";
}

}  // namespace lumen::nn
