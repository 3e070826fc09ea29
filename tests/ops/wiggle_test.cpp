// tests/ops/wiggle_test.cpp: WiggleGPT's element-wise ops (shared/specs/wiggle.md §1, §2, §2.1, §11
// rows 1-3) and gelu_exact. oscillate: the spec's known answers, N identical rows, the stated
// properties, exact large arguments (full-accuracy sin), forward and every gradient against plain
// double loops on awkward shapes and dtypes, only the needed gradients, bit-identical parameter
// gradients. bio_gate: the spec's gate values and counts, counting rules (null counts, backward,
// checkpoint recompute, strided counters), the double reference. checkpoint's recompute flag.
// Gradchecks for all three ops. Every LUMEN_DEVICE_TEST runs on the GPU too where there is one.
#include "tests/harness.h"

#include "autograd/checkpoint.h"
#include "core/kernels/wiggle.h"

#include <cmath>
#include <omp.h>

using namespace lumen;

namespace {

// ---- plain double references, independent of the kernels' code ----

struct OscRef {
    std::vector<double> y, dx, domega, dphi, dbaseline;
};

// x (rows, H) row-major values; omega, phi, baseline (H); dy (rows, H).
OscRef ref_oscillate(const std::vector<double>& x, const std::vector<double>& omega,
                     const std::vector<double>& phi, const std::vector<double>& baseline,
                     const std::vector<double>& dy) {
    const size_t H = omega.size(), rows = H == 0 ? 0 : x.size() / H;
    OscRef r;
    r.domega.assign(H, 0.0), r.dphi.assign(H, 0.0), r.dbaseline.assign(H, 0.0);
    for (size_t i = 0; i < rows; ++i)
        for (size_t j = 0; j < H; ++j) {
            const double xv = x[i * H + j], g = dy[i * H + j];
            const double u = omega[j] * xv + phi[j], t = std::tanh(xv);
            r.y.push_back(std::sin(u) * t + baseline[j]);
            r.dx.push_back(g * (omega[j] * std::cos(u) * t + std::sin(u) * (1 - t * t)));
            r.domega[j] += g * xv * std::cos(u) * t;
            r.dphi[j] += g * std::cos(u) * t;
            r.dbaseline[j] += g;
        }
    return r;
}

double sigmoid(double z) { return 1 / (1 + std::exp(-z)); }

struct GateRef {
    std::vector<double> m, da, dz;
};
GateRef ref_bio_gate(const std::vector<double>& a, const std::vector<double>& z, double threshold,
                     const std::vector<double>& dm) {
    GateRef r;
    for (size_t i = 0; i < a.size(); ++i) {
        const double v = sigmoid(z[i]), s = sigmoid(5 * (v - threshold));
        r.m.push_back(a[i] * s);
        r.da.push_back(dm[i] * s);
        r.dz.push_back(dm[i] * a[i] * 5 * s * (1 - s) * v * (1 - v));
    }
    return r;
}

double ref_gelu_exact(double x) { return 0.5 * x * (1 + std::erf(x / std::sqrt(2.0))); }
double ref_gelu_exact_derivative(double x) {
    return 0.5 * (1 + std::erf(x / std::sqrt(2.0))) + x * std::exp(-0.5 * x * x) / std::sqrt(2 * M_PI);
}

Tensor values(const std::vector<double>& v, const Shape& shape, DType dt, Device device) {
    return Tensor::from(v, shape).to(dt).to(device);
}
Tensor leaf_values(const std::vector<double>& v, const Shape& shape, DType dt, Device device) {
    return values(v, shape, dt, device).detach().set_requires_grad();
}
std::vector<double> times(std::vector<double> v, double k) {
    for (double& e : v) e *= k;
    return v;
}

// ---- spec §11 table 1: one case per channel of a (1, 6) x ----
const std::vector<double> table_x = {1, -1, 0.5, 3, 0, -2};
const std::vector<double> table_omega = {1, 1, 1, 1, 1, 1.5};
const std::vector<double> table_phi = {0, 0, 0, 0, 0.3, -0.5};
const std::vector<double> table_baseline = {0, 0, 0, 0, 0, 0.1};
const std::vector<double> table_y = {0.640859384, 0.640859384, 0.221550767, 0.140422135, 0, -0.238164706};
const std::vector<double> table_dx = {0.764887301, -0.764887301, 0.782589087, -0.983704445, 0.295520207, 1.378938236};
const std::vector<double> table_domega = {0.411491079, 0.411491079, 0.202772979, -2.955290220, 0, -1.805540148};
const std::vector<double> table_dphi = {0.411491079, -0.411491079, 0.405545959, -0.985096740, 0, 0.902770074};

// The table's tolerance in dtype dt: rel 1e-6 (f32); f64 is held to 1e-12 against the closed
// forms (the table itself has 9 digits).
test::Tolerance table_tol(DType dt) { return dt == DType::f64 ? test::Tolerance{1e-15, 1e-12} : test::Tolerance{1e-12, 1e-6}; }

struct OscOut {
    std::vector<double> y, dx, domega, dphi, dbaseline;
};
// y and all four gradients through the public op, from per-row values repeated `rows` times.
OscOut run_table(DType dt, Device device, size_t rows) {
    const int64_t H = int64_t(table_x.size());
    std::vector<double> xs;
    for (size_t r = 0; r < rows; ++r) xs.insert(xs.end(), table_x.begin(), table_x.end());
    Tensor x = leaf_values(xs, {int64_t(rows), H}, dt, device);
    Tensor w = leaf_values(table_omega, {H}, dt, device), p = leaf_values(table_phi, {H}, dt, device);
    Tensor b = leaf_values(table_baseline, {H}, dt, device);
    Tensor y = ops::oscillate(x, w, p, b);
    y.backward(Tensor::ones(y.shape(), dt, device));
    return {y.to_vector<double>(), x.grad().to_vector<double>(), w.grad().to_vector<double>(),
            p.grad().to_vector<double>(), b.grad().to_vector<double>()};
}

}  // namespace

