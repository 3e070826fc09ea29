// nn/optical_linear.h: OpticalLinear, a Linear computed by the simulated optical matrix unit
// (specs/optical.md §3.1–3.2, §4, §5): out = Q_dith(Q_det(x)·Q_det(W; LUT)ᵀ) + b with straight-
// through gradients, range statistics kept on the device, per-element Philox dither.
//
// The transform pass builds it from a digital Linear and wraps the SAME parameter tensors (no copy),
// so optimizer state stays valid. Buffers (persistent, saved with the model):
//   x_min_max (2), w_min_max (P, 2), out_min_max (P, 2)   f32, [+inf, -inf] while uncalibrated
//   dither_calls (1), dither_eval_calls (1)               i64 call counters (§5)
// P = the number of row parts of the weight (fused q/k/v: 3), 1 otherwise.
#pragma once

#include "nn/layers.h"
#include "nn/optical_settings.h"

#include <string>

namespace lumen::nn {

class OpticalLinear : public Linear {
public:
    // `name` is the module's dotted name in the model: it selects the dither stream.
    OpticalLinear(const Linear& digital, const OpticalSettings& settings, std::string name);
    // x (..., in) -> (..., out)
    Tensor forward(const Tensor& x) override;

    const OpticalSettings& settings() const { return settings_; }
    const std::string& name() const { return name_; }
    int64_t parts() const;

private:
    OpticalSettings settings_;
    std::string name_;
    // (implementation state: buffers, host mirrors of the counters, calibration flag, ...)
};

}  // namespace lumen::nn
