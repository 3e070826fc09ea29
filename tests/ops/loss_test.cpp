// tests/ops/loss_test.cpp: cross_entropy: the fused kernels against a plain f64 reference and
// against the composition -mean(pick(log_softmax)) (values and gradients), ignore_index
// (including every row ignored), awkward shapes (V = 1, no rows, 3-D logits, non-contiguous
// logits), dtypes, errors, and gradchecks; on a GPU, the CUDA kernels against the CPU ones
// (awkward shapes, a (4096, 50304) bf16 batch, offset views), their run-to-run bit stability, and
// the NaN loss that CUDA gives for an out-of-range target (the CPU throws).
#include "tests/harness.h"

#include <cmath>
#include <cstring>
#include <limits>

using namespace lumen;

namespace {

// Mean over rows whose target is not `ignore` of logsumexp(row) − row[target], in plain double.
double ref_loss(const std::vector<double>& x, const std::vector<int64_t>& t, int64_t V,
                int64_t ignore) {
    double total = 0;
    int64_t count = 0;
    for (size_t r = 0; r < t.size(); ++r) {
        if (t[r] == ignore) continue;
        const double* xr = x.data() + r * size_t(V);
        double m = -std::numeric_limits<double>::infinity();
        for (int64_t i = 0; i < V; ++i) m = std::max(m, xr[i]);
        double s = 0;
        for (int64_t i = 0; i < V; ++i) s += std::exp(xr[i] - m);
        total += m + std::log(s) - xr[t[r]];
        ++count;
    }
    return count ? total / double(count) : 0.0;
}

// d loss / d logits scaled by dloss: (softmax − onehot)·dloss/count on counted rows, 0 elsewhere.
std::vector<double> ref_grad(const std::vector<double>& x, const std::vector<int64_t>& t, int64_t V,
                             int64_t ignore, double dloss) {
    std::vector<double> g(x.size(), 0.0);
    int64_t count = 0;
    for (int64_t k : t) count += k != ignore;
    for (size_t r = 0; r < t.size(); ++r) {
        if (t[r] == ignore) continue;
        const double* xr = x.data() + r * size_t(V);
        double m = -std::numeric_limits<double>::infinity(), s = 0;
        for (int64_t i = 0; i < V; ++i) m = std::max(m, xr[i]);
        for (int64_t i = 0; i < V; ++i) s += std::exp(xr[i] - m);
        for (int64_t i = 0; i < V; ++i)
            g[r * size_t(V) + size_t(i)] =
                (std::exp(xr[i] - m) / s - (i == t[r])) * dloss / double(count);
    }
    return g;
}

// Targets in [0, V), with every `every`-th one set to `ignore` (every = 0: none ignored).
Tensor targets(int64_t rows, int64_t V, uint64_t seed, DType dt, Device device, int64_t every = 0,
               int64_t ignore = -1) {
    std::vector<int64_t> t;
    std::vector<double> u = test::random({rows}, seed, DType::f64).to_vector<double>();
    for (int64_t r = 0; r < rows; ++r)
        t.push_back(every > 0 && r % every == every - 1
                        ? ignore
                        : std::min<int64_t>(V - 1, int64_t((u[size_t(r)] + 1) / 2 * double(V))));
    return Tensor::from<int64_t>(t, {rows}).to(dt).to(device);
}

// -mean over counted rows of log_softmax(logits)[target], composed from primitives: the target
// entry is picked with a one-hot mask (arange == target), ignored rows are masked out.
Tensor composed_cross_entropy(const Tensor& logits, const Tensor& target, int64_t ignore) {
    const int64_t V = logits.size(-1);
    Tensor logp = ops::log_softmax(logits);                                      // (N, V)
    Tensor classes = ops::arange(0, double(V), 1, DType::i64, logits.device());  // (V,)
    Tensor onehot = ops::eq(classes, target.to(DType::i64).unsqueeze(-1));       // (N, V)
    Tensor picked = ops::sum(ops::where(onehot, logp, ops::scalar_like(0.0, logp)), {-1});  // (N,)
    Tensor counted =
        ops::ne(target.to(DType::i64), ops::scalar_like(double(ignore), target.to(DType::i64)));
    Tensor total = ops::sum(ops::where(counted, picked, ops::scalar_like(0.0, picked)));
    Tensor count = ops::sum(counted.to(logits.dtype()));
    return ops::neg(ops::div(total, count));
}

}  // namespace

