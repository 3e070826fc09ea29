// tests/optim/adafactor_test.cpp: Adafactor (specs/optimizers.md §6, §13): the known answers F1–F4
// and the t = 1 / t = 2 intermediates of §13.2, the CPU step against an independent
// double-precision reference written from §6 (20 steps, compared after every step on params and
// every state, the §13.1 shapes plus a batched 3-D tensor, three settings), state names, shapes
// and bytes, save -> load -> continue, bad steps; on a GPU, CUDA against the CPU on awkward shapes
// (tiles cut by rows and columns, batches, one element, none) and CUDA repeats.
#include "tests/optim/optim_testing.h"

#include "optim/adafactor.h"

#include <chrono>
#include <cmath>

using namespace lumen;
using namespace lumen::optim_test;

namespace {

// §6 in double, written from the spec's equations (U in the form g/sqrt(R_i·C_j/mean R)).
struct AdafactorReference {
    optim::Hyper h;
    Shape shape;
    std::vector<double> p, row, col, sq, m;
    int64_t t = 0;

    AdafactorReference(const optim::Hyper& hyper, const Shape& s, const std::vector<double>& p0)
        : h(hyper), shape(s), p(p0), m(p0.size(), 0.0) {
        if (s.size() >= 2) {
            const int64_t cols = s.back(), rows = s[s.size() - 2], batch = int64_t(p0.size()) / (rows * cols);
            row.assign(size_t(batch * rows), 0.0);
            col.assign(size_t(batch * cols), 0.0);
        } else {
            sq.assign(p0.size(), 0.0);
        }
    }

    void step(const std::vector<float>& grad, double lr_scale = 1.0, double gamma = 1.0) {
        ++t;
        const size_t N = p.size();
        std::vector<double> g(N);
        for (size_t i = 0; i < N; ++i) g[i] = double(float(gamma) * grad[i]);
        double sum_p2 = 0;
        for (double x : p) sum_p2 += x * x;
        const double rms_p = std::sqrt(sum_p2 / double(N));
        const double rho = h.relative_step ? std::min(h.warmup_init ? 1e-6 * double(t) : 1e-2, 1 / std::sqrt(double(t)))
                                           : h.lr * lr_scale;
        const double alpha = (h.scale_parameter ? std::max(h.eps2, rms_p) : 1.0) * rho;
        const double b = 1 - std::pow(double(t), h.decay_rate);
        std::vector<double> u(N);
        if (shape.size() >= 2) {
            const size_t cols = size_t(shape.back()), rows = size_t(shape[shape.size() - 2]), batch = N / (rows * cols);
            for (size_t k = 0; k < batch; ++k) {
                const double* gk = g.data() + k * rows * cols;
                for (size_t i = 0; i < rows; ++i) {
                    double mean = 0;
                    for (size_t j = 0; j < cols; ++j) mean += gk[i * cols + j] * gk[i * cols + j] + h.eps1;
                    row[k * rows + i] = b * row[k * rows + i] + (1 - b) * (mean / double(cols));
                }
                for (size_t j = 0; j < cols; ++j) {
                    double mean = 0;
                    for (size_t i = 0; i < rows; ++i) mean += gk[i * cols + j] * gk[i * cols + j] + h.eps1;
                    col[k * cols + j] = b * col[k * cols + j] + (1 - b) * (mean / double(rows));
                }
                double mean_r = 0;
                for (size_t i = 0; i < rows; ++i) mean_r += row[k * rows + i];
                mean_r /= double(rows);
                for (size_t i = 0; i < rows; ++i)
                    for (size_t j = 0; j < cols; ++j)
                        u[k * rows * cols + i * cols + j] =
                            gk[i * cols + j] / std::sqrt(row[k * rows + i] * col[k * cols + j] / mean_r);
            }
        } else {
            for (size_t i = 0; i < N; ++i) {
                sq[i] = b * sq[i] + (1 - b) * (g[i] * g[i] + h.eps1);
                u[i] = g[i] / std::sqrt(sq[i]);
            }
        }
        double sum_u2 = 0;
        for (double x : u) sum_u2 += x * x;
        const double divisor = std::max(1.0, std::sqrt(sum_u2 / double(N)) / h.clip_threshold);
        for (size_t i = 0; i < N; ++i) {
            double update = alpha * u[i] / divisor;
            if (h.use_beta1) {
                m[i] = h.beta1 * m[i] + (1 - h.beta1) * update;
                update = m[i];
            }
            if (h.weight_decay > 0) p[i] -= h.weight_decay * alpha * p[i];
            p[i] -= update;
        }
    }
};

optim::Hyper external_lr(double lr) {
    optim::Hyper h = optim::api_defaults(optim::Kind::adafactor);
    h.lr = lr, h.relative_step = false, h.scale_parameter = false;
    return h;
}

// The three settings of the parity test.
struct Setting {
    const char* name;
    optim::Hyper hyper;
    bool scheduled;  // steps with lr_scale = 1 − 0.01·step
};
std::vector<Setting> settings() {
    optim::Hyper a = external_lr(0.01);
    a.use_beta1 = true, a.beta1 = 0.9, a.weight_decay = 0.1;
    optim::Hyper c = optim::api_defaults(optim::Kind::adafactor);
    c.warmup_init = true, c.clip_threshold = 0.5, c.weight_decay = 0.01;
    return {{"external lr, beta1 0.9, wd 0.1, scheduled", a, true},
            {"HF defaults (relative step, parameter scale)", optim::api_defaults(optim::Kind::adafactor), false},
            {"relative step with warmup_init, clip 0.5, wd 0.01", c, false}};
}

const std::vector<float> p0_values = {1, 2, 3, 4};
const std::vector<float> g_values = {0.1f, -0.2f, 0.3f, 0.4f};

// Two steps of the 2×2 case under `h`; returns P after each.
std::vector<std::vector<double>> two_steps(const optim::Hyper& h, Device device, int steps = 2) {
    nn::Parameter p = param_from("p", p0_values, {2, 2}, device);
    optim::Optimizer opt = one_group(optim::Kind::adafactor, h, {p});
    std::vector<std::vector<double>> out;
    for (int s = 0; s < steps; ++s) {
        set_grad(p, g_values);
        opt.step();
        out.push_back(values(p.tensor));
    }
    return out;
}

void check_close(const std::vector<double>& actual, const std::vector<double>& expected, double atol, const char* what) {
    std::string first;
    CHECK_MESSAGE(mismatches(actual, expected, atol, 0, &first) == 0, what << ": " << first);
}

}  // namespace

