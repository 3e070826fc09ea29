// tests/ops/norm_test.cpp: layernorm and rmsnorm: forward and saved statistics against plain
// double loops, backward against the same formulas composed from primitive ops in f64, on awkward
// shapes (C = 1, no rows, odd C, non-contiguous x) with and without weight and bias; bit-identical
// parameter gradients on any thread count; errors; gradchecks. On a GPU: CUDA against the CPU
// kernels (outputs, statistics, every gradient, undefined outputs skipped) on the kernels' awkward
// shapes, and CUDA gradients bit-identical run to run.
#include "tests/harness.h"

#include "core/kernels/norm.h"

#include <cmath>
#include <omp.h>

using namespace lumen;

namespace {

constexpr double ln_eps = 1e-5, rms_eps = 1e-6;

// Per-row statistics and output in double, from x's values (row-major) and optional w, b.
struct NormRef {
    std::vector<double> y, mean, rstd;
};

NormRef ref_layernorm(const Tensor& x, const Tensor& w, const Tensor& b, double eps) {
    const std::vector<double> xs = x.to_vector<double>();
    const std::vector<double> ws = w.defined() ? w.to_vector<double>() : std::vector<double>();
    const std::vector<double> bs = b.defined() ? b.to_vector<double>() : std::vector<double>();
    const size_t C = size_t(x.size(-1)), rows = C == 0 ? 0 : xs.size() / C;
    NormRef r;
    for (size_t i = 0; i < rows; ++i) {
        double mean = 0, var = 0;
        for (size_t c = 0; c < C; ++c) mean += xs[i * C + c];
        mean /= double(C);
        for (size_t c = 0; c < C; ++c) var += (xs[i * C + c] - mean) * (xs[i * C + c] - mean);
        var /= double(C);
        const double rstd = 1 / std::sqrt(var + eps);
        for (size_t c = 0; c < C; ++c) {
            double v = (xs[i * C + c] - mean) * rstd;
            if (!ws.empty()) v *= ws[c];
            if (!bs.empty()) v += bs[c];
            r.y.push_back(v);
        }
        r.mean.push_back(mean);
        r.rstd.push_back(rstd);
    }
    return r;
}

NormRef ref_rmsnorm(const Tensor& x, const Tensor& w, double eps) {
    const std::vector<double> xs = x.to_vector<double>();
    const std::vector<double> ws = w.defined() ? w.to_vector<double>() : std::vector<double>();
    const size_t C = size_t(x.size(-1)), rows = C == 0 ? 0 : xs.size() / C;
    NormRef r;
    for (size_t i = 0; i < rows; ++i) {
        double ms = 0;
        for (size_t c = 0; c < C; ++c) ms += xs[i * C + c] * xs[i * C + c];
        const double rstd = 1 / std::sqrt(ms / double(C) + eps);
        for (size_t c = 0; c < C; ++c) r.y.push_back(xs[i * C + c] * rstd * (ws.empty() ? 1.0 : ws[c]));
        r.rstd.push_back(rstd);
    }
    return r;
}

// x for a case: plain, transposed (non-contiguous) or every other column (strided slice).
enum class XLayout { contiguous, transposed, sliced };
Tensor make_x(const Shape& s, XLayout how, DType dt, Device device, uint64_t seed) {
    if (how == XLayout::contiguous) return test::random(s, seed, dt, device, -2, 2);
    const int64_t C = s.back();
    const int64_t rows = numel_of(s) / std::max<int64_t>(C, 1);
    Tensor x = how == XLayout::transposed
                   ? test::random({C, rows}, seed, dt, device, -2, 2).transpose(0, 1)
                   : test::random({rows, 2 * C}, seed, dt, device, -2, 2).slice(1, 0, 2 * C, 2);
    return x;  // (rows, C) strided
}

const Shape norm_shapes[] = {{4, 7}, {1, 1}, {0, 5}, {3, 2, 33}, {5}, {6, 1}, {2, 1, 64}};

}  // namespace

