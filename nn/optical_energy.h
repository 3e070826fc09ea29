// nn/optical_energy.h: the energy model of specs/optical.md §8 (reported, never simulated): per-token
// MAC counts, DAC/ADC conversions and weight accesses of the optical units a transform selected,
// and the energies the user's [optical.energy] parameters give them.
//
//   nn::OpticalReport r = nn::plan_optical_transform(model, plan);
//   fmt::print("{}", nn::format_energy_report(r, model.config(), params));
//
// Counting (per token, at context T = params.context or block_size, R = params.weight_reuse or
// block_size); bypassed modules are digital and not counted:
//   linear d_in → d_out with row parts p_1..p_k:  MACs d_in·d_out; DAC k·d_in (each part is its own
//     unit, shared inputs counted per unit); ADC d_out; weight accesses d_in·d_out/R
//   attention (h heads, h_kv, d_h), t averaged to (T+1)/2:  MACs h·d_h·(T+1);
//     DAC h·d_h + h·(T+1)/2; ADC h·(T+1)/2 + h·d_h; weight accesses 2·h_kv·d_h (the new K and V)
//   lm_head: n_embd·vocab MACs, digital whether tied or not.
#pragma once

#include "nn/config.h"
#include "nn/optical_settings.h"
#include "nn/optical_transform.h"

#include <cstdint>
#include <optional>
#include <string>

namespace lumen::nn {

struct OpticalWork {
    int64_t context = 0;        // T
    int64_t weight_reuse = 0;   // R
    int64_t linear_units = 0, attention_units = 0;  // optical (non-bypassed) modules counted
    int64_t mac_linear = 0;     // Σ d_in·d_out over optical linears
    int64_t mac_attention = 0;  // Σ h·d_h·(T+1) over optical attention modules
    int64_t mac_lm_head = 0;    // digital
    int64_t mac_bypassed = 0;   // digital MACs of bypassed linears (attention ones at context T included)
    double n_dac = 0, n_adc = 0;  // half-integers possible: h·(T+1)/2
    double n_weight = 0;          // weight writes (= reads), fractional with R
    int64_t mac_optical() const { return mac_linear + mac_attention; }
};

// Joules per token; nullopt = a parameter it needs is not set.
struct EnergyEstimate {
    double photon_j = 0;                 // hν
    std::optional<double> optical;       // E_opt
    std::optional<double> dac, adc;      // e_dac·N_DAC, e_adc·N_ADC
    std::optional<double> weight, mem;   // e_weight·N_weight, e_mem·N_weight
    std::optional<double> electronics;   // the sum of the four, when all are set
    std::optional<double> optical_total; // E_opt + electronics, when both are known
    double digital = 0;                  // E_dig = digital_fj_per_mac·MAC_opt
    double lm_head_digital = 0;          // digital_fj_per_mac·MAC_lm_head
};

// Planck's constant and the speed of light (exact, SI 2019).
inline constexpr double kPlanck = 6.62607015e-34;
inline constexpr double kLightSpeed = 299792458.0;
// hν = h·c/λ in joules.
double photon_energy_j(double wavelength_nm);

// The counts of §8.1–8.2 for the selection in `report` (a plan or an applied transform).
OpticalWork count_optical_work(const OpticalReport& report, const ModelConfig& config, const EnergyParams& params);
// The energies of §8.2. Throws when both photons_per_mac and photons_per_output are set.
EnergyEstimate estimate_energy(const OpticalWork& work, const EnergyParams& params);

// "6.79 pJ", "15.9 µJ", "2.17 pJ": three significant digits, an SI prefix from f to (none).
std::string format_joules(double joules);
// The report printed after the histogram and by ./bench energy.
std::string format_energy_report(const OpticalReport& report, const ModelConfig& config, const EnergyParams& params);

}  // namespace lumen::nn