// ==== oscillate ====

TEST_CASE("oscillate: the spec's table agrees with the closed forms in double") {
    const OscRef r = ref_oscillate(table_x, table_omega, table_phi, table_baseline, std::vector<double>(6, 1.0));
    const test::Tolerance nine_digits{1e-9, 5e-9};
    CHECK_CLOSE(r.y, table_y, nine_digits);
    CHECK_CLOSE(r.dx, table_dx, nine_digits);
    CHECK_CLOSE(r.domega, table_domega, nine_digits);
    CHECK_CLOSE(r.dphi, table_dphi, nine_digits);
    CHECK(std::fabs(table_dx[4] - std::sin(0.3)) < 1e-9);
}

LUMEN_DEVICE_TEST("oscillate: spec §11 known answers (y, dy/dx, dy/domega, dy/dphi; dy/db = 1)") {
    for (DType dt : {DType::f32, DType::f64}) {
        INFO(dtype_name(dt));
        const OscOut got = run_table(dt, device, 1);
        // f64: the closed forms at 1e-12 (the previous case ties them to the table); f32: the table.
        const OscRef exact = ref_oscillate(table_x, table_omega, table_phi, table_baseline, std::vector<double>(6, 1.0));
        const bool f64 = dt == DType::f64;
        CHECK_CLOSE(got.y, f64 ? exact.y : table_y, table_tol(dt));
        CHECK_CLOSE(got.dx, f64 ? exact.dx : table_dx, table_tol(dt));
        CHECK_CLOSE(got.domega, f64 ? exact.domega : table_domega, table_tol(dt));
        CHECK_CLOSE(got.dphi, f64 ? exact.dphi : table_dphi, table_tol(dt));
        CHECK(got.dbaseline == std::vector<double>(6, 1.0));
    }
}

LUMEN_DEVICE_TEST("oscillate: N identical rows give N times the per-row domega, dphi, dbaseline") {
    for (DType dt : {DType::f32, DType::f64})
        for (size_t rows : {size_t(2), size_t(7), size_t(1000)}) {
            INFO(dtype_name(dt) << " rows " << rows);
            const OscOut got = run_table(dt, device, rows);
            const OscRef exact = ref_oscillate(table_x, table_omega, table_phi, table_baseline, std::vector<double>(6, 1.0));
            const bool f64 = dt == DType::f64;
            // NOTE: f32 partial sums round once per add: allow a few roundings more at 1000 rows.
            test::Tolerance tol = table_tol(dt);
            if (!f64 && rows > 7) tol.rtol = 5e-6;
            const double k = double(rows);
            CHECK_CLOSE(got.domega, times(f64 ? exact.domega : table_domega, k), tol);
            CHECK_CLOSE(got.dphi, times(f64 ? exact.dphi : table_dphi, k), tol);
            CHECK(got.dbaseline == std::vector<double>(6, k));  // integer sums: exact
            // dx is per element: every row the table's.
            std::vector<double> dx_rows;
            for (size_t r = 0; r < rows; ++r) dx_rows.insert(dx_rows.end(), table_dx.begin(), table_dx.end());
            if (!f64) CHECK_CLOSE(got.dx, dx_rows, tol);
        }
}