LUMEN_DEVICE_TEST(
    "cross_entropy: forward matches the f64 reference on shapes, dtypes and ignore_index") {
    struct Case {
        Shape logits;
        int64_t every;  // every-th target ignored (0: none)
    };
    // (40, 1000) splits its rows across threads.
    const Case cases[] = {{{4, 7}, 0}, {{6, 37}, 3},  {{2, 3, 5}, 2},  {{5, 1}, 0},
                          {{1, 1}, 0}, {{3, 130}, 0}, {{40, 1000}, 5}, {{0, 5}, 0},
                          {{4, 9}, 1}, {{1, 4}, 1},   {{3, 0}, 1}};
    for (DType dt : {DType::f32, DType::f64, DType::bf16, DType::f16})
        for (DType tdt : {DType::i32, DType::i64})
            for (const Case& c : cases)
                for (int64_t ignore : {int64_t(-1), int64_t(-100)}) {
                    INFO(dtype_name(dt)
                         << " target " << dtype_name(tdt) << " " << shape_str(c.logits) << " every "
                         << c.every << " ignore " << ignore);
                    const int64_t V = c.logits.back(),
                                  rows = numel_of(c.logits) / std::max<int64_t>(V, 1);
                    const int64_t N = V == 0 ? c.logits[0] : rows;
                    Tensor x = test::random(c.logits, 51, dt, device, -3, 3);
                    Shape lead(c.logits.begin(), c.logits.end() - 1);
                    Tensor t = targets(N, V, 52, tdt, device, c.every, ignore).reshape(lead);
                    Tensor loss = ops::cross_entropy(x, t, ignore);
                    CHECK(loss.shape() == Shape{});
                    CHECK(loss.dtype() == (dt == DType::f64 ? DType::f64 : DType::f32));
                    const double expected =
                        ref_loss(x.to_vector<double>(), t.to_vector<int64_t>(), V, ignore);
                    CHECK_CLOSE(std::vector<double>{loss.item()}, std::vector<double>{expected},
                                test::tolerance(dt == DType::f64 ? DType::f64 : DType::f32));
                }
}

LUMEN_DEVICE_TEST("cross_entropy: every target ignored gives loss 0 and a zero gradient") {
    Tensor x = test::random({3, 4}, 61, DType::f32, device);
    x.set_requires_grad(true);
    Tensor t = Tensor::from<int64_t>({-1, -1, -1}, {3}, device);
    Tensor loss = ops::cross_entropy(x, t);
    CHECK(loss.item() == 0.0);
    loss.backward();
    CHECK(x.grad().to_vector<float>() == std::vector<float>(12, 0.f));
    // No rows at all: the same.
    Tensor empty = Tensor::zeros({0, 4}, DType::f32, device);
    CHECK(ops::cross_entropy(empty, Tensor::zeros({0}, DType::i64, device)).item() == 0.0);
}