LUMEN_DEVICE_TEST("layernorm: forward matches the double reference, with and without weight and bias") {
    for (DType dt : {DType::f32, DType::f64, DType::bf16})
        for (const Shape& s : norm_shapes)
            for (XLayout how : {XLayout::contiguous, XLayout::transposed, XLayout::sliced})
                for (int mask = 0; mask < 4; ++mask) {
                    Tensor x = make_x(s, how, dt, device, 3);
                    const int64_t C = x.size(-1);
                    Tensor w = mask & 1 ? test::random({C}, 4, dt, device, 0.5, 1.5) : Tensor();
                    Tensor b = mask & 2 ? test::random({C}, 5, dt, device, -1, 1) : Tensor();
                    INFO(dtype_name(dt) << " " << shape_str(x.shape()) << " layout " << int(how)
                                        << " weight " << (mask & 1) << " bias " << (mask & 2));
                    Tensor y = ops::layernorm(x, w, b, ln_eps);
                    REQUIRE(y.shape() == x.shape());
                    CHECK(y.dtype() == dt);
                    CHECK_CLOSE(y.to_vector<double>(), ref_layernorm(x, w, b, ln_eps).y, test::tolerance(dt));
                }
}

LUMEN_DEVICE_TEST("rmsnorm: forward matches the double reference, with and without weight") {
    for (DType dt : {DType::f32, DType::f64, DType::bf16})
        for (const Shape& s : norm_shapes)
            for (XLayout how : {XLayout::contiguous, XLayout::transposed, XLayout::sliced})
                for (bool with_w : {false, true}) {
                    Tensor x = make_x(s, how, dt, device, 6);
                    Tensor w = with_w ? test::random({x.size(-1)}, 7, dt, device, 0.5, 1.5) : Tensor();
                    INFO(dtype_name(dt) << " " << shape_str(x.shape()) << " layout " << int(how) << " weight " << with_w);
                    Tensor y = ops::rmsnorm(x, w, rms_eps);
                    REQUIRE(y.shape() == x.shape());
                    CHECK_CLOSE(y.to_vector<double>(), ref_rmsnorm(x, w, rms_eps).y, test::tolerance(dt));
                }
}

LUMEN_DEVICE_TEST("layernorm, rmsnorm: the kernels save mean and rstd per row in f32 (f64 for f64)") {
    for (DType dt : {DType::f32, DType::f64, DType::bf16}) {
        INFO(dtype_name(dt));
        Tensor x = test::random({5, 9}, 8, dt, device, -3, 3);
        const DType st = norm_stats_dtype(dt);
        CHECK(st == (dt == DType::f64 ? DType::f64 : DType::f32));
        Tensor y = Tensor::empty(x.shape(), dt, device);
        Tensor mean = Tensor::empty({5}, st, device), rstd = Tensor::empty({5}, st, device);
        kernels::layernorm(y, mean, rstd, x, Tensor(), Tensor(), ln_eps);
        const NormRef ln = ref_layernorm(x, Tensor(), Tensor(), ln_eps);
        const test::Tolerance tol = dt == DType::f64 ? test::tolerance(dt) : test::tolerance(DType::f32);
        CHECK_CLOSE(mean.to_vector<double>(), ln.mean, tol);
        CHECK_CLOSE(rstd.to_vector<double>(), ln.rstd, tol);
        kernels::rmsnorm(y, rstd, x, Tensor(), rms_eps);
        CHECK_CLOSE(rstd.to_vector<double>(), ref_rmsnorm(x, Tensor(), rms_eps).rstd, tol);
    }
}