LUMEN_DEVICE_TEST("adafactor: known answers F1-F4 (§13.2)") {
    {
        INFO("F1");
        const auto p = two_steps(external_lr(0.01), device);
        check_close(p[0], {0.992254033, 2.010954451, 2.989607695, 3.990202041}, 2e-6, "F1 P1");
        check_close(p[1], {0.984508067, 2.021908902, 2.979215390, 3.980404082}, 2e-6, "F1 P2");
    }
    {
        const auto p = two_steps(optim::api_defaults(optim::Kind::adafactor), device);
        check_close(p[0], {0.978786797, 2.03, 2.971539501, 3.973167184}, 2e-6, "F2 P1");
        check_close(p[1], {0.957681692, 2.059847125, 2.943224033, 3.946471105}, 2e-6, "F2 P2");
        // α₁ = 0.01·RMS(P₀), α₂ = 0.01·RMS(P₁) (scale_parameter).
        double s = 0;
        for (double x : p[0]) s += x * x;
        CHECK(std::fabs(0.01 * std::sqrt(s / 4) - 0.027246572) <= 1e-8);
    }
    {
        optim::Hyper h = external_lr(0.01);
        h.use_beta1 = true, h.beta1 = 0.9, h.weight_decay = 0.1;
        const auto p = two_steps(h, device);
        check_close(p[0], {0.998225403, 1.999095445, 2.995960770, 3.995020204}, 2e-6, "F3 P1");
        check_close(p[1], {0.995755444, 1.999177695, 2.990990271, 3.989163572}, 2e-6, "F3 P2");
    }
    {
        optim::Hyper h = external_lr(0.01);
        h.clip_threshold = 0.5;
        const auto p = two_steps(h, device, 1);
        check_close(p[0], {0.996047153, 2.005590170, 2.994696699, 3.995}, 2e-6, "F4 P1");
    }
}

