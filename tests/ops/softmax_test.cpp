// tests/ops/softmax_test.cpp: softmax and log_softmax over the last dim: forward and backward
// against plain f64 references on awkward shapes (empty, 0-d, one column, odd sizes,
// non-contiguous views) for every float dtype, masked (-inf) rows, large logits, errors, and
// gradchecks; on a GPU, the CUDA kernels against the CPU ones (awkward shapes, 50304-wide rows,
// rows off 16-byte boundaries, special values) and their run-to-run bit stability.
#include "tests/harness.h"

#include <cmath>
#include <cstring>
#include <limits>

using namespace lumen;

namespace {

constexpr double inf = std::numeric_limits<double>::infinity();

enum class Log : bool { no, yes };

// Rows of n values: softmax (or log_softmax) of each row, in plain double, straight from the
// definition exp(x_i) / Σ exp(x_j) shifted by the row max.
std::vector<double> ref_forward(const std::vector<double>& x, int64_t n, Log log) {
    std::vector<double> y(x.size());
    for (size_t r = 0; n > 0 && r < x.size() / size_t(n); ++r) {
        const double* xr = x.data() + r * size_t(n);
        double m = -inf;
        for (int64_t i = 0; i < n; ++i) m = std::max(m, xr[i]);
        double s = 0;
        for (int64_t i = 0; i < n; ++i) s += std::exp(xr[i] - m);
        for (int64_t i = 0; i < n; ++i)
            y[r * size_t(n) + size_t(i)] =
                log == Log::yes ? xr[i] - m - std::log(s) : std::exp(xr[i] - m) / s;
    }
    return y;
}

// The Jacobian-vector product of softmax written out: dx_i = Σ_j dy_j ∂y_j/∂x_i with
// ∂y_j/∂x_i = y_j(δ_ij − y_i) (softmax) or δ_ij − p_i (log_softmax, p = softmax).
std::vector<double> ref_backward(const std::vector<double>& x, const std::vector<double>& dy,
                                 int64_t n, Log log) {
    const std::vector<double> p = ref_forward(x, n, Log::no);
    std::vector<double> dx(x.size(), 0.0);
    for (size_t r = 0; n > 0 && r < x.size() / size_t(n); ++r)
        for (int64_t i = 0; i < n; ++i)
            for (int64_t j = 0; j < n; ++j) {
                const size_t a = r * size_t(n) + size_t(i), b = r * size_t(n) + size_t(j);
                const double jac = log == Log::yes ? (i == j) - p[a] : p[b] * ((i == j) - p[a]);
                dx[a] += dy[b] * jac;
            }
    return dx;
}

int64_t last_dim(const Shape& s) { return s.empty() ? 1 : s.back(); }

using Fn = Tensor (*)(const Tensor&);
struct Variant {
    const char* name;
    Fn fn;
    Log log;
};
const Variant variants[] = {{"softmax", ops::softmax, Log::no},
                            {"log_softmax", ops::log_softmax, Log::yes}};

// The last shape splits its rows across threads.
const Shape shapes[] = {{3, 5}, {2, 3, 33}, {7}, {4, 1},   {1, 1},    {0, 5},
                        {3, 0}, {0},        {},  {5, 130}, {40, 1000}};

}  // namespace

LUMEN_DEVICE_TEST("softmax: forward matches the f64 reference on every float dtype and shape") {
    for (const Variant& v : variants)
        for (DType dt : {DType::f32, DType::f64, DType::bf16, DType::f16})
            for (const Shape& s : shapes) {
                INFO(v.name << " " << dtype_name(dt) << " " << shape_str(s));
                Tensor x = test::random(s, 7, dt, device, -4.0, 4.0);
                Tensor y = v.fn(x);
                REQUIRE(y.shape() == s);
                CHECK(y.dtype() == dt);
                CHECK_CLOSE(y.to_vector<double>(),
                            ref_forward(x.to_vector<double>(), last_dim(s), v.log),
                            test::tolerance(dt));
            }
}

