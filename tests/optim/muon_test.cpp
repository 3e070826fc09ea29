// tests/optim/muon_test.cpp: Muon (specs/optimizers.md §8, §2 G3, §13): φ⁵ known values; Newton–
// Schulz acting on singular values (diagonal inputs and random orthogonal U, V); the M1 known
// answer in f32 and bf16; the CPU step against an independent double-precision reference written
// from §8 (64×32, 32×96, 128×128, 20 steps, every step); Q/K/V of a GQA c_attn orthogonalised
// separately (both shape scales); the gradient is never written; bad steps write nothing;
// save -> load -> continue bit for bit; structural errors. On a GPU: the element-wise kernels bit
// for bit against the CPU on awkward shapes, the whole step against the CPU (f32 NS tight, bf16 NS
// at atol 2e-2), and CUDA repeats bit for bit.
#include "tests/optim/optim_testing.h"

#include "core/kernels/reduce.h"
#include "optim/muon.h"

#include <chrono>

using namespace lumen;
using namespace lumen::optim_test;

namespace {

constexpr double a_ = 3.4445, b_ = -4.7750, c_ = 2.0315;

double phi5(double x) {
    for (int i = 0; i < 5; ++i) x = a_ * x + b_ * x * x * x + c_ * x * x * x * x * x;
    return x;
}

// A dense row-major matrix in double.
struct Mat {
    int64_t rows = 0, cols = 0;
    std::vector<double> v;
    Mat() = default;
    Mat(int64_t r, int64_t c) : rows(r), cols(c), v(size_t(r * c), 0.0) {}
    double& operator()(int64_t i, int64_t j) { return v[size_t(i * cols + j)]; }
    double operator()(int64_t i, int64_t j) const { return v[size_t(i * cols + j)]; }
};

Mat transpose(const Mat& x) {
    Mat t(x.cols, x.rows);
    for (int64_t i = 0; i < x.rows; ++i)
        for (int64_t j = 0; j < x.cols; ++j) t(j, i) = x(i, j);
    return t;
}

Mat mul(const Mat& x, const Mat& y) {
    Mat z(x.rows, y.cols);
    for (int64_t i = 0; i < x.rows; ++i)
        for (int64_t k = 0; k < x.cols; ++k) {
            const double xik = x(i, k);
            for (int64_t j = 0; j < y.cols; ++j) z(i, j) += xik * y(k, j);
        }
    return z;
}

// §8's iteration in exact (double) arithmetic: wide side, X/(||X|| + 1e-7), steps × (A = XXᵀ,
// B = bA + cA², X = aX + BX), transposed back.
Mat ns_reference(const Mat& g, int steps) {
    const bool tall = g.rows > g.cols;
    Mat x = tall ? transpose(g) : g;
    double sq = 0;
    for (double e : x.v) sq += e * e;
    const double denom = std::sqrt(sq) + 1e-7;
    for (double& e : x.v) e /= denom;
    for (int s = 0; s < steps; ++s) {
        const Mat a = mul(x, transpose(x));
        const Mat aa = mul(a, a);
        Mat b(a.rows, a.cols);
        for (size_t i = 0; i < b.v.size(); ++i) b.v[i] = b_ * a.v[i] + c_ * aa.v[i];
        const Mat bx = mul(b, x);
        for (size_t i = 0; i < x.v.size(); ++i) x.v[i] = a_ * x.v[i] + bx.v[i];
    }
    return tall ? transpose(x) : x;
}

// k orthonormal columns of length n (Gram–Schmidt on seeded normal vectors), as an n × k matrix.
Mat orthonormal_columns(int64_t n, int64_t k, uint64_t seed) {
    const std::vector<float> raw = normal(n * k, seed, 1.0);
    Mat q(n, k);
    for (int64_t j = 0; j < k; ++j) {
        std::vector<double> col(static_cast<size_t>(n));
        for (int64_t i = 0; i < n; ++i) col[size_t(i)] = raw[size_t(i * k + j)];
        for (int pass = 0; pass < 2; ++pass)  // twice: re-orthogonalise for accuracy
            for (int64_t p = 0; p < j; ++p) {
                double dot = 0;
                for (int64_t i = 0; i < n; ++i) dot += col[size_t(i)] * q(i, p);
                for (int64_t i = 0; i < n; ++i) col[size_t(i)] -= dot * q(i, p);
            }
        double norm = 0;
        for (double e : col) norm += e * e;
        norm = std::sqrt(norm);
        for (int64_t i = 0; i < n; ++i) q(i, j) = col[size_t(i)] / norm;
    }
    return q;
}

// U·diag(s)·Vᵀ
Mat compose(const Mat& u, const std::vector<double>& s, const Mat& v) {
    Mat us = u;
    for (int64_t i = 0; i < u.rows; ++i)
        for (int64_t j = 0; j < u.cols; ++j) us(i, j) *= s[size_t(j)];
    return mul(us, transpose(v));
}

Tensor to_tensor(const Mat& m, Device device = Device::cpu()) {
    std::vector<float> f(m.v.begin(), m.v.end());
    return Tensor::from(f, {m.rows, m.cols}, device);
}

Mat from_tensor(const Tensor& t) {
    Mat m(t.size(0), t.size(1));
    m.v = t.to_vector<double>();
    return m;
}

Mat from_floats(const std::vector<float>& f, int64_t rows, int64_t cols) {
    Mat m(rows, cols);
    for (size_t i = 0; i < f.size(); ++i) m.v[i] = f[i];
    return m;
}

double max_abs_diff(const Mat& x, const Mat& y) {
    REQUIRE(x.v.size() == y.v.size());
    double d = 0;
    for (size_t i = 0; i < x.v.size(); ++i) d = std::max(d, std::fabs(x.v[i] - y.v[i]));
    return d;
}

// The §8 step for one tensor in double, with row parts.
struct MuonReference {
    double lr, mu, wd;
    bool nesterov;
    int steps;
    optim::MuonScale scale;
    std::vector<int64_t> parts;
    Mat p, m;