LUMEN_DEVICE_TEST("oscillate: y(0) = b, dy/dx(0) = sin(phi), even with phi = b = 0, |y - b| < 1") {
    for (DType dt : {DType::f32, DType::f64, DType::bf16}) {
        INFO(dtype_name(dt));
        const int64_t H = 64;
        Tensor omega = test::random({H}, 1, dt, device, 0.5, 5.2);
        Tensor phi = test::random({H}, 2, dt, device, -3, 3);
        Tensor baseline = test::random({H}, 3, dt, device, -1, 1);
        // y(0) = b exactly, dy/dx(0) = sin(phi).
        Tensor zero = Tensor::zeros({3, H}, dt, device).set_requires_grad();
        Tensor y0 = ops::oscillate(zero, omega, phi, baseline);
        CHECK(test::same_bits(y0.select(0, 2), baseline));
        y0.backward(Tensor::ones(y0.shape(), dt, device));
        std::vector<double> sin_phi;
        for (double p : phi.to_vector<double>()) sin_phi.push_back(std::sin(p));
        CHECK_CLOSE(zero.grad().select(0, 1).to_vector<double>(), sin_phi, test::tolerance(dt));
        // |y - b| < 1 for x over many periods of the learned frequencies. NOTE: f32 and bf16 round
        // sin u and tanh x to exactly 1 near their peaks, and y to the dtype: there it is < 1 + ulp.
        Tensor x = test::random({50, H}, 4, dt, device, -12, 12);
        Tensor diff = ops::oscillate(x, omega, phi, baseline).to(DType::f64) - baseline.to(DType::f64);
        const double bound = dt == DType::f64 ? 1.0 : dt == DType::f32 ? 1.0 + 4e-7 : 1.0 + 1.6e-2;
        CHECK(ops::max(ops::abs(diff)).item() < bound);
        // phi = b = 0: y is even; near 0 at omega = 1, y ≈ x².
        Tensor zeros = Tensor::zeros({H}, dt, device), ones = Tensor::ones({H}, dt, device);
        Tensor xs = test::random({4, H}, 5, dt, device, -3, 3);
        CHECK_CLOSE(ops::oscillate(xs, omega, zeros, zeros).to_vector<double>(),
                    ops::oscillate(-xs, omega, zeros, zeros).to_vector<double>(), test::tolerance(dt));
        Tensor small = Tensor::full({1, H}, 0.01, dt, device);
        for (double v : ops::oscillate(small, ones, zeros, zeros).to_vector<double>())
            CHECK(std::fabs(v / 1e-4 - 1) < (dt == DType::bf16 ? 2e-2 : 1e-3));
    }
}

LUMEN_DEVICE_TEST("oscillate: f32 stays accurate where omega·x + phi spans many periods") {
    // x·omega + phi exact in f32 (x in 1/8 steps to ±8, omega in 1/4 steps to 5.25, phi in 1/16
    // steps): any error is the sin/cos/tanh evaluation, which must be full-accuracy.
    const int64_t H = 22, rows = 129;
    std::vector<double> x, omega, phi, baseline(size_t(H), 0.0), dy;
    for (int64_t j = 0; j < H; ++j) omega.push_back(0.25 * double(j)), phi.push_back(double(j % 7 - 3) / 16);
    for (int64_t r = 0; r < rows; ++r)
        for (int64_t j = 0; j < H; ++j) {
            x.push_back(double((r * 5 + j * 3) % 129 - 64) / 8);
            dy.push_back(1.0);
        }
    const OscRef want = ref_oscillate(x, omega, phi, baseline, dy);
    Tensor xt = leaf_values(x, {rows, H}, DType::f32, device);
    Tensor y = ops::oscillate(xt, values(omega, {H}, DType::f32, device), values(phi, {H}, DType::f32, device),
                              values(baseline, {H}, DType::f32, device));
    y.backward(Tensor::ones(y.shape(), DType::f32, device));
    CHECK_CLOSE(y.to_vector<double>(), want.y, test::Tolerance{5e-7, 1e-6});
    CHECK_CLOSE(xt.grad().to_vector<double>(), want.dx, test::Tolerance{2e-6, 1e-6});
}