LUMEN_DEVICE_TEST("softmax: rows of one element and 0-d tensors give probability 1") {
    Tensor x = test::random({4, 1}, 3, DType::f32, device);
    CHECK(ops::softmax(x).to_vector<float>() == std::vector<float>(4, 1.f));
    CHECK(ops::log_softmax(x).to_vector<float>() == std::vector<float>(4, 0.f));
    Tensor s = Tensor::scalar(2.5, DType::f32, device);
    CHECK(ops::softmax(s).shape() == Shape{});
    CHECK(ops::softmax(s).item() == 1.0);
    CHECK(ops::log_softmax(s).item() == 0.0);
}

LUMEN_DEVICE_TEST("softmax: non-contiguous inputs (transpose, strided slice)") {
    for (DType dt : {DType::f32, DType::bf16}) {
        const Tensor inputs[] = {
            test::random({6, 5}, 4, dt, device, -3, 3).transpose(0, 1),         // (5, 6)
            test::random({4, 11}, 5, dt, device, -3, 3).slice(1, 0, 11, 2),     // (4, 6)
            test::random({3, 4, 7}, 6, dt, device, -3, 3).permute({2, 0, 1})};  // (7, 3, 4)
        for (const Tensor& x : inputs) {
            REQUIRE_FALSE(x.is_contiguous());
            for (const Variant& v : variants) {
                INFO(v.name << " " << dtype_name(dt) << " " << shape_str(x.shape()));
                CHECK_CLOSE(v.fn(x).to_vector<double>(),
                            ref_forward(x.to_vector<double>(), x.size(-1), v.log),
                            test::tolerance(dt));
                CHECK_CLOSE(v.fn(x), v.fn(x.contiguous()), test::Tolerance{0, 0});
            }
        }
    }
}

LUMEN_DEVICE_TEST("softmax: -inf entries get probability 0; an all -inf row is NaN (as PyTorch)") {
    // Row 0: partly masked; row 1: fully masked; row 2: one unmasked entry.
    Tensor x = Tensor::from<float>(
        {0.f, -INFINITY, 1.f, -INFINITY, -INFINITY, -INFINITY, -INFINITY, 3.f, -INFINITY}, {3, 3},
        device);
    const std::vector<double> p = ops::softmax(x).to_vector<double>();
    const double e = std::exp(1.0);
    CHECK(std::abs(p[0] - 1 / (1 + e)) < 1e-7);
    CHECK(p[1] == 0.0);
    CHECK(std::abs(p[2] - e / (1 + e)) < 1e-7);
    CHECK((std::isnan(p[3]) && std::isnan(p[4]) && std::isnan(p[5])));
    CHECK((p[6] == 0.0 && p[7] == 1.0 && p[8] == 0.0));

    const std::vector<double> lp = ops::log_softmax(x).to_vector<double>();
    CHECK(std::abs(lp[0] - std::log(1 / (1 + e))) < 1e-6);
    CHECK(lp[1] == -inf);
    CHECK((std::isnan(lp[3]) && std::isnan(lp[4]) && std::isnan(lp[5])));
    CHECK((lp[6] == -inf && lp[7] == 0.0 && lp[8] == -inf));

    // Backward through the masked entries: softmax gives them 0, log_softmax passes dy (p = 0).
    for (const Variant& v : variants) {
        INFO(v.name);
        Tensor xs = x.slice(0, 0, 1).contiguous();  // the partly masked row
        xs.set_requires_grad(true);
        v.fn(xs).backward(Tensor::from<float>({1.f, 2.f, 3.f}, {1, 3}, device));
        const std::vector<float> g = xs.grad().to_vector<float>();
        CHECK(g[1] == (v.log == Log::yes ? 2.f : 0.f));
        CHECK(std::isfinite(g[0]));
        CHECK(std::isfinite(g[2]));
    }
}