namespace {

// The same norms composed from primitive ops, differentiated by the engine in f64: an independent
// check of the dedicated backward kernels in every dtype.
struct Grads3 {
    Tensor dx, dw, db;
};
Grads3 composed_grads(bool rms, const Tensor& x, const Tensor& w, const Tensor& b, const Tensor& dy) {
    // Fresh f64 CPU leaves holding the same values (never the caller's tensors themselves).
    auto leaf64 = [](const Tensor& t) {
        return t.defined() ? t.detach().to(DType::f64).to(Device::cpu()).clone().set_requires_grad() : Tensor();
    };
    Tensor x64 = leaf64(x), w64 = leaf64(w), b64 = leaf64(b);
    Tensor y;
    if (rms) {
        Tensor ms = ops::mean(x64 * x64, {-1}, KeepDim::yes);
        y = x64 * ops::rsqrt(ms + rms_eps) * w64;
    } else {
        Tensor centered = x64 - ops::mean(x64, {-1}, KeepDim::yes);
        Tensor var = ops::var(x64, {-1}, 0, KeepDim::yes);
        y = centered * ops::rsqrt(var + ln_eps) * w64 + b64;
    }
    y.backward(dy.to(DType::f64).to(Device::cpu()));
    return {x64.grad(), w64.grad(), b64.defined() ? b64.grad() : Tensor()};
}

}  // namespace

LUMEN_DEVICE_TEST("layernorm, rmsnorm: backward kernels match the composed f64 gradients") {
    for (DType dt : {DType::f32, DType::f64, DType::bf16})
        for (const Shape& s : {Shape{4, 7}, Shape{1, 1}, Shape{3, 2, 33}, Shape{70, 5}, Shape{0, 3}})
            for (bool rms : {false, true}) {
                INFO(dtype_name(dt) << " " << shape_str(s) << std::string(rms ? " rmsnorm" : " layernorm"));
                const int64_t C = s.back();
                Tensor x = test::random(s, 11, dt, device, -2, 2).set_requires_grad();
                Tensor w = test::random({C}, 12, dt, device, 0.5, 1.5).set_requires_grad();
                Tensor b = rms ? Tensor() : test::random({C}, 13, dt, device).set_requires_grad();
                Tensor dy = test::random(s, 14, dt, device);
                Tensor y = rms ? ops::rmsnorm(x, w, rms_eps) : ops::layernorm(x, w, b, ln_eps);
                y.backward(dy);
                const Grads3 ref = composed_grads(rms, x, w, b, dy);
                // NOTE: dx is a difference of O(1) terms: allow a few roundings of the compute type.
                const test::Tolerance tol = dt == DType::f32 ? test::Tolerance{5e-5, 5e-5} : test::tolerance(dt);
                CHECK_CLOSE(x.grad().to_vector<double>(), ref.dx.to_vector<double>(), tol);
                CHECK_CLOSE(w.grad().to_vector<double>(), ref.dw.to_vector<double>(), tol);
                if (!rms) CHECK_CLOSE(b.grad().to_vector<double>(), ref.db.to_vector<double>(), tol);
            }
}

LUMEN_DEVICE_TEST("layernorm, rmsnorm: gradients only for the inputs that require them") {
    Tensor x = test::random({3, 4}, 15, DType::f32, device);
    Tensor w = test::random({4}, 16, DType::f32, device).set_requires_grad();
    Tensor b = test::random({4}, 17, DType::f32, device);
    ops::sum(ops::layernorm(x, w, b)).backward();
    CHECK(w.grad().defined());
    CHECK_FALSE(x.grad().defined());
    CHECK_FALSE(b.grad().defined());
    // Grad mode off or nothing requiring grad: no node.
    CHECK_FALSE(ops::rmsnorm(x, Tensor()).requires_grad());
    autograd::NoGradGuard no_grad;
    CHECK_FALSE(ops::layernorm(x, w, b).requires_grad());
}

TEST_CASE("layernorm, rmsnorm: parameter gradients are bit-identical on 1 thread and on many") {
    Tensor x = test::random({1000, 48}, 18, DType::f32, Device::cpu(), -2, 2);
    Tensor dy = test::random({1000, 48}, 19);
    auto grads = [&](bool rms) {
        Tensor xl = x.detach().set_requires_grad();
        Tensor w = test::random({48}, 20).set_requires_grad();
        Tensor b = test::random({48}, 21).set_requires_grad();
        (rms ? ops::rmsnorm(xl, w) : ops::layernorm(xl, w, b)).backward(dy);
        std::vector<float> out = w.grad().to_vector<float>();
        if (!rms) for (float v : b.grad().to_vector<float>()) out.push_back(v);
        for (float v : xl.grad().to_vector<float>()) out.push_back(v);
        return out;
    };
    const int threads = omp_get_max_threads();
    for (bool rms : {false, true}) {
        const std::vector<float> many = grads(rms);
        CHECK(grads(rms) == many);  // run to run
        omp_set_num_threads(1);
        const std::vector<float> one = grads(rms);
        omp_set_num_threads(threads);
        CHECK(one == many);
    }
}

