// tests/optim/adamw_test.cpp: AdamW (specs/optimizers.md §3): the CPU step against an independent
// double-precision reference written from the spec's equations (20 steps, every step, params and
// both moments, §13.1 shapes), the A1 known answers, γ and the schedule factor, missing gradients
// as zeros, save -> load -> continue, bad steps; on a GPU, CUDA against the CPU and CUDA repeats.
#include "tests/optim/optim_testing.h"

#include <chrono>

using namespace lumen;
using namespace lumen::optim_test;

namespace {

// §3 in double: t += 1; p *= 1 - lr·wd; m, v EMAs; p -= lr/(1 - β1^t) · m/(sqrt(v)/sqrt(1 - β2^t) + eps).
struct AdamWReference {
    double lr, beta1, beta2, eps, wd;
    std::vector<double> p, m, v;
    int t = 0;

    void step(const std::vector<float>& g, double lr_scale = 1.0) {
        ++t;
        const double lr_t = lr * lr_scale;
        const double c1 = 1 - std::pow(beta1, t), c2 = 1 - std::pow(beta2, t);
        for (size_t i = 0; i < p.size(); ++i) {
            p[i] *= 1 - lr_t * wd;
            m[i] = beta1 * m[i] + (1 - beta1) * g[i];
            v[i] = beta2 * v[i] + (1 - beta2) * double(g[i]) * g[i];
            p[i] -= lr_t / c1 * m[i] / (std::sqrt(v[i]) / std::sqrt(c2) + eps);
        }
    }
};

AdamWReference reference_for(const optim::Hyper& h, const std::vector<double>& p0) {
    return {h.lr, h.beta1, h.beta2, h.eps, h.weight_decay, p0, std::vector<double>(p0.size()),
            std::vector<double>(p0.size())};
}

}  // namespace

TEST_CASE("adamw: CPU step matches the double reference after every step (API defaults, 20 steps)") {
    const optim::Hyper h = optim::api_defaults(optim::Kind::adamw);
    const Tensor good = flags(1.0, 0.0, Device::cpu());
    for (const Shape& shape : {Shape{1024, 32}, Shape{1024, 1024}, Shape{1024, 4097}, Shape{100}}) {
        INFO("shape " << shape_str(shape));
        const auto start = std::chrono::steady_clock::now();
        nn::Parameter p = param("p", shape, 42);
        AdamWReference ref = reference_for(h, values(p.tensor));
        optim::Optimizer opt = one_group(optim::Kind::adamw, h, {p});
        for (int step = 1; step <= 20; ++step) {
            const std::vector<float> g = grad_values(p, step, 0);
            set_grad(p, g);
            opt.step({1.0, good});
            ref.step(g);
            std::string first;
            CHECK_MESSAGE(mismatches(floats(p.tensor), ref.p, 1e-6, 1e-5, &first) == 0, "step " << step << " p " << first);
            CHECK_MESSAGE(mismatches(floats(state_of(opt, "p.exp_avg")), ref.m, 1e-6, 1e-5, &first) == 0,
                          "step " << step << " m " << first);
            CHECK_MESSAGE(mismatches(floats(state_of(opt, "p.exp_avg_sq")), ref.v, 1e-6, 1e-5, &first) == 0,
                          "step " << step << " v " << first);
        }
        CHECK(opt.step_count(0) == 20);
        MESSAGE("adamw parity " << shape_str(shape) << ": "
                                << std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count() << " s");
    }
}

