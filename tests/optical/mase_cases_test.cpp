// tests/optical/mase_cases_test.cpp: mase-triton's optical tests, ported (specs/optical.md §10 M
// (b)–(h)): bypass against x·Wᵀ + b in f16, the quantized layer and its backward with fixed ranges,
// the batched optical matmul (bypass, quantized, gradients equal to the float matmul's), two
// stacked layers in training, quantile statistics, and a non-contiguous input.
#include "tests/optical/optical_testing.h"

#include "autograd/ops/optical_linear.h"

using namespace lumen;

namespace {

// Sets a layer's weight (and bias) to U[lo, hi) values drawn from `seed`.
void fill_uniform(const Tensor& param, uint64_t seed, double lo, double hi) {
    Tensor p = param;
    p.copy_(test::random(param.shape(), seed, DType::f32, Device::cpu(), lo, hi));
}

}  // namespace

LUMEN_DEVICE_TEST("optical mase M(b): bypass equals the digital layer, f16") {
    nn::OpticalSettings s;
    s.q_bypass = true;
    auto layers = test::optical_pair(32, 8, true, device, s);
    fill_uniform(layers.digital->weight(), 1, 0, 1);
    fill_uniform(layers.digital->bias(), 2, 0, 1);
    const Tensor x = test::random({16, 32}, 3, DType::f16, device, 0, 1);
    const Tensor y = layers.optical->forward(x);
    CHECK(y.dtype() == DType::f16);
    CHECK_CLOSE(y.to(DType::f32), test::float_linear(x, layers.digital->weight(), layers.digital->bias()),
                test::Tolerance{1e-2, 0});
    CHECK(test::same_bits(y, layers.digital->forward(x)));
    CHECK(layers.optical->dither_calls() == 0);
    CHECK(layers.optical->x_min_max().to_vector<float>()[0] == INFINITY);  // no statistics
}

LUMEN_DEVICE_TEST("optical mase M(c), M(d): quantized layer with fixed ranges, and its backward") {
    nn::OpticalSettings s;
    s.q_lut_min = 0.001;
    auto layers = test::optical_pair(32, 8, true, device, s);
    fill_uniform(layers.digital->weight(), 4, -1, 1);
    fill_uniform(layers.digital->bias(), 5, 0, 1);
    test::set_ranges(*layers.optical, {-1, 1}, {-1, 1}, {-10, 10});
    CHECK(layers.optical->out_calibrated());
    layers.optical->eval();  // the ranges stay as set
    Tensor x = test::random({16, 32}, 6, DType::f32, device, -1, 1).detach();
    x.set_requires_grad(true);
    const Tensor y = layers.optical->forward(x);
    CHECK_CLOSE(y, test::float_linear(x, layers.digital->weight(), layers.digital->bias()), test::Tolerance{0.1, 0});
    CHECK(layers.optical->out_min_max().to_vector<float>() == std::vector<float>{-10, 10});
    y.backward(Tensor::ones({16, 8}, DType::f32, device));
    // M(d): dx = ones(16, 8)·W
    CHECK_CLOSE(x.grad(), test::float_linear(Tensor::ones({16, 8}, DType::f32, device),
                                             layers.digital->weight().transpose(0, 1)),
                test::Tolerance{1e-2, 0});
}

