// tests/optical/attention_test.cpp: the optical attention op and kernels (specs/optical.md §3.3,
// §3.4, §10 A1, A2, A4) on every device: the calibration pass measures the unscaled float q·kᵀ over
// the causal entries only (A1) and the float attention output; the training EMA order; P ≤ 1/510
// quantizes to 0 and a row of uniform attention over more than 510 keys accumulates exactly 0
// (A2); the forward against an independent per-element reference (S bit for bit, y within one
// output step) on awkward shapes (T = 1, odd T, Tq < Tk, GQA, bf16); the backward against the
// straight-through composition of digital ops with D from the float P·v (A4); errors.
#include "tests/optical/attention_testing.h"

#include <algorithm>

using namespace lumen;
using namespace lumen::test::optical_attention;

namespace {

// [min, max] in double of q_r·k_j over the causal entries (causal = true) or all of them.
std::pair<double, double> product_range(const Dims& n, const std::vector<float>& q, const std::vector<float>& k,
                                        bool causal) {
    double lo = INFINITY, hi = -INFINITY;
    const int64_t rep = n.H / n.Hkv, off = n.Tk - n.Tq;
    for (int64_t b = 0; b < n.B; ++b)
        for (int64_t h = 0; h < n.H; ++h)
            for (int64_t r = 0; r < n.Tq; ++r)
                for (int64_t j = 0; j < (causal ? off + r + 1 : n.Tk); ++j) {
                    double s = 0;
                    for (int64_t e = 0; e < n.d; ++e)
                        s += double(q[size_t(((b * n.H + h) * n.Tq + r) * n.d + e)]) *
                             double(k[size_t(((b * n.Hkv + h / rep) * n.Tk + j) * n.d + e)]);
                    lo = std::min(lo, s);
                    hi = std::max(hi, s);
                }
    return {lo, hi};
}

std::pair<double, double> min_max(const std::vector<float>& v) {
    const auto [lo, hi] = std::minmax_element(v.begin(), v.end());
    return {*lo, *hi};
}

Tensor repeat_kv(const Tensor& t, int64_t rep) {
    if (rep == 1) return t;
    const auto [B, nkv, T, hs] = t.dims<4>();
    return t.unsqueeze(2).expand({B, nkv, rep, T, hs}).reshape({B, nkv * rep, T, hs});
}

}  // namespace

LUMEN_DEVICE_TEST("optical attention: A1 calibration measures the unscaled float q·kᵀ over causal entries only") {
    for (const Dims& n : {Dims{2, 4, 2, 9, 9, 8}, Dims{1, 2, 1, 3, 7, 5}}) {
        INFO(str(n));
        Qkv x = random_qkv(n, 11, DType::f32, device);
        // Query row 0 (of every head) sees keys 0..Tk−Tq only: a large row 0 and a last key aligned
        // with it put the extremes of the full product in the masked triangle, where the statistics
        // must not look.
        std::vector<float> qv = values(x.q);
        for (int64_t bh = 0; bh < n.B * n.H; ++bh)
            for (int64_t e = 0; e < n.d; ++e) qv[size_t(bh * n.Tq * n.d + e)] = 40.0f * float((e % 3) - 1);
        x.q = Tensor::from(qv, {n.B, n.H, n.Tq, n.d}, device);
        std::vector<float> kv = values(x.k);   // the last key (masked for every row but the last) aligned with row 0
        for (int64_t bh = 0; bh < n.B * n.Hkv; ++bh)
            for (int64_t e = 0; e < n.d; ++e) kv[size_t((bh * n.Tk + n.Tk - 1) * n.d + e)] = 3.0f * float((e % 3) - 1);
        x.k = Tensor::from(kv, {n.B, n.Hkv, n.Tk, n.d}, device);
        const auto causal = product_range(n, qv, kv, true), full = product_range(n, qv, kv, false);
        REQUIRE((full.first < causal.first - 1.0 || full.second > causal.second + 1.0));

        ops::OpticalAttentionCall call;
        call.ranges = fresh_ranges(device);
        call.training = false;   // eval: the first call assigns, nothing is averaged after
        call.calibrate_qk = call.calibrate_av = true;
        Tensor y = ops::optical_causal_attention(x.q, x.k, x.v, call);
        CHECK(y.shape() == x.q.shape());
        for (float v : values(y)) CHECK(std::isfinite(v));
        const std::vector<float> qk = values(call.ranges.qk);
        CHECK(qk[0] == doctest::Approx(causal.first).epsilon(1e-6));
        CHECK(qk[1] == doctest::Approx(causal.second).epsilon(1e-6));
        // The operand ranges are the batches' own [min, max]; av the float attention output's.
        CHECK(values(call.ranges.query) == std::vector<float>{float(min_max(qv).first), float(min_max(qv).second)});
        CHECK(values(call.ranges.key) == std::vector<float>{float(min_max(kv).first), float(min_max(kv).second)});
        const auto av_ref = min_max(values(ops::causal_attention(x.q, x.k, x.v)));
        const std::vector<float> av = values(call.ranges.av);
        CHECK(av[0] == doctest::Approx(av_ref.first).epsilon(1e-5));
        CHECK(av[1] == doctest::Approx(av_ref.second).epsilon(1e-5));
    }
}

