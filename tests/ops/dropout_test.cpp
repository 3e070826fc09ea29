// tests/ops/dropout_test.cpp: dropout's mask is the documented Philox stream (uniform i < p
// drops element i), kept values are exactly x/(1-p), the dropped fraction is close to p, the
// backward regenerates the forward's mask, the generator advances once per call, p = 0 and
// Training::no return x itself; errors; gradcheck. On a GPU: CUDA masks, values and gradients
// equal the CPU's bit for bit, also for strided and unaligned inputs.
#include "tests/harness.h"

#include <cmath>

using namespace lumen;

namespace {

// The mask the contract defines: element i is dropped when philox_uniform(state, i) < p.
std::vector<bool> expected_mask(const RngState& state, int64_t n, double p) {
    std::vector<bool> dropped;
    for (int64_t i = 0; i < n; ++i) dropped.push_back(double(philox_uniform(state, uint64_t(i))) < p);
    return dropped;
}

}  // namespace

LUMEN_DEVICE_TEST("dropout: the mask is the generator's uniform stream, kept values are x/(1-p)") {
    // 1/(1-p) is a power of two for these p, so x/(1-p) is exact in every dtype.
    for (DType dt : {DType::f32, DType::f64, DType::bf16})
        for (double p : {0.5, 0.75})
            for (const Shape& s : {Shape{1}, Shape{7}, Shape{3, 33}, Shape{2, 5, 9}}) {
                INFO(dtype_name(dt) << " p " << p << " " << shape_str(s));
                Tensor x = test::random(s, 1, dt, device, 0.5, 1.5);   // no zeros of its own
                Generator gen(42, 3);
                const RngState before = gen.state();
                const std::vector<double> y = ops::dropout(x, p, gen).to_vector<double>();
                const std::vector<double> xs = x.to_vector<double>();
                const std::vector<bool> dropped = expected_mask(before, x.numel(), p);
                for (size_t i = 0; i < xs.size(); ++i) {
                    INFO("element " << i);
                    CHECK(y[i] == (dropped[i] ? 0.0 : xs[i] / (1 - p)));
                }
            }
}

LUMEN_DEVICE_TEST("dropout: kept values are x/(1-p) to rounding for other p") {
    for (double p : {0.1, 0.3, 0.9}) {
        INFO("p " << p);
        Tensor x = test::random({40, 17}, 2, DType::f64, device, 0.5, 1.5);
        Generator gen(7);
        const RngState before = gen.state();
        const std::vector<double> y = ops::dropout(x, p, gen).to_vector<double>();
        const std::vector<double> xs = x.to_vector<double>();
        const std::vector<bool> dropped = expected_mask(before, x.numel(), p);
        std::vector<double> expected;
        for (size_t i = 0; i < xs.size(); ++i) expected.push_back(dropped[i] ? 0.0 : xs[i] / (1 - p));
        CHECK_CLOSE(y, expected, test::Tolerance{0, 1e-15});
    }
}

LUMEN_DEVICE_TEST("dropout: the dropped fraction is close to p on a large tensor") {
    const int64_t n = 1 << 20;
    Tensor x = Tensor::ones({n}, DType::f32, device);
    Generator gen(123);
    for (double p : {0.05, 0.1, 0.5, 0.9}) {
        INFO("p " << p);
        const std::vector<float> y = ops::dropout(x, p, gen).to_vector<float>();
        int64_t zeros = 0;
        for (float v : y) zeros += v == 0.f;
        // The standard deviation of the fraction is sqrt(p(1-p)/n) < 5e-4; allow 0.01.
        CHECK(std::abs(double(zeros) / double(n) - p) < 0.01);
    }
}

LUMEN_DEVICE_TEST("dropout: the generator advances once per call; the same state gives the same mask") {
    Tensor x = test::random({5, 13}, 3, DType::f32, device, 0.5, 1.5);
    Generator gen(9, 1);
    const RngState start = gen.state();
    Tensor a = ops::dropout(x, 0.4, gen);
    CHECK(gen.state().offset == start.offset + uint64_t((x.numel() + 3) / 4));
    Tensor b = ops::dropout(x, 0.4, gen);
    CHECK(a.to_vector<float>() != b.to_vector<float>());   // a fresh draw
    gen.set_state(start);
    CHECK(ops::dropout(x, 0.4, gen).to_vector<float>() == a.to_vector<float>());
    Generator same(9, 1);
    CHECK(ops::dropout(x, 0.4, same).to_vector<float>() == a.to_vector<float>());
}

LUMEN_DEVICE_TEST("dropout: the mask follows x's row-major order, whatever its strides") {
    Tensor x = test::random({6, 4}, 4, DType::f32, device, 0.5, 1.5).transpose(0, 1);  // (4, 6)
    REQUIRE_FALSE(x.is_contiguous());
    Generator g1(5), g2(5);
    CHECK(ops::dropout(x, 0.5, g1).to_vector<float>() == ops::dropout(x.contiguous(), 0.5, g2).to_vector<float>());
}

