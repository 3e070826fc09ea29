// tests/optim/muon_test.cpp: Muon (specs/optimizers.md §8, §2 G3, §13) on the CPU and on every
// device: φ⁵ known values; Newton–Schulz acting on singular values (diagonal inputs and random
// orthogonal U, V); the M1 known answer in f32 and bf16; the CPU step against an independent
// double-precision reference written from §8 (64×32, 32×96, 128×128, 20 steps, every step); Q/K/V
// of a GQA c_attn orthogonalised separately (both shape scales); the gradient is never written;
// bad steps write nothing; save -> load -> continue bit for bit; structural errors. The GPU-only
// cases are in muon_cuda_test.cpp.
#include "tests/optim/muon_testing.h"

#include <chrono>

using namespace lumen;
using namespace lumen::optim_test;
using namespace lumen::muon_test;

TEST_CASE("muon: phi^5 known values (§13.2)") {
    const double x[] = {0.1, 0.3, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0};
    const double expected[] = {0.712120, 1.079592, 0.765439, 0.722876, 1.120323, 1.119204, 0.682011, 0.696436};
    for (int i = 0; i < 8; ++i) CHECK(std::fabs(phi5(x[i]) - expected[i]) <= 1e-6);
    CHECK(optim::ns_a == a_);
    CHECK(optim::ns_b == b_);
    CHECK(optim::ns_c == c_);
}

TEST_CASE("muon: Newton-Schulz maps each singular value s to phi^5(s/||G||) (f32 mode, diagonal inputs)") {
    // Singular-value sets of unit norm (so s/||G|| = s) that cover every §13.2 φ⁵ value.
    const std::vector<std::vector<double>> sets = {
        {1.0}, {0.6, 0.8}, {0.1, 0.1, 0.3, 0.5, 0.8}, {0.7, 0.7, 0.1, 0.1}, {0.9, 0.3, 0.3, 0.1}};
    const std::map<double, double> table = {{0.1, 0.712120}, {0.3, 1.079592}, {0.5, 0.765439}, {0.6, 0.722876},
                                            {0.7, 1.120323}, {0.8, 1.119204}, {0.9, 0.682011}, {1.0, 0.696436}};
    for (const auto& s : sets) {
        for (bool tall : {false, true}) {
            const int64_t k = int64_t(s.size());
            Mat g = tall ? Mat(k + 2, k) : Mat(k, k + 3);
            for (int64_t i = 0; i < k; ++i) g(i, i) = s[size_t(i)];
            const Mat o = from_tensor(optim::newton_schulz(to_tensor(g), 5, DType::f32));
            Mat expected(g.rows, g.cols);
            for (int64_t i = 0; i < k; ++i) expected(i, i) = table.at(s[size_t(i)]);
            INFO("k " << k << std::string(tall ? " tall" : " wide"));
            CHECK(max_abs_diff(o, expected) <= 1e-5);
        }
    }
}

TEST_CASE("muon: Newton-Schulz acts on singular values with random orthogonal U, V (f32 mode)") {
    struct Case {
        int64_t rows, cols;
        std::vector<double> s;  // singular values before scaling
        double scale;
    };
    const Case cases[] = {{12, 7, {0.1, 0.1, 0.3, 0.5, 0.8}, 3.7},
                          {6, 10, {0.7, 0.7, 0.1, 0.1}, 0.02},
                          {9, 9, {0.9, 0.3, 0.3, 0.1}, 1.0},
                          {40, 24, {1.0, 0.5, 0.25, 0.05, 0.01}, 11.0}};
    uint64_t seed = 100;
    for (const Case& c : cases) {
        INFO(c.rows << "x" << c.cols);
        const int64_t k = int64_t(c.s.size());
        const Mat u = orthonormal_columns(c.rows, k, seed++), v = orthonormal_columns(c.cols, k, seed++);
        std::vector<double> sigma, phi;
        double norm = 0;
        for (double x : c.s) norm += x * x;
        norm = std::sqrt(norm);
        for (double x : c.s) {
            sigma.push_back(x * c.scale);
            phi.push_back(phi5(x / norm));
        }
        const Tensor g = to_tensor(compose(u, sigma, v));
        const Mat o = from_tensor(optim::newton_schulz(g, 5, DType::f32));
        CHECK(max_abs_diff(o, compose(u, phi, v)) <= 1e-5);
        // The exact iteration on the f32-rounded input agrees too (what the parity test relies on).
        CHECK(max_abs_diff(o, ns_reference(from_tensor(g), 5)) <= 1e-5);
    }
}