LUMEN_DEVICE_TEST("optical mase M(e): batched optical matmul, f16") {
    const Tensor a0 = test::random({8, 4, 32, 64}, 7, DType::f16, device);
    const Tensor b0 = test::random({8, 4, 64, 16}, 8, DType::f16, device);
    const Tensor ref = ops::matmul(a0.to(DType::f32), b0.to(DType::f32));
    // bypass (the float matmul in f16)
    CHECK_CLOSE(ops::matmul(a0, b0).to(DType::f32), ref, test::Tolerance{1e-2, 0});
    ops::OpticalMatmulCall call;
    call.a_range = Tensor::from(std::vector<float>{-1, 1}).to(device);
    call.b_range = Tensor::from(std::vector<float>{-1, 1}).to(device);
    call.out_range = Tensor::from(std::vector<float>{-10, 10}).to(device);
    call.lut_min = 0.001f;
    call.dither.key = {0, optical::fnv1a32("matmul", 6), 0};
    Tensor a = a0.detach(), b = b0.detach();
    a.set_requires_grad(true);
    b.set_requires_grad(true);
    const Tensor y = ops::optical_matmul(a, b, call);
    CHECK(y.shape() == Shape{8, 4, 32, 16});
    CHECK(y.dtype() == DType::f16);
    const std::vector<double> got = y.to_vector<double>(), want = ref.to_vector<double>();
    int64_t close = 0;
    for (size_t i = 0; i < got.size(); ++i) close += std::fabs(got[i] - want[i]) <= 0.15;
    CHECK(double(close) >= 0.99 * double(got.size()));
    const Tensor dy = test::random(y.shape(), 9, DType::f16, device);
    y.backward(dy);
    Tensor fa = a0.detach(), fb = b0.detach();
    fa.set_requires_grad(true);
    fb.set_requires_grad(true);
    ops::matmul(fa, fb).backward(dy);
    CHECK(test::same_bits(a.grad(), fa.grad()));
    CHECK(test::same_bits(b.grad(), fb.grad()));
    // A broadcast b (shared over the batch) takes the float matmul's folded gradient too.
    Tensor shared = test::random({64, 16}, 10, DType::f16, device).detach(), fshared = shared.detach();
    shared.set_requires_grad(true);
    fshared.set_requires_grad(true);
    ops::optical_matmul(a0, shared, call).backward(dy);
    ops::matmul(a0, fshared).backward(dy);
    CHECK(test::same_bits(shared.grad(), fshared.grad()));
}

LUMEN_DEVICE_TEST("optical mase M(f): two stacked layers with ReLU train") {
    auto fc1 = test::optical_pair(32, 16, true, device, {}, "fc1", 11);
    auto fc2 = test::optical_pair(16, 8, true, device, {}, "fc2", 12);
    const Tensor x = test::random({2, 8, 32}, 13, DType::f32, device, 0, 1);
    const Tensor y = fc2.optical->forward(ops::relu(fc1.optical->forward(x)));
    CHECK(y.shape() == Shape{2, 8, 8});
    ops::sum(y).backward();
    const Tensor g = fc1.optical->weight().grad();
    REQUIRE(g.defined());
    CHECK(g.shape() == Shape{16, 32});
    CHECK(test::all_finite(g));
}

LUMEN_DEVICE_TEST("optical mase M(g): quantile statistics, one training forward under no-grad") {
    nn::OpticalSettings s;
    s.q_quantiles = std::pair{0.001, 0.999};
    auto layers = test::optical_pair(32, 8, false, device, s, "fc", 14, {}, 1.0 / std::sqrt(32.0));
    const Tensor x = test::random({8, 32}, 15, DType::f32, device, 0, 1);
    autograd::NoGradGuard no_grad;
    const Tensor y = layers.optical->forward(x);
    CHECK(test::relative_error(y, test::float_linear(x, layers.digital->weight())) < 0.05);
}

LUMEN_DEVICE_TEST("optical mase M(h): a non-contiguous input in eval and training") {
    auto layers = test::optical_pair(32, 8, true, device, {}, "fc", 16);
    const Tensor features = test::random({4, 3, 32}, 17, DType::f32, device);
    const Tensor x = features.select(1, 0);  // (4, 32), row stride 96
    CHECK(!x.is_contiguous());
    for (bool train : {false, true}) {
        layers.optical->train(train);
        const Tensor y = layers.optical->forward(x);
        CHECK(y.shape() == Shape{4, 8});
        CHECK(test::all_finite(y));
        CHECK(test::relative_error(y, test::float_linear(x, layers.digital->weight(), layers.digital->bias())) < 0.1);
    }
}
