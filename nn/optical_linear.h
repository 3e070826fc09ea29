// nn/optical_linear.h: OpticalLinear, a Linear computed by the simulated optical matrix unit
// (specs/optical.md §3.1–3.2, §4, §5): out = Q_dith(Q_det(x)·Q_det(W; LUT)ᵀ) + b with straight-
// through gradients, range statistics kept on the device, per-element Philox dither.
//
// The transform pass builds it from a digital Linear and wraps the SAME parameter tensors (no copy),
// so optimizer state stays valid. Buffers (persistent, saved with the model):
//   x_min_max (2), w_min_max (P, 2), out_min_max (P, 2)   f32, [+inf, -inf] while uncalibrated
//   dither_calls (1), dither_eval_calls (1)               i64 call counters (§5)
// P = the number of row parts of the weight (fused q/k/v: 3), 1 otherwise.
//
// Host state: the two counters (mirrored into their buffers with a fill kernel whenever they change,
// never read back) and whether the output ranges are calibrated; load_state_dict re-reads both from
// the loaded buffers (on_state_loaded, one synchronisation at load time).
//
// LoRA (specs/optical.md §1): built from a LoraLinear (nn/lora.h), the layer keeps its adapter, the
// same lora_A and lora_B tensors under the same names, still trainable, and quantizes the merged
// weight W + scale·B·A, composed from autograd ops so that A and B get the straight-through
// gradient (W stays frozen); w_min_max measures the merged weight. With q_bypass the layer computes
// the LoraLinear's digital form. The merged form has no place for dropout on the adapter's input,
// so a LoraLinear with lora.dropout > 0 is refused (with an error naming lora.dropout).
//
// Activation checkpointing: a call inside a checkpoint's first forward saves copies of the ranges it
// quantized with and its dither counter value under the checkpoint call's id
// (autograd::checkpoint_call_id); the recompute in backward takes them back (first in, first out per
// call), quantizes with exactly those and updates nothing: no statistics, no counters. A checkpoint
// nested inside another's recompute is refused with an error.
#pragma once

#include "nn/layers.h"
#include "nn/lora.h"
#include "nn/optical_settings.h"

#include <deque>
#include <map>
#include <optional>
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

    // Read-only state, for tests and reports.
    const Tensor& x_min_max() const { return x_mm_; }      // (2) f32, device
    const Tensor& w_min_max() const { return w_mm_; }      // (P, 2) f32, device
    const Tensor& out_min_max() const { return out_mm_; }  // (P, 2) f32, device
    int64_t dither_calls() const { return calls_; }         // training calls so far (host)
    int64_t dither_eval_calls() const { return eval_calls_; }
    bool out_calibrated() const { return out_calibrated_; }
    uint32_t dither_stream() const { return stream_; }      // FNV-1a-32 of the name
    // The LoRA adapter adopted from a LoraLinear, or nullptr.
    const LoraAdapter* lora() const { return lora_ ? &*lora_ : nullptr; }
    // Checkpointed calls whose recompute has not run yet.
    size_t pending_recomputes() const;
    // Data parallelism (specs/optical.md §5): rank r of W offsets element-mode dither indices by
    // r × (this call's output numel), so its rows are the global call's rows [r·M, (r+1)·M) of a
    // (W·M, N) output. Scalar mode is unaffected. Default (0, 1); nn::GPT::set_data_parallel sets it.
    void set_data_parallel(int rank, int world);
    int data_parallel_rank() const { return dp_rank_; }
    int data_parallel_world() const { return dp_world_; }

protected:
    void on_state_loaded() override;

private:
    // What a checkpoint's recompute reuses: the ranges and counter value of the original call.
    struct Snapshot {
        Tensor x, w, out;  // copies (device), as quantized with
        uint64_t n;        // the dither counter value
        bool training;
    };

    OpticalSettings settings_;
    std::string name_;
    std::vector<int64_t> row_parts_;  // the weight's row parts, one entry when unfused
    uint32_t stream_;
    std::optional<LoraAdapter> lora_;
    Tensor x_mm_, w_mm_, out_mm_, calls_buf_, eval_calls_buf_;
    int64_t calls_ = 0, eval_calls_ = 0;
    bool out_calibrated_ = false;
    bool logged_eval_calibration_ = false;
    int dp_rank_ = 0, dp_world_ = 1;
    std::map<uint64_t, std::deque<Snapshot>> snapshots_;  // by checkpoint call id
};

}  // namespace lumen::nn
