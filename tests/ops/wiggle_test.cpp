// tests/ops/wiggle_test.cpp: WiggleGPT's oscillate (shared/specs/wiggle.md §1, §2.1, §11 row 1) and
// gelu_exact: the spec's known answers, N identical rows, the stated properties, exact large
// arguments (full-accuracy sin), forward and every gradient against plain double loops on awkward
// shapes and dtypes, only the needed gradients, bit-identical parameter gradients (with bio_gate);
// errors of both WiggleGPT ops; checkpoint's recompute flag; gradchecks. bio_gate's own cases are in
// bio_gate_test.cpp. Every LUMEN_DEVICE_TEST runs on the GPU too where there is one.
#include "tests/ops/wiggle_testing.h"

#include "autograd/checkpoint.h"
#include "core/kernels/wiggle.h"

#include <cmath>
#include <omp.h>

using namespace lumen;
using namespace lumen::wiggle_test;

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

LUMEN_GRADCHECK_COVERS("oscillate", "gelu_exact");

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

TEST_CASE("gelu_exact: gradcheck") {
    CHECK_GRADCHECK([](const std::vector<Tensor>& in) { return ops::gelu_exact(in[0]); },
                    {test::leaf({3, 7}, 130, -4, 4)});
}
