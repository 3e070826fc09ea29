// tests/optim/lion_test.cpp: Lion (specs/optimizers.md §4): the CPU step against an independent
// double reference from the spec's equations (20 steps, every step; ≤ 15 elements per tensor may
// sit on the sign boundary, and those are re-synchronised so one boundary case is counted once),
// the L1 known answers, sign(0) = 0, save -> load -> continue, bad steps; CUDA vs CPU and repeats.
#include "tests/optim/optim_testing.h"

using namespace lumen;
using namespace lumen::optim_test;

namespace {

// §4 in double: p *= 1 - lr·wd; c = β1·m + (1 - β1)·g; p -= lr·sign(c); m = β2·m + (1 - β2)·g.
struct LionReference {
    double lr, beta1, beta2, wd;
    std::vector<double> p, m;

    void step(const std::vector<float>& g) {
        for (size_t i = 0; i < p.size(); ++i) {
            p[i] *= 1 - lr * wd;
            const double c = beta1 * m[i] + (1 - beta1) * g[i];
            p[i] -= lr * double((c > 0) - (c < 0));
            m[i] = beta2 * m[i] + (1 - beta2) * g[i];
        }
    }
};

}  // namespace

TEST_CASE("lion: CPU step matches the double reference after every step (≤ 15 boundary elements)") {
    optim::Hyper h = optim::api_defaults(optim::Kind::lion);
    h.weight_decay = 0.6;  // the config's decay, so that it is exercised
    const Tensor good = flags(1.0, 0.0, Device::cpu());
    for (const Shape& shape : {Shape{1024, 32}, Shape{1024, 1024}, Shape{1024, 4097}, Shape{100}}) {
        INFO("shape " << shape_str(shape));
        nn::Parameter p = param("p", shape, 43);
        const std::vector<double> p0 = values(p.tensor);
        LionReference ref{h.lr, h.beta1, h.beta2, h.weight_decay, p0, std::vector<double>(p0.size())};
        optim::Optimizer opt = one_group(optim::Kind::lion, h, {p});
        for (int step = 1; step <= 20; ++step) {
            const std::vector<float> g = grad_values(p, step, 0);
            set_grad(p, g);
            opt.step({1.0, good});
            ref.step(g);
            const std::vector<float> pv = floats(p.tensor), mv = floats(state_of(opt, "p.exp_avg"));
            std::string first;
            CHECK_MESSAGE(mismatches(pv, ref.p, 1e-6, 1e-5, &first) <= 15, "step " << step << " p " << first);
            CHECK_MESSAGE(mismatches(mv, ref.m, 1e-6, 1e-5, &first) <= 15, "step " << step << " m " << first);
            ref.p.assign(pv.begin(), pv.end());  // as bnb's test: a boundary flip is counted once, not carried on
            ref.m.assign(mv.begin(), mv.end());
        }
    }
}

TEST_CASE("lion: known answers L1 (lr 0.01, betas 0.9/0.99, wd 0.1)") {
    optim::Hyper h = optim::api_defaults(optim::Kind::lion);
    h.lr = 0.01, h.weight_decay = 0.1;
    nn::Parameter p = param_from("p", {1.0f}, {1});
    optim::Optimizer opt = one_group(optim::Kind::lion, h, {p});
    const float g[] = {0.1f, -0.2f, 0.3f};
    const double expected_p[] = {0.989, 0.998011, 0.987012989}, expected_m[] = {0.001, -0.00101, 0.0020001};
    for (int s = 0; s < 3; ++s) {
        set_grad(p, {g[s]});
        opt.step();
        CHECK(std::fabs(p.tensor.item() - expected_p[s]) <= 2e-6);
        CHECK(std::fabs(state_of(opt, "p.exp_avg").item() - expected_m[s]) <= 2e-6);
    }
}

TEST_CASE("lion: sign(0) = 0: a zero gradient on a zero momentum only decays") {
    optim::Hyper h = optim::api_defaults(optim::Kind::lion);
    h.lr = 0.01, h.weight_decay = 0.5;
    nn::Parameter p = param_from("p", {1.0f, -2.0f}, {2});
    optim::Optimizer opt = one_group(optim::Kind::lion, h, {p});
    set_grad(p, {0.0f, 0.0f});
    opt.step();
    CHECK(values(p.tensor) == std::vector<double>{double(1.0f * float(1 - 0.005)), double(-2.0f * float(1 - 0.005))});
    CHECK(values(state_of(opt, "p.exp_avg")) == std::vector<double>{0.0, 0.0});
}

LUMEN_DEVICE_TEST("lion: a NaN or Inf gradient or loss skips the step and changes nothing") {
    check_bad_steps_write_nothing(optim::Kind::lion, optim::api_defaults(optim::Kind::lion), device);
}

LUMEN_DEVICE_TEST("lion: save -> load -> continue equals the uninterrupted run bit for bit") {
    optim::Hyper h = optim::api_defaults(optim::Kind::lion);
    h.weight_decay = 0.6, h.beta1 = 0.95, h.beta2 = 0.98;
    check_save_load_continue(optim::Kind::lion, h, device, 5);
}

LUMEN_CUDA_TEST("lion: CUDA matches the CPU on awkward shapes (≤ 15 boundary elements)") {
    optim::Hyper h = optim::api_defaults(optim::Kind::lion);
    h.weight_decay = 0.6;
    check_cuda_matches_cpu(optim::Kind::lion, h, device, 20, 15);
}

LUMEN_CUDA_TEST("lion: the same CUDA steps twice give the same bits") {
    check_cuda_repeats_bitwise(optim::Kind::lion, optim::api_defaults(optim::Kind::lion), device);
}