LUMEN_DEVICE_TEST(
    "cross_entropy: ignore_index may be a valid class; ignored rows get zero gradient") {
    Tensor x = test::random({4, 3}, 62, DType::f64, device, -2, 2);
    x.set_requires_grad(true);
    Tensor t = Tensor::from<int32_t>({0, 2, 0, 1}, {4}, device);
    Tensor loss = ops::cross_entropy(x, t, 0);
    const std::vector<double> xs = x.to_vector<double>();
    const std::vector<int64_t> ts = {0, 2, 0, 1};
    CHECK(std::abs(loss.item() - ref_loss(xs, ts, 3, 0)) < 1e-12);
    loss.backward(Tensor::scalar(2.5, DType::f64, device));
    CHECK_CLOSE(x.grad().to_vector<double>(), ref_grad(xs, ts, 3, 0, 2.5),
                test::tolerance(DType::f64));
    const std::vector<double> g = x.grad().to_vector<double>();
    for (int i : {0, 1, 2, 6, 7, 8}) CHECK(g[size_t(i)] == 0.0);
}

LUMEN_DEVICE_TEST("cross_entropy: backward matches the f64 reference; dlogits has logits' dtype") {
    for (DType dt : {DType::f32, DType::f64, DType::bf16})
        for (const Shape& s : {Shape{5, 7}, Shape{2, 3, 11}, Shape{4, 1}, Shape{0, 3}}) {
            INFO(dtype_name(dt) << " " << shape_str(s));
            const int64_t V = s.back(), N = numel_of(s) / V;
            Tensor x = test::random(s, 71, dt, device, -3, 3);
            x.set_requires_grad(true);
            Tensor t =
                targets(N, V, 72, DType::i64, device, 3).reshape(Shape(s.begin(), s.end() - 1));
            ops::cross_entropy(x, t).backward();
            REQUIRE(x.grad().defined());
            CHECK(x.grad().dtype() == dt);
            CHECK(x.grad().shape() == s);
            CHECK_CLOSE(x.grad().to_vector<double>(),
                        ref_grad(x.to_vector<double>(), t.to_vector<int64_t>(), V, -1, 1.0),
                        test::tolerance(dt));
        }
}

LUMEN_DEVICE_TEST(
    "cross_entropy: equals -mean(pick(log_softmax)) composed by hand, values and gradients") {
    for (int64_t every : {int64_t(0), int64_t(2)}) {
        INFO("every " << every);
        Tensor x1 = test::random({6, 9}, 81, DType::f64, device, -3, 3);
        Tensor x2 = x1.clone();
        x1.set_requires_grad(true);
        x2.set_requires_grad(true);
        Tensor t = targets(6, 9, 82, DType::i64, device, every, -7);
        Tensor fused = ops::cross_entropy(x1, t, -7);
        Tensor composed = composed_cross_entropy(x2, t, -7);
        CHECK_CLOSE(std::vector<double>{fused.item()}, std::vector<double>{composed.item()},
                    test::tolerance(DType::f64));
        fused.backward();
        composed.backward();
        CHECK_CLOSE(x1.grad(), x2.grad(), test::tolerance(DType::f64));
    }
}

LUMEN_DEVICE_TEST("cross_entropy: non-contiguous logits and targets") {
    for (DType dt : {DType::f32, DType::bf16}) {
        Tensor x = test::random({7, 5}, 91, dt, device, -3, 3).transpose(0, 1);  // (5, 7)
        Tensor t = targets(10, 7, 92, DType::i64, device).slice(0, 0, 10, 2);    // (5,)
        REQUIRE_FALSE(x.is_contiguous());
        REQUIRE_FALSE(t.is_contiguous());
        INFO(dtype_name(dt));
        const double expected = ref_loss(x.to_vector<double>(), t.to_vector<int64_t>(), 7, -1);
        CHECK_CLOSE(std::vector<double>{ops::cross_entropy(x, t).item()},
                    std::vector<double>{expected}, test::tolerance(DType::f32));
        CHECK(ops::cross_entropy(x, t).item() ==
              ops::cross_entropy(x.contiguous(), t.contiguous()).item());
    }
}

