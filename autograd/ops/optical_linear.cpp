// autograd/ops/optical_linear.cpp: optical_linear and optical_matmul (nodes "optical_linear",
// "optical_matmul"); see autograd/ops/optical_linear.h. Kernels: core/kernels/optical_stats.h
// (statistics, operand quantizer), core/kernels/matmul.h (the f32-accumulating GEMM),
// core/kernels/optical_output.h (the ADC, bias, fused output statistics).
//
// optical_linear follows §3.1 line by line: x range, w ranges (per row part), the one-time output
// calibration from the float product, the quantized operands (contiguous, in the GEMM operand
// dtype), C = A·Bᵀ in f32, the output quantizer, and the output EMA in training. The backward is
// the digital Linear's, call for call (matmul(dY, W), matmul(Xᵀ, dY) transposed, sum over rows), so
// its gradients are the same bits. Nothing reads a device value on the host.
#include "autograd/ops/optical_linear.h"

#include "autograd/node.h"
#include "autograd/ops/matmul.h"
#include "autograd/ops/reduce.h"
#include "autograd/ops/shape.h"
#include "autograd/registry.h"
#include "core/kernels/elementwise.h"
#include "core/kernels/matmul.h"
#include "core/kernels/optical_stats.h"

#include <algorithm>

namespace lumen::ops {

static const bool registered = autograd::register_differentiable({"optical_linear", "optical_matmul"});

namespace {

Tensor with_layout(const Tensor& t, Layout layout) { return Tensor::over(t.storage(), std::move(layout), t.dtype()); }

// t's elements viewed as a batch of one matrix (1, r, c) with the given strides.
Tensor as_batch(const Tensor& t, int64_t r, int64_t c, int64_t sr, int64_t sc) {
    return with_layout(t, {{1, r, c}, {r * c, sr, sc}, t.offset()});
}

// Row q of a (P, 2) range buffer as a (2,) view.
Tensor range_row(const Tensor& ranges, int64_t q) {
    return with_layout(ranges, {{2}, {ranges.strides()[1]}, ranges.offset() + q * ranges.strides()[0]});
}

// A contiguous copy of t in dtype (t itself when it already is both).
Tensor contiguous_as(const Tensor& t, DType dtype) {
    if (t.dtype() == dtype && t.is_contiguous()) return t;
    Tensor out = Tensor::empty(t.shape(), dtype, t.device());
    kernels::copy(out, t);
    return out;
}

DType gemm_dtype(DType x) { return x == DType::bf16 ? DType::bf16 : DType::f32; }

void check_range_tensor(const char* op, const char* name, const Tensor& r, const Shape& shape, const Tensor& x) {
    check(r.defined() && r.dtype() == DType::f32 && r.shape() == shape, op,
          fmt::format("{} must be {} f32", name, shape_str(shape)), {{name, r}});
    check(r.device() == x.device(), op, fmt::format("{} is on another device than the input", name),
          {{name, r}, {"x", x}});
}

// The statistic of §4.1 (min/max or quantiles) of t into out (2,).
void stat_into(Tensor out, const Tensor& t, const std::optional<std::pair<double, double>>& quantiles) {
    if (quantiles) kernels::optical_quantiles(out, t, quantiles->first, quantiles->second);
    else kernels::optical_min_max(out, t);
}

}  // namespace

Tensor optical_linear(const Tensor& x, const Tensor& weight, const Tensor& bias, const OpticalLinearCall& call) {
    const char* op = "optical_linear";
    check(is_floating(x.dtype()) && x.dim() >= 1, op, "expected a floating x (..., K)", {{"x", x}});
    check(weight.defined() && weight.dim() == 2 && is_floating(weight.dtype()), op, "weight must be (N, K) floating",
          {{"weight", weight}});
    const int64_t K = x.size(-1), N = weight.size(0);
    check(weight.size(1) == K, op, fmt::format("x has {} features, the weight expects {}", K, weight.size(1)),
          {{"x", x}, {"weight", weight}});
    check(weight.device() == x.device(), op, "tensors on different devices", {{"x", x}, {"weight", weight}});
    if (bias.defined())
        check(bias.shape() == Shape{N} && is_floating(bias.dtype()) && bias.device() == x.device(), op,
              "bias must be (N) floating on x's device", {{"bias", bias}, {"weight", weight}});
    const std::vector<int64_t> ends = optical_part_ends(call.parts, N, op);
    const int64_t P = int64_t(ends.size());
    check_range_tensor(op, "x_range", call.x_range, {2}, x);
    check_range_tensor(op, "w_range", call.w_range, {P, 2}, x);
    check_range_tensor(op, "out_range", call.out_range, {P, 2}, x);
    check(call.levels >= 2, op, "levels must be at least 2");

    const Device device = x.device();
    const int64_t M = K > 0 ? x.numel() / K : numel_of(Shape(x.shape().begin(), x.shape().end() - 1));
    const Tensor xd = x.detach(), wd = weight.detach(), bd = bias.defined() ? bias.detach() : Tensor();
    const auto part = [&](int64_t q) { return std::pair{q == 0 ? 0 : ends[size_t(q - 1)], ends[size_t(q)]}; };
    const optical::QuantParams in_params{call.levels, false, 0.0f};
    const optical::QuantParams w_params{call.levels, call.lut_min.has_value(), call.lut_min.value_or(0.0f)};

    // 1. Statistics before quantizing: the batch joins its own range.
    if (call.update_ranges) {
        Tensor batch = Tensor::empty({P, 2}, DType::f32, device);
        stat_into(range_row(batch, 0), xd, call.quantiles);
        Tensor x_range = call.x_range;
        kernels::optical_range_update(x_range, range_row(batch, 0), call.smooth_f, call.smooth_g, call.training);
        for (int64_t q = 0; q < P; ++q) {
            const auto [r0, r1] = part(q);
            stat_into(range_row(batch, q), wd.narrow(0, r0, r1 - r0), call.quantiles);
            Tensor w_row = range_row(call.w_range, q);
            kernels::optical_range_update(w_row, range_row(batch, q), call.smooth_f, call.smooth_g, call.training);
        }
        // 2. First call: the output range from one unquantized f32 product X·Wᵀ (no bias). Assigned
        // only where uncalibrated (training = false: a calibrated part is left alone).
        if (call.calibrate_out) {
            const Tensor x32 = contiguous_as(xd, DType::f32), w32 = contiguous_as(wd, DType::f32);
            Tensor c0 = Tensor::empty({M, N}, DType::f32, device);  // (M, N)
            Tensor c0b = as_batch(c0, M, N, N, 1);
            kernels::matmul(c0b, as_batch(x32, M, K, K, 1), as_batch(w32, K, N, 1, K), Accumulate::no);
            for (int64_t q = 0; q < P; ++q) {
                const auto [n0, n1] = part(q);
                stat_into(range_row(batch, q), c0.narrow(1, n0, n1 - n0), call.quantiles);
                Tensor out_row = range_row(call.out_range, q);
                kernels::optical_range_update(out_row, range_row(batch, q), call.smooth_f, call.smooth_g, false);
            }
        }
    }
    if (call.used) *call.used = {call.x_range.clone(), call.w_range.clone(), call.out_range.clone()};

    // 3. Quantized operands (contiguous, GEMM operand dtype) and C = A·Bᵀ accumulated in f32.
    const DType op_dtype = gemm_dtype(x.dtype());
    Tensor a = Tensor::empty(x.shape(), op_dtype, device);  // (..., K)
    kernels::optical_quantize(a, xd, call.x_range, in_params);
    Tensor b = Tensor::empty({N, K}, op_dtype, device);     // (N, K)
    for (int64_t q = 0; q < P; ++q) {
        const auto [r0, r1] = part(q);
        Tensor rows = b.narrow(0, r0, r1 - r0);
        kernels::optical_quantize(rows, wd.narrow(0, r0, r1 - r0), range_row(call.w_range, q), w_params);
    }
    Tensor c = Tensor::empty({M, N}, DType::f32, device);  // (M, N)
    Tensor cb = as_batch(c, M, N, N, 1);
    kernels::matmul(cb, as_batch(a, M, K, K, 1), as_batch(b, K, N, 1, K), Accumulate::no);

    // 4. The output quantizer (+ bias in f32), with the output statistics fused when they are
    // min/max; then the output EMA (training only).
    const bool ema = call.training && call.update_ranges;
    const bool fused = ema && !call.quantiles;
    Tensor y2 = Tensor::empty({M, N}, x.dtype(), device);  // (M, N)
    Tensor stats = ema ? Tensor::empty({P, 2}, DType::f32, device) : Tensor();
    kernels::optical_output(y2, stats, c, call.out_range, call.parts, in_params, call.dither, bd,
                            fused ? call.out_stats : optical::OutputStats::none);
    if (ema) {
        for (int64_t q = 0; q < P; ++q) {
            if (!fused) {
                const auto [n0, n1] = part(q);
                const Tensor& measured = call.out_stats == optical::OutputStats::quantized ? y2 : c;
                stat_into(range_row(stats, q), measured.narrow(1, n0, n1 - n0), call.quantiles);
            }
            Tensor out_row = range_row(call.out_range, q);
            kernels::optical_range_update(out_row, range_row(stats, q), call.smooth_f, call.smooth_g, true);
        }
    }
    Shape y_shape = x.shape();
    y_shape.back() = N;
    Tensor y = with_layout(y2, Layout::contiguous(y_shape));  // (..., N)

    // Straight-through backward (§3.2): the digital Linear's gradients at the unquantized X and W.
    autograd::record(op, y, {x, weight, bias},
        [xs = xd, ws = wd, M, N, K, x_shape = x.shape(), b_dtype = bias.defined() ? bias.dtype() : DType::f32,
         need_x = x.requires_grad(), need_w = weight.requires_grad(),
         need_b = bias.defined() && bias.requires_grad()](const Tensor& dy) {
            const Tensor dy2 = dy.reshape({M, N});  // (M, N)
            Tensor dx, dw, db;
            if (need_x) {
                const Tensor w_as_x = ws.dtype() == xs.dtype() ? ws : ws.to(xs.dtype());
                dx = matmul(dy2, w_as_x).reshape(x_shape);                        // (M, N)·(N, K)
            }
            if (need_w) {
                const Tensor x2 = xs.reshape({M, K});                             // (M, K)
                dw = matmul(x2.transpose(0, 1), dy2).transpose(0, 1);             // ((K, M)·(M, N))ᵀ
                if (dw.dtype() != ws.dtype()) dw = dw.to(ws.dtype());
            }
            if (need_b) {
                db = autograd::sum_to(dy2, {N});                                  // (N)
                if (db.dtype() != b_dtype) db = db.to(b_dtype);
            }
            return autograd::Grads{dx, dw, db};
        });
    return y;
}

Tensor optical_matmul(const Tensor& a, const Tensor& b, const OpticalMatmulCall& call) {
    const char* op = "optical_matmul";
    check(a.dim() >= 2 && b.dim() >= 2, op, "operands must be (..., M, K) and (..., K, N)", {{"a", a}, {"b", b}});
    check(is_floating(a.dtype()) && a.dtype() == b.dtype(), op, "operands must share one floating dtype",
          {{"a", a}, {"b", b}});
    check(a.device() == b.device(), op, "tensors on different devices", {{"a", a}, {"b", b}});
    const int64_t M = a.size(-2), K = a.size(-1), N = b.size(-1);
    check(b.size(-2) == K, op, fmt::format("inner dimensions differ ({} vs {})", K, b.size(-2)), {{"a", a}, {"b", b}});
    check_range_tensor(op, "a_range", call.a_range, {2}, a);
    check_range_tensor(op, "b_range", call.b_range, {2}, a);
    check_range_tensor(op, "out_range", call.out_range, {2}, a);
    check(call.levels >= 2, op, "levels must be at least 2");
    const Shape a_batch(a.shape().begin(), a.shape().end() - 2), b_batch(b.shape().begin(), b.shape().end() - 2);
    const size_t rank = std::max(a_batch.size(), b_batch.size());
    Shape batch(rank);
    for (size_t i = 0; i < rank; ++i) {
        const int64_t da = i < rank - a_batch.size() ? 1 : a_batch[i - (rank - a_batch.size())];
        const int64_t db = i < rank - b_batch.size() ? 1 : b_batch[i - (rank - b_batch.size())];
        check(da == db || da == 1 || db == 1, op, "batch dimensions do not broadcast", {{"a", a}, {"b", b}});
        batch[i] = da == 1 ? db : da;
    }
    const int64_t nb = numel_of(batch);
    const auto with_tail = [&](int64_t r, int64_t c) {
        Shape s = batch;
        s.push_back(r);
        s.push_back(c);
        return s;
    };
    const Device device = a.device();
    const DType op_dtype = gemm_dtype(a.dtype());
    // Quantized operands, broadcast and contiguous: (batch, M, K) and (batch, K, N).
    Tensor qa = Tensor::empty(with_tail(M, K), op_dtype, device);
    kernels::optical_quantize(qa, with_layout(a, a.layout().expand(with_tail(M, K))), call.a_range,
                              {call.levels, false, 0.0f});
    Tensor qb = Tensor::empty(with_tail(K, N), op_dtype, device);
    kernels::optical_quantize(qb, with_layout(b, b.layout().expand(with_tail(K, N))), call.b_range,
                              {call.levels, call.lut_min.has_value(), call.lut_min.value_or(0.0f)});
    Tensor c = Tensor::empty({nb * M, N}, DType::f32, device);  // (batch·M, N)
    Tensor cb = with_layout(c, {{nb, M, N}, {M * N, N, 1}, 0});
    kernels::matmul(cb, with_layout(qa, {{nb, M, K}, {M * K, K, 1}, 0}), with_layout(qb, {{nb, K, N}, {K * N, N, 1}, 0}),
                    Accumulate::no);
    Tensor y2 = Tensor::empty({nb * M, N}, a.dtype(), device);
    Tensor no_stats;
    const Tensor out_ranges = with_layout(call.out_range, {{1, 2}, {2 * call.out_range.strides()[0], call.out_range.strides()[0]},
                                                           call.out_range.offset()});
    kernels::optical_output(y2, no_stats, c, out_ranges, {}, {call.levels, false, 0.0f}, call.dither, Tensor(),
                            optical::OutputStats::none);
    Tensor y = with_layout(y2, Layout::contiguous(with_tail(M, N)));  // (..., M, N)

    // The float matmul's backward (autograd/ops/matmul.cpp), at the unquantized operands.
    autograd::record(op, y, {a, b},
        [a2 = b.requires_grad() ? a.detach() : Tensor(), b2 = a.requires_grad() ? b.detach() : Tensor(),
         a_shape = a.shape(), b_shape = b.shape()](const Tensor& dy) {
            Tensor da, db;
            if (b2.defined()) da = autograd::sum_to(matmul(dy, b2.transpose(b2.dim() - 2, b2.dim() - 1)), a_shape);
            const bool b_shared = std::all_of(b_shape.begin(), b_shape.end() - 2, [](int64_t s) { return s == 1; });
            if (a2.defined() && b_shared && dy.dim() > 2) {
                const Shape rows(dy.shape().begin(), dy.shape().end() - 1);  // (..., M)
                const int64_t K = b_shape.end()[-2], N = b_shape.back(), P = numel_of(rows);
                Shape rows_k = rows;
                rows_k.push_back(K);
                const Tensor a_rows = a2.expand(rows_k).reshape({P, K});  // (P, K)
                db = matmul(a_rows.transpose(0, 1), dy.reshape({P, N})).reshape(b_shape);
            } else if (a2.defined()) {
                db = autograd::sum_to(matmul(a2.transpose(a2.dim() - 2, a2.dim() - 1), dy), b_shape);
            }
            return autograd::Grads{da, db};
        });
    return y;
}

}  // namespace lumen::ops