LUMEN_DEVICE_TEST("softmax: large logits do not overflow") {
    Tensor x = Tensor::from<float>({1000.f, 1001.f, -1000.f, 88.f, 89.f, 90.f}, {2, 3}, device);
    CHECK_CLOSE(ops::softmax(x).to_vector<double>(), ref_forward(x.to_vector<double>(), 3, Log::no),
                test::tolerance(DType::f32));
    CHECK_CLOSE(ops::log_softmax(x).to_vector<double>(),
                ref_forward(x.to_vector<double>(), 3, Log::yes), test::tolerance(DType::f32));
}

LUMEN_DEVICE_TEST("softmax: backward kernels match the f64 Jacobian-vector product") {
    for (const Variant& v : variants)
        for (DType dt : {DType::f32, DType::f64, DType::bf16})
            for (const Shape& s :
                 {Shape{3, 5}, Shape{2, 3, 17}, Shape{4, 1}, Shape{0, 3}, Shape{3, 0}}) {
                INFO(v.name << " " << dtype_name(dt) << " " << shape_str(s));
                Tensor x = test::random(s, 13, dt, device, -3, 3);
                x.set_requires_grad(true);
                Tensor dy = test::random(s, 14, dt, device);
                v.fn(x).backward(dy);
                REQUIRE(x.grad().defined());
                CHECK(x.grad().dtype() == dt);
                CHECK_CLOSE(
                    x.grad().to_vector<double>(),
                    ref_backward(x.to_vector<double>(), dy.to_vector<double>(), last_dim(s), v.log),
                    test::tolerance(dt));
            }
}

LUMEN_DEVICE_TEST("softmax: errors name the op and the operand") {
    Tensor i = Tensor::from<int32_t>({1, 2, 3}, {3}, device);
    CHECK_THROWS_CONTAINING(ops::softmax(i), "softmax: expected a floating tensor: x (3,) i32");
    CHECK_THROWS_CONTAINING(ops::log_softmax(i), "log_softmax: expected a floating tensor");
}

LUMEN_GRADCHECK_COVERS("softmax", "log_softmax");

TEST_CASE("softmax: gradcheck, contiguous and through non-contiguous views") {
    for (const Variant& v : variants) {
        INFO(v.name);
        Fn fn = v.fn;
        CHECK_GRADCHECK([fn](const std::vector<Tensor>& in) { return fn(in[0]); },
                        {test::leaf({3, 5}, 41, -2, 2)});
        CHECK_GRADCHECK([fn](const std::vector<Tensor>& in) { return fn(in[0]); },
                        {test::leaf({7}, 42, -2, 2)});
        CHECK_GRADCHECK([fn](const std::vector<Tensor>& in) { return fn(in[0]); },
                        {test::leaf({2, 1}, 43, -2, 2)});
        CHECK_GRADCHECK([fn](const std::vector<Tensor>& in) { return fn(in[0].transpose(0, 1)); },
                        {test::leaf({4, 3}, 44, -2, 2)});
        CHECK_GRADCHECK([fn](const std::vector<Tensor>& in) { return fn(in[0].slice(2, 0, 5, 2)); },
                        {test::leaf({2, 2, 5}, 45, -2, 2)});
    }
}

// ---- CUDA against the CPU kernels (run only where a GPU is present) ----

namespace {

struct Run {
    Tensor y, dx;
};
// fn(x) and the gradient of Σ y·dy with respect to x, with x and dy moved to `device`.
Run run_on(Device device, Fn fn, const Tensor& x_host, const Tensor& dy_host) {
    Tensor x = x_host.to(device).detach();  // a fresh leaf, also when device is the CPU
    x.set_requires_grad(true);
    Tensor y = fn(x);
    y.backward(dy_host.to(device));
    return {y.detach(), x.grad()};
}

}  // namespace