TEST_CASE("adamw: known answers A1 (lr 0.01, betas 0.9/0.999, eps 1e-8, wd 0.1)") {
    optim::Hyper h = optim::api_defaults(optim::Kind::adamw);
    h.lr = 0.01, h.weight_decay = 0.1;
    nn::Parameter p = param_from("p", {1.0f}, {1});
    optim::Optimizer opt = one_group(optim::Kind::adamw, h, {p});
    const float g[] = {0.1f, -0.2f, 0.3f};
    const double expected[] = {0.989000001, 0.991672036, 0.987247953};
    for (int s = 0; s < 3; ++s) {
        set_grad(p, {g[s]});
        opt.step();
        CHECK(std::fabs(p.tensor.item() - expected[s]) <= 2e-6);
    }
    CHECK(std::fabs(state_of(opt, "p.exp_avg").item() - 0.0201) <= 2e-6);
    CHECK(std::fabs(state_of(opt, "p.exp_avg_sq").item() - 1.3994001e-4) <= 2e-6);
}

TEST_CASE("adamw: the clip factor multiplies g on load, the schedule factor multiplies lr") {
    optim::Hyper h = optim::api_defaults(optim::Kind::adamw);
    h.lr = 0.01;
    nn::Parameter a = param("a", {300}, 9), b = param("a", {300}, 9);
    optim::Optimizer oa = one_group(optim::Kind::adamw, h, {a});
    optim::Hyper hb = h;
    hb.lr = 0.01 * 0.5;
    optim::Optimizer ob = one_group(optim::Kind::adamw, hb, {b});
    for (int step = 1; step <= 3; ++step) {
        std::vector<float> g = grad_values(a, step, 0), half = g;
        for (float& x : half) x *= 0.5f;  // exact
        set_grad(a, g);
        set_grad(b, half);
        oa.step({0.5, flags(0.5, 0.0, Device::cpu())});
        ob.step();
    }
    // γ = 0.5 on load equals gradients halved beforehand, bit for bit; lr·0.5 equals lr_scale 0.5.
    CHECK(test::same_bits(a.tensor, b.tensor));
    CHECK(test::same_bits(state_of(oa, "a.exp_avg"), state_of(ob, "a.exp_avg")));
}

TEST_CASE("adamw: a parameter without a gradient steps with zeros (decay and moment decay apply)") {
    optim::Hyper h = optim::api_defaults(optim::Kind::adamw);
    h.lr = 0.01, h.weight_decay = 0.1;
    nn::Parameter a = param("a", {10}, 3), b = param("a", {10}, 3);
    optim::Optimizer oa = one_group(optim::Kind::adamw, h, {a}), ob = one_group(optim::Kind::adamw, h, {b});
    set_grad(b, std::vector<float>(10, 0.0f));
    oa.step();
    ob.step();
    REQUIRE(a.tensor.grad().defined());
    CHECK(test::same_bits(a.tensor, b.tensor));
    const std::vector<double> start = values(param("a", {10}, 3).tensor), now = values(a.tensor);
    for (size_t i = 0; i < now.size(); ++i) CHECK(std::fabs(now[i] - start[i] * (1 - 0.001)) <= 1e-7);
}

LUMEN_DEVICE_TEST("adamw: a NaN or Inf gradient or loss skips the step and changes nothing") {
    optim::Hyper h = optim::api_defaults(optim::Kind::adamw);
    check_bad_steps_write_nothing(optim::Kind::adamw, h, device);
}

LUMEN_DEVICE_TEST("adamw: save -> load -> continue equals the uninterrupted run bit for bit") {
    optim::Hyper h = optim::api_defaults(optim::Kind::adamw);
    h.weight_decay = 0.1;
    check_save_load_continue(optim::Kind::adamw, h, device, 5);
    check_save_load_continue(optim::Kind::adamw, h, device, 0);
}

LUMEN_CUDA_TEST("adamw: CUDA matches the CPU on awkward shapes") {
    optim::Hyper h = optim::api_defaults(optim::Kind::adamw);
    h.weight_decay = 0.1, h.beta2 = 0.95;
    check_cuda_matches_cpu(optim::Kind::adamw, h, device, 20);
}

LUMEN_CUDA_TEST("adamw: the same CUDA steps twice give the same bits") {
    check_cuda_repeats_bitwise(optim::Kind::adamw, optim::api_defaults(optim::Kind::adamw), device);
}