    void step(const std::vector<float>& g, double lr_scale = 1.0) {
        const double lr_t = lr * lr_scale;
        Mat u(p.rows, p.cols);
        for (size_t i = 0; i < p.v.size(); ++i) {
            m.v[i] = mu * m.v[i] + (1 - mu) * g[i];
            u.v[i] = nesterov ? (1 - mu) * g[i] + mu * m.v[i] : m.v[i];
        }
        Mat o(p.rows, p.cols);
        int64_t first = 0;
        for (int64_t rows : parts) {
            Mat part(rows, p.cols);
            std::copy(u.v.begin() + first * p.cols, u.v.begin() + (first + rows) * p.cols, part.v.begin());
            const double s = scale == optim::MuonScale::original
                                 ? std::sqrt(std::max(1.0, double(rows) / double(p.cols)))
                                 : 0.2 * std::sqrt(double(std::max(rows, p.cols)));
            const Mat op = ns_reference(part, steps);
            for (size_t i = 0; i < op.v.size(); ++i) o.v[size_t(first * p.cols) + i] = s * op.v[i];
            first += rows;
        }
        for (size_t i = 0; i < p.v.size(); ++i) p.v[i] = p.v[i] * (1 - lr_t * wd) - lr_t * o.v[i];
    }
};

MuonReference reference_for(const optim::Hyper& h, const nn::Parameter& p) {
    MuonReference r{h.lr, h.momentum, h.weight_decay, h.nesterov, int(h.ns_steps), h.muon_scale,
                    p.row_parts.empty() ? std::vector<int64_t>{p.tensor.size(0)} : p.row_parts,
                    from_tensor(p.tensor), Mat(p.tensor.size(0), p.tensor.size(1))};
    return r;
}

optim::Hyper f32_hyper() {
    optim::Hyper h = optim::api_defaults(optim::Kind::muon);
    h.ns_f32 = true;
    return h;
}

// Matrices only (Muon takes 2-D tensors): awkward sizes, a tall one, a 1×1, a c_attn with parts.
std::vector<nn::Parameter> muon_params(Device device) {
    nn::Parameter attn = param("attn", {48, 32}, 5, device);
    attn.row_parts = {32, 8, 8};
    return {param("w", {33, 17}, 1, device), param("t", {70, 9}, 2, device), param("one", {1, 1}, 3, device),
            param("wide", {5, 300}, 4, device), attn};
}

optim::Optimizer muon_group(const optim::Hyper& h, std::vector<nn::Parameter> params) {
    return one_group(optim::Kind::muon, h, std::move(params));
}

void feed(const std::vector<nn::Parameter>& ps, int step) {
    for (size_t i = 0; i < ps.size(); ++i) set_grad(ps[i], grad_values(ps[i], step, i));
}

}  // namespace

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

namespace {

// A (rows, cols) f32 view: contiguous, transposed, or every other column of a wider tensor.
Tensor layout_case(int64_t rows, int64_t cols, int how, uint64_t seed, Device device) {
    if (how == 0) return Tensor::from(normal(rows * cols, seed, 1.0), {rows, cols}, device);
    if (how == 1) return Tensor::from(normal(rows * cols, seed, 1.0), {cols, rows}, device).transpose(0, 1);
    return Tensor::from(normal(rows * 2 * cols, seed, 1.0), {rows, 2 * cols}, device).slice(1, 0, 2 * cols, 2);
}

}  // namespace