LUMEN_CUDA_TEST("softmax: CUDA matches the CPU kernels forward and backward, bit-stable run to run") {
    // 8-lane rows (n ≤ 128, row counts that leave a warp's last lane groups idle), warp rows
    // (n ≤ 1024) and block rows; 0 rows, empty rows, 0-d, many short rows, odd n, and GPT-2
    // vocabulary rows.
    const Shape cuda_shapes[] = {{0, 7},     {5, 0},    {},        {1, 1},      {9, 1},
                                 {70001, 3}, {4, 33},   {7, 128},  {6, 1024},   {3, 1025},
                                 {2, 4097},  {2, 3, 129}, {3, 50304}};
    for (const Variant& v : variants)
        for (DType dt : {DType::f32, DType::f64, DType::bf16, DType::f16})
            for (const Shape& s : cuda_shapes) {
                INFO(v.name << " " << dtype_name(dt) << " " << shape_str(s));
                Tensor x = test::random(s, 201, dt, Device::cpu(), -6, 6);
                Tensor dy = test::random(s, 202, dt, Device::cpu());
                const Run cpu = run_on(Device::cpu(), v.fn, x, dy);
                const Run gpu = run_on(device, v.fn, x, dy);
                CHECK(gpu.y.device() == device);
                CHECK_CLOSE(gpu.y, cpu.y, test::tolerance(dt));
                CHECK_CLOSE(gpu.dx, cpu.dx, test::tolerance(dt));
                const Run again = run_on(device, v.fn, x, dy);
                CHECK(test::same_bits(gpu.y, again.y));
                CHECK(test::same_bits(gpu.dx, again.dx));
            }
}

LUMEN_CUDA_TEST("softmax: CUDA rows that start off 16-byte boundaries (views with an offset)") {
    for (DType dt : {DType::f32, DType::bf16})
        for (int64_t n : {int64_t(37), int64_t(1000), int64_t(3001)})
            for (int kind = 0; kind < 2; ++kind) {
                INFO(dtype_name(dt) << " n " << n << " kind " << kind);
                // Contiguous views whose data starts one row (kind 0) or one element (kind 1) into
                // their storage, so x, dy and the fresh y and dx are aligned differently.
                auto view = [&](uint64_t seed) {
                    return kind == 0
                               ? test::random({5, n}, seed, dt, device, -4, 4).slice(0, 1, 5)
                               : test::random({n + 1}, seed, dt, device, -4, 4).slice(0, 1, n + 1);
                };
                const Tensor xv = view(211), dyv = view(212);
                REQUIRE(xv.is_contiguous());
                REQUIRE(dyv.is_contiguous());
                for (const Variant& v : variants) {
                    INFO(v.name);
                    const Run cpu = run_on(Device::cpu(), v.fn, xv.to(Device::cpu()), dyv.to(Device::cpu()));
                    Tensor x = xv.detach();
                    x.set_requires_grad(true);
                    Tensor y = v.fn(x);
                    y.backward(dyv);
                    CHECK_CLOSE(y, cpu.y, test::tolerance(dt));
                    CHECK_CLOSE(x.grad(), cpu.dx, test::tolerance(dt));
                }
            }
}

LUMEN_CUDA_TEST("softmax: CUDA special values match the CPU (-inf, all -inf, +inf, NaN rows)") {
    for (int64_t n : {int64_t(40), int64_t(2000)}) {  // a warp row and a block row
        INFO("n " << n);
        std::vector<float> values = test::random({5, n}, 221, DType::f32).to_vector<float>();
        for (int64_t i = 0; i < n; ++i) {
            if (i % 2 == 0) values[size_t(i)] = -INFINITY;      // row 0: half masked
            values[size_t(n + i)] = -INFINITY;                  // row 1: all masked
        }
        values[size_t(2 * n + 7)] = INFINITY;                   // row 2: one +inf
        values[size_t(3 * n + 3)] = NAN;                        // row 3: one NaN
        for (int64_t i = 1; i < n; ++i) values[size_t(4 * n + i)] = -INFINITY;  // row 4: one left
        Tensor x = Tensor::from<float>(values, {5, n});
        for (const Variant& v : variants) {
            INFO(v.name);
            CHECK_CLOSE(v.fn(x.to(device)), v.fn(x), test::tolerance(DType::f32));
        }
    }
}