namespace {

enum class XLayout { contiguous, transposed };

// Runs oscillate forward and backward on `device` in dtype dt; `need` bit k asks for the gradient
// of input k (x, omega, phi, baseline). Checks against the double reference of the same values.
void check_oscillate_case(Device device, DType dt, int64_t rows, int64_t H, XLayout how, int need,
                          uint64_t seed) {
    INFO(dtype_name(dt) << " rows " << rows << " H " << H << " layout " << int(how) << " need " << need);
    Tensor x_leaf = how == XLayout::contiguous ? test::random({rows, H}, seed, dt, device, -4, 4)
                                               : test::random({H, rows}, seed, dt, device, -4, 4);
    Tensor omega = test::random({H}, seed + 1, dt, device, 0.5, 5.2);
    Tensor phi = test::random({H}, seed + 2, dt, device, -1, 1);
    Tensor baseline = test::random({H}, seed + 3, dt, device, -0.5, 0.5);
    Tensor dy = test::random({rows, H}, seed + 4, dt, device);
    Tensor inputs[] = {x_leaf, omega, phi, baseline};
    for (int k = 0; k < 4; ++k) inputs[k].set_requires_grad(bool(need & (1 << k)));
    Tensor x = how == XLayout::contiguous ? x_leaf : x_leaf.transpose(0, 1);  // (rows, H)
    Tensor y = ops::oscillate(x, omega, phi, baseline);
    REQUIRE(y.shape() == Shape{rows, H});
    CHECK(y.dtype() == dt);
    const OscRef want = ref_oscillate(x.to_vector<double>(), omega.to_vector<double>(), phi.to_vector<double>(),
                                      baseline.to_vector<double>(), dy.to_vector<double>());
    // NOTE: f32 rounds u = omega·x + phi (|u| up to 22: 1.3e-6 absolute) before sin/cos.
    const test::Tolerance tol = dt == DType::f32 ? test::Tolerance{5e-5, 5e-5} : test::tolerance(dt);
    // Parameter sums: f32 terms each carry that error, so allow it per row; bf16/f16/f64 sums are
    // taken in f32/f64 from exact input values and rounded once.
    const test::Tolerance sum_tol = dt == DType::f32 ? test::Tolerance{1e-5 * (1 + double(rows)), tol.rtol} : tol;
    CHECK_CLOSE(y.to_vector<double>(), want.y, tol);
    if (need == 0) {
        CHECK_FALSE(y.requires_grad());
        return;
    }
    y.backward(dy);
    const Tensor dx = x_leaf.grad();
    REQUIRE(dx.defined() == bool(need & 1));
    if (dx.defined())
        CHECK_CLOSE((how == XLayout::contiguous ? dx : dx.transpose(0, 1)).to_vector<double>(), want.dx, tol);
    const std::vector<double>* param_want[] = {nullptr, &want.domega, &want.dphi, &want.dbaseline};
    for (int k = 1; k < 4; ++k) {
        INFO("parameter " << k);
        REQUIRE(inputs[k].grad().defined() == bool(need & (1 << k)));
        if (inputs[k].grad().defined()) CHECK_CLOSE(inputs[k].grad().to_vector<double>(), *param_want[k], sum_tol);
    }
}

}  // namespace

LUMEN_DEVICE_TEST("oscillate: forward and gradients match the double reference on awkward shapes") {
    for (DType dt : {DType::f32, DType::f64, DType::bf16, DType::f16})
        for (int64_t H : {1, 3, 1000})
            for (int64_t rows : {0, 1, 7, 513})
                check_oscillate_case(device, dt, rows, H, XLayout::contiguous, 0xF, 10);
    for (DType dt : {DType::f32, DType::bf16})
        check_oscillate_case(device, dt, 37, 33, XLayout::transposed, 0xF, 20);  // non-contiguous x
    check_oscillate_case(device, DType::f32, 5, 8, XLayout::contiguous, 0, 30);  // nothing needs grad
}

LUMEN_DEVICE_TEST("oscillate: only the gradients that are needed are computed") {
    for (int need = 1; need < 16; ++need)
        for (int64_t rows : {3, 300})
            check_oscillate_case(device, DType::f32, rows, 40, XLayout::contiguous, need, 40);
    autograd::NoGradGuard no_grad;
    Tensor x = test::random({2, 3}, 41, DType::f32, device).set_requires_grad();
    Tensor w = Tensor::ones({3}, DType::f32, device);
    CHECK_FALSE(ops::oscillate(x, w, w, w).requires_grad());
}

// ==== bio_gate ====

LUMEN_DEVICE_TEST("bio_gate: spec §11 row 2 known answers (v, s, counted 0.75, ds/dv at v = 0.5)") {
    const std::vector<double> z = {-3, -1, 0, 2};
    const std::vector<double> want_v = {0.0474259, 0.2689414, 0.5, 0.8807971};
    const std::vector<double> want_s = {0.2664184, 0.5236591, 0.7772999, 0.9590655};
    const test::Tolerance seven_digits{1e-7, 1e-6};
    for (DType dt : {DType::f32, DType::f64}) {
        INFO(dtype_name(dt));
        Tensor a = leaf_values({1, 1, 1, 1}, {4}, dt, device), zt = leaf_values(z, {4}, dt, device);
        Tensor counts = Tensor::zeros({2}, DType::i64, device);
        Tensor m = ops::bio_gate(a, zt, 0.25, &counts);  // a = 1: m = s
        const std::vector<double> s = m.to_vector<double>();
        CHECK_CLOSE(s, want_s, seven_digits);
        // v from s: s = σ(5(v − θ)) ⇒ v = θ + logit(s)/5.
        std::vector<double> v;
        for (double si : s) v.push_back(0.25 + std::log(si / (1 - si)) / 5);
        CHECK_CLOSE(v, want_v, test::Tolerance{dt == DType::f64 ? 1e-7 : 2e-6, 1e-6});
        // Counted (no, yes, yes, yes): 3 of 4.
        CHECK(counts.to_vector<int64_t>() == std::vector<int64_t>{3, 4});
        // ds/dv at v = 0.5 (z = 0): dz = ds/dv · v(1 − v) with dm = a = 1; da = s.
        m.backward(Tensor::ones({4}, dt, device));
        CHECK(std::fabs(zt.grad().to_vector<double>()[2] / 0.25 - 0.8655239) < (dt == DType::f64 ? 1e-7 : 1e-6));
        CHECK_CLOSE(a.grad().to_vector<double>(), want_s, seven_digits);
        CHECK(counts.to_vector<int64_t>() == std::vector<int64_t>{3, 4});  // backward never counts
    }
}