TEST_CASE("muon: Newton-Schulz on an empty or zero matrix gives zeros") {
    CHECK(optim::newton_schulz(Tensor::zeros({0, 5}), 5, DType::bf16).numel() == 0);
    for (DType dt : {DType::f32, DType::bf16}) {
        const std::vector<double> o = optim::newton_schulz(Tensor::zeros({4, 6}), 5, dt).to_vector<double>();
        for (double x : o) CHECK(x == 0.0);
    }
}

TEST_CASE("muon: M1 known answer (3x2 tall, first step, nesterov; f32 at 1e-5, bf16 at 6e-2)") {
    const std::vector<float> g = {3, 0, 0, 4, 0, 0};
    const double expected[] = {0.885339, 0, 0, 1.370739, 0, 0};
    CHECK(std::fabs(phi5(0.6) * std::sqrt(1.5) - expected[0]) <= 1e-6);
    CHECK(std::fabs(phi5(0.8) * std::sqrt(1.5) - expected[3]) <= 1e-6);
    for (bool f32 : {true, false}) {
        INFO(std::string(f32 ? "f32" : "bf16"));
        optim::Hyper h = optim::api_defaults(optim::Kind::muon);  // lr 0.02, μ 0.95, nesterov, wd 0
        h.ns_f32 = f32;
        // P₀ = 0 reads O exactly (P₁ = −0.02·O); P₀ = 1 checks P₁ = P₀ − 0.02·O.
        nn::Parameter zero = param_from("zero", std::vector<float>(6, 0.f), {3, 2});
        nn::Parameter one = param_from("one", std::vector<float>(6, 1.f), {3, 2});
        optim::Optimizer opt = muon_group(h, {zero, one});
        set_grad(zero, g);
        set_grad(one, g);
        opt.step();
        const std::vector<double> o = values(zero.tensor), p1 = values(one.tensor);
        const double tol = f32 ? 1e-5 : 6e-2;
        for (int i = 0; i < 6; ++i) {
            CHECK(std::fabs(-o[size_t(i)] / 0.02 - expected[i]) <= tol);
            CHECK(std::fabs(p1[size_t(i)] - (1 - 0.02 * expected[i])) <= (f32 ? 2e-6 : 0.02 * tol));
        }
        // Momentum: M = (1 − μ)·G.
        const std::vector<double> m = values(state_of(opt, "zero.momentum_buffer"));
        for (int i = 0; i < 6; ++i) CHECK(std::fabs(m[size_t(i)] - 0.05 * g[size_t(i)]) <= 1e-7);
    }
}

TEST_CASE("muon: CPU step matches the double reference after every step (f32 NS, 20 steps)") {
    optim::Hyper h = f32_hyper();
    h.weight_decay = 0.01;  // exercise the decay (lr·wd = 2e-4)
    for (const Shape& shape : {Shape{64, 32}, Shape{32, 96}, Shape{128, 128}}) {
        for (bool nesterov : {true, false}) {
            INFO("shape " << shape_str(shape) << std::string(nesterov ? " nesterov" : " plain"));
            const auto start = std::chrono::steady_clock::now();
            h.nesterov = nesterov;
            nn::Parameter p = param("p", shape, 42);
            MuonReference ref = reference_for(h, p);
            optim::Optimizer opt = muon_group(h, {p});
            for (int step = 1; step <= 20; ++step) {
                const std::vector<float> g = grad_values(p, step, 0);
                set_grad(p, g);
                const double lr_scale = 1.0 - 0.03 * step;
                opt.step(lr_scale);
                ref.step(g, lr_scale);
                std::string first;
                CHECK_MESSAGE(mismatches(values(p.tensor), ref.p.v, 1e-6, 1e-5, &first) == 0,
                              "step " << step << " p " << first);
                CHECK_MESSAGE(mismatches(values(state_of(opt, "p.momentum_buffer")), ref.m.v, 1e-6, 1e-5, &first) == 0,
                              "step " << step << " momentum " << first);
            }
            MESSAGE("muon parity " << shape_str(shape) << ": "
                                   << std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count()
                                   << " s");
        }
    }
}