// ---- causal_softmax: the attention probabilities (scale and causal mask inside the softmax) ----

LUMEN_GRADCHECK_COVERS("causal_softmax");

namespace {

// softmax(scale·x) over keys j ≤ i + Tk − Tq, 0 past them, in f64 from x's values.
std::vector<double> causal_reference(const Tensor& x, double scale) {
    const int64_t Tq = x.size(-2), Tk = x.size(-1), rows = x.numel() / Tk;
    const auto v = x.to_vector<double>();
    std::vector<double> y(v.size(), 0.0);
    for (int64_t r = 0; r < rows; ++r) {
        const int64_t last = r % Tq + Tk - Tq;
        double m = -1e300, s = 0;
        for (int64_t j = 0; j <= last; ++j) m = std::max(m, scale * v[size_t(r * Tk + j)]);
        for (int64_t j = 0; j <= last; ++j) s += std::exp(scale * v[size_t(r * Tk + j)] - m);
        for (int64_t j = 0; j <= last; ++j) y[size_t(r * Tk + j)] = std::exp(scale * v[size_t(r * Tk + j)] - m) / s;
    }
    return y;
}

}  // namespace

LUMEN_DEVICE_TEST("causal_softmax: matches the f64 reference on awkward shapes and dtypes") {
    struct Case {
        Shape shape;
        double scale;
    };
    uint64_t seed = 700;
    for (DType dt : {DType::f32, DType::f64, DType::bf16, DType::f16})
        for (const Case& c : {Case{{1, 1}, 0.5}, Case{{3, 5}, 0.125}, Case{{2, 3, 7, 7}, 1.0}, Case{{2, 4, 33}, 0.3},
                              Case{{1, 2, 129, 129}, 0.125}, Case{{2, 1, 1030}, 0.05}, Case{{5, 1500, 1500}, 0.1}}) {
            if (c.shape[0] == 5 && dt == DType::f64) continue;  // the big case once per 16-bit type and f32
            INFO(dtype_name(dt) << " " << shape_str(c.shape));
            Tensor x = test::random(c.shape, seed++, dt, device, -4.0, 4.0);
            Tensor y = ops::causal_softmax(x, c.scale);
            const auto want = causal_reference(x.to(Device::cpu()), c.scale);
            CHECK_CLOSE(y.to_vector<double>(), want, test::tolerance(dt));
        }
}

LUMEN_DEVICE_TEST("causal_softmax: equals scale, causal where and softmax; backward too") {
    for (auto [Tq, Tk] : {std::pair<int64_t, int64_t>{6, 6}, {3, 9}, {1, 5}}) {
        INFO(Tq << " x " << Tk);
        Tensor x = test::random({2, 3, Tq, Tk}, 42, DType::f32, device).requires_grad_();
        Tensor y = ops::causal_softmax(x, 0.25);
        Tensor xx = x.detach().requires_grad_();
        Tensor mask = ops::tril(Tensor::ones({Tq, Tk}, DType::boolean, device), Tk - Tq);
        Tensor z = ops::softmax(ops::where(mask, xx * 0.25, ops::scalar_like(-INFINITY, xx)));
        CHECK_CLOSE(y, z, test::Tolerance{1e-6, 1e-5});
        Tensor dy = test::random({2, 3, Tq, Tk}, 43, DType::f32, device);
        y.backward(dy);
        z.backward(dy);
        CHECK_CLOSE(x.grad(), xx.grad(), test::Tolerance{1e-6, 1e-5});
    }
}

TEST_CASE("causal_softmax: gradcheck (f64)") {
    CHECK_GRADCHECK([](const auto& in) { return ops::causal_softmax(in[0], 0.7); }, {test::leaf({2, 4, 4}, 61)});
    CHECK_GRADCHECK([](const auto& in) { return ops::causal_softmax(in[0], 0.3); }, {test::leaf({3, 2, 5}, 62)});
    CHECK_THROWS_CONTAINING(ops::causal_softmax(Tensor::zeros({5, 3}), 1.0), "Tq <= Tk");
}