LUMEN_DEVICE_TEST("bio_gate: spec §11 row 3, z = 0 (v = 0.5) counts 1.0 at θ = 0.25 and 0.0 at θ = 0.5") {
    for (DType dt : {DType::f32, DType::f64, DType::bf16}) {
        INFO(dtype_name(dt));
        Tensor a = test::random({6, 11}, 50, dt, device), z = Tensor::zeros({6, 11}, dt, device);
        Tensor counts = Tensor::zeros({2}, DType::i64, device);
        ops::bio_gate(a, z, 0.25, &counts);
        CHECK(counts.to_vector<int64_t>() == std::vector<int64_t>{66, 66});
        counts.zero_();
        ops::bio_gate(a, z, 0.5, &counts);  // strict >: 0.5 is not above 0.5
        CHECK(counts.to_vector<int64_t>() == std::vector<int64_t>{0, 66});
    }
}

namespace {

// z values on a 1/32 grid in [-4, 4] (exact in bf16), in a scrambled order: none within 0.004 of
// logit(0.25) or logit(0.7), so v > θ has the same answer in every precision.
std::vector<double> grid_z(int64_t n, int64_t salt) {
    std::vector<double> z;
    for (int64_t i = 0; i < n; ++i) z.push_back(double((i * 37 + salt) % 257 - 128) / 32);
    return z;
}
int64_t host_count(const std::vector<double>& z, double threshold) {
    int64_t active = 0;
    for (double zi : z) active += sigmoid(zi) > threshold;
    return active;
}

}  // namespace

LUMEN_DEVICE_TEST("bio_gate: counts add exactly numel per call and the host recount of v > θ") {
    for (DType dt : {DType::f32, DType::bf16, DType::f16, DType::f64})
        for (const Shape& s : {Shape{7, 13}, Shape{2, 3, 5}, Shape{513, 1000}, Shape{1, 1}, Shape{0, 4}})
            for (double threshold : {0.25, 0.7}) {
                INFO(dtype_name(dt) << " " << shape_str(s) << " θ " << threshold);
                const int64_t n = numel_of(s);
                Tensor a = test::random(s, 51, dt, device);
                Tensor counts = Tensor::full({2}, 5, DType::i64, device);  // adds to what is there
                int64_t active = 5;
                for (int64_t call = 0; call < 3; ++call) {
                    const std::vector<double> z = grid_z(n, call);
                    ops::bio_gate(a, values(z, s, dt, device), threshold, &counts);
                    active += host_count(z, threshold);
                }
                CHECK(counts.to_vector<int64_t>() == std::vector<int64_t>{active, 5 + 3 * n});
            }
    // A strided view of a larger counter buffer: column 1 of (2, 3) takes [active, total].
    Tensor buffer = Tensor::zeros({2, 3}, DType::i64, device);
    Tensor column = buffer.select(1, 1);
    const std::vector<double> z = grid_z(40, 3);
    ops::bio_gate(Tensor::ones({40}, DType::f32, device), values(z, {40}, DType::f32, device), 0.25, &column);
    CHECK(buffer.to_vector<int64_t>() == std::vector<int64_t>{0, host_count(z, 0.25), 0, 0, 40, 0});
}

LUMEN_DEVICE_TEST("bio_gate: no counting without counts, in backward, or in a checkpoint recompute") {
    const std::vector<double> zv = grid_z(60, 7);
    const int64_t active = host_count(zv, 0.25);
    Tensor a = test::random({6, 10}, 52, DType::f32, device).set_requires_grad();
    Tensor z = values(zv, {6, 10}, DType::f32, device).detach().set_requires_grad();
    Tensor counts = Tensor::zeros({2}, DType::i64, device);
    // No counts: the same output, nothing to count into.
    Tensor m_plain = ops::bio_gate(a, z, 0.25);
    Tensor m = ops::bio_gate(a, z, 0.25, &counts);
    CHECK(test::same_bits(m, m_plain));
    CHECK(counts.to_vector<int64_t>() == std::vector<int64_t>{active, 60});
    ops::sum(m).backward();
    CHECK(counts.to_vector<int64_t>() == std::vector<int64_t>{active, 60});
    // Under checkpointing: the first forward counts once; the recompute in backward does not.
    counts.zero_();
    Tensor w = Tensor::full({10}, 0.5, DType::f32, device);
    Tensor y = autograd::checkpoint(
        [&](const std::vector<Tensor>& in) { return ops::bio_gate(in[0] * w, in[1], 0.25, &counts); }, {a, z});
    CHECK(counts.to_vector<int64_t>() == std::vector<int64_t>{active, 60});
    a.zero_grad(), z.zero_grad();
    ops::sum(y).backward();
    CHECK(counts.to_vector<int64_t>() == std::vector<int64_t>{active, 60});
    REQUIRE(a.grad().defined());  // the recompute ran
    CHECK(z.grad().defined());
}

