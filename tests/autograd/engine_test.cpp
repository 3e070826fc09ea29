// tests/autograd/engine_test.cpp: the backward engine: accumulation, graph freeing and retention,
// grad mode, detach, shared subgraphs, leaf dtypes, and errors.
#include "tests/harness.h"

using namespace lumen;

TEST_CASE("engine: gradient of x^3 - 2x (by hand: 3x^2 - 2)") {
    Tensor x = Tensor::from<double>({1.0, 2.0, -1.0}).requires_grad_();
    ops::sum(x * x * x - 2.0 * x).backward();
    CHECK(x.grad().to_vector<double>() == std::vector<double>{1.0, 10.0, 1.0});
}

TEST_CASE("engine: gradients accumulate (+=) across backward calls until zero_grad") {
    Tensor w = Tensor::from<double>({1.0, -3.0}).requires_grad_();
    for (int i = 0; i < 3; ++i) ops::sum(w * 2.0).backward();
    CHECK(w.grad().to_vector<double>() == std::vector<double>{6.0, 6.0});
    w.zero_grad();
    CHECK_FALSE(w.grad().defined());
    ops::sum(w * w).backward();
    CHECK(w.grad().to_vector<double>() == std::vector<double>{2.0, -6.0});
}

TEST_CASE("engine: a shared subgraph (diamond) sums both paths") {
    Tensor x = Tensor::from<double>({0.5, 2.0}).requires_grad_();
    Tensor h = ops::exp(x);                  // used twice
    Tensor y = ops::sum(h * h + h);          // d/dx = (2e^{2x} + e^x)
    y.backward();
    const auto g = x.grad().to_vector<double>();
    CHECK(g[0] == doctest::Approx(2 * std::exp(1.0) + std::exp(0.5)));
    CHECK(g[1] == doctest::Approx(2 * std::exp(4.0) + std::exp(2.0)));
}

TEST_CASE("engine: the graph is freed after backward unless retained") {
    Tensor x = Tensor::from<double>({1.0, 2.0}).requires_grad_();
    Tensor y = ops::sum(ops::exp(x));
    y.backward(Tensor(), RetainGraph::yes);
    y.backward();  // allowed: the first call retained the graph
    const auto g = x.grad().to_vector<double>();
    CHECK(g[0] == doctest::Approx(2 * std::exp(1.0)));
    CHECK_THROWS_CONTAINING(y.backward(), "already freed");
}

TEST_CASE("engine: grad mode, detach and requires_grad rules") {
    Tensor x = Tensor::from<double>({1.0, 2.0}).requires_grad_();
    {
        autograd::NoGradGuard no_grad;
        Tensor y = x * 3.0;
        CHECK_FALSE(y.requires_grad());
        CHECK(y.is_leaf());
        {
            autograd::EnableGradGuard on;
            CHECK((x * 3.0).requires_grad());
        }
        CHECK_FALSE((x * 3.0).requires_grad());
    }
    Tensor d = (x * 3.0).detach();
    CHECK_FALSE(d.requires_grad());
    CHECK(d.to_vector<double>() == std::vector<double>{3.0, 6.0});
    // Only inputs that require grad get a gradient.
    Tensor c = Tensor::from<double>({5.0, 7.0});
    ops::sum(x * c).backward();
    CHECK(x.grad().to_vector<double>() == std::vector<double>{5.0, 7.0});
    CHECK_FALSE(c.grad().defined());
    CHECK_THROWS_CONTAINING(ops::sum(c).backward(), "does not require grad");
    CHECK_THROWS_CONTAINING(Tensor::from<int32_t>({1}).set_requires_grad(), "only floating");
    Tensor y = x * 2.0;
    CHECK_THROWS_CONTAINING(y.set_requires_grad(), "only leaf");
    CHECK_THROWS_CONTAINING((x * 2.0).backward(), "one-element");
}

TEST_CASE("engine: a leaf's gradient has the leaf's dtype (mixed precision through a cast)") {
    Tensor master = Tensor::from<float>({0.5f, -1.5f}).requires_grad_();
    Tensor half = master.to(DType::bf16);
    ops::sum(half * half).backward();  // the bf16 gradient is cast back to f32 for the master
    REQUIRE(master.grad().dtype() == DType::f32);
    CHECK(master.grad().to_vector<float>() == std::vector<float>{1.0f, -3.0f});
}

TEST_CASE("engine: an explicit output gradient is honoured and must match the shape") {
    Tensor x = Tensor::from<double>({1.0, 2.0, 3.0}).requires_grad_();
    Tensor y = x * 2.0;
    y.backward(Tensor::from<double>({1.0, 0.0, -1.0}));
    CHECK(x.grad().to_vector<double>() == std::vector<double>{2.0, 0.0, -2.0});
    Tensor z = x * 2.0;
    CHECK_THROWS_CONTAINING(z.backward(Tensor::from<double>({1.0})), "gradient shape differs");
}

TEST_CASE("engine: deep chains do not overflow the stack") {
    Tensor x = Tensor::from<double>({1.0}).requires_grad_();
    Tensor y = x;
    for (int i = 0; i < 20000; ++i) y = y * 1.0;
    ops::sum(y).backward();
    CHECK(x.grad().item() == 1.0);
}

TEST_CASE("sum_to: reduces broadcast dims back to the input shape") {
    Tensor g = Tensor::ones({2, 3, 4});
    CHECK(autograd::sum_to(g, {3, 1}).to_vector<float>() == std::vector<float>{8, 8, 8});
    CHECK(autograd::sum_to(g, {}).item() == 24.0);
    CHECK(autograd::sum_to(g, {2, 3, 4}).same(g));
}