LUMEN_DEVICE_TEST("layernorm, rmsnorm: errors name the op and operands") {
    Tensor x = Tensor::zeros({2, 4}, DType::f32, device);
    Tensor w5 = Tensor::ones({5}, DType::f32, device), w4 = Tensor::ones({4}, DType::f32, device);
    CHECK_THROWS_CONTAINING(ops::layernorm(x, w5, Tensor()),
                            "layernorm: weight must be (C,) with C = x.size(-1) = 4: x (2, 4) f32");
    CHECK_THROWS_CONTAINING(ops::layernorm(x, w4, Tensor::ones({1, 4}, DType::f32, device)),
                            "layernorm: bias must be (C,)");
    CHECK_THROWS_CONTAINING(ops::layernorm(x, Tensor::ones({4}, DType::f64, device), Tensor()),
                            "layernorm: weight must have x's dtype");
    CHECK_THROWS_CONTAINING(ops::layernorm(x, w4, Tensor::ones({4}, DType::bf16, device)),
                            "layernorm: bias must have x's dtype");
    CHECK_THROWS_CONTAINING(ops::layernorm(Tensor::zeros({2, 4}, DType::i32, device), Tensor(), Tensor()),
                            "layernorm: expected a floating tensor");
    CHECK_THROWS_CONTAINING(ops::layernorm(Tensor::scalar(1.0, DType::f32, device), Tensor(), Tensor()),
                            "layernorm: x must have at least one dim");
    CHECK_THROWS_CONTAINING(ops::rmsnorm(x, w5), "rmsnorm: weight must be (C,) with C = x.size(-1) = 4");
    CHECK_THROWS_CONTAINING(ops::rmsnorm(x, Tensor::ones({4}, DType::bf16, device)),
                            "rmsnorm: weight must have x's dtype");
    CHECK_THROWS_CONTAINING(ops::rmsnorm(Tensor::zeros({3}, DType::i64, device), Tensor()),
                            "rmsnorm: expected a floating tensor");
    if (device.is_cuda()) {
        CHECK_THROWS_CONTAINING(ops::layernorm(x, Tensor::ones({4}), Tensor()),
                                "layernorm: tensors on different devices");
        CHECK_THROWS_CONTAINING(ops::rmsnorm(x, Tensor::ones({4})), "rmsnorm: tensors on different devices");
    }
}

LUMEN_GRADCHECK_COVERS("layernorm", "rmsnorm");

TEST_CASE("layernorm: gradcheck with and without weight and bias, C = 1, non-contiguous x") {
    for (int mask = 0; mask < 4; ++mask) {
        INFO("weight " << (mask & 1) << " bias " << (mask & 2));
        const bool with_w = mask & 1, with_b = mask & 2;
        auto f = [with_w, with_b](const std::vector<Tensor>& in) {
            return ops::layernorm(in[0], with_w ? in[1] : Tensor(), with_b ? in[2] : Tensor(), ln_eps);
        };
        CHECK_GRADCHECK(f, {test::leaf({3, 5}, 22, -2, 2), test::leaf({5}, 23, 0.5, 1.5), test::leaf({5}, 24)});
        CHECK_GRADCHECK(f, {test::leaf({2, 3, 4}, 25, -2, 2), test::leaf({4}, 26, 0.5, 1.5), test::leaf({4}, 27)});
    }
    CHECK_GRADCHECK([](const std::vector<Tensor>& in) { return ops::layernorm(in[0], in[1], in[2]); },
                    {test::leaf({4, 1}, 28), test::leaf({1}, 29), test::leaf({1}, 30)});
    CHECK_GRADCHECK([](const std::vector<Tensor>& in) {   // x (4, 5) viewed through a transpose
                        return ops::layernorm(in[0].transpose(0, 1), in[1], in[2]);
                    },
                    {test::leaf({5, 4}, 31, -2, 2), test::leaf({5}, 32, 0.5, 1.5), test::leaf({5}, 33)});
}