TEST_CASE("checkpoint: in_checkpoint_recompute is true only while backward re-runs fn, nested too") {
    std::vector<std::string> seen;
    auto note = [&](const char* where) {
        seen.push_back(std::string(where) + (autograd::in_checkpoint_recompute() ? ":1" : ":0"));
    };
    CHECK_FALSE(autograd::in_checkpoint_recompute());
    Tensor x = test::leaf({3}, 60);
    Tensor y = autograd::checkpoint([&](const std::vector<Tensor>& outer) {
        note("outer");
        return autograd::checkpoint([&](const std::vector<Tensor>& inner) {
            note("inner");
            return ops::tanh(inner[0]);
        }, {outer[0] * 2.0});
    }, {x});
    CHECK_FALSE(autograd::in_checkpoint_recompute());
    ops::sum(y).backward();
    CHECK_FALSE(autograd::in_checkpoint_recompute());
    // First forward: outer and inner unflagged; backward: the outer recompute (which runs the inner
    // checkpoint's forward), then the inner recompute.
    CHECK(seen == std::vector<std::string>{"outer:0", "inner:0", "outer:1", "inner:1", "inner:1"});
    // The flag is restored when the recompute throws.
    Tensor x2 = test::leaf({2}, 61);
    Tensor y2 = autograd::checkpoint([&](const std::vector<Tensor>& in) {
        if (autograd::in_checkpoint_recompute()) throw Error("recompute failed");
        return ops::exp(in[0]);
    }, {x2});
    CHECK_THROWS_AS(ops::sum(y2).backward(), Error);
    CHECK_FALSE(autograd::in_checkpoint_recompute());
}

LUMEN_DEVICE_TEST("bio_gate: forward and gradients match the double reference on awkward shapes") {
    for (DType dt : {DType::f32, DType::f64, DType::bf16, DType::f16})
        for (const Shape& s : {Shape{0, 5}, Shape{1, 1}, Shape{7, 3}, Shape{2, 3, 33}, Shape{513, 1000}})
            for (int need = 0; need < 4; ++need) {  // bit 0: a, bit 1: z
                INFO(dtype_name(dt) << " " << shape_str(s) << " need " << need);
                Tensor a = test::random(s, 70, dt, device, -2, 2).set_requires_grad(need & 1);
                Tensor z = test::random(s, 71, dt, device, -6, 6).set_requires_grad(need & 2);
                Tensor dm = test::random(s, 72, dt, device);
                const double threshold = 0.3;
                Tensor m = ops::bio_gate(a, z, threshold);
                const GateRef want = ref_bio_gate(a.to_vector<double>(), z.to_vector<double>(), threshold,
                                                  dm.to_vector<double>());
                const test::Tolerance tol = test::tolerance(dt);
                CHECK_CLOSE(m.to_vector<double>(), want.m, tol);
                if (need == 0) {
                    CHECK_FALSE(m.requires_grad());
                    continue;
                }
                m.backward(dm);
                REQUIRE(a.grad().defined() == bool(need & 1));
                REQUIRE(z.grad().defined() == bool(need & 2));
                if (need & 1) CHECK_CLOSE(a.grad().to_vector<double>(), want.da, tol);
                if (need & 2) CHECK_CLOSE(z.grad().to_vector<double>(), want.dz, tol);
            }
    // Non-contiguous inputs.
    Tensor a = test::random({9, 4}, 73, DType::f32, device).transpose(0, 1);
    Tensor z = test::random({4, 18}, 74, DType::f32, device, -3, 3).slice(1, 0, 18, 2);
    CHECK_CLOSE(ops::bio_gate(a, z, 0.25).to_vector<double>(),
                ref_bio_gate(a.to_vector<double>(), z.to_vector<double>(), 0.25,
                             std::vector<double>(36, 1.0)).m,
                test::tolerance(DType::f32));
}

// ==== determinism ====

LUMEN_DEVICE_TEST("oscillate, bio_gate: gradients are bit-identical run to run") {
    for (DType dt : {DType::f32, DType::bf16, DType::f64})
        for (const Shape& s : {Shape{3000, 96}, Shape{4, 50, 1000}, Shape{20000, 3}}) {
            INFO(dtype_name(dt) << " " << shape_str(s));
            const int64_t H = s.back();
            Tensor x = test::random(s, 80, dt, device, -3, 3), dy = test::random(s, 81, dt, device);
            Tensor omega = test::random({H}, 82, dt, device, 0.5, 5), phi = test::random({H}, 83, dt, device);
            Tensor baseline = test::random({H}, 84, dt, device);
            auto grads = [&] {
                std::vector<Tensor> leaves = {x.detach().set_requires_grad(), omega.detach().set_requires_grad(),
                                              phi.detach().set_requires_grad(), baseline.detach().set_requires_grad()};
                ops::oscillate(leaves[0], leaves[1], leaves[2], leaves[3]).backward(dy);
                Tensor a = x.detach().set_requires_grad(), z = dy.detach().set_requires_grad();
                ops::bio_gate(a, z, 0.25).backward(dy);
                leaves.push_back(a), leaves.push_back(z);
                std::vector<Tensor> out;
                for (const Tensor& t : leaves) out.push_back(t.grad());
                return out;
            };
            const std::vector<Tensor> first = grads(), second = grads();
            for (size_t k = 0; k < first.size(); ++k) {
                INFO("gradient " << k);
                CHECK(test::same_bits(first[k], second[k]));
            }
        }
}

