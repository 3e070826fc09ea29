// training/schedule.cpp: the learning-rate schedules and their validation (specs/wiggle.md §7).
#include "training/schedule.h"

#include "core/error.h"

#include <fmt/format.h>

#include <cmath>
#include <numbers>

namespace lumen::training {

namespace {

constexpr std::pair<std::string_view, LrSchedule> kNames[] = {{"cosine", LrSchedule::cosine},
                                                              {"wsd", LrSchedule::wsd},
                                                              {"constant", LrSchedule::constant},
                                                              {"linear", LrSchedule::linear}};

[[noreturn]] void reject(const std::string& what) { throw Error("schedule: " + what); }

// m + ½(1 + cos πr)(lr − m) for r in [0, 1].
double cosine_between(double lr, double m, double r) {
    return m + 0.5 * (1.0 + std::cos(std::numbers::pi * r)) * (lr - m);
}

}  // namespace

std::string_view schedule_name(LrSchedule s) {
    for (const auto& [name, value] : kNames)
        if (value == s) return name;
    return "?";
}

std::optional<LrSchedule> parse_schedule(std::string_view name) {
    for (const auto& [n, value] : kNames)
        if (n == name) return value;
    return std::nullopt;
}

std::vector<std::string> validate(const ScheduleConfig& s) {
    const auto non_negative = [](std::string_view key, int64_t v) {
        if (v < 0) reject(fmt::format("schedule.{} must be ≥ 0 (got {})", key, v));
    };
    non_negative("warmup_iters", s.warmup_iters);
    non_negative("lr_decay_iters", s.lr_decay_iters);
    non_negative("stable_iters", s.stable_iters);
    non_negative("max_iters", s.max_iters);
    if (!(std::isfinite(s.learning_rate) && s.learning_rate >= 0))
        reject(fmt::format("schedule.learning_rate must be finite and ≥ 0 (got {})", s.learning_rate));
    if (!(std::isfinite(s.min_lr) && s.min_lr >= 0))
        reject(fmt::format("schedule.min_lr must be finite and ≥ 0 (got {})", s.min_lr));
    if (s.min_lr > s.learning_rate)
        reject(fmt::format("schedule.min_lr ({}) must not exceed schedule.learning_rate ({})", s.min_lr,
                           s.learning_rate));

    std::vector<std::string> warnings;
    const std::string_view name = schedule_name(s.schedule);
    if (s.decay_lr) {
        const int64_t W = s.warmup_iters, D = s.lr_decay_iters, S = s.stable_iters;
        if ((s.schedule == LrSchedule::cosine || s.schedule == LrSchedule::linear) && !(D > W))
            reject(fmt::format("schedule.lr_decay_iters ({}) must exceed schedule.warmup_iters ({}) for "
                               "lr_schedule = {}",
                               D, W, name));
        if (s.schedule == LrSchedule::wsd && !(D > W + S))
            reject(fmt::format("schedule.lr_decay_iters ({}) must exceed schedule.warmup_iters + "
                               "schedule.stable_iters ({} + {} = {}) for lr_schedule = wsd",
                               D, W, S, W + S));
        if (s.schedule != LrSchedule::constant && s.max_iters > 0 && D > s.max_iters)
            warnings.push_back(fmt::format("schedule.lr_decay_iters ({}) > schedule.max_iters ({}): the run "
                                           "stops before the rate reaches min_lr",
                                           D, s.max_iters));
    }
    if (s.stable_iters > 0 && (s.schedule != LrSchedule::wsd || !s.decay_lr))
        warnings.push_back(fmt::format("schedule.stable_iters = {} is ignored: only lr_schedule = wsd reads it "
                                       "(lr_schedule = {}{})",
                                       s.stable_iters, name, s.decay_lr ? "" : ", decay_lr = false"));
    return warnings;
}

double lr_at(const ScheduleConfig& s, int64_t it) {
    const double lr = s.learning_rate, m = s.min_lr;
    if (!s.decay_lr) return lr;
    const int64_t W = s.warmup_iters, D = s.lr_decay_iters, S = s.stable_iters;
    if (it < W) return lr * double(it + 1) / double(W + 1);
    switch (s.schedule) {
    case LrSchedule::constant:
        return lr;
    case LrSchedule::cosine:
        if (it > D) return m;
        return cosine_between(lr, m, double(it - W) / double(D - W));
    case LrSchedule::linear:
        if (it > D) return m;
        return m + (1.0 - double(it - W) / double(D - W)) * (lr - m);
    case LrSchedule::wsd:
        if (it < W + S) return lr;
        if (it > D) return m;
        return cosine_between(lr, m, double(it - W - S) / double(D - W - S));
    }
    return lr;
}

double lr_multiplier(const ScheduleConfig& s, int64_t it) {
    if (s.learning_rate == 0) return 0.0;
    return lr_at(s, it) / s.learning_rate;
}

}  // namespace lumen::training