LUMEN_DEVICE_TEST("adafactor: t = 1 and t = 2 intermediates (R, C, U, RMS(U), b)") {
    // lr 1 makes P₀ − P₁ = U itself (no clipping: RMS(U) < 1).
    nn::Parameter p = param_from("p", p0_values, {2, 2}, device);
    optim::Optimizer opt = one_group(optim::Kind::adafactor, external_lr(1.0), {p});
    set_grad(p, g_values);
    opt.step();
    check_close(values(state_of(opt, "p.exp_avg_sq_row")), {0.025, 0.125}, 1e-8, "R at t = 1");
    check_close(values(state_of(opt, "p.exp_avg_sq_col")), {0.05, 0.1}, 1e-8, "C at t = 1");
    const std::vector<double> p1 = values(p.tensor);
    std::vector<double> u(4);
    double sum_u2 = 0;
    for (size_t i = 0; i < 4; ++i) {
        u[i] = p0_values[i] - p1[i];
        sum_u2 += u[i] * u[i];
    }
    CHECK(std::fabs(u[0] - 0.774596669) <= 1e-6);
    CHECK(std::fabs(std::sqrt(sum_u2 / 4) - 0.979795897) <= 1e-6);
    // t = 2 with another gradient: R ← b·R + (1 − b)·rowmean(G² + eps1) with b = 0.425650823.
    const std::vector<float> g2 = {0.2f, 0.1f, -0.1f, 0.3f};
    set_grad(p, g2);
    opt.step();
    const double b = 0.425650823;
    const double row0 = (0.04 + 0.01) / 2, row1 = (0.01 + 0.09) / 2, col0 = (0.04 + 0.01) / 2, col1 = (0.01 + 0.09) / 2;
    check_close(values(state_of(opt, "p.exp_avg_sq_row")), {b * 0.025 + (1 - b) * row0, b * 0.125 + (1 - b) * row1},
                1e-8, "R at t = 2");
    check_close(values(state_of(opt, "p.exp_avg_sq_col")), {b * 0.05 + (1 - b) * col0, b * 0.1 + (1 - b) * col1}, 1e-8,
                "C at t = 2");
    CHECK(opt.step_count(0) == 2);
}

TEST_CASE("adafactor: CPU step matches the double reference after every step (§13.1 shapes, 20 steps)") {
    for (const Setting& setting : settings()) {
        // NOTE: 1024×4097 takes over 5 s here per setting; the CUDA-vs-CPU case covers that shape.
        for (const Shape& shape : {Shape{1024, 32}, Shape{1024, 1024}, Shape{100}, Shape{3, 40, 24}}) {
            INFO(std::string(setting.name) << ", shape " << shape_str(shape));
            const auto start = std::chrono::steady_clock::now();
            nn::Parameter p = param("p", shape, 42);
            AdafactorReference ref(setting.hyper, shape, values(p.tensor));
            optim::Optimizer opt = one_group(optim::Kind::adafactor, setting.hyper, {p});
            for (int step = 1; step <= 20; ++step) {
                INFO("step " << step);
                const std::vector<float> g = grad_values(p, step, 0);
                set_grad(p, g);
                const double lr_scale = setting.scheduled ? 1 - 0.01 * step : 1.0;
                opt.step(lr_scale);
                ref.step(g, lr_scale);
                std::string first;
                CHECK_MESSAGE(mismatches(values(p.tensor), ref.p, 1e-6, 1e-5, &first) == 0, "p " << first);
                if (shape.size() >= 2) {
                    CHECK_MESSAGE(mismatches(values(state_of(opt, "p.exp_avg_sq_row")), ref.row, 1e-6, 1e-5, &first) == 0,
                                  "R " << first);
                    CHECK_MESSAGE(mismatches(values(state_of(opt, "p.exp_avg_sq_col")), ref.col, 1e-6, 1e-5, &first) == 0,
                                  "C " << first);
                } else {
                    CHECK_MESSAGE(mismatches(values(state_of(opt, "p.exp_avg_sq")), ref.sq, 1e-6, 1e-5, &first) == 0,
                                  "V " << first);
                }
                if (setting.hyper.use_beta1)
                    CHECK_MESSAGE(mismatches(values(state_of(opt, "p.exp_avg")), ref.m, 1e-6, 1e-5, &first) == 0,
                                  "M " << first);
            }
            MESSAGE("adafactor parity " << std::string(setting.name) << " " << shape_str(shape) << ": "
                                        << std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count()
                                        << " s");
        }
    }
}

TEST_CASE("adafactor: the clip factor multiplies g on load") {
    const optim::Hyper h = settings()[0].hyper;
    nn::Parameter a = param("a", {30, 20}, 9), b = param("a", {30, 20}, 9);
    optim::Optimizer oa = one_group(optim::Kind::adafactor, h, {a}), ob = one_group(optim::Kind::adafactor, h, {b});
    for (int step = 1; step <= 3; ++step) {
        std::vector<float> g = grad_values(a, step, 0), half = g;
        for (float& x : half) x *= 0.5f;  // exact
        set_grad(a, g);
        set_grad(b, half);
        oa.step({1.0, flags(0.5, 0.0, Device::cpu())});
        ob.step();
    }
    CHECK(test::same_bits(a.tensor, b.tensor));
    CHECK(test::same_bits(state_of(oa, "a.exp_avg_sq_row"), state_of(ob, "a.exp_avg_sq_row")));
    CHECK(test::same_bits(state_of(oa, "a.exp_avg"), state_of(ob, "a.exp_avg")));
}