LUMEN_DEVICE_TEST("cross_entropy: large logits are stable") {
    Tensor x = Tensor::from<float>({1000.f, 0.f, -1000.f, 1000.f, 0.f, -1000.f}, {2, 3}, device);
    Tensor t = Tensor::from<int64_t>({0, 2}, {2}, device);
    CHECK(std::abs(ops::cross_entropy(x, t).item() - 1000.0) < 1e-3);  // (0 + 2000) / 2
}

LUMEN_DEVICE_TEST("cross_entropy: errors name the op, the bad value and V") {
    Tensor x = Tensor::zeros({4, 5}, DType::f32, device);
    // Target values are checked on the CPU only: on CUDA that would need a host sync (see the
    // CUDA test "out-of-range targets give a NaN loss" below).
    if (device.is_cpu()) {
        CHECK_THROWS_CONTAINING(
            ops::cross_entropy(x, Tensor::from<int64_t>({0, 7, 1, 2}, {4}, device)),
            "cross_entropy: target 7 (at flat position 1) is out of range [0, 5) for V = 5");
        CHECK_THROWS_CONTAINING(
            ops::cross_entropy(x, Tensor::from<int32_t>({0, 1, -3, 2}, {4}, device)),
            "cross_entropy: target -3");
        CHECK_THROWS_CONTAINING(
            ops::cross_entropy(x, Tensor::from<int64_t>({0, 1, 5, 2}, {4}, device), 4),
            "target 5");
        // V = 0: any counted target is out of range.
        CHECK_THROWS_CONTAINING(ops::cross_entropy(Tensor::zeros({2, 0}, DType::f32, device),
                                                   Tensor::zeros({2}, DType::i64, device)),
                                "out of range [0, 0) for V = 0");
    }
    CHECK_NOTHROW(ops::cross_entropy(x, Tensor::from<int64_t>({0, 1, -100, 2}, {4}, device), -100));
    CHECK_THROWS_CONTAINING(
        ops::cross_entropy(x, Tensor::zeros({3}, DType::i64, device)),
        "cross_entropy: target must have the shape of logits without its last dim, (4,): "
        "logits (4, 5) f32");
    CHECK_THROWS_CONTAINING(ops::cross_entropy(x, Tensor::zeros({4, 1}, DType::i64, device)),
                            "target must have the shape of logits without its last dim");
    CHECK_THROWS_CONTAINING(ops::cross_entropy(x, Tensor::zeros({4}, DType::f32, device)),
                            "cross_entropy: target must be i32 or i64: logits (4, 5) f32");
    CHECK_THROWS_CONTAINING(ops::cross_entropy(Tensor::zeros({4, 5}, DType::i64, device),
                                               Tensor::zeros({4}, DType::i64, device)),
                            "cross_entropy: logits must be f32, f64, bf16 or f16");
    CHECK_THROWS_CONTAINING(ops::cross_entropy(Tensor::scalar(1.0, DType::f32, device),
                                               Tensor::scalar(0.0, DType::i64, device)),
                            "cross_entropy: logits must be (..., V)");
}

LUMEN_GRADCHECK_COVERS("cross_entropy");

TEST_CASE("cross_entropy: gradcheck, with ignored rows and non-contiguous logits") {
    Tensor t = Tensor::from<int64_t>({2, 0, 4, 1}, {4});
    Tensor t_ignored = Tensor::from<int64_t>({2, -1, 4, -1}, {4});
    CHECK_GRADCHECK([t](const std::vector<Tensor>& in) { return ops::cross_entropy(in[0], t); },
                    {test::leaf({4, 5}, 101, -2, 2)});
    CHECK_GRADCHECK(
        [t_ignored](const std::vector<Tensor>& in) { return ops::cross_entropy(in[0], t_ignored); },
        {test::leaf({4, 5}, 102, -2, 2)});
    CHECK_GRADCHECK(
        [t](const std::vector<Tensor>& in) { return ops::cross_entropy(in[0].transpose(0, 1), t); },
        {test::leaf({5, 4}, 103, -2, 2)});
    Tensor t3 = Tensor::from<int32_t>({0, 2, 1, 2, 2, 0}, {2, 3});
    CHECK_GRADCHECK([t3](const std::vector<Tensor>& in) { return ops::cross_entropy(in[0], t3); },
                    {test::leaf({2, 3, 3}, 104, -2, 2)});
    Tensor t1 = Tensor::from<int64_t>({0, 0}, {2});
    CHECK_GRADCHECK([t1](const std::vector<Tensor>& in) { return ops::cross_entropy(in[0], t1); },
                    {test::leaf({2, 1}, 105, -2, 2)});
}