TEST_CASE("muon: Q, K and V of a GQA c_attn are orthogonalised separately (both shape scales)") {
    // C = 32, 4 heads of 8, 1 KV head: c_attn (C + 2·kv, C) = (48, 32), parts {32, 8, 8}.
    for (optim::MuonScale scale : {optim::MuonScale::original, optim::MuonScale::match_rms_adamw}) {
        INFO("scale " << int(scale));
        optim::Hyper h = f32_hyper();
        h.lr = 1.0, h.muon_scale = scale;
        nn::Parameter attn = param_from("attn", std::vector<float>(48 * 32, 0.f), {48, 32});
        attn.row_parts = {32, 8, 8};
        optim::Optimizer opt = muon_group(h, {attn});
        const std::vector<float> g = normal(48 * 32, 77, 0.01);
        set_grad(attn, g);
        opt.step();
        Mat o = from_tensor(attn.tensor);  // P₁ = −O
        for (double& x : o.v) x = -x;
        // Each part against the exact iteration on that part alone, times the part's scale.
        const Mat gm = from_floats(g, 48, 32);
        const int64_t firsts[] = {0, 32, 40}, rows[] = {32, 8, 8};
        for (int k = 0; k < 3; ++k) {
            Mat gp(rows[k], 32), op(rows[k], 32);
            for (int64_t i = 0; i < rows[k]; ++i)
                for (int64_t j = 0; j < 32; ++j) {
                    gp(i, j) = gm(firsts[k] + i, j);
                    op(i, j) = o(firsts[k] + i, j);
                }
            const double s = optim::MuonRule::shape_scale(scale, rows[k], 32);
            CHECK(s == (scale == optim::MuonScale::original ? 1.0 : 0.2 * std::sqrt(32.0)));
            Mat expected = ns_reference(gp, 5);
            for (double& x : expected.v) x *= s;
            INFO("part " << k);
            CHECK(max_abs_diff(op, expected) <= 1e-5 * s);
        }
        // Orthogonalising the whole tensor would give something else.
        Mat whole = ns_reference(gm, 5);
        const double s_whole = optim::MuonRule::shape_scale(scale, 48, 32);
        for (double& x : whole.v) x *= s_whole;
        CHECK(max_abs_diff(o, whole) > 0.05);
    }
}

TEST_CASE("muon: the shape scales (original and match_rms_adamw)") {
    using optim::MuonRule;
    using optim::MuonScale;
    CHECK(MuonRule::shape_scale(MuonScale::original, 3, 2) == std::sqrt(1.5));
    CHECK(MuonRule::shape_scale(MuonScale::original, 768, 3072) == 1.0);
    CHECK(MuonRule::shape_scale(MuonScale::original, 3072, 768) == 2.0);
    CHECK(MuonRule::shape_scale(MuonScale::match_rms_adamw, 768, 3072) == 0.2 * std::sqrt(3072.0));
    CHECK(MuonRule::shape_scale(MuonScale::match_rms_adamw, 3072, 768) == 0.2 * std::sqrt(3072.0));
}

TEST_CASE("muon: the gradient is never written; a parameter without a gradient steps with zeros") {
    optim::Hyper h = f32_hyper();
    h.weight_decay = 0.1;
    nn::Parameter p = param("p", {16, 8}, 1), q = param("q", {16, 8}, 1);
    optim::Optimizer opt = muon_group(h, {p, q});
    const std::vector<float> g = grad_values(p, 1, 0);
    set_grad(p, g);
    const Tensor before = p.tensor.detach().clone();
    opt.step();
    CHECK(test::same_bits(p.tensor.grad(), Tensor::from(g, {16, 8})));
    // q had no gradient: momentum stays 0, U = 0, O = 0, only decay applies.
    const std::vector<double> start = values(before), now = values(q.tensor);
    for (size_t i = 0; i < now.size(); ++i) CHECK(std::fabs(now[i] - start[i] * (1 - 0.02 * 0.1)) <= 1e-7);
    for (double m : values(state_of(opt, "q.momentum_buffer"))) CHECK(m == 0.0);
}

