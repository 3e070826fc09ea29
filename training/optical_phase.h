// training/optical_phase.h: what the trainer does with the [optical] section (specs/optical.md §7.3):
// transform the model (printing the histogram and the energy report), and the learning rate of the
// optical phase.
//
// The optical phase's schedule has the run's shape (cosine, wsd, linear, constant; decay_lr) mapped
// onto [start_iter, lr_decay_iters] (lr_decay_iters is normally max_iters): peak
// optical.learning_rate, warmup optical.warmup_iters counted from start_iter, decay reaching the floor
// where the run's decay ends, min_lr keeping its ratio to the run's peak, and wsd's plateau scaled by
// the same factor as the decay span. Without optical.learning_rate the run's own schedule continues.
#pragma once

#include "nn/gpt.h"
#include "nn/optical_transform.h"
#include "training/train_config.h"

#include <string>

namespace lumen::training {

// The optical phase's schedule, counted from start_iter (nullopt: the run's schedule continues).
std::optional<ScheduleConfig> optical_schedule(const TrainConfig& c);
// The absolute learning rate of update `it` (0-based), the optical phase's when it has begun.
double run_lr(const TrainConfig& c, int64_t it, bool optical_active);

// Transforms the model by the config's rules and returns the histogram and the energy report as text.
std::string make_model_optical(nn::GPT& model, const TrainConfig& c);
// The same text for the model without transforming it (./bench energy).
std::string optical_plan_text(const nn::GPT& model, const TrainConfig& c);

}  // namespace lumen::training