LUMEN_DEVICE_TEST("optical attention: training calibrates, then averages the S and y accumulators in after the kernel") {
    const Dims n{1, 2, 2, 6, 6, 4};
    const Qkv x = random_qkv(n, 21, DType::f32, device);
    ops::OpticalAttentionCall eval;
    eval.ranges = fresh_ranges(device);
    eval.training = false;
    eval.calibrate_qk = eval.calibrate_av = true;
    ops::optical_causal_attention(x.q, x.k, x.v, eval);
    const std::vector<float> cal_qk = values(eval.ranges.qk), cal_av = values(eval.ranges.av);

    ops::OpticalAttentionCall train = eval;
    train.ranges = fresh_ranges(device);
    train.training = true;
    train.dither = element_dither(0, 7, 8, 0);
    ops::OpticalAttentionRanges used;
    train.used = &used;
    ops::optical_causal_attention(x.q, x.k, x.v, train);
    // The kernel ran on the calibrated ranges (the copies in `used`), then qk/av moved by the EMA.
    CHECK(values(used.qk) == cal_qk);
    CHECK(values(used.av) == cal_av);
    CHECK(values(train.ranges.query) == values(eval.ranges.query));
    const optical::QuantParams in{256, false, 0.0f}, w{256, true, 0.020040f};
    const Reference ref = reference_forward(
        n, values(quantized(x.q, used.query, in)), values(quantized(x.k, used.key, w)),
        values(quantized(x.v, used.value, w)), cal_qk[0], cal_qk[1], cal_av[0], cal_av[1], 256,
        float(1.0 / std::sqrt(4.0)), train.dither);
    const std::vector<float> qk = values(train.ranges.qk), av = values(train.ranges.av);
    using optical::add_rn, optical::mul_rn;
    CHECK(qk[0] == add_rn(mul_rn(0.9f, cal_qk[0]), mul_rn(0.1f, ref.s_lo)));
    CHECK(qk[1] == add_rn(mul_rn(0.9f, cal_qk[1]), mul_rn(0.1f, ref.s_hi)));
    CHECK(av[0] == doctest::Approx(add_rn(mul_rn(0.9f, cal_av[0]), mul_rn(0.1f, ref.y_lo))).epsilon(1e-6));
    CHECK(av[1] == doctest::Approx(add_rn(mul_rn(0.9f, cal_av[1]), mul_rn(0.1f, ref.y_hi))).epsilon(1e-6));
    // A second training call averages the operand ranges too; eval then changes nothing.
    train.calibrate_qk = train.calibrate_av = false;
    train.used = nullptr;
    Qkv wide = random_qkv(n, 22, DType::f32, device, 2.0);
    ops::optical_causal_attention(wide.q, wide.k, wide.v, train);
    const auto wq = min_max(values(wide.q));
    CHECK(values(train.ranges.query)[1] == add_rn(mul_rn(0.9f, values(used.query)[1]), mul_rn(0.1f, float(wq.second))));
    const std::vector<float> before = values(train.ranges.av);
    train.training = false;
    ops::optical_causal_attention(wide.q, wide.k, wide.v, train);
    CHECK(values(train.ranges.av) == before);
}