TEST_CASE("oscillate: parameter gradients are bit-identical on 1 thread and on many") {
    Tensor x = test::random({1000, 48}, 85, DType::f32, Device::cpu(), -3, 3), dy = test::random({1000, 48}, 86);
    auto grads = [&] {
        Tensor xl = x.detach().set_requires_grad();
        Tensor w = test::random({48}, 87, DType::f32, Device::cpu(), 0.5, 5).set_requires_grad();
        Tensor p = test::random({48}, 88).set_requires_grad(), b = test::random({48}, 89).set_requires_grad();
        ops::oscillate(xl, w, p, b).backward(dy);
        std::vector<float> out;
        for (const Tensor& t : {xl, w, p, b})
            for (float v : t.grad().to_vector<float>()) out.push_back(v);
        return out;
    };
    const int threads = omp_get_max_threads();
    const std::vector<float> many = grads();
    CHECK(grads() == many);
    omp_set_num_threads(1);
    const std::vector<float> one = grads();
    omp_set_num_threads(threads);
    CHECK(one == many);
}

// ==== errors ====

LUMEN_DEVICE_TEST("oscillate, bio_gate: errors name the op and operands") {
    Tensor x = Tensor::zeros({2, 4}, DType::f32, device);
    Tensor p4 = Tensor::ones({4}, DType::f32, device), p5 = Tensor::ones({5}, DType::f32, device);
    CHECK_THROWS_CONTAINING(ops::oscillate(x, p5, p4, p4),
                            "oscillate: omega must be (H,) with H = x.size(-1) = 4: x (2, 4) f32");
    CHECK_THROWS_CONTAINING(ops::oscillate(x, p4, Tensor::ones({1, 4}, DType::f32, device), p4),
                            "oscillate: phi must be (H,)");
    CHECK_THROWS_CONTAINING(ops::oscillate(x, p4, p4, Tensor::ones({4}, DType::bf16, device)),
                            "oscillate: baseline must have x's dtype");
    CHECK_THROWS_CONTAINING(ops::oscillate(Tensor::zeros({2, 4}, DType::i32, device), p4, p4, p4),
                            "oscillate: expected a floating tensor");
    CHECK_THROWS_CONTAINING(ops::oscillate(Tensor::scalar(1.0, DType::f32, device), p4, p4, p4),
                            "oscillate: x must have at least one dim");
    CHECK_THROWS_CONTAINING(ops::oscillate(x, Tensor(), p4, p4), "oscillate: x, omega, phi and baseline must all be defined");
    Tensor z = Tensor::zeros({2, 4}, DType::f32, device);
    CHECK_THROWS_CONTAINING(ops::bio_gate(x, Tensor::zeros({4, 2}, DType::f32, device), 0.25),
                            "bio_gate: a and z must have the same shape");
    CHECK_THROWS_CONTAINING(ops::bio_gate(x, z.to(DType::f64), 0.25), "bio_gate: a and z must have the same dtype");
    CHECK_THROWS_CONTAINING(ops::bio_gate(x.to(DType::i64), z.to(DType::i64), 0.25), "bio_gate: expected a floating tensor");
    Tensor bad = Tensor::zeros({3}, DType::i64, device);
    CHECK_THROWS_CONTAINING(ops::bio_gate(x, z, 0.25, &bad), "bio_gate: counts must be a (2,) i64 tensor");
    Tensor bad_dtype = Tensor::zeros({2}, DType::f32, device);
    CHECK_THROWS_CONTAINING(ops::bio_gate(x, z, 0.25, &bad_dtype), "bio_gate: counts must be a (2,) i64 tensor");
    if (device.is_cuda()) {
        CHECK_THROWS_CONTAINING(ops::oscillate(x, Tensor::ones({4}), p4, p4), "oscillate: tensors on different devices");
        CHECK_THROWS_CONTAINING(ops::bio_gate(x, Tensor::zeros({2, 4}), 0.25), "bio_gate: tensors on different devices");
        Tensor host_counts = Tensor::zeros({2}, DType::i64);
        CHECK_THROWS_CONTAINING(ops::bio_gate(x, z, 0.25, &host_counts), "bio_gate: counts must be on a's device");
    }
}

// ==== gelu_exact ====