TEST_CASE("rmsnorm: gradcheck with and without weight, C = 1, non-contiguous x") {
    for (bool with_w : {false, true}) {
        INFO("weight " << with_w);
        auto f = [with_w](const std::vector<Tensor>& in) {
            return ops::rmsnorm(in[0], with_w ? in[1] : Tensor(), rms_eps);
        };
        CHECK_GRADCHECK(f, {test::leaf({3, 5}, 34, -2, 2), test::leaf({5}, 35, 0.5, 1.5)});
        CHECK_GRADCHECK(f, {test::leaf({2, 3, 4}, 36, -2, 2), test::leaf({4}, 37, 0.5, 1.5)});
    }
    CHECK_GRADCHECK([](const std::vector<Tensor>& in) { return ops::rmsnorm(in[0], in[1]); },
                    {test::leaf({4, 1}, 38, 0.5, 1.5), test::leaf({1}, 39)});
    CHECK_GRADCHECK([](const std::vector<Tensor>& in) {
                        return ops::rmsnorm(in[0].slice(1, 0, 8, 2), in[1]);   // every other column
                    },
                    {test::leaf({3, 8}, 40, -2, 2), test::leaf({4}, 41, 0.5, 1.5)});
}

// ---- CUDA against the CPU kernels ----

namespace {

struct NormOut {
    Tensor y, mean, rstd, dx, dw, db;  // all on the CPU
};

// Forward and backward of layernorm (or rmsnorm) on `device` through the public ops, from the CPU
// tensors x, w, b, dy (b ignored for rmsnorm; undefined w, b for none); results copied back.
// `misalign` views x at an odd element offset of its storage (the general kernels' path).
NormOut run_norm(bool rms, Device device, const Tensor& x, const Tensor& w, const Tensor& b,
                 const Tensor& dy, bool misalign) {
    auto leaf = [&](const Tensor& t) {
        return t.defined() ? t.to(device).detach().set_requires_grad() : Tensor();
    };
    const int64_t n = x.numel();
    Tensor xd = leaf(x);
    if (misalign) {
        Tensor flat = Tensor::empty({n + 1}, x.dtype(), device);
        flat.slice(0, 1, n + 1).copy_(x.flatten().to(device));
        xd = flat.slice(0, 1, n + 1).view(x.shape()).detach().set_requires_grad();
    }
    Tensor wd = leaf(w), bd = rms ? Tensor() : leaf(b);
    Tensor y = rms ? ops::rmsnorm(xd, wd, rms_eps) : ops::layernorm(xd, wd, bd, ln_eps);
    y.backward(dy.to(device));
    const Device cpu = Device::cpu();
    NormOut out{y.to(cpu), {}, {}, xd.grad().to(cpu), {}, {}};
    if (wd.defined()) out.dw = wd.grad().to(cpu);
    if (bd.defined()) out.db = bd.grad().to(cpu);
    // The saved statistics, from the kernels directly.
    const int64_t rows = n / std::max<int64_t>(x.size(-1), 1);
    const DType st = norm_stats_dtype(x.dtype());
    Tensor ys = Tensor::empty(x.shape(), x.dtype(), device), xs = x.to(device);
    Tensor mean = Tensor::empty({rows}, st, device), rstd = Tensor::empty({rows}, st, device);
    const Tensor wk = wd.defined() ? wd.detach() : Tensor(), bk = bd.defined() ? bd.detach() : Tensor();
    if (rms) {
        kernels::rmsnorm(ys, rstd, xs, wk, rms_eps);
    } else {
        kernels::layernorm(ys, mean, rstd, xs, wk, bk, ln_eps);
        out.mean = mean.to(cpu);
    }
    out.rstd = rstd.to(cpu);
    return out;
}

// Row r of t divided by max(1, rstd_r)^power: comparing these with tolerance (atol, rtol) allows
// |a - e| <= atol·max(1, rstd_r)^power + rtol·|e|. The devices' means differ by a rounding δ, so
// layernorm's xhat differs by δ·rstd and its dx by about δ·rstd²: large for nearly constant rows.
std::vector<double> per_row_scaled(const Tensor& t, const Tensor& rstd, int power) {
    std::vector<double> v = t.to_vector<double>();
    const std::vector<double> rs = rstd.to_vector<double>();
    const size_t C = rs.empty() ? 1 : v.size() / rs.size();
    for (size_t i = 0; i < v.size(); ++i) v[i] /= std::pow(std::max(1.0, rs[i / C]), power);
    return v;
}

// f32: both devices round differently ordered f32 sums; parameter gradients are sums over rows.
test::Tolerance cuda_tol(DType dt) {
    return dt == DType::f32 ? test::Tolerance{5e-5, 5e-5} : test::tolerance(dt);
}
test::Tolerance param_tol(DType dt, int64_t rows) {
    const test::Tolerance t = cuda_tol(dt);
    return {t.atol + (dt == DType::f64 ? 1e-12 : 1e-6) * double(rows), t.rtol};
}

}  // namespace