LUMEN_CUDA_TEST("muon: Newton-Schulz element-wise kernels match the CPU bit for bit on awkward shapes") {
    const std::pair<int64_t, int64_t> shapes[] = {{1, 1}, {0, 7}, {3, 5}, {37, 129}, {64, 4097}, {100, 1}};
    uint64_t seed = 1;
    for (DType dt : {DType::bf16, DType::f32}) {
        for (auto [n, m] : shapes) {
            for (int how = 0; how < 3; ++how) {
                INFO(dtype_name(dt) << " " << n << "x" << m << " layout " << how);
                const Tensor src = layout_case(n, m, how, seed++, Device::cpu());
                const Tensor src_d = layout_case(n, m, how, seed - 1, device);
                const int64_t chunks = (n * m + optim::ns_norm_chunk - 1) / optim::ns_norm_chunk;
                Tensor x = Tensor::empty({n, m}, dt), xd = Tensor::empty({n, m}, dt, device);
                Tensor part = Tensor::empty({chunks}), part_d = Tensor::empty({chunks}, DType::f32, device);
                cpu::ns_load(x, part, src);
                kernels::ns_load(xd, part_d, src_d);
                CHECK(test::same_bits(xd, x));
                CHECK_CLOSE(part_d, part, test::Tolerance{0, 1e-5});
                // Normalise both by the CPU's sum, so the comparison is bit for bit.
                Tensor sumsq = Tensor::zeros({1});
                if (chunks > 0) kernels::reduce_rows(ReduceOp::sum, sumsq, part, chunks);
                cpu::ns_normalize(x, sumsq);
                kernels::ns_normalize(xd, sumsq.to(device));
                CHECK(test::same_bits(xd, x));
                // Combine with an f32 operand, in place (X = a·X + Q) and out of place.
                const Tensor q = Tensor::from(normal(n * m, seed++, 1.0), {n, m});
                const Tensor qd = q.to(device);
                Tensor y = Tensor::empty({n, m}, dt), yd = Tensor::empty({n, m}, dt, device);
                cpu::ns_combine(y, x, q, -4.775f, 2.0315f);
                kernels::ns_combine(yd, xd, qd, -4.775f, 2.0315f);
                CHECK(test::same_bits(yd, y));
                cpu::ns_combine(x, x, q, 3.4445f, 1.f);
                kernels::ns_combine(xd, xd, qd, 3.4445f, 1.f);
                CHECK(test::same_bits(xd, x));
                // Store transposed into a strided f32 destination with a scale.
                Tensor dst = Tensor::zeros({m, 2 * n}), dst_d = Tensor::zeros({m, 2 * n}, DType::f32, device);
                Tensor dv = dst.slice(1, 0, 2 * n, 2), dv_d = dst_d.slice(1, 0, 2 * n, 2);
                cpu::ns_store(dv, x.transpose(0, 1), 1.2247449f);
                kernels::ns_store(dv_d, xd.transpose(0, 1), 1.2247449f);
                CHECK(test::same_bits(dst_d, dst));
            }
        }
    }
}

LUMEN_CUDA_TEST("muon: momentum and update kernels match the CPU bit for bit (bad steps write nothing)") {
    for (int64_t n : {int64_t(0), int64_t(1), int64_t(1000), int64_t(100003)}) {
        for (bool nesterov : {true, false}) {
            for (float bad : {0.f, 1.f}) {
                INFO(n << std::string(nesterov ? " nesterov" : "") << " bad " << bad);
                const Tensor g = Tensor::from(normal(n, 1, 0.01), {n});
                Tensor m = Tensor::from(normal(n, 2, 0.01), {n}), p = Tensor::from(normal(n, 3, 0.1), {n});
                Tensor md = m.to(device), pd = p.to(device), gd = g.to(device);
                Tensor u = Tensor::empty({n}), ud = Tensor::empty({n}, DType::f32, device);
                const Tensor fl = flags(0.37, bad, Device::cpu()), fd = fl.to(device);
                const Tensor m0 = m.clone();
                cpu::muon_momentum(u, m, g, fl, 0.95, nesterov);
                kernels::muon_momentum(ud, md, gd, fd, 0.95, nesterov);
                CHECK(test::same_bits(ud, u));
                CHECK(test::same_bits(md, m));
                if (bad != 0.f) CHECK(test::same_bits(m, m0));
                const Tensor p0 = p.clone();
                cpu::muon_update(p, u, fl, 0.02f, 0.9998f);
                kernels::muon_update(pd, ud, fd, 0.02f, 0.9998f);
                CHECK(test::same_bits(pd, p));
                if (bad != 0.f) CHECK(test::same_bits(p, p0));
                // An undefined gradient is a zero gradient.
                cpu::muon_momentum(u, m, Tensor(), fl, 0.95, nesterov);
                kernels::muon_momentum(ud, md, Tensor(), fd, 0.95, nesterov);
                CHECK(test::same_bits(ud, u));
            }
        }
    }
}

