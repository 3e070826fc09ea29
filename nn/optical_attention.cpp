// nn/optical_attention.cpp: the optical side of CausalSelfAttention (specs/optical.md §3.3, §4, §5):
// make_optical, the module's range buffers and call counters with their host mirrors, and the
// optical attention core that nn/attention.cpp calls.
//
// Buffers (persistent, under the module's dotted name): query_min_max, key_min_max, value_min_max,
// qk_min_max, av_min_max (f32 (2,), [+inf, -inf] while uncalibrated), dither_calls and
// dither_eval_calls (i64 (1,)). The counters are host integers, written into their buffers after
// every call (a fill kernel, no synchronisation) and read back from them after load_state_dict,
// together with the qk/av calibration flags.
//
// One quantizing forward = one call: the training counter advances in training mode, the eval
// counter in eval mode (element dither n = 2^63 + eval counter); scalar dither uses the reference's
// seed q_init_seed + 2·(all previous calls). q_bypass runs the digital path and touches nothing.
// An uncalibrated module in eval mode calibrates on that batch and says so once on stderr.
//
// Activation checkpointing: a checkpoint's first forward (autograd::in_checkpoint_forward) saves
// the ranges it quantized with, its dither and its mode under the checkpoint's call id; the
// recompute (autograd::in_checkpoint_recompute, same id) takes them back in call order and runs
// with them, updating nothing and advancing no counter, whatever order backward recomputes the
// checkpoints in. Saved calls whose backward never comes are dropped past max_pending_calls.
//
// Data parallelism: element-mode dither indices are offset by the rank's batch entries
// (set_data_parallel); the snapshot keeps the offsets with the rest of the dither.
#include "nn/attention.h"

#include "autograd/checkpoint.h"
#include "autograd/ops/optical_attention.h"

#include <fmt/format.h>

#include <cstdio>
#include <deque>
#include <limits>
#include <map>
#include <vector>

namespace lumen::nn {

struct CausalSelfAttention::OpticalState {
    struct Snapshot {
        ops::OpticalAttentionRanges ranges;
        AttentionDither dither;
        bool training = true;
    };
    static constexpr size_t max_pending_calls = 4096;

    OpticalSettings settings;
    std::string name;
    ops::OpticalAttentionRanges ranges;        // the registered range buffers
    Tensor calls_buffer, eval_calls_buffer;    // i64 (1,) mirrors of the counters
    uint64_t calls = 0, eval_calls = 0;        // §5: training and eval calls so far
    bool qk_calibrated = false, av_calibrated = false;
    bool eval_calibration_logged = false;
    uint32_t stream_qk = 0, stream_av = 0;     // FNV-1a of name + "#qk" / "#av"
    std::map<uint64_t, std::deque<Snapshot>> pending;  // by checkpoint call id, awaiting the recompute