LUMEN_CUDA_TEST("layernorm, rmsnorm: CUDA matches the CPU outputs, statistics and gradients") {
    struct Case {
        int64_t rows, C;
    };
    // No rows, empty rows, warp-per-row (C <= 1024) and block-per-row rows, vectorised and scalar
    // C, the register budget's edges (8192, 16384, 20000), very long rows and many short ones.
    const Case cases[] = {{0, 33},   {4, 0},     {1, 1},     {5, 1},     {7, 3},      {70000, 3},
                          {37, 33},  {300, 768}, {16, 1024}, {9, 1025},  {500, 1032}, {64, 4096},
                          {3, 4097}, {2, 8192},  {2, 16384}, {2, 20000}, {1, 70000}};
    for (DType dt : {DType::f32, DType::bf16, DType::f16, DType::f64})
        for (const Case& cs : cases)
            for (bool rms : {false, true})
                // 0: weight and bias; 1: neither; 2: both, x misaligned
                for (int variant = 0; variant < 3; ++variant) {
                    if (variant == 2 && cs.rows * cs.C > 300000) continue;
                    const bool params = variant != 1, misalign = variant == 2;
                    INFO(dtype_name(dt) << " rows " << cs.rows << " C " << cs.C
                                        << std::string(rms ? " rmsnorm" : " layernorm") << " variant " << variant);
                    const Device cpu = Device::cpu();
                    Tensor x = test::random({cs.rows, cs.C}, 50, dt, cpu, -1, 3);
                    Tensor w = params ? test::random({cs.C}, 51, dt, cpu, 0.5, 1.5) : Tensor();
                    Tensor b = params ? test::random({cs.C}, 52, dt, cpu, -1, 1) : Tensor();
                    Tensor dy = test::random({cs.rows, cs.C}, 53, dt, cpu);
                    const NormOut want = run_norm(rms, cpu, x, w, b, dy, false);
                    const NormOut got = run_norm(rms, device, x, w, b, dy, misalign);
                    const test::Tolerance stats_tol =
                        dt == DType::f64 ? test::tolerance(dt) : test::Tolerance{5e-5, 5e-5};
                    const int y_power = rms ? 0 : 1, dx_power = rms ? 1 : 2;
                    CHECK_CLOSE(per_row_scaled(got.y, want.rstd, y_power),
                                per_row_scaled(want.y, want.rstd, y_power), cuda_tol(dt));
                    if (!rms) CHECK_CLOSE(got.mean, want.mean, stats_tol);
                    CHECK_CLOSE(got.rstd, want.rstd, stats_tol);
                    CHECK_CLOSE(per_row_scaled(got.dx, want.rstd, dx_power),
                                per_row_scaled(want.dx, want.rstd, dx_power), cuda_tol(dt));
                    if (params) {
                        CHECK_CLOSE(got.dw, want.dw, param_tol(dt, cs.rows));
                        if (!rms) CHECK_CLOSE(got.db, want.db, param_tol(dt, cs.rows));
                    }
                }
}

