// training/optical_config.h: the [optical*] sections of ./train's config (specs/optical.md §7.2, §8.2):
// the switch and the optical phase's schedule, the settings sets ([optical.attention], [optical.fc],
// any [optical.NAME]), the ordered rules, and the energy report's parameters.
//
//   [optical]                    enabled, start_iter, learning_rate, warmup_iters, reset_optimizer
//   [optical.fc]                 q_levels, q_lut_min, q_quantiles, q_smooth_factor, q_init_seed, q_bypass,
//                                dither, out_stats   (also [optical.attention] and [optical.NAME])
//   [optical.rules]              1 = blocks\.0\..* -> none        (ordered by key; values literal)
//   [optical.energy]             wavelength_nm, photons_per_mac | photons_per_output, efficiency, e_*_pj, ...
//
// The sections are an open part of the schema (training/config.h): the text of each key reaches
// parse_optical, which checks every key and value and names the key and where it was written.
#pragma once

#include "nn/optical_settings.h"
#include "training/config.h"

#include <optional>
#include <string>

namespace lumen::training {

struct OpticalConfig {
    bool enabled = false;
    int64_t start_iter = 0;                // 0: optical from the start; N: digital before, optical from N
    std::optional<double> learning_rate;   // the optical phase's peak rate; unset: the run's schedule continues
    int64_t warmup_iters = 0;              // the optical phase's warmup, counted from start_iter
    bool reset_optimizer = true;           // fresh optimizer state at start_iter (start_iter > 0 only)
    nn::OpticalPlan plan;                  // settings sets ("attention" and "fc" always) and rules
    nn::EnergyParams energy;
};

// Reads the config's [optical*] entries. Throws lumen::Error naming the key, where it was set, and
// what was expected (unknown keys name the closest valid one).
OpticalConfig parse_optical(const Config& config);
// The sections as INI text that parse_optical reads back to the same OpticalConfig.
std::string optical_ini(const OpticalConfig& c);
// The keys' help for ./train --help.
std::string optical_help();

}  // namespace lumen::training