// ---- CUDA against the CPU kernels (run only where a GPU is present) ----

namespace {

struct CeRun {
    Tensor loss, dlogits;
};
// The loss and dlogits on `device`, backward from dloss = the number of counted rows (so that
// dlogits = softmax − onehot, large enough for tight tolerances).
CeRun ce_on(Device device, const Tensor& x_host, const Tensor& t_host, int64_t ignore) {
    int64_t counted = 0;
    for (int64_t k : t_host.to_vector<int64_t>()) counted += k != ignore;
    Tensor x = x_host.to(device).detach();  // a fresh leaf, also when device is the CPU
    x.set_requires_grad(true);
    Tensor loss = ops::cross_entropy(x, t_host.to(device), ignore);
    loss.backward(Tensor::scalar(double(std::max<int64_t>(counted, 1)), loss.dtype(), device));
    return {loss.detach(), x.grad()};
}

// Compares a CUDA run with the CPU run of the same inputs, and with a second CUDA run (bits).
void check_cuda_against_cpu(Device device, const Tensor& x, const Tensor& t, int64_t ignore) {
    const DType dt = x.dtype();
    const CeRun cpu = ce_on(Device::cpu(), x, t, ignore), gpu = ce_on(device, x, t, ignore);
    CHECK(gpu.loss.device() == device);
    CHECK(gpu.loss.dtype() == cpu.loss.dtype());
    CHECK_CLOSE(std::vector<double>{gpu.loss.item()}, std::vector<double>{cpu.loss.item()},
                test::tolerance(dt == DType::f64 ? DType::f64 : DType::f32));
    // Probabilities near 1/V need an atol far below the dtype's default one, but p − 1 near 0
    // cancels to the f32 (f64) rounding of p.
    const test::Tolerance tol = test::tolerance(dt);
    CHECK_CLOSE(gpu.dlogits, cpu.dlogits, test::Tolerance{dt == DType::f64 ? 1e-13 : 1e-6, tol.rtol});
    const CeRun again = ce_on(device, x, t, ignore);
    CHECK(test::same_bits(gpu.loss, again.loss));
    CHECK(test::same_bits(gpu.dlogits, again.dlogits));
}

}  // namespace

LUMEN_CUDA_TEST("cross_entropy: CUDA matches the CPU kernels forward and backward, bit-stable") {
    struct Case {
        Shape logits;
        int64_t every;  // every-th target ignored (0: none, 1: all)
    };
    // Warp rows (V ≤ 1024) and block rows; no rows, V = 1, many short rows, odd V, all ignored.
    const Case cases[] = {{{0, 5}, 0},     {{1, 1}, 0},      {{5, 1}, 2},    {{70000, 3}, 7},
                          {{7, 33}, 3},    {{6, 1024}, 0},   {{3, 1025}, 2}, {{2, 4097}, 0},
                          {{2, 3, 129}, 4}, {{4, 9}, 1},     {{3, 50304}, 0}};
    for (DType dt : {DType::f32, DType::f64, DType::bf16, DType::f16})
        for (DType tdt : {DType::i32, DType::i64})
            for (const Case& c : cases) {
                INFO(dtype_name(dt) << " target " << dtype_name(tdt) << " "
                                    << shape_str(c.logits) << " every " << c.every);
                const int64_t V = c.logits.back(), N = numel_of(c.logits) / V;
                Tensor x = test::random(c.logits, 301, dt, Device::cpu(), -3, 3);
                Tensor t = targets(N, V, 302, tdt, Device::cpu(), c.every, -100)
                               .reshape(Shape(c.logits.begin(), c.logits.end() - 1));
                check_cuda_against_cpu(device, x, t, -100);
            }
}