    AttentionDither dither(bool training) const {
        AttentionDither d;
        if (settings.dither == DitherMode::scalar) {
            d.scalar = true;
            d.r = optical::scalar_dither_offset(uint64_t(settings.q_init_seed) + 2 * (calls + eval_calls));
        } else {
            const uint64_t n = training ? calls : (uint64_t(1) << 63) + eval_calls;
            d.qk = {settings.q_init_seed, stream_qk, n};
            d.av = {settings.q_init_seed, stream_av, n};
        }
        return d;
    }
};

namespace {

uint32_t stream_of(const std::string& name, const char* suffix) {
    const std::string s = name + suffix;
    return optical::fnv1a32(s.data(), s.size());
}

}  // namespace

void CausalSelfAttention::make_optical(const OpticalSettings& settings, const std::string& name) {
    const char* op = "make_optical";
    check(!optical_, op, fmt::format("attention module {} is already optical", name));
    check(!settings.q_quantiles, op,
          fmt::format("attention module {}: settings '{}' set q_quantiles, which the optical attention does "
                      "not support (qk_min_max would need every causal score); leave q_quantiles unset "
                      "(min/max ranges) for attention modules",
                      name, settings.name));
    check(settings.q_levels >= 2 && settings.q_levels <= 65536, op,
          fmt::format("attention module {}: q_levels = {} is outside 2..65536", name, settings.q_levels));
    check(!settings.q_lut_min || (*settings.q_lut_min >= 0.0 && *settings.q_lut_min < 1.0), op,
          fmt::format("attention module {}: q_lut_min = {} is outside [0, 1)", name, settings.q_lut_min.value_or(0)));
    check(settings.q_smooth_factor >= 0.0 && settings.q_smooth_factor <= 1.0, op,
          fmt::format("attention module {}: q_smooth_factor = {} is outside [0, 1]", name, settings.q_smooth_factor));
    auto state = std::make_shared<OpticalState>();
    state->settings = settings;
    state->name = name;
    state->stream_qk = stream_of(name, "#qk");
    state->stream_av = stream_of(name, "#av");
    const Device device = c_attn_->weight().device();
    const float inf = std::numeric_limits<float>::infinity();
    auto range = [&](const char* buffer) {
        return register_buffer(buffer, Tensor::from(std::vector<float>{inf, -inf}).to(device));
    };
    state->ranges.query = range("query_min_max");
    state->ranges.key = range("key_min_max");
    state->ranges.value = range("value_min_max");
    state->ranges.qk = range("qk_min_max");
    state->ranges.av = range("av_min_max");
    state->calls_buffer = register_buffer("dither_calls", Tensor::zeros({1}, DType::i64, device));
    state->eval_calls_buffer = register_buffer("dither_eval_calls", Tensor::zeros({1}, DType::i64, device));
    optical_ = std::move(state);
}

void CausalSelfAttention::set_data_parallel(int rank, int world) {
    check(world >= 1 && rank >= 0 && rank < world, "CausalSelfAttention",
          fmt::format("{}data-parallel rank {} of world {}: expected 0 <= rank < world",
                      optical_ ? optical_->name + ": " : "", rank, world));
    dp_rank_ = rank;
    dp_world_ = world;
}

const OpticalSettings* CausalSelfAttention::optical_settings() const {
    return optical_ ? &optical_->settings : nullptr;
}

void CausalSelfAttention::on_state_loaded() {
    Module::on_state_loaded();
    if (!optical_) return;
    OpticalState& s = *optical_;
    s.calls = uint64_t(s.calls_buffer.to_vector<int64_t>().at(0));
    s.eval_calls = uint64_t(s.eval_calls_buffer.to_vector<int64_t>().at(0));
    const std::vector<float> qk = s.ranges.qk.to_vector<float>(), av = s.ranges.av.to_vector<float>();
    s.qk_calibrated = optical::range_is_calibrated(qk[0], qk[1]);
    s.av_calibrated = optical::range_is_calibrated(av[0], av[1]);
    s.pending.clear();
}

Tensor CausalSelfAttention::optical_attention(const Tensor& q, const Tensor& k, const Tensor& v) {
    const char* op = "optical attention";
    OpticalState& s = *optical_;
    const OpticalSettings& o = s.settings;
    check(!(training() && dropout_ > 0.0), op,
          fmt::format("{}: attention dropout (dropout = {}) is not supported in optical training: the "
                      "probabilities' dropout before P's quantizer (specs/optical.md §3.3) is not "
                      "implemented; set dropout = 0 for optical runs",
                      s.name, dropout_));
    // NOTE: Module::to(dtype) converts floating buffers too; the ranges are f32 by contract (§6 row 9).
    for (Tensor* t : {&s.ranges.query, &s.ranges.key, &s.ranges.value, &s.ranges.qk, &s.ranges.av})
        if (t->dtype() != DType::f32) assign_in_place(*t, t->to(DType::f32));
    ops::OpticalAttentionCall call;
    call.levels = int32_t(o.q_levels);
    call.lut_min = o.q_lut_min ? std::optional<float>(float(*o.q_lut_min)) : std::nullopt;
    call.smooth_f = float(o.q_smooth_factor);
    call.smooth_g = float(1.0 - o.q_smooth_factor);
    call.stats_of_quantized = o.out_stats == OutStats::quantized;

    const uint64_t checkpoint_call = autograd::checkpoint_call_id();
    if (autograd::in_checkpoint_recompute()) {
        check(!autograd::in_checkpoint_forward(), op,
              fmt::format("{}: an activation checkpoint nested inside another checkpoint's recompute is not "
                          "supported by optical layers", s.name));
        auto it = s.pending.find(checkpoint_call);
        check(it != s.pending.end() && !it->second.empty(), op,
              fmt::format("{}: a checkpoint recompute found no saved state of its original call", s.name));
        const OpticalState::Snapshot snap = it->second.front();
        it->second.pop_front();
        if (it->second.empty()) s.pending.erase(it);
        call.ranges = snap.ranges;
        call.dither = snap.dither;
        call.training = snap.training;
        call.update_ranges = false;
        return ops::optical_causal_attention(q, k, v, call);
    }

    const bool train = training();
    call.training = train;
    call.ranges = s.ranges;
    call.dither = s.dither(train);
    if (!call.dither.scalar) {  // data parallel: this rank's batch entries of the global S and Y
        const auto [B, H, Tq, d] = q.dims<4>();
        const uint64_t rows = uint64_t(B * H * Tq), rank = uint64_t(dp_rank_);
        call.dither.qk_base = rank * rows * uint64_t(k.size(2));
        call.dither.av_base = rank * rows * uint64_t(d);
    }
    call.calibrate_qk = !s.qk_calibrated;
    call.calibrate_av = !s.av_calibrated;
    ops::OpticalAttentionRanges used;
    const bool checkpoint_forward = autograd::in_checkpoint_forward();
    if (checkpoint_forward) call.used = &used;
    Tensor y = ops::optical_causal_attention(q, k, v, call);
    if (checkpoint_forward) {
        s.pending[checkpoint_call].push_back({used, call.dither, train});
        if (s.pending.size() > OpticalState::max_pending_calls) s.pending.erase(s.pending.begin());
    }
    if (!train && (call.calibrate_qk || call.calibrate_av) && !s.eval_calibration_logged) {
        fmt::print(stderr, "optical: {} calibrated in eval mode\n", s.name);
        s.eval_calibration_logged = true;
    }
    s.qk_calibrated = s.av_calibrated = true;
    if (train) {
        ++s.calls;
        s.calls_buffer.fill_(double(s.calls));
    } else {
        ++s.eval_calls;
        s.eval_calls_buffer.fill_(double(s.eval_calls));
    }
    return y;
}

}  // namespace lumen::nn