LUMEN_DEVICE_TEST("optical attention: A2 uniform attention over more than 510 keys quantizes P to 0 and y_acc to exactly 0") {
    // q = 0 and qk range [0, 1]: every S is level 0 whatever the dither, so row r of a call with
    // Tk = 600 attends uniformly to its Tk − Tq + r + 1 keys with P = 1/(keys).
    for (int64_t Tq : {91, 92}) {   // query positions 509..599 (at least 510 keys each), or from 508 (509 keys)
        INFO("Tq " << Tq);
        const Dims n{1, 2, 1, Tq, 600, 4};
        OpticalAttentionForward f;
        f.q = Tensor::zeros({n.B, n.H, n.Tq, n.d}, DType::f32, device);
        f.k = test::random({n.B, n.Hkv, n.Tk, n.d}, 3, DType::f32, device);
        f.v = Tensor::ones({n.B, n.Hkv, n.Tk, n.d}, DType::f32, device);
        f.qk_mm = range(0.0f, 1.0f, device);
        f.av_mm = range(0.0f, 2.0f, device);
        f.y = Tensor::empty({n.B, n.H, n.Tq, n.d}, DType::f32, device);
        f.av_stat = Tensor::empty({2}, DType::f32, device);
        OpticalAttentionConfig c;
        c.scale = 0.5f;
        c.dither = element_dither(1, 2, 3, 4);
        kernels::optical_attention_forward(f, c);
        const std::vector<float> y = values(f.y), acc = values(f.av_stat);
        if (Tq == 91) {
            CHECK(acc == std::vector<float>{0.0f, 0.0f});   // Q(P) ≡ 0: the accumulator is exactly 0
            CHECK(std::all_of(y.begin(), y.end(), [](float v) { return v == 0.0f; }));
        } else {
            // the row at position 508 sees 509 keys: P = 1/509 > 1/510 is level 1, y_acc = 509/255
            CHECK(acc[0] == 0.0f);
            CHECK(acc[1] == doctest::Approx(509.0 / 255.0).epsilon(1e-5));
            for (int64_t h = 0; h < n.H; ++h) CHECK(y[size_t(h * n.Tq * n.d)] > 1.9f);
        }
    }
    // Q7 at the kernel's P: levels of 1/510 (the tie rounds to even 0), 1/509, 1 − 1/510, 0.999.
    const optical::QuantParams p{256, false, 0.0f};
    CHECK(optical::quantize_det(1.0f / 510.0f, 0.0f, 1.0f, p) == 0.0f);
    CHECK(optical::quantize_det(1.0f / 509.0f, 0.0f, 1.0f, p) == 1.0f / 255.0f);
    CHECK(optical::quantize_det(1.0f - 1.0f / 510.0f, 0.0f, 1.0f, p) == optical::dequantize_level(254.0f, 0.0f, 1.0f, p));
    CHECK(optical::quantize_det(0.999f, 0.0f, 1.0f, p) == 1.0f);
}

