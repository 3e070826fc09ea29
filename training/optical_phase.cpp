// training/optical_phase.cpp: the optical phase's schedule and the transform as the trainer runs it.
#include "training/optical_phase.h"

#include "nn/optical_energy.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>

namespace lumen::training {

std::optional<ScheduleConfig> optical_schedule(const TrainConfig& c) {
    if (!c.optical.enabled || !c.optical.learning_rate) return std::nullopt;
    const ScheduleConfig& run = c.schedule;
    ScheduleConfig s = run;
    const double peak = *c.optical.learning_rate;
    // The span ends where the run's decay ends (normally max_iters); not at max_iters itself, so that a
    // run split into parts (max_iters = 8, then resumed to 12) follows one schedule.
    const int64_t span = run.lr_decay_iters - c.optical.start_iter;
    s.learning_rate = peak;
    s.min_lr = run.learning_rate > 0 ? run.min_lr / run.learning_rate * peak : 0.0;
    s.warmup_iters = c.optical.warmup_iters;
    s.lr_decay_iters = span;
    s.stable_iters = run.lr_decay_iters > 0
                         ? int64_t(std::llround(double(run.stable_iters) * double(span) / double(run.lr_decay_iters)))
                         : 0;
    s.max_iters = run.max_iters - c.optical.start_iter;
    return s;
}

double run_lr(const TrainConfig& c, int64_t it, bool optical_active) {
    if (optical_active)
        if (const auto s = optical_schedule(c)) return lr_at(*s, it - c.optical.start_iter);
    return lr_at(c.schedule, it);
}

namespace {

std::string report_text(const nn::OpticalReport& report, const TrainConfig& c) {
    return nn::format_histogram(report) + nn::format_energy_report(report, c.model, c.optical.energy);
}

}  // namespace

std::string make_model_optical(nn::GPT& model, const TrainConfig& c) {
    return report_text(nn::apply_optical_transform(model, c.optical.plan), c);
}

std::string optical_plan_text(const nn::GPT& model, const TrainConfig& c) {
    return report_text(nn::plan_optical_transform(model, c.optical.plan), c);
}

}  // namespace lumen::training