LUMEN_DEVICE_TEST("dropout: the backward applies the forward's mask to dy") {
    for (DType dt : {DType::f32, DType::f64, DType::bf16}) {
        INFO(dtype_name(dt));
        Tensor x = test::random({9, 11}, 5, dt, device, 0.5, 1.5).set_requires_grad();
        Tensor dy = test::random({9, 11}, 6, dt, device, 0.5, 1.5);
        Generator gen(11);
        const double p = 0.5;
        Tensor y = ops::dropout(x, p, gen);
        y.backward(dy);
        const std::vector<double> ys = y.to_vector<double>(), dys = dy.to_vector<double>();
        const std::vector<double> dx = x.grad().to_vector<double>();
        for (size_t i = 0; i < ys.size(); ++i) {
            INFO("element " << i);
            CHECK(dx[i] == (ys[i] == 0.0 ? 0.0 : dys[i] / (1 - p)));
        }
    }
}

LUMEN_DEVICE_TEST("dropout: p = 0 and Training::no return x itself, record nothing, draw nothing") {
    Tensor x = test::random({3, 4}, 7, DType::f32, device).set_requires_grad();
    Generator gen(1);
    Tensor a = ops::dropout(x, 0.0, gen);
    Tensor b = ops::dropout(x, 0.5, gen, Training::no);
    CHECK(a.same(x));
    CHECK(b.same(x));
    CHECK(gen.state().offset == 0);
    // Empty tensors: an empty draw.
    Tensor e = ops::dropout(Tensor::zeros({0, 3}, DType::f32, device), 0.5, gen);
    CHECK(e.shape() == Shape{0, 3});
    CHECK(gen.state().offset == 0);
}

LUMEN_DEVICE_TEST("dropout: errors name the op, p and the operand") {
    Tensor x = Tensor::zeros({2, 3}, DType::f32, device);
    Generator gen;
    CHECK_THROWS_CONTAINING(ops::dropout(x, 1.0, gen), "dropout: p must be in [0, 1), got p = 1: x (2, 3) f32");
    CHECK_THROWS_CONTAINING(ops::dropout(x, -0.1, gen), "dropout: p must be in [0, 1), got p = -0.1");
    CHECK_THROWS_CONTAINING(ops::dropout(x, std::nan(""), gen), "dropout: p must be in [0, 1), got p = nan");
    CHECK_THROWS_CONTAINING(ops::dropout(x, 1.5, gen, Training::no), "dropout: p must be in [0, 1)");
    CHECK_THROWS_CONTAINING(ops::dropout(Tensor::zeros({2}, DType::i32, device), 0.5, gen),
                            "dropout: expected a floating tensor");
}

LUMEN_GRADCHECK_COVERS("dropout");

TEST_CASE("dropout: gradcheck (a fresh generator per call, so every call draws the same mask)") {
    CHECK_GRADCHECK([](const std::vector<Tensor>& in) {
                        Generator gen(21);
                        return ops::dropout(in[0], 0.3, gen);
                    },
                    {test::leaf({5, 6}, 8)});
    CHECK_GRADCHECK([](const std::vector<Tensor>& in) {
                        Generator gen(22);
                        return ops::dropout(in[0].transpose(0, 1), 0.6, gen);
                    },
                    {test::leaf({4, 7}, 9)});
}

LUMEN_CUDA_TEST("dropout: CUDA masks and values are the CPU's bit for bit, forward and backward") {
    for (DType dt : {DType::f32, DType::bf16, DType::f16, DType::f64})
        for (int64_t n : {1, 3, 4, 5, 7, 8, 9, 33, 1000, 100003})
            for (double p : {0.1, 0.5, 0.9}) {
                INFO(dtype_name(dt) << " n " << n << " p " << p);
                Tensor x = test::random({n}, 30, dt, Device::cpu(), 0.5, 1.5);  // no zeros
                Generator gc(77, 5), gg(77, 5);
                gc.take(13);  // a nonzero offset
                gg.take(13);
                const RngState state = gc.state();
                Tensor xc = x.detach().set_requires_grad();
                Tensor xg = x.to(device).detach().set_requires_grad();
                Tensor yc = ops::dropout(xc, p, gc), yg = ops::dropout(xg, p, gg);
                const std::vector<double> vc = yc.to_vector<double>(), vg = yg.to_vector<double>();
                CHECK(vg == vc);
                const std::vector<bool> dropped = expected_mask(state, n, p);
                for (size_t i = 0; i < vg.size(); ++i) CHECK((vg[i] == 0.0) == dropped[i]);
                CHECK(gg.state().offset == gc.state().offset);
                Tensor dy = test::random({n}, 31, dt, Device::cpu(), 0.5, 1.5);
                yc.backward(dy);
                yg.backward(dy.to(device));
                CHECK(xg.grad().to_vector<double>() == xc.grad().to_vector<double>());
            }
}

LUMEN_CUDA_TEST("dropout: CUDA strided and unaligned inputs keep the row-major mask") {
    for (DType dt : {DType::f32, DType::bf16}) {
        INFO(dtype_name(dt));
        // (40, 30) through a transpose; then a contiguous view one element into its storage.
        Tensor base = test::random({30, 40}, 32, dt, device, 0.5, 1.5);
        Tensor strided = base.transpose(0, 1);
        Tensor storage = test::random({1201}, 33, dt, device, 0.5, 1.5);
        Tensor unaligned = storage.slice(0, 1, 1201).view({40, 30});
        for (const Tensor& x : {strided, unaligned}) {
            Generator gc(3), gg(3);
            const Tensor on_cpu = x.to(Device::cpu());
            const std::vector<double> want = ops::dropout(on_cpu, 0.3, gc).to_vector<double>();
            CHECK(ops::dropout(x, 0.3, gg).to_vector<double>() == want);
        }
    }
}