namespace {

// The kernel on quantized operands against reference_forward: S bit for bit, y within one output
// step (a level of Q(P) may differ where the f32 P sits on a boundary that the double P does not).
void check_against_reference(Device device, const Dims& n, DType dt, int32_t levels, const AttentionDither& dither) {
    INFO(str(n) << " " << dtype_name(dt) << " L " << levels << (dither.scalar ? " scalar" : " element"));
    const Qkv x = random_qkv(n, 100 + uint64_t(n.Tk), dt, device);
    const optical::QuantParams in{levels, false, 0.0f}, w{levels, true, 0.020040f};
    const Tensor unit = range(-1.0f, 1.0f, device);
    const float qk_lo = -0.8f * std::sqrt(float(n.d)), qk_hi = 0.9f * std::sqrt(float(n.d));
    const float av_lo = -0.7f, av_hi = 0.8f, scale = float(1.0 / std::sqrt(double(n.d)));
    OpticalAttentionForward f;
    f.q = quantized(x.q, unit, in);
    f.k = quantized(x.k, unit, w);
    f.v = quantized(x.v, unit, w);
    f.v_float = x.v;
    f.qk_mm = range(qk_lo, qk_hi, device);
    f.av_mm = range(av_lo, av_hi, device);
    f.y = Tensor::empty({n.B, n.H, n.Tq, n.d}, dt, device);
    f.row_max = Tensor::empty({n.B, n.H, n.Tq}, DType::f32, device);
    f.row_sum = Tensor::empty({n.B, n.H, n.Tq}, DType::f32, device);
    f.pv = Tensor::empty({n.B, n.H, n.Tq, n.d}, DType::f32, device);
    f.qk_stat = Tensor::empty({2}, DType::f32, device);
    f.av_stat = Tensor::empty({2}, DType::f32, device);
    f.scores = Tensor::zeros({n.B, n.H, n.Tq, n.Tk}, DType::f32, device);
    OpticalAttentionConfig c;
    c.levels = levels;
    c.scale = scale;
    c.dither = dither;
    kernels::optical_attention_forward(f, c);
    const Reference ref = reference_forward(n, values(f.q), values(f.k), values(f.v), qk_lo, qk_hi, av_lo, av_hi,
                                            levels, scale, dither);
    const std::vector<float> S = values(f.scores), y = values(f.y), m = values(f.row_max), l = values(f.row_sum);
    const std::vector<float> pv = values(f.pv), vf = values(x.v);
    int64_t s_diff = 0, y_exact = 0;
    for (size_t i = 0; i < S.size(); ++i) s_diff += !std::isnan(ref.S[i]) && S[i] != ref.S[i];
    CHECK(s_diff == 0);
    const double step = double(av_hi - av_lo) / (levels - 1);
    for (size_t i = 0; i < y.size(); ++i) {
        const double r = double(Tensor::scalar(ref.y[i]).to(dt).item());   // the reference in y's dtype
        CHECK(std::abs(y[i] - r) <= step * 1.001 + std::abs(r) * 0.004);
        y_exact += y[i] == float(r);
    }
    CHECK(double(y_exact) >= 0.99 * double(y.size()));
    CHECK(values(f.qk_stat) == std::vector<float>{ref.s_lo, ref.s_hi});
    const std::vector<float> av = values(f.av_stat);
    CHECK(std::abs(av[0] - ref.y_lo) <= 1.0 / (levels - 1));
    CHECK(std::abs(av[1] - ref.y_hi) <= 1.0 / (levels - 1));
    const int64_t rep = n.H / n.Hkv;
    for (int64_t row = 0; row < n.B * n.H * n.Tq; ++row) {
        const int64_t b = row / (n.H * n.Tq), h = row / n.Tq % n.H, last = n.Tk - n.Tq + row % n.Tq;
        float mx = -INFINITY;
        for (int64_t j = 0; j <= last; ++j) mx = std::max(mx, optical::mul_rn(scale, ref.S[size_t(row * n.Tk + j)]));
        CHECK(m[size_t(row)] == mx);
        double sum = 0;
        for (int64_t j = 0; j <= last; ++j) sum += std::exp(double(scale) * ref.S[size_t(row * n.Tk + j)] - mx);
        CHECK(l[size_t(row)] == doctest::Approx(sum).epsilon(1e-5));
        for (int64_t e = 0; e < n.d; ++e) {
            double dot = 0;
            for (int64_t j = 0; j <= last; ++j)
                dot += ref.P[size_t(row * n.Tk + j)] * vf[size_t(((b * n.Hkv + h / rep) * n.Tk + j) * n.d + e)];
            CHECK(pv[size_t(row * n.d + e)] == doctest::Approx(dot).epsilon(1e-5).scale(1.0));
        }
    }
}

}  // namespace

