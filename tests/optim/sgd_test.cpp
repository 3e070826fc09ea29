// tests/optim/sgd_test.cpp: SGD (specs/optimizers.md §9): the CPU step against an independent
// double reference from the spec's equations (plain, momentum with dampening, Nesterov; 20 steps,
// every step), the G1 and G2 known answers, the first step's copy of g, no state without momentum,
// save -> load -> continue (also across the first step), bad steps; CUDA vs CPU and repeats.
#include "tests/optim/optim_testing.h"

using namespace lumen;
using namespace lumen::optim_test;

namespace {

// §9 in double: g += wd·p; buf = g at t = 1, else μ·buf + (1 - τ)·g; g = g + μ·buf (Nesterov) or
// buf; p -= lr·g.
struct SgdReference {
    double lr, mu, tau, wd;
    bool nesterov;
    std::vector<double> p, buf;
    int t = 0;

    void step(const std::vector<float>& grad) {
        ++t;
        for (size_t i = 0; i < p.size(); ++i) {
            double g = grad[i] + wd * p[i];
            if (mu != 0) {
                buf[i] = t == 1 ? g : mu * buf[i] + (1 - tau) * g;
                g = nesterov ? g + mu * buf[i] : buf[i];
            }
            p[i] -= lr * g;
        }
    }
};

optim::Hyper sgd(double lr, double mu, double tau, double wd, bool nesterov) {
    optim::Hyper h = optim::api_defaults(optim::Kind::sgd);
    h.lr = lr, h.momentum = mu, h.dampening = tau, h.weight_decay = wd, h.nesterov = nesterov;
    return h;
}

}  // namespace

TEST_CASE("sgd: CPU step matches the double reference after every step (plain, dampened, Nesterov)") {
    const optim::Hyper settings[] = {sgd(0.1, 0.0, 0.0, 0.01, false), sgd(0.1, 0.9, 0.1, 0.01, false),
                                     sgd(0.1, 0.9, 0.0, 0.01, true)};
    const Tensor good = flags(1.0, 0.0, Device::cpu());
    for (const optim::Hyper& h : settings) {
        // NOTE: 1024×4097 for the Nesterov setting only (the path with every term), to keep the
        // file's CPU time near the other rules'.
        std::vector<Shape> shapes = {Shape{1024, 32}, Shape{1024, 1024}, Shape{100}};
        if (h.nesterov) shapes.push_back(Shape{1024, 4097});
        for (const Shape& shape : shapes) {
            INFO("momentum " << h.momentum << " dampening " << h.dampening << " nesterov " << h.nesterov << " shape "
                             << shape_str(shape));
            nn::Parameter p = param("p", shape, 44);
            const std::vector<double> p0 = values(p.tensor);
            SgdReference ref{h.lr, h.momentum, h.dampening, h.weight_decay, h.nesterov, p0, std::vector<double>(p0.size())};
            optim::Optimizer opt = one_group(optim::Kind::sgd, h, {p});
            for (int step = 1; step <= 20; ++step) {
                const std::vector<float> g = grad_values(p, step, 0);
                set_grad(p, g);
                opt.step({1.0, good});
                ref.step(g);
                std::string first;
                CHECK_MESSAGE(mismatches(floats(p.tensor), ref.p, 1e-6, 1e-5, &first) == 0, "step " << step << " p " << first);
                if (h.momentum != 0)
                    CHECK_MESSAGE(mismatches(floats(state_of(opt, "p.momentum_buffer")), ref.buf, 1e-6, 1e-5, &first) == 0,
                                  "step " << step << " buf " << first);
            }
        }
    }
}