LUMEN_CUDA_TEST("layernorm, rmsnorm: CUDA backward kernels compute only the defined outputs") {
    const Device cpu = Device::cpu();
    for (const Shape& s : {Shape{40, 768}, Shape{6, 4096}, Shape{10, 33}})
        for (int mask = 1; mask < 8; ++mask) {  // bit 0: dx, 1: dweight, 2: dbias
            INFO(shape_str(s) << " outputs " << mask);
            const int64_t rows = s[0], C = s.back();
            const test::Tolerance tol = param_tol(DType::f32, rows);
            Tensor x = test::random(s, 60, DType::f32, cpu, -2, 2), dy = test::random(s, 61);
            Tensor w = test::random({C}, 62, DType::f32, cpu, 0.5, 1.5);
            Tensor mean = Tensor::empty({rows}), rstd = Tensor::empty({rows}), y = Tensor::empty(s);
            auto maybe = [](bool on, const Shape& shape, Device d) {
                return on ? Tensor::empty(shape, DType::f32, d) : Tensor();
            };
            kernels::layernorm(y, mean, rstd, x, w, Tensor(), ln_eps);
            std::vector<Tensor> want, got;
            for (Device d : {cpu, device}) {
                std::vector<Tensor>& out = d.is_cuda() ? got : want;
                out = {maybe(mask & 1, s, d), maybe(mask & 2, {C}, d), maybe(mask & 4, {C}, d)};
                kernels::layernorm_backward(out[0], out[1], out[2], dy.to(d), x.to(d), mean.to(d),
                                            rstd.to(d), w.to(d));
            }
            for (size_t k = 0; k < 3; ++k) {
                REQUIRE(got[k].defined() == want[k].defined());
                if (got[k].defined()) CHECK_CLOSE(got[k].to(cpu), want[k], tol);
            }
            if ((mask & 3) == 0) continue;
            kernels::rmsnorm(y, rstd, x, w, rms_eps);  // rmsnorm: dx and dweight
            for (Device d : {cpu, device}) {
                std::vector<Tensor>& out = d.is_cuda() ? got : want;
                out = {maybe(mask & 1, s, d), maybe(mask & 2, {C}, d)};
                kernels::rmsnorm_backward(out[0], out[1], dy.to(d), x.to(d), rstd.to(d), w.to(d));
            }
            for (size_t k = 0; k < 2; ++k)
                if (got[k].defined()) CHECK_CLOSE(got[k].to(cpu), want[k], tol);
        }
}

LUMEN_CUDA_TEST("layernorm, rmsnorm: CUDA gradients are bit-identical run to run") {
    for (DType dt : {DType::f32, DType::bf16})
        for (const Shape& s : {Shape{30000, 768}, Shape{5000, 4096}, Shape{3000, 4097}, Shape{20000, 3}})
            for (bool rms : {false, true}) {
                INFO(dtype_name(dt) << " " << shape_str(s) << std::string(rms ? " rmsnorm" : " layernorm"));
                const int64_t C = s.back();
                Tensor x = test::random(s, 70, dt, device, -2, 2), dy = test::random(s, 71, dt, device);
                Tensor w = test::random({C}, 72, dt, device, 0.5, 1.5);
                Tensor b = test::random({C}, 73, dt, device);
                auto grads = [&] {
                    Tensor xl = x.detach().set_requires_grad(), wl = w.detach().set_requires_grad();
                    Tensor bl = b.detach().set_requires_grad();
                    (rms ? ops::rmsnorm(xl, wl) : ops::layernorm(xl, wl, bl)).backward(dy);
                    std::vector<float> out = wl.grad().to_vector<float>();
                    if (!rms)
                        for (float v : bl.grad().to_vector<float>()) out.push_back(v);
                    const std::vector<float> dx = xl.grad().to_vector<float>();
                    out.insert(out.end(), dx.begin(), dx.end());
                    return out;
                };
                const std::vector<float> first = grads();
                CHECK(grads() == first);
            }
}