LUMEN_DEVICE_TEST("gelu_exact: known answers, the erf reference, its derivative, and its gap to gelu") {
    // Φ(1) = 0.841344746068543, φ(1) = 0.241970724519143 (standard normal cdf and pdf).
    const std::vector<double> known_x = {-1, 0, 1, 2};
    const std::vector<double> known_y = {-0.1586552539314571, 0, 0.8413447460685429, 1.9544997361036416};
    const std::vector<double> known_dy = {-0.0833154705876863, 0.5, 1.0833154705876864, 1.0852318010781970};
    for (DType dt : {DType::f32, DType::f64, DType::bf16, DType::f16}) {
        INFO(dtype_name(dt));
        const test::Tolerance tol = test::tolerance(dt);
        Tensor x = leaf_values(known_x, {4}, dt, device);
        Tensor y = ops::gelu_exact(x);
        y.backward(Tensor::ones({4}, dt, device));
        CHECK_CLOSE(y.to_vector<double>(), known_y, tol);
        CHECK_CLOSE(x.grad().to_vector<double>(), known_dy, tol);
        for (const Shape& s : {Shape{0}, Shape{1}, Shape{7, 33}, Shape{2, 0, 3}}) {
            INFO(shape_str(s));
            Tensor xs = test::random(s, 90, dt, device, -6, 6).set_requires_grad();
            Tensor dy = test::random(s, 91, dt, device);
            Tensor ys = ops::gelu_exact(xs);
            ys.backward(dy);
            std::vector<double> want_y, want_dx;
            const std::vector<double> xv = xs.to_vector<double>(), dyv = dy.to_vector<double>();
            for (size_t i = 0; i < xv.size(); ++i) {
                want_y.push_back(ref_gelu_exact(xv[i]));
                want_dx.push_back(dyv[i] * ref_gelu_exact_derivative(xv[i]));
            }
            CHECK_CLOSE(ys.to_vector<double>(), want_y, tol);
            CHECK_CLOSE(xs.grad().to_vector<double>(), want_dx, tol);
        }
    }
    // The tanh form approximates the erf form to within 1e-3 (and differs from it).
    Tensor x = test::random({1000}, 92, DType::f64, device, -5, 5);
    const double gap = ops::max(ops::abs(ops::gelu_exact(x) - ops::gelu(x))).item();
    CHECK(gap < 1e-3);
    CHECK(gap > 1e-6);
}

// ==== gradchecks ====

LUMEN_GRADCHECK_COVERS("oscillate", "bio_gate", "gelu_exact");

TEST_CASE("oscillate: gradcheck for x, omega, phi and baseline, H = 1, non-contiguous x") {
    auto f = [](const std::vector<Tensor>& in) { return ops::oscillate(in[0], in[1], in[2], in[3]); };
    CHECK_GRADCHECK(f, {test::leaf({4, 5}, 100, -3, 3), test::leaf({5}, 101, 0.5, 5.2), test::leaf({5}, 102),
                        test::leaf({5}, 103)});
    CHECK_GRADCHECK(f, {test::leaf({2, 3, 4}, 104, -3, 3), test::leaf({4}, 105, 0.5, 2), test::leaf({4}, 106),
                        test::leaf({4}, 107)});
    CHECK_GRADCHECK(f, {test::leaf({6, 1}, 108, -3, 3), test::leaf({1}, 109, 0.5, 2), test::leaf({1}, 110),
                        test::leaf({1}, 111)});
    CHECK_GRADCHECK([](const std::vector<Tensor>& in) {  // x (4, 5) viewed through a transpose
                        return ops::oscillate(in[0].transpose(0, 1), in[1], in[2], in[3]);
                    },
                    {test::leaf({5, 4}, 112, -3, 3), test::leaf({5}, 113, 0.5, 5.2), test::leaf({5}, 114),
                     test::leaf({5}, 115)});
}

TEST_CASE("bio_gate: gradcheck for a and z") {
    auto f = [](const std::vector<Tensor>& in) { return ops::bio_gate(in[0], in[1], 0.25); };
    CHECK_GRADCHECK(f, {test::leaf({3, 4}, 120, -2, 2), test::leaf({3, 4}, 121, -4, 4)});
    CHECK_GRADCHECK(f, {test::leaf({2, 1, 5}, 122, -2, 2), test::leaf({2, 1, 5}, 123, -4, 4)});
    // The bio MLP's shape of use: z = a·W_gᵀ, so a gets both paths (direct, and through z).
    CHECK_GRADCHECK([](const std::vector<Tensor>& in) {
                        return ops::bio_gate(in[0], ops::matmul(in[0], in[1].transpose(0, 1)), 0.3);
                    },
                    {test::leaf({3, 4}, 124, -2, 2), test::leaf({4, 4}, 125)});
}

TEST_CASE("gelu_exact: gradcheck") {
    CHECK_GRADCHECK([](const std::vector<Tensor>& in) { return ops::gelu_exact(in[0]); },
                    {test::leaf({3, 7}, 130, -4, 4)});
}