TEST_CASE("adafactor: state names, shapes (leading dims batch) and bytes") {
    for (bool beta1 : {false, true}) {
        INFO("beta1 " << beta1);
        optim::Hyper h = external_lr(0.01);
        h.use_beta1 = beta1;
        optim::Optimizer opt = one_group(optim::Kind::adafactor, h,
                                         {param("w", {3, 4, 5}, 1), param("m", {6, 7}, 2), param("v", {7}, 3)});
        std::map<std::string, Tensor> st;
        for (const auto& [name, t] : opt.state_dict().tensors) st[name] = t;
        CHECK(st.at("w.exp_avg_sq_row").shape() == Shape{3, 4});
        CHECK(st.at("w.exp_avg_sq_col").shape() == Shape{3, 5});
        CHECK(st.at("m.exp_avg_sq_row").shape() == Shape{6});
        CHECK(st.at("m.exp_avg_sq_col").shape() == Shape{7});
        CHECK(st.at("v.exp_avg_sq").shape() == Shape{7});
        CHECK(st.count("w.exp_avg_sq") == 0);
        CHECK(st.count("w.exp_avg") == size_t(beta1));
        CHECK(st.size() == (beta1 ? 8u : 5u));
        const int64_t factors = 4 * (12 + 15 + 6 + 7 + 7);
        CHECK(opt.state_bytes() == factors + (beta1 ? 4 * (60 + 42 + 7) : 0));
    }
}

LUMEN_DEVICE_TEST("adafactor: a NaN or Inf gradient or loss skips the step and changes nothing") {
    for (const Setting& s : settings()) {
        INFO(std::string(s.name));
        check_bad_steps_write_nothing(optim::Kind::adafactor, s.hyper, device);
    }
}

LUMEN_DEVICE_TEST("adafactor: save -> load -> continue equals the uninterrupted run bit for bit") {
    for (const Setting& s : settings()) {
        INFO(std::string(s.name));
        check_save_load_continue(optim::Kind::adafactor, s.hyper, device, 5);
        check_save_load_continue(optim::Kind::adafactor, s.hyper, device, 0);
    }
}

LUMEN_CUDA_TEST("adafactor: CUDA matches the CPU (the optimizer harness's shapes)") {
    for (const Setting& s : settings()) {
        INFO(std::string(s.name));
        check_cuda_matches_cpu(optim::Kind::adafactor, s.hyper, device, 20);
    }
}

LUMEN_CUDA_TEST("adafactor: CUDA matches the CPU on tile-cutting, batched and degenerate shapes") {
    const std::vector<Shape> shapes = {{300, 700}, {3, 130, 300}, {2, 1, 5}, {1, 1}, {5000, 3}, {3, 5000},
                                       {1024, 4097}, {100003}, {1}, {0}, {0, 5}, {2, 3, 1, 1}};
    for (const Setting& s : settings()) {
        INFO(std::string(s.name));
        auto make = [&](Device d) {
            std::vector<nn::Parameter> ps;
            for (size_t i = 0; i < shapes.size(); ++i) ps.push_back(param("p" + std::to_string(i), shapes[i], 10 + i, d));
            return one_group(optim::Kind::adafactor, s.hyper, ps);
        };
        optim::Optimizer cpu = make(Device::cpu()), gpu = make(device);
        const std::vector<nn::Parameter> pc = cpu.parameters(), pg = gpu.parameters();
        for (int step = 1; step <= 20; ++step) {
            INFO("step " << step);
            for (size_t i = 0; i < pc.size(); ++i) {
                const std::vector<float> g = grad_values(pc[i], step, i);
                set_grad(pc[i], g);
                set_grad(pg[i], g);
            }
            const double scale = s.scheduled ? 1 - 0.01 * step : 1.0;
            cpu.step({scale, optim::clip_flags(pc, 0.05)});
            gpu.step({scale, optim::clip_flags(pg, 0.05)});
            for (size_t i = 0; i < pc.size(); ++i) {
                std::string first;
                CHECK_MESSAGE(mismatches(values(pg[i].tensor), values(pc[i].tensor), 1e-6, 1e-5, &first) == 0,
                              "param " << pc[i].name << ": " << first);
            }
            const auto sc = cpu.state_dict().tensors, sg = gpu.state_dict().tensors;
            REQUIRE(sc.size() == sg.size());
            for (size_t i = 0; i < sc.size(); ++i) {
                std::string first;
                CHECK_MESSAGE(mismatches(values(sg[i].second), values(sc[i].second), 1e-6, 1e-5, &first) == 0,
                              "state " << sc[i].first << ": " << first);
            }
        }
    }
}

LUMEN_CUDA_TEST("adafactor: the same CUDA steps twice give the same bits") {
    for (const Setting& s : settings()) {
        INFO(std::string(s.name));
        check_cuda_repeats_bitwise(optim::Kind::adafactor, s.hyper, device);
    }
}