LUMEN_CUDA_TEST("cross_entropy: CUDA (B·T = 4096, V = 50304) bf16 matches the CPU, bit-stable") {
    Tensor x = test::random({4096, 50304}, 321, DType::bf16, Device::cpu(), -4, 4);
    Tensor t = targets(4096, 50304, 322, DType::i64, Device::cpu(), 50);
    check_cuda_against_cpu(device, x, t, -1);
}

LUMEN_CUDA_TEST("cross_entropy: CUDA logits rows off 16-byte boundaries (a view with an offset)") {
    for (DType dt : {DType::f32, DType::bf16})
        for (int64_t V : {int64_t(37), int64_t(3001)}) {
            INFO(dtype_name(dt) << " V " << V);
            Tensor x = test::random({5, V}, 331, dt, device, -3, 3).slice(0, 1, 5).detach();  // (4, V)
            REQUIRE(x.is_contiguous());
            Tensor t = targets(4, V, 332, DType::i64, device, 3);
            const double expected = ref_loss(x.to_vector<double>(), t.to_vector<int64_t>(), V, -1);
            x.set_requires_grad(true);
            Tensor loss = ops::cross_entropy(x, t);
            CHECK_CLOSE(std::vector<double>{loss.item()}, std::vector<double>{expected},
                        test::tolerance(DType::f32));
            loss.backward();
            CHECK_CLOSE(x.grad().to_vector<double>(),
                        ref_grad(x.to_vector<double>(), t.to_vector<int64_t>(), V, -1, 1.0),
                        test::tolerance(dt));
        }
}

LUMEN_CUDA_TEST("cross_entropy: on CUDA an out-of-range target gives a NaN loss, not an error") {
    // The CPU throws (see "errors name the op"); CUDA would need a host sync to check, so the
    // kernel makes the bad row's loss NaN instead: the mean is NaN, and so is that row of dlogits.
    Tensor x = test::random({4, 5}, 341, DType::f32, device);
    for (int64_t bad : {int64_t(7), int64_t(5), int64_t(-3)}) {
        INFO("target " << bad);
        Tensor xl = x.detach();
        xl.set_requires_grad(true);
        Tensor loss = ops::cross_entropy(xl, Tensor::from<int64_t>({0, bad, 1, -100}, {4}, device), -100);
        CHECK(std::isnan(loss.item()));
        loss.backward();
        const std::vector<float> g = xl.grad().to_vector<float>();
        for (int i = 0; i < 5; ++i) {
            CHECK(std::isfinite(g[size_t(i)]));       // row 0: counted, in range
            CHECK(std::isnan(g[size_t(5 + i)]));      // row 1: the bad target
            CHECK(std::isfinite(g[size_t(10 + i)]));  // row 2: counted, in range
            CHECK(g[size_t(15 + i)] == 0.f);          // row 3: ignored
        }
    }
    Tensor t32 = Tensor::from<int32_t>({0, 1, -3, 2}, {4}, device);
    CHECK(std::isnan(ops::cross_entropy(x, t32).item()));
    // V = 0: a counted target is out of range; with every target ignored the loss is 0.
    Tensor empty_rows = Tensor::zeros({2, 0}, DType::f32, device);
    CHECK(std::isnan(ops::cross_entropy(empty_rows, Tensor::zeros({2}, DType::i64, device)).item()));
    CHECK(ops::cross_entropy(empty_rows, Tensor::full({2}, -1.0, DType::i64, device)).item() == 0.0);
}