LUMEN_DEVICE_TEST("optical attention: forward equals the per-element reference (T = 1, odd T, Tq < Tk, GQA, bf16)") {
    const Dims shapes[] = {{1, 1, 1, 1, 1, 4}, {2, 4, 2, 7, 7, 8}, {1, 3, 1, 5, 12, 6},
                           {1, 2, 2, 33, 33, 16}, {2, 2, 1, 1, 40, 8}};
    AttentionDither scalar;
    scalar.scalar = true;
    scalar.r = optical::scalar_dither_offset(1);
    for (const Dims& n : shapes)
        for (DType dt : {DType::f32, DType::bf16}) {
            check_against_reference(device, n, dt, 256, element_dither(0, 0x1234, 0x5678, 9));
            check_against_reference(device, n, dt, 16, element_dither(3, 1, 2, (uint64_t(1) << 63) + 2));
        }
    check_against_reference(device, shapes[1], DType::f32, 256, scalar);
}

LUMEN_GRADCHECK_COVERS("optical_causal_attention");

LUMEN_DEVICE_TEST("optical attention: A4 backward equals the straight-through composition, D from the float P·v") {
    for (const Dims& n : {Dims{2, 4, 2, 7, 7, 8}, Dims{1, 2, 1, 5, 9, 6}, Dims{1, 1, 1, 1, 1, 4}})
        for (int32_t levels : {256, 16}) {
            INFO(str(n) << " L " << levels);
            const Qkv x = random_qkv(n, 31, DType::f32, device);
            const float scale = float(1.0 / std::sqrt(double(n.d)));
            ops::OpticalAttentionCall call;
            call.ranges = {range(-1, 1, device), range(-1, 1, device), range(-1, 1, device), range(-1.5f, 1.7f, device),
                           range(-0.6f, 0.7f, device)};
            call.levels = levels;
            call.update_ranges = false;
            call.dither = element_dither(5, 6, 7, 3);
            auto leaf = [](const Tensor& t) { Tensor l = t.detach().clone(); l.set_requires_grad(true); return l; };
            Tensor ql = leaf(x.q), kl = leaf(x.k), vl = leaf(x.v);
            Tensor y = ops::optical_causal_attention(ql, kl, vl, call);
            const Tensor dy = test::random(y.shape(), 40, DType::f32, device);
            autograd::run_backward({y}, {dy}, RetainGraph::no);

            // The S the op used: the kernel on the same operands, asked for its scores.
            const optical::QuantParams in{levels, false, 0.0f}, w{levels, true, 0.020040f};
            OpticalAttentionForward f;
            f.q = quantized(x.q, call.ranges.query, in);
            f.k = quantized(x.k, call.ranges.key, w);
            f.v = quantized(x.v, call.ranges.value, w);
            f.qk_mm = call.ranges.qk;
            f.av_mm = call.ranges.av;
            f.scores = Tensor::zeros({n.B, n.H, n.Tq, n.Tk}, DType::f32, device);
            OpticalAttentionConfig c;
            c.levels = levels;
            c.scale = scale;
            c.dither = call.dither;
            kernels::optical_attention_forward(f, c);

            // §3.4 by autograd: att carries S's value and q·kᵀ's gradient; P from S; P·v unquantized.
            Tensor qr = leaf(x.q), kr = leaf(x.k), vr = leaf(x.v);
            const int64_t rep = n.H / n.Hkv;
            Tensor att = ops::matmul(qr, repeat_kv(kr, rep).transpose(2, 3));   // (B, H, Tq, Tk)
            Tensor st = att + (f.scores - att.detach());
            Tensor P = ops::causal_softmax(st, scale);
            Tensor pv = ops::matmul(P, repeat_kv(vr, rep));                      // (B, H, Tq, d)
            autograd::run_backward({pv}, {dy}, RetainGraph::no);
            const test::Tolerance tol{2e-5, 2e-4};
            CHECK_CLOSE(ql.grad(), qr.grad(), tol);
            CHECK_CLOSE(kl.grad(), kr.grad(), tol);
            CHECK_CLOSE(vl.grad(), vr.grad(), tol);
            // Control: D from the quantized y instead of P·v would move dq by c·(D_pv − D_y)·(P·k),
            // far beyond the tolerance (so the comparison above can tell the two apart).
            if (levels == 16 && n.Tq > 1) {
                Tensor dD = ops::sum(dy * (pv.detach() - y.detach()), {3}, KeepDim::yes);
                Tensor shift = dD * ops::matmul(P.detach(), repeat_kv(x.k, rep)) * double(scale);
                const std::vector<float> sv = values(shift);
                double big = 0;
                for (float v : sv) big = std::max(big, double(std::abs(v)));
                CHECK(big > 50 * tol.atol);
            }
        }
}

