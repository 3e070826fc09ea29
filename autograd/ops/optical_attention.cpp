// autograd/ops/optical_attention.cpp: optical_causal_attention (node "optical_causal_attention");
// see autograd/ops/optical_attention.h. Kernels: core/kernels/optical_stats.h (statistics, range
// updates, operand quantizer) and core/kernels/optical_attention.h (the attention itself).
//
// The forward follows §3.3 line by line: stat(q), stat(k), stat(v) into their ranges; the one float
// pass for uncalibrated qk/av; Q_det of q (no LUT), k and v (LUT); the quantized kernel, which also
// measures the S and y accumulators; the qk/av EMA in training. The backward recomputes S and P per
// kernel (§3.4) from the saved quantized operands, the saved (m, l) per row and a copy of the qk
// range taken before the EMA, so P is the forward's P. Saved for the backward: q, k, v (unquantized,
// operand dtype), qq, kq, P·v (f32), m and l per row, the qk range.
#include "autograd/ops/optical_attention.h"

#include "autograd/node.h"
#include "autograd/registry.h"
#include "core/kernels/elementwise.h"
#include "core/kernels/optical_stats.h"

#include <cmath>

namespace lumen::ops {

static const bool registered = autograd::register_differentiable({"optical_causal_attention"});

namespace {

// A contiguous copy of t in dtype (t itself when it already is both), without history.
Tensor contiguous_as(const Tensor& t, DType dtype) {
    Tensor plain = t.detach();
    if (plain.dtype() == dtype && plain.is_contiguous()) return plain;
    Tensor out = Tensor::empty(plain.shape(), dtype, plain.device());
    kernels::copy(out, plain);
    return out;
}

DType operand_dtype(DType x) { return x == DType::bf16 ? DType::bf16 : DType::f32; }

void check_range(const char* op, const char* name, const Tensor& r, const Tensor& q) {
    check(r.defined() && r.dtype() == DType::f32 && r.shape() == Shape{2}, op,
          fmt::format("the {} range must be (2,) f32", name), {{name, r}});
    check(r.device() == q.device(), op, fmt::format("the {} range is on another device than q", name),
          {{name, r}, {"q", q}});
}

void check_inputs(const char* op, const Tensor& q, const Tensor& k, const Tensor& v, const OpticalAttentionCall& c) {
    check(q.dim() == 4 && k.dim() == 4 && v.dim() == 4, op,
          "expected q (B, nh, Tq, hs), k and v (B, nkv, Tk, hs)", {{"q", q}, {"k", k}, {"v", v}});
    check(q.dtype() == k.dtype() && q.dtype() == v.dtype(), op, "dtypes differ", {{"q", q}, {"k", k}, {"v", v}});
    check(is_floating(q.dtype()), op, "expected floating tensors", {{"q", q}, {"k", k}, {"v", v}});
    check(q.device() == k.device() && q.device() == v.device(), op, "tensors on different devices",
          {{"q", q}, {"k", k}, {"v", v}});
    const auto [B, nh, Tq, hs] = q.dims<4>();
    const auto [Bk, nkv, Tk, hsk] = k.dims<4>();
    check(k.shape() == v.shape(), op, "k and v must have the same shape (B, nkv, Tk, hs)",
          {{"q", q}, {"k", k}, {"v", v}});
    check(Bk == B, op, fmt::format("batch sizes differ (B = {} in q, {} in k)", B, Bk), {{"q", q}, {"k", k}});
    check(Tq <= Tk, op, fmt::format("q has more positions than k (Tq = {}, Tk = {}; need Tq <= Tk)", Tq, Tk),
          {{"q", q}, {"k", k}});
    check(hsk == hs, op, fmt::format("head sizes differ (hs = {} in q, {} in k)", hs, hsk), {{"q", q}, {"k", k}});
    check(nkv > 0 && nh % nkv == 0, op, fmt::format("nh ({}) must be a multiple of nkv ({})", nh, nkv),
          {{"q", q}, {"k", k}});
    check(c.levels >= 2, op, fmt::format("levels must be at least 2, got {}", c.levels));
    const std::pair<const char*, const Tensor*> ranges[] = {{"query", &c.ranges.query}, {"key", &c.ranges.key},
                                                            {"value", &c.ranges.value}, {"qk", &c.ranges.qk},
                                                            {"av", &c.ranges.av}};
    for (const auto& [name, r] : ranges) check_range(op, name, *r, q);
}

Tensor f32_pair(Device device) { return Tensor::empty({2}, DType::f32, device); }

OpticalAttentionRanges copies_of(const OpticalAttentionRanges& r) {
    return {r.query.clone(), r.key.clone(), r.value.clone(), r.qk.clone(), r.av.clone()};
}

bool needs(const Tensor& t) { return t.requires_grad(); }

}  // namespace

Tensor optical_causal_attention(const Tensor& q, const Tensor& k, const Tensor& v, const OpticalAttentionCall& call) {
    const char* op = "optical_causal_attention";
    check_inputs(op, q, k, v, call);
    const Device device = q.device();
    const DType dt = operand_dtype(q.dtype());
    const OpticalAttentionRanges& ranges = call.ranges;
    const int64_t hs = q.size(3);
    const float scale = float(call.scale.value_or(1.0 / std::sqrt(double(std::max<int64_t>(hs, 1)))));
    Tensor qc = contiguous_as(q, dt), kc = contiguous_as(k, dt), vc = contiguous_as(v, dt);

    // 1. The operand ranges see their batch before it is quantized (unrepeated k and v).
    if (call.update_ranges) {
        const std::pair<const Tensor*, const Tensor*> operands[] = {
            {&ranges.query, &qc}, {&ranges.key, &kc}, {&ranges.value, &vc}};
        for (const auto& [range, x] : operands) {
            Tensor batch = f32_pair(device);
            kernels::optical_min_max(batch, *x);
            Tensor mm = *range;
            kernels::optical_range_update(mm, batch, call.smooth_f, call.smooth_g, call.training);
        }
    }
    OpticalAttentionConfig config;
    config.levels = call.levels;
    config.scale = scale;
    config.dither = call.dither;
    config.stats_of_quantized = call.stats_of_quantized;

    // 2. First call: qk from the unscaled float q·kᵀ (causal entries), av from the float attention.
    if (call.update_ranges && (call.calibrate_qk || call.calibrate_av)) {
        OpticalAttentionConfig float_pass = config;
        float_pass.quantized = false;
        OpticalAttentionForward f;
        f.q = qc;
        f.k = kc;
        f.v = vc;
        f.qk_stat = f32_pair(device);
        f.av_stat = call.calibrate_av ? f32_pair(device) : Tensor();
        kernels::optical_attention_forward(f, float_pass);
        Tensor qk = ranges.qk, av = ranges.av;
        // training = false: this only assigns an uncalibrated range (as the linear op's first call does);
        // the call's own EMA comes after the kernel.
        if (call.calibrate_qk) kernels::optical_range_update(qk, f.qk_stat, call.smooth_f, call.smooth_g, false);
        if (call.calibrate_av) kernels::optical_range_update(av, f.av_stat, call.smooth_f, call.smooth_g, false);
    }

    // 3. Operands: q without a LUT, k and v (the weight side) with it.
    const optical::QuantParams input{call.levels, false, 0.0f};
    const optical::QuantParams weight{call.levels, call.lut_min.has_value(), call.lut_min.value_or(0.0f)};
    Tensor qq = Tensor::empty(q.shape(), dt, device);   // (B, H, Tq, d)
    Tensor kq = Tensor::empty(k.shape(), dt, device);   // (B, Hkv, Tk, d)
    Tensor vq = Tensor::empty(v.shape(), dt, device);
    kernels::optical_quantize(qq, qc, ranges.query, input);
    kernels::optical_quantize(kq, kc, ranges.key, weight);
    kernels::optical_quantize(vq, vc, ranges.value, weight);
    if (call.used) *call.used = copies_of(ranges);

    // 4. The kernel; 5. the qk/av EMA from what it measured.
    const bool grad = autograd::needs_grad({q, k, v});
    const bool ema = call.training && call.update_ranges;
    const auto [B, H, Tq, d] = q.dims<4>();
    OpticalAttentionForward f;
    f.q = qq;
    f.k = kq;
    f.v = vq;
    f.qk_mm = ranges.qk;
    f.av_mm = ranges.av;
    f.y = Tensor::empty(q.shape(), dt, device);                                       // (B, H, Tq, d)
    if (grad) {
        f.v_float = vc;
        f.row_max = Tensor::empty({B, H, Tq}, DType::f32, device);
        f.row_sum = Tensor::empty({B, H, Tq}, DType::f32, device);
        f.pv = Tensor::empty(q.shape(), DType::f32, device);                          // (B, H, Tq, d)
    }
    if (ema) {
        f.qk_stat = f32_pair(device);
        f.av_stat = f32_pair(device);
    }
    kernels::optical_attention_forward(f, config);
    // The backward needs the qk range S was quantized with; the EMA below moves it.
    Tensor qk_used = grad ? (call.used ? call.used->qk : (ema ? ranges.qk.clone() : ranges.qk)) : Tensor();
    if (ema) {
        Tensor qk = ranges.qk, av = ranges.av;
        kernels::optical_range_update(qk, f.qk_stat, call.smooth_f, call.smooth_g, true);
        kernels::optical_range_update(av, f.av_stat, call.smooth_f, call.smooth_g, true);
    }

    Tensor y = f.y;
    if (q.dtype() != dt) y = contiguous_as(f.y, q.dtype());
    OpticalAttentionBackward saved;
    saved.q = qc;
    saved.k = kc;
    saved.v = vc;
    saved.qq = qq;
    saved.kq = kq;
    saved.qk_mm = qk_used;
    saved.pv = f.pv;
    saved.row_max = f.row_max;
    saved.row_sum = f.row_sum;
    autograd::record(op, y, {q, k, v},
        [saved = std::move(saved), config, dt, in_dt = q.dtype(), need_q = needs(q), need_kv = needs(k) || needs(v)](const Tensor& dy) {
        OpticalAttentionBackward g = saved;
        g.dy = contiguous_as(dy, dt);
        if (need_q) g.dq = Tensor::empty(g.q.shape(), dt, g.q.device());
        if (need_kv) {
            g.dk = Tensor::empty(g.k.shape(), dt, g.k.device());
            g.dv = Tensor::empty(g.v.shape(), dt, g.v.device());
        }
        kernels::optical_attention_backward(g, config);
        auto back = [in_dt](const Tensor& t) { return t.defined() ? contiguous_as(t, in_dt) : t; };
        return autograd::Grads{back(g.dq), back(g.dk), back(g.dv)};
    });
    return y;
}

}  // namespace lumen::ops
