// tests/autograd/mlp_test.cpp: end to end on the CPU: a small MLP trained with plain SGD on a fixed
// toy problem (two interleaved spirals, 3/4 turn each) must fit it, driven only by ops, autograd and in-place
// parameter updates.
#include "tests/harness.h"

#include <cmath>

using namespace lumen;

namespace {

// Two spirals of n points each: x (2n, 2) f32, labels (2n,) i64.
std::pair<Tensor, Tensor> spirals(int64_t n) {
    std::vector<float> xs;
    std::vector<int64_t> labels;
    for (int64_t cls = 0; cls < 2; ++cls)
        for (int64_t i = 0; i < n; ++i) {
            const double r = 0.2 + 0.8 * double(i) / double(n);
            const double angle = 1.5 * double(i) / double(n) * M_PI + double(cls) * M_PI;
            xs.push_back(float(r * std::cos(angle)));
            xs.push_back(float(r * std::sin(angle)));
            labels.push_back(cls);
        }
    return {Tensor::from(xs, {2 * n, 2}), Tensor::from(labels, {2 * n})};
}

}  // namespace

TEST_CASE("mlp: SGD fits two spirals") {
    auto [x, y] = spirals(64);
    Generator gen(1234);
    const int64_t hidden = 32;
    // Layers: (2 -> H) tanh (H -> H) tanh (H -> 2); N(0, 1/fan_in) weights, zero biases.
    std::vector<Tensor> params = {
        ops::randn({2, hidden}, gen, 0.0, 1.0 / std::sqrt(2.0)), Tensor::zeros({hidden}),
        ops::randn({hidden, hidden}, gen, 0.0, 1.0 / std::sqrt(double(hidden))), Tensor::zeros({hidden}),
        ops::randn({hidden, 2}, gen, 0.0, 1.0 / std::sqrt(double(hidden))), Tensor::zeros({2}),
    };
    for (Tensor& p : params) p.set_requires_grad(true);
    auto forward = [&](const Tensor& in) {
        Tensor h = ops::tanh(ops::matmul(in, params[0]) + params[1]);  // (N, H)
        h = ops::tanh(ops::matmul(h, params[2]) + params[3]);          // (N, H)
        return ops::matmul(h, params[4]) + params[5];                  // (N, 2)
    };

    double first_loss = 0, loss_value = 0;
    const double lr = 0.5;
    for (int step = 0; step < 500; ++step) {
        Tensor loss = ops::cross_entropy(forward(x), y);
        loss.backward();
        loss_value = loss.item();
        if (step == 0) first_loss = loss_value;
        for (Tensor& p : params) {
            p.add_(p.grad(), -lr);  // in place, outside autograd
            p.zero_grad();
        }
    }
    INFO("first loss " << first_loss << ", final loss " << loss_value);
    CHECK(first_loss > 0.5);
    CHECK(loss_value < 0.05);
    // And it classifies every training point correctly.
    autograd::NoGradGuard no_grad;
    Tensor predicted = ops::argmax(forward(x), -1);
    CHECK(predicted.to_vector<int64_t>() == y.to_vector<int64_t>());
}