LUMEN_DEVICE_TEST("muon: a NaN or Inf gradient or loss skips the step and changes nothing") {
    for (bool f32 : {true, false}) {
        optim::Hyper h = optim::api_defaults(optim::Kind::muon);
        h.ns_f32 = f32, h.weight_decay = 0.01;
        optim::Optimizer opt = muon_group(h, muon_params(device));
        const std::vector<nn::Parameter> ps = opt.parameters();
        for (int step = 1; step <= 2; ++step) {
            feed(ps, step);
            opt.step();
        }
        for (float poison : {NAN, INFINITY, -INFINITY}) {
            INFO("poison " << poison);
            const Snapshot before = snapshot(opt);
            feed(ps, 10);
            std::vector<float> g = grad_values(ps[4], 10, 4);
            g[100] = poison;
            set_grad(ps[4], g);
            opt.step();
            check_same(snapshot(opt), before);
        }
        const Snapshot before = snapshot(opt);
        feed(ps, 11);
        opt.step({1.0, optim::clip_flags(ps, 1.0, Tensor::from(std::vector<float>{NAN}, {1}, device))});
        check_same(snapshot(opt), before);
        opt.step({1.0, flags(0.5, 1.0, device)});
        check_same(snapshot(opt), before);
        opt.step();
        CHECK(opt.step_count(0) == 3);
        CHECK_FALSE(test::same_bits(ps[0].tensor, before.params[0]));
    }
}

LUMEN_DEVICE_TEST("muon: save -> load -> continue equals the uninterrupted run bit for bit") {
    for (bool f32 : {true, false}) {
        optim::Hyper h = optim::api_defaults(optim::Kind::muon);
        h.ns_f32 = f32, h.weight_decay = 0.01;
        optim::Optimizer a = muon_group(h, muon_params(device));
        const std::vector<nn::Parameter> pa = a.parameters();
        for (int step = 1; step <= 3; ++step) {
            feed(pa, step);
            a.step();
        }
        const optim::StateDict saved = a.state_dict();
        std::vector<nn::Parameter> pb;
        for (const nn::Parameter& p : pa) {
            Tensor t = p.tensor.detach().clone();
            t.set_requires_grad(true);
            pb.push_back({p.name, t, p.role, p.row_parts});
        }
        for (int step = 4; step <= 6; ++step) {
            feed(pa, step);
            a.step(0.5);
        }
        optim::Optimizer b = muon_group(h, pb);
        b.load_state_dict(saved);
        for (int step = 4; step <= 6; ++step) {
            feed(pb, step);
            b.step(0.5);
        }
        check_same(snapshot(b), snapshot(a));
    }
}

TEST_CASE("muon: structural errors name the parameter") {
    const optim::Hyper h = optim::api_defaults(optim::Kind::muon);
    CHECK_THROWS_CONTAINING(muon_group(h, {param("blocks.0.ln.weight", {8}, 1)}), "blocks.0.ln.weight");
    nn::Parameter attn = param("blocks.0.attn.c_attn.weight", {48, 32}, 1);
    attn.row_parts = {32, 8, 4};
    CHECK_THROWS_CONTAINING(muon_group(h, {attn}), "blocks.0.attn.c_attn.weight");
    attn.row_parts = {32, 24, -8};
    CHECK_THROWS_CONTAINING(muon_group(h, {attn}), "row parts");
}

TEST_CASE("muon: state names, bytes and a workspace allocated once") {
    optim::Hyper h = optim::api_defaults(optim::Kind::muon);
    nn::Parameter attn = param("attn", {48, 32}, 1);
    attn.row_parts = {32, 8, 8};
    std::vector<optim::Group> groups(1);
    groups[0].kind = optim::Kind::muon;
    groups[0].hyper = h;
    groups[0].params = {param("w", {16, 64}, 2), attn};
    optim::MuonRule rule(groups[0]);
    const auto st = rule.state();
    REQUIRE(st.size() == 2);
    CHECK(st[0].first == "w.momentum_buffer");
    CHECK(st[1].first == "attn.momentum_buffer");
    CHECK(rule.state_bytes() == 4 * (16 * 64 + 48 * 32));
    CHECK(rule.parts(1) == std::vector<int64_t>{32, 8, 8});
    const int64_t bytes = rule.workspace_bytes();
    // U scratch (48·32 f32) + bf16 X (16·64), A, B (32·32 each) + f32 P (32·32), Q (16·64) + norm partials.
    CHECK(bytes >= 48 * 32 * 4 + 16 * 64 * 2 + 2 * 32 * 32 * 2 + 32 * 32 * 4 + 16 * 64 * 4);
    for (int step = 1; step <= 2; ++step) {
        feed(groups[0].params, step);
        rule.step({1.0, flags(1.0, 0.0, Device::cpu())}, Tensor::zeros({1}, DType::i64));
        CHECK(rule.workspace_bytes() == bytes);
    }
}

// ---------------------------------------------------------------- CUDA against the CPU
