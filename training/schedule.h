// training/schedule.h: the learning-rate schedules (specs/wiggle.md §7): warmup lr·(it+1)/(W+1), then
// cosine, wsd (warmup-stable-decay, cosine decay), constant or linear, and decay_lr = false (lr at every
// iteration, no warmup). `it` is the 0-based index of the update about to be taken.
//
//   lr_at(s, it)         the absolute rate of update `it`
//   lr_multiplier(s, it) lr_at / learning_rate: what the optimizer multiplies every group's peak rate by
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace lumen::training {

enum class LrSchedule { cosine, wsd, constant, linear };
std::string_view schedule_name(LrSchedule s);
std::optional<LrSchedule> parse_schedule(std::string_view name);  // nullopt when unknown

// The [schedule] section. Defaults are nanoGPT's (learning_rate is really the optimizer's: see
// training/train_config.h).
struct ScheduleConfig {
    double learning_rate = 6e-4;     // lr: the peak rate
    double min_lr = 6e-5;            // m: the floor after decay
    int64_t warmup_iters = 2000;     // W
    int64_t lr_decay_iters = 600000; // D: the rate reaches m at it = D
    int64_t stable_iters = 0;        // S: wsd's plateau at lr after warmup
    int64_t max_iters = 600000;      // updates in the run (the loop's bound; lr_at ignores it)
    LrSchedule schedule = LrSchedule::cosine;
    bool decay_lr = true;            // false: lr at every iteration, with no warmup
};

// Throws naming the keys (schedule.lr_decay_iters, ...) when the schedule is invalid: negative counts,
// min_lr > learning_rate, D ≤ W (cosine, linear), D ≤ W+S (wsd; the reference divides by zero at
// D = W+S). Returns warnings: stable_iters > 0 without wsd is ignored; lr_decay_iters > max_iters.
std::vector<std::string> validate(const ScheduleConfig& s);

double lr_at(const ScheduleConfig& s, int64_t it);
// lr_at / learning_rate (0 when learning_rate is 0).
double lr_multiplier(const ScheduleConfig& s, int64_t it);

}  // namespace lumen::training