TEST_CASE("sgd: known answers G1 (momentum) and G2 (Nesterov): lr 0.1, momentum 0.9, wd 0.1") {
    struct Case {
        bool nesterov;
        double p[3], buf[3];
    };
    const Case cases[] = {{false, {0.98, 0.9722, 0.925458}, {0.2, 0.078, 0.46742}},
                          {true, {0.962, 0.965522, 0.884004882}, {0.2, 0.0762, 0.4651322}}};
    for (const Case& c : cases) {
        INFO("nesterov " << c.nesterov);
        nn::Parameter p = param_from("p", {1.0f}, {1});
        optim::Optimizer opt = one_group(optim::Kind::sgd, sgd(0.1, 0.9, 0.0, 0.1, c.nesterov), {p});
        const float g[] = {0.1f, -0.2f, 0.3f};
        for (int s = 0; s < 3; ++s) {
            set_grad(p, {g[s]});
            opt.step();
            CHECK(std::fabs(p.tensor.item() - c.p[s]) <= 2e-6);
            CHECK(std::fabs(state_of(opt, "p.momentum_buffer").item() - c.buf[s]) <= 2e-6);
        }
    }
}

TEST_CASE("sgd: the first step copies g into the buffer (no dampening), later steps dampen") {
    nn::Parameter p = param_from("p", {0.0f}, {1});
    optim::Optimizer opt = one_group(optim::Kind::sgd, sgd(1.0, 0.5, 0.5, 0.0, false), {p});
    set_grad(p, {2.0f});
    opt.step();
    CHECK(state_of(opt, "p.momentum_buffer").item() == 2.0);  // a copy, not (1 - τ)·g
    set_grad(p, {4.0f});
    opt.step();
    CHECK(state_of(opt, "p.momentum_buffer").item() == 0.5 * 2.0 + 0.5 * 4.0);
    CHECK(p.tensor.item() == -2.0 - 3.0);
}

TEST_CASE("sgd: without momentum there is no state") {
    nn::Parameter p = param("p", {10}, 1);
    optim::Optimizer opt = one_group(optim::Kind::sgd, sgd(0.1, 0.0, 0.0, 0.0, false), {p});
    CHECK(opt.state_dict().tensors.empty());
    CHECK(opt.state_bytes() == 0);
    optim::Optimizer with = one_group(optim::Kind::sgd, sgd(0.1, 0.9, 0.0, 0.0, false), {param("q", {10}, 1)});
    CHECK(with.state_bytes() == 40);
}

LUMEN_DEVICE_TEST("sgd: a NaN or Inf gradient or loss skips the step and changes nothing") {
    check_bad_steps_write_nothing(optim::Kind::sgd, sgd(0.1, 0.9, 0.0, 0.01, true), device);
    check_bad_steps_write_nothing(optim::Kind::sgd, sgd(0.1, 0.0, 0.0, 0.01, false), device);
}

LUMEN_DEVICE_TEST("sgd: save -> load -> continue equals the uninterrupted run bit for bit") {
    // After step 1 the next step must not copy g again; before any step the first one must: the
    // restored t decides (§9).
    for (int steps_before : {0, 1, 5}) {
        INFO("saved after " << steps_before << " steps");
        check_save_load_continue(optim::Kind::sgd, sgd(0.1, 0.9, 0.1, 0.01, false), device, steps_before);
        check_save_load_continue(optim::Kind::sgd, sgd(0.1, 0.9, 0.0, 0.01, true), device, steps_before);
    }
    check_save_load_continue(optim::Kind::sgd, sgd(0.1, 0.0, 0.0, 0.01, false), device, 3);
}

LUMEN_CUDA_TEST("sgd: CUDA matches the CPU on awkward shapes") {
    check_cuda_matches_cpu(optim::Kind::sgd, sgd(0.1, 0.9, 0.1, 0.01, false), device, 20);
    check_cuda_matches_cpu(optim::Kind::sgd, sgd(0.1, 0.9, 0.0, 0.01, true), device, 20);
    check_cuda_matches_cpu(optim::Kind::sgd, sgd(0.1, 0.0, 0.0, 0.01, false), device, 20);
}

LUMEN_CUDA_TEST("sgd: the same CUDA steps twice give the same bits") {
    check_cuda_repeats_bitwise(optim::Kind::sgd, sgd(0.1, 0.9, 0.0, 0.01, true), device);
}