LUMEN_DEVICE_TEST("optical attention: f64 and f16 inputs use f32 operands and keep their dtype") {
    const Dims n{1, 2, 1, 5, 5, 4};
    const Qkv x = random_qkv(n, 51, DType::f32, device);
    auto run = [&](DType dt) {
        ops::OpticalAttentionCall call;
        call.ranges = fresh_ranges(device);
        call.calibrate_qk = call.calibrate_av = true;
        call.dither = element_dither(0, 1, 2, 0);
        Tensor q = x.q.to(dt).clone(), k = x.k.to(dt).clone(), v = x.v.to(dt).clone();
        for (Tensor* t : {&q, &k, &v}) t->set_requires_grad(true);
        Tensor y = ops::optical_causal_attention(q, k, v, call);
        CHECK(y.dtype() == dt);
        autograd::run_backward({y}, {Tensor::ones(y.shape(), dt, device)}, RetainGraph::no);
        CHECK(q.grad().dtype() == dt);
        CHECK(v.grad().dtype() == dt);
        return std::pair{y.to(DType::f32), q.grad().to(DType::f32)};
    };
    const auto f32 = run(DType::f32), f64 = run(DType::f64);
    CHECK(test::same_bits(f64.first, f32.first));
    CHECK(test::same_bits(f64.second, f32.second));
    CHECK(run(DType::f16).first.shape() == f32.first.shape());
}

LUMEN_DEVICE_TEST("optical attention: errors name the operands") {
    ops::OpticalAttentionCall call;
    call.ranges = fresh_ranges(device);
    const Tensor q = Tensor::zeros({1, 2, 4, 8}, DType::f32, device), k = Tensor::zeros({1, 1, 4, 8}, DType::f32, device);
    CHECK_THROWS_CONTAINING(ops::optical_causal_attention(q, k, Tensor::zeros({1, 1, 3, 8}, DType::f32, device), call),
                            "k and v must have the same shape");
    CHECK_THROWS_CONTAINING(ops::optical_causal_attention(q, k.narrow(2, 0, 3), k.narrow(2, 0, 3), call),
                            "q has more positions than k (Tq = 4, Tk = 3");
    CHECK_THROWS_CONTAINING(ops::optical_causal_attention(q, Tensor::zeros({1, 3, 4, 8}, DType::f32, device),
                                                          Tensor::zeros({1, 3, 4, 8}, DType::f32, device), call),
                            "nh (2) must be a multiple of nkv (3)");
    ops::OpticalAttentionCall bad = call;
    bad.ranges.qk = Tensor::zeros({3}, DType::f32, device);
    CHECK_THROWS_CONTAINING(ops::optical_causal_attention(q, k, k, bad), "the qk range must be (2,) f32");
    bad = call;
    bad.ranges.av = Tensor::zeros({2}, DType::bf16, device);
    CHECK_THROWS_CONTAINING(ops::optical_causal_attention(q, k, k, bad), "the av range must be (2,) f32");
    bad = call;
    bad.levels = 1;
    CHECK_THROWS_CONTAINING(ops::optical_causal_attention(q, k, k, bad), "levels must be at least 2");
}