LUMEN_CUDA_TEST("muon: the CUDA step matches the CPU (f32 NS at 1e-5; bf16 NS at atol 2e-2 on O)") {
    for (bool f32 : {true, false}) {
        INFO(std::string(f32 ? "f32 NS" : "bf16 NS"));
        optim::Hyper h = optim::api_defaults(optim::Kind::muon);
        h.ns_f32 = f32, h.weight_decay = 0.01;
        nn::Parameter big = param("big", {1024, 4097}, 9, Device::cpu());
        std::vector<nn::Parameter> pc = muon_params(Device::cpu());
        pc.push_back(big);
        std::vector<nn::Parameter> pg;
        for (const nn::Parameter& p : pc) {
            Tensor t = p.tensor.detach().to(device);
            t.set_requires_grad(true);
            pg.push_back({p.name, t, p.role, p.row_parts});
        }
        optim::Optimizer cpu_opt = muon_group(h, pc), gpu_opt = muon_group(h, pg);
        for (int step = 1; step <= (f32 ? 3 : 2); ++step) {  // 1024×4097 NS on the CPU is the cost
            // Restart both from the CPU's parameters and momentum so that O is compared per step.
            if (step > 1) {
                for (size_t i = 0; i < pc.size(); ++i) pg[i].tensor.detach().copy_(pc[i].tensor);
                std::map<std::string, Tensor> st;
                for (const auto& [name, t] : cpu_opt.state_dict().tensors) st[name] = t;
                gpu_opt.rule(0).load_state(st);
            }
            std::vector<Tensor> before;
            for (const nn::Parameter& p : pc) before.push_back(p.tensor.detach().clone());
            for (size_t i = 0; i < pc.size(); ++i) {
                const std::vector<float> g = grad_values(pc[i], step, i);
                set_grad(pc[i], g);
                set_grad(pg[i], g);
            }
            const double lr_scale = 0.9;
            // The same γ on both devices (bit-identical momentum is then expected).
            cpu_opt.step({lr_scale, flags(0.37, 0.0, Device::cpu())});
            gpu_opt.step({lr_scale, flags(0.37, 0.0, device)});
            const double lr_t = h.lr * lr_scale;
            for (size_t i = 0; i < pc.size(); ++i) {
                INFO("step " << step << " " << pc[i].name);
                // O = (p·(1 − lr·wd) − p₁)/lr on each device.
                const std::vector<double> p0 = values(before[i]), c = values(pc[i].tensor), g = values(pg[i].tensor);
                std::vector<double> oc(c.size()), og(c.size());
                for (size_t e = 0; e < c.size(); ++e) {
                    oc[e] = (p0[e] * (1 - lr_t * h.weight_decay) - c[e]) / lr_t;
                    og[e] = (p0[e] * (1 - lr_t * h.weight_decay) - g[e]) / lr_t;
                }
                std::string first;
                if (f32) {
                    CHECK_MESSAGE(mismatches(g, c, 1e-6, 1e-5, &first) == 0, first);
                } else {
                    CHECK_MESSAGE(mismatches(og, oc, 2e-2, 0, &first) == 0, first);
                }
            }
            const auto sc = cpu_opt.state_dict().tensors, sg = gpu_opt.state_dict().tensors;
            for (size_t i = 0; i < sc.size(); ++i) CHECK(test::same_bits(sg[i].second.to(Device::cpu()), sc[i].second));
        }
    }
}

LUMEN_CUDA_TEST("muon: the same CUDA steps twice give the same bits (bf16 and f32 NS)") {
    for (bool f32 : {true, false}) {
        optim::Hyper h = optim::api_defaults(optim::Kind::muon);
        h.ns_f32 = f32, h.weight_decay = 0.01;
        auto run = [&] {
            std::vector<nn::Parameter> ps = muon_params(device);
            ps.push_back(param("big", {768, 3072}, 8, device));
            optim::Optimizer opt = muon_group(h, ps);
            for (int step = 1; step <= 4; ++step) {
                feed(ps, step);
                opt.step({1.0, optim::clip_flags(ps, 0.5)});
            }
            return snapshot(opt);
        };
        check_same(run(), run());
    }
}
