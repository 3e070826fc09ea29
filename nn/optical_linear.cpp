// nn/optical_linear.cpp: OpticalLinear (see nn/optical_linear.h): the module's state around
// ops::optical_linear: buffers, host counters, the calibration flag, eval-mode calibration,
// bypass, and the per-call snapshots that activation checkpointing replays.
#include "nn/optical_linear.h"

#include "autograd/checkpoint.h"
#include "autograd/ops/elementwise.h"
#include "autograd/ops/optical_linear.h"
#include "core/kernels/elementwise.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <cstdio>

namespace lumen::nn {

namespace {

constexpr const char* kOp = "OpticalLinear";
// A recompute that never comes (a checkpointed forward without backward) must not grow the
// snapshot store without bound: past this many, the oldest call's snapshots are dropped.
constexpr size_t max_pending_calls = 4096;

Tensor uncalibrated(const Shape& shape, Device device) {
    std::vector<float> values;
    for (int64_t i = 0; i < numel_of(shape); ++i) values.push_back(i % 2 == 0 ? INFINITY : -INFINITY);
    return Tensor::from(values, shape, device);
}

void check_settings(const OpticalSettings& s, const std::string& name) {
    const auto where = [&](const char* key) { return fmt::format("{} (settings '{}'): {}", name, s.name, key); };
    check(s.q_levels >= 2 && s.q_levels <= 65536, kOp, where("q_levels must be in 2..65536"));
    check(!s.q_lut_min || (*s.q_lut_min >= 0 && *s.q_lut_min < 1), kOp, where("q_lut_min must be in [0, 1)"));
    check(!s.q_quantiles || (s.q_quantiles->first > 0 && s.q_quantiles->first < s.q_quantiles->second &&
                             s.q_quantiles->second < 1),
          kOp, where("q_quantiles must be (a, b) with 0 < a < b < 1"));
    check(s.q_smooth_factor >= 0 && s.q_smooth_factor <= 1, kOp, where("q_smooth_factor must be in [0, 1]"));
}

}  // namespace

OpticalLinear::OpticalLinear(const Linear& digital, const OpticalSettings& settings, std::string name)
    : Linear(Adopt{}, digital), settings_(settings), name_(std::move(name)) {
    check_settings(settings_, name_);
    if (const auto* lora = dynamic_cast<const LoraLinear*>(&digital)) {
        check(lora->dropout() == 0, kOp,
              fmt::format("{}: lora.dropout = {} cannot apply to an optical layer, which quantizes the "
                          "merged weight W + scale·B·A (no place for dropout on the adapter's input); set "
                          "lora.dropout = 0",
                          name_, lora->dropout()));
        lora_ = lora->adapter();  // the same tensors the Adopt constructor registered as lora_A, lora_B
    }
    for (const Parameter& p : parameters())
        if (p.name == "weight") row_parts_ = p.row_parts;
    if (row_parts_.empty()) row_parts_ = {out_};
    check(int64_t(row_parts_.size()) <= optical::max_output_parts, kOp,
          fmt::format("{}: {} row parts, at most {} are supported", name_, row_parts_.size(), optical::max_output_parts));
    const Device device = weight_.device();
    const int64_t P = parts();
    x_mm_ = register_buffer("x_min_max", uncalibrated({2}, device));
    w_mm_ = register_buffer("w_min_max", uncalibrated({P, 2}, device));
    out_mm_ = register_buffer("out_min_max", uncalibrated({P, 2}, device));
    calls_buf_ = register_buffer("dither_calls", Tensor::zeros({1}, DType::i64, device));
    eval_calls_buf_ = register_buffer("dither_eval_calls", Tensor::zeros({1}, DType::i64, device));
    stream_ = optical::fnv1a32(name_.data(), name_.size());
}

int64_t OpticalLinear::parts() const { return int64_t(row_parts_.size()); }

size_t OpticalLinear::pending_recomputes() const {
    size_t n = 0;
    for (const auto& [call, queue] : snapshots_) n += queue.size();
    return n;
}

void OpticalLinear::set_data_parallel(int rank, int world) {
    check(world >= 1 && rank >= 0 && rank < world, kOp,
          fmt::format("{}: data-parallel rank {} of world {}: expected 0 <= rank < world", name_, rank, world));
    dp_rank_ = rank;
    dp_world_ = world;
}

void OpticalLinear::on_state_loaded() {
    calls_ = calls_buf_.to_vector<int64_t>()[0];
    eval_calls_ = eval_calls_buf_.to_vector<int64_t>()[0];
    const std::vector<float> out = out_mm_.to_vector<float>();
    out_calibrated_ = true;
    for (size_t i = 0; i + 1 < out.size(); i += 2) out_calibrated_ = out_calibrated_ && optical::range_is_calibrated(out[i], out[i + 1]);
    snapshots_.clear();
}

Tensor OpticalLinear::forward(const Tensor& x) {
    if (settings_.q_bypass)  // the digital path: no statistics, no counters
        return lora_ ? Linear::forward(x) + lora_delta(x, *lora_) : Linear::forward(x);
    // With LoRA: the merged weight W + scale·B·A (out, in), recorded so that A and B get gradients.
    const Tensor weight = lora_ ? lora_merge(weight_, *lora_) : weight_;
    // NOTE: Module::to(dtype) converts floating buffers too; the ranges are f32 by contract (§6 row 9).
    for (Tensor* t : {&x_mm_, &w_mm_, &out_mm_})
        if (t->dtype() != DType::f32) assign_in_place(*t, t->to(DType::f32));

    ops::OpticalLinearCall call;
    call.parts = row_parts_;
    call.levels = int32_t(settings_.q_levels);
    call.lut_min = settings_.q_lut_min ? std::optional<float>(float(*settings_.q_lut_min)) : std::nullopt;
    call.quantiles = settings_.q_quantiles;
    call.smooth_f = float(settings_.q_smooth_factor);
    call.smooth_g = float(1.0 - settings_.q_smooth_factor);
    call.out_stats = settings_.out_stats == OutStats::quantized ? optical::OutputStats::quantized
                                                                 : optical::OutputStats::product;
    const auto dither_for = [&](uint64_t n) {
        optical::OutputDither d;
        if (settings_.dither == DitherMode::scalar) {
            d.scalar = true;
            d.r = optical::scalar_dither_offset(settings_.q_init_seed);  // linear layers: never advances (§5)
        } else {
            d.key = optical::DitherKey{settings_.q_init_seed, stream_, n};
            // Data parallel: this rank's rows of the global (W·M, N) output (M = rows of this call).
            const uint64_t numel = uint64_t(x.numel() / std::max<int64_t>(in_, 1)) * uint64_t(out_);
            d.index_base = uint64_t(dp_rank_) * numel;
        }
        return d;
    };

    const bool recompute = autograd::in_checkpoint_recompute();
    const bool checkpoint_forward = autograd::in_checkpoint_forward();
    const uint64_t checkpoint_call = autograd::checkpoint_call_id();
    if (recompute) {
        check(!checkpoint_forward, kOp,
              fmt::format("{}: an activation checkpoint nested inside another checkpoint's recompute is not "
                          "supported by optical layers", name_));
        auto it = snapshots_.find(checkpoint_call);
        check(it != snapshots_.end() && !it->second.empty(), kOp,
              fmt::format("{}: a checkpoint recompute found no saved state of its original call", name_));
        const Snapshot s = it->second.front();
        it->second.pop_front();
        if (it->second.empty()) snapshots_.erase(it);
        call.x_range = s.x;
        call.w_range = s.w;
        call.out_range = s.out;
        call.training = s.training;
        call.update_ranges = false;
        call.dither = dither_for(s.n);
        return ops::optical_linear(x, weight, bias_, call);
    }

    const bool train = training();
    const uint64_t n = train ? uint64_t(calls_) : (uint64_t(1) << 63) + uint64_t(eval_calls_);
    call.x_range = x_mm_;
    call.w_range = w_mm_;
    call.out_range = out_mm_;
    call.training = train;
    call.calibrate_out = !out_calibrated_;
    call.dither = dither_for(n);
    ops::OpticalLinearRanges used;
    if (checkpoint_forward) call.used = &used;
    Tensor y = ops::optical_linear(x, weight, bias_, call);

    if (checkpoint_forward) {
        snapshots_[checkpoint_call].push_back({used.x, used.w, used.out, n, train});
        if (snapshots_.size() > max_pending_calls) snapshots_.erase(snapshots_.begin());
    }
    if (!train && !out_calibrated_ && !logged_eval_calibration_) {
        fmt::print(stderr, "optical: {} calibrated in eval mode\n", name_);
        logged_eval_calibration_ = true;
    }
    out_calibrated_ = true;
    if (train) {
        ++calls_;
        kernels::fill(calls_buf_, double(calls_));
    } else {
        ++eval_calls_;
        kernels::fill(eval_calls_buf_, double(eval_calls_));
    }
    return y;
}

}  // namespace lumen::nn
