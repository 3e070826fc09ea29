// nn/optical_energy.cpp: the per-token counts and energies of specs/optical.md §8 and their report.
#include "nn/optical_energy.h"

#include "core/error.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <vector>

namespace lumen::nn {

double photon_energy_j(double wavelength_nm) {
    check(wavelength_nm > 0, "optical energy", fmt::format("wavelength_nm must be positive, got {}", wavelength_nm));
    return kPlanck * kLightSpeed / (wavelength_nm * 1e-9);
}

OpticalWork count_optical_work(const OpticalReport& report, const ModelConfig& config, const EnergyParams& params) {
    OpticalWork w;
    w.context = params.context > 0 ? params.context : config.block_size;
    w.weight_reuse = params.weight_reuse > 0 ? params.weight_reuse : config.block_size;
    check(w.context >= 1 && w.weight_reuse >= 1, "optical energy",
          fmt::format("context ({}) and weight_reuse ({}) must be at least 1", w.context, w.weight_reuse));
    const double T = double(w.context), R = double(w.weight_reuse);
    const double mean_keys = (T + 1) / 2;  // keys 1..t at position t, averaged over t = 1..T
    for (const OpticalModuleInfo& m : report.selected) {
        if (m.kind == OpticalUnitKind::linear) {
            const int64_t macs = m.d_in * m.d_out;
            if (m.bypass) {
                w.mac_bypassed += macs;
                continue;
            }
            ++w.linear_units;
            w.mac_linear += macs;
            w.n_dac += double(m.d_in) * double(m.row_parts.size());  // each part reads the whole input
            w.n_adc += double(m.d_out);                               // Σ part widths
            w.n_weight += double(macs) / R;
        } else {
            const int64_t width = m.n_head * m.head_size;  // h·d_h
            const int64_t macs = width * (w.context + 1);  // Q·Kᵀ + P·V: 2·h·d_h·(T+1)/2
            if (m.bypass) {
                w.mac_bypassed += macs;
                continue;
            }
            ++w.attention_units;
            w.mac_attention += macs;
            const double scores = double(m.n_head) * mean_keys;  // h·t: Q·Kᵀ outputs, P·V inputs
            w.n_dac += double(width) + scores;                   // Q·Kᵀ reads q; P·V reads P
            w.n_adc += scores + double(width);                   // Q·Kᵀ writes S; P·V writes y
            w.n_weight += 2.0 * double(m.n_kv_head * m.head_size);  // the new key and value, once
        }
    }
    w.mac_lm_head = config.n_embd * config.vocab_size;
    return w;
}

EnergyEstimate estimate_energy(const OpticalWork& w, const EnergyParams& p) {
    check(!(p.photons_per_mac && p.photons_per_output), "optical energy",
          "set photons_per_mac or photons_per_output, not both");
    check(p.efficiency > 0, "optical energy", fmt::format("efficiency must be positive, got {}", p.efficiency));
    EnergyEstimate e;
    e.photon_j = photon_energy_j(p.wavelength_nm);
    if (p.photons_per_mac) e.optical = *p.photons_per_mac * double(w.mac_optical()) * e.photon_j / p.efficiency;
    if (p.photons_per_output) e.optical = *p.photons_per_output * w.n_adc * e.photon_j / p.efficiency;
    constexpr double pJ = 1e-12, fJ = 1e-15;
    if (p.e_dac_pj) e.dac = *p.e_dac_pj * pJ * w.n_dac;
    if (p.e_adc_pj) e.adc = *p.e_adc_pj * pJ * w.n_adc;
    if (p.e_weight_pj) e.weight = *p.e_weight_pj * pJ * w.n_weight;
    if (p.e_mem_pj) e.mem = *p.e_mem_pj * pJ * w.n_weight;
    if (e.dac && e.adc && e.weight && e.mem) e.electronics = *e.dac + *e.adc + *e.weight + *e.mem;
    if (e.optical && e.electronics) e.optical_total = *e.optical + *e.electronics;
    e.digital = p.digital_fj_per_mac * fJ * double(w.mac_optical());
    e.lm_head_digital = p.digital_fj_per_mac * fJ * double(w.mac_lm_head);
    return e;
}

std::string format_joules(double joules) {
    if (joules == 0) return "0 J";
    if (!std::isfinite(joules)) return fmt::format("{} J", joules);
    static const char* const kPrefix[] = {"a", "f", "p", "n", "µ", "m", "", "k", "M"};  // 1e-18 .. 1e6
    const double magnitude = std::fabs(joules);
    int group = int(std::floor(std::log10(magnitude) / 3.0));  // 10^(3·group)
    group = std::clamp(group, -6, 2);
    for (;;) {
        const double mantissa = magnitude / std::pow(10.0, 3 * group);
        int decimals = mantissa < 10 ? 2 : mantissa < 100 ? 1 : 0;
        const double scale = std::pow(10.0, decimals);
        const double rounded = std::round(mantissa * scale) / scale;
        if (rounded >= 1000 && group < 2) {
            ++group;
            continue;
        }
        // NOTE: a carry into the next decade (9.996 -> 10.00) would show a fourth digit
        if (decimals > 0 && rounded >= (decimals == 2 ? 10 : 100)) --decimals;
        return fmt::format("{}{:.{}f} {}J", joules < 0 ? "-" : "", rounded, decimals, kPrefix[group + 6]);
    }
}

namespace {

// 157,762 or 3,075.5 (counts that average over positions can be half-integers).
std::string format_count(double x) {
    const double tenths = std::round(x * 10);
    const auto whole = int64_t(tenths / 10);
    const auto tenth = int64_t(tenths) % 10;
    if (tenth == 0) return fmt::format("{}", fmt::group_digits(whole));
    return fmt::format("{}.{}", fmt::group_digits(whole), tenth);
}

std::string energy_or_unset(const std::optional<double>& e, const char* key) {
    return e ? format_joules(*e) : fmt::format("not set ({})", key);
}

std::string ratio_text(double digital, double optical) {
    if (!(optical > 0)) return "not computable (optical energy is 0)";
    const double r = digital / optical;
    return r >= 100 ? fmt::format("{}×", fmt::group_digits(int64_t(std::llround(r)))) : fmt::format("{:.3g}×", r);
}

}  // namespace

std::string format_energy_report(const OpticalReport& report, const ModelConfig& config, const EnergyParams& params) {
    const OpticalWork w = count_optical_work(report, config, params);
    const EnergyEstimate e = estimate_energy(w, params);
    std::string out = fmt::format("optical energy per token (estimate; context T = {}, weight reuse R = {}):\n",
                                  w.context, w.weight_reuse);
    const auto line = [&](const std::string& label, const std::string& value) {
        out += fmt::format("  {:<22}{}\n", label, value);
    };
    line("optical MACs", fmt::format("{}  (linear {} in {} units; attention {} in {} layers)",
                                     fmt::group_digits(w.mac_optical()), fmt::group_digits(w.mac_linear),
                                     w.linear_units, fmt::group_digits(w.mac_attention), w.attention_units));
    line("lm_head MACs", fmt::format("{}  (digital)", fmt::group_digits(w.mac_lm_head)));
    if (w.mac_bypassed > 0) line("bypassed MACs", fmt::format("{}  (digital)", fmt::group_digits(w.mac_bypassed)));
    line("DAC inputs", format_count(w.n_dac));
    line("ADC outputs", format_count(w.n_adc));
    line("weight accesses", format_count(w.n_weight) + "  (each a write and a read)");
    line("photon energy hν", fmt::format("{:.4e} J at {} nm, efficiency η = {}", e.photon_j, params.wavelength_nm,
                                          params.efficiency));
    if (params.photons_per_mac)
        line("E_opt", fmt::format("{}  ({} photons/MAC)", format_joules(*e.optical), *params.photons_per_mac));
    else if (params.photons_per_output)
        line("E_opt", fmt::format("{}  ({} photons/output)", format_joules(*e.optical), *params.photons_per_output));
    else
        line("E_opt", "not set (photons_per_mac or photons_per_output)");
    line("E_dac", energy_or_unset(e.dac, "e_dac_pj"));
    line("E_adc", energy_or_unset(e.adc, "e_adc_pj"));
    line("E_weight", energy_or_unset(e.weight, "e_weight_pj"));
    line("E_mem", energy_or_unset(e.mem, "e_mem_pj"));
    line("optical total", e.optical_total ? format_joules(*e.optical_total) : "not computable (a term is not set)");
    line("E_dig", fmt::format("{}  ({} fJ/MAC for the optical MACs)", format_joules(e.digital),
                              params.digital_fj_per_mac));
    line("lm_head (digital)", format_joules(e.lm_head_digital));
    line("digital / optical", e.optical_total ? ratio_text(e.digital, *e.optical_total)
                                              : std::string("not computable (a term is not set)"));
    if (e.optical) line("digital / E_opt only", ratio_text(e.digital, *e.optical));
    return out;
}

}  // namespace lumen::nn
