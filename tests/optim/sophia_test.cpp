// tests/optim/sophia_test.cpp: SophiaG (specs/optimizers.md §7, §13): the S1 known answers with
// the Hessian hook; the CPU step and hook against an independent double-precision reference
// written from §7 (§13.1 shapes, 20 steps, hooks every 5, every step compared); γ in the hook;
// the win-rate statistic against a host count; bad steps write nothing; a non-finite estimator
// gradient leaves h unchanged and counts hess_bad; save -> load -> continue bit for bit with hooks.
// On a GPU: step and hook bit for bit against the CPU on awkward shapes (statistics included),
// the generic CUDA checks, and CUDA repeats.
#include "tests/optim/optim_testing.h"

#include "optim/sophia.h"

#include <chrono>

using namespace lumen;
using namespace lumen::optim_test;

namespace {

// §7.1 and §7.2 in double.
struct SophiaReference {
    double lr, beta1, beta2, rho, wd, bs;
    std::vector<double> p, m, h;

    void step(const std::vector<float>& g, double lr_scale = 1.0) {
        const double lr_t = lr * lr_scale;
        for (size_t i = 0; i < p.size(); ++i) {
            p[i] *= 1 - lr_t * wd;
            m[i] = beta1 * m[i] + (1 - beta1) * g[i];
            const double r = std::min(std::fabs(m[i]) / (rho * bs * h[i] + 1e-15), 1.0);
            const double sign = m[i] > 0 ? 1.0 : (m[i] < 0 ? -1.0 : 0.0);
            p[i] -= lr_t * sign * r;
        }
    }
    void hook(const std::vector<float>& g_hat) {
        for (size_t i = 0; i < h.size(); ++i) h[i] = beta2 * h[i] + (1 - beta2) * double(g_hat[i]) * g_hat[i];
    }
};

SophiaReference reference_for(const optim::Hyper& h, const std::vector<double>& p0) {
    return {h.lr, h.beta1, h.beta2, h.rho, h.weight_decay, h.tokens_per_step, p0, std::vector<double>(p0.size()),
            std::vector<double>(p0.size())};
}

optim::SophiaRule& sophia(optim::Optimizer& opt, size_t group = 0) {
    auto* rule = dynamic_cast<optim::SophiaRule*>(&opt.rule(group));
    REQUIRE(rule != nullptr);
    return *rule;
}

// The estimator gradient ĝ of hook call k for parameter i: 0.01·N(0, 1), its own stream.
std::vector<float> hessian_grad(const nn::Parameter& p, int k, size_t i) {
    return normal(p.tensor.numel(), 5000011ull * uint64_t(k) + 104729ull * i + 3, 0.01);
}

// Wins counted on the host from the f32 states with the kernel's f32 comparison.
int64_t host_wins(const Tensor& m, const Tensor& h, const optim::Hyper& hyper) {
    const float k = float(hyper.rho * hyper.tokens_per_step);
    const std::vector<float> ms = m.to_vector<float>(), hs = h.to_vector<float>();
    int64_t wins = 0;
    for (size_t i = 0; i < ms.size(); ++i) wins += std::fabs(ms[i]) < k * hs[i] ? 1 : 0;
    return wins;
}

optim::Hyper s1_hyper() {
    optim::Hyper h = optim::api_defaults(optim::Kind::sophia);
    h.lr = 0.01, h.beta1 = 0.965, h.beta2 = 0.99, h.rho = 0.04, h.weight_decay = 0.1, h.tokens_per_step = 1000;
    return h;
}

}  // namespace

TEST_CASE("sophia: known answers S1 with the Hessian hook after step 1") {
    nn::Parameter p = param_from("p", {1.0f}, {1});
    optim::Optimizer opt = one_group(optim::Kind::sophia, s1_hyper(), {p});
    optim::SophiaRule& rule = sophia(opt);
    const float g[] = {0.1f, -0.2f, 0.3f};
    const double p_expected[] = {0.989, 0.98901725, 0.986082597};
    const double r_expected[] = {1.0, 0.100625, 0.194563542};
    const double m_expected[] = {0.0035, -0.0036225, 0.0070042875};
    const double win_expected[] = {0.0, 1.0, 1.0};
    double p_before = 1.0;
    for (int s = 0; s < 3; ++s) {
        INFO("step " << s + 1);
        set_grad(p, {g[s]});
        opt.step();
        const double p_now = p.tensor.item();
        CHECK(std::fabs(p_now - p_expected[s]) <= 2e-6);
        // r from the move: p₀·(1 − lr·wd) − p₁ = lr·sign(m)·r.
        CHECK(std::fabs(std::fabs(p_before * (1 - 0.01 * 0.1) - p_now) / 0.01 - r_expected[s]) <= 1e-4);
        CHECK(std::fabs(state_of(opt, "p.exp_avg").item() - m_expected[s]) <= 2e-6);
        CHECK(rule.win_rate() == win_expected[s]);
        p_before = p_now;
        if (s == 0) {  // the hook: ĝ = 0.3 → h = (1 − 0.99)·0.09 = 9e-4
            set_grad(p, {0.3f});
            rule.update_hessian(flags(1.0, 0.0, Device::cpu()));
            CHECK(std::fabs(state_of(opt, "p.hessian").item() - 9e-4) <= 1e-9);
        }
    }
    CHECK(rule.hess_bad() == 0);
    CHECK(opt.step_count(0) == 3);
}

TEST_CASE("sophia: the hook multiplies the estimator gradient by flags[0] (the clip factor)") {
    nn::Parameter p = param_from("p", {1.0f, 2.0f}, {2});
    optim::Optimizer opt = one_group(optim::Kind::sophia, s1_hyper(), {p});
    set_grad(p, {0.3f, -0.4f});
    sophia(opt).update_hessian(flags(0.5, 0.0, Device::cpu()));
    const std::vector<double> h = values(state_of(opt, "p.hessian"));
    CHECK(std::fabs(h[0] - 0.01 * 0.15 * 0.15) <= 1e-10);
    CHECK(std::fabs(h[1] - 0.01 * 0.2 * 0.2) <= 1e-10);
    // A second call is an EMA: h ← 0.99·h + 0.01·ĝ².
    sophia(opt).update_hessian(flags(1.0, 0.0, Device::cpu()));
    const std::vector<double> h2 = values(state_of(opt, "p.hessian"));
    CHECK(std::fabs(h2[0] - (0.99 * h[0] + 0.01 * 0.09)) <= 1e-10);
    CHECK(std::fabs(h2[1] - (0.99 * h[1] + 0.01 * 0.16)) <= 1e-10);
    // The parameters are untouched by the hook.
    CHECK(values(p.tensor) == std::vector<double>{1.0, 2.0});
}

// NOTE: r = |m|/(ρ·bs·h) amplifies the f32 rounding of m where β1·m and (1 − β1)·g nearly cancel
// (|m| ~ 1e-9 from terms ~ 3e-4) and h is tiny: r then differs from the double reference by ~5%, a
// few elements per million. As §13.1 allows Lion's sign boundary, p may differ on ≤ 15 elements
// per tensor; m and h must match everywhere.
TEST_CASE("sophia: CPU step and hook match the double reference after every step (20 steps, hooks every 5)") {
    const optim::Hyper h = optim::api_defaults(optim::Kind::sophia);  // lr 1e-4, ρ 0.04, bs 5120, wd 0.1
    for (const Shape& shape : {Shape{1024, 32}, Shape{1024, 1024}, Shape{1024, 4097}, Shape{100}}) {
        INFO("shape " << shape_str(shape));
        const auto start = std::chrono::steady_clock::now();
        nn::Parameter p = param("p", shape, 42);
        SophiaReference ref = reference_for(h, values(p.tensor));
        optim::Optimizer opt = one_group(optim::Kind::sophia, h, {p});
        optim::SophiaRule& rule = sophia(opt);
        int hooks = 0;
        for (int step = 1; step <= 20; ++step) {
            const std::vector<float> g = grad_values(p, step, 0);
            set_grad(p, g);
            const double lr_scale = 1.0 - 0.02 * step;
            opt.step(lr_scale);
            ref.step(g, lr_scale);
            std::string first;
            CHECK_MESSAGE(mismatches(values(p.tensor), ref.p, 1e-6, 1e-5, &first) <= 15, "step " << step << " p " << first);
            const auto st = rule.state();  // handles, not copies: {p.exp_avg, p.hessian}
            REQUIRE(st[0].first == "p.exp_avg");
            const Tensor m = st[0].second, hess = st[1].second;
            CHECK_MESSAGE(mismatches(values(m), ref.m, 1e-6, 1e-5, &first) == 0, "step " << step << " m " << first);
            const int64_t wins = host_wins(m, hess, h);
            CHECK(rule.win_rate() == double(wins) / double(p.tensor.numel()));
            if (step % 5 == 4) {  // the hook after iterations 4, 9, 14, 19 (it % k == k − 1)
                const std::vector<float> g_hat = hessian_grad(p, ++hooks, 0);
                set_grad(p, g_hat);
                rule.update_hessian(flags(1.0, 0.0, Device::cpu()));
                ref.hook(g_hat);
                CHECK_MESSAGE(mismatches(values(hess), ref.h, 1e-12, 1e-5, &first) == 0,
                              "hook " << hooks << " h " << first);
            }
        }
        // After hooks the win rate is neither 0 nor 1 on these scales: both branches ran.
        CHECK(rule.win_rate() > 0.0);
        CHECK(rule.win_rate() < 1.0);
        const auto [l1, l2] = rule.hessian_norms();
        double ref_l1 = 0, ref_l2 = 0;
        for (double x : ref.h) ref_l1 += std::fabs(x), ref_l2 += x * x;
        CHECK(std::fabs(l1 - ref_l1) <= 1e-5 * ref_l1);
        CHECK(std::fabs(l2 - std::sqrt(ref_l2)) <= 1e-5 * std::sqrt(ref_l2));
        MESSAGE("sophia parity " << shape_str(shape) << ": "
                                 << std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count()
                                 << " s");
    }
}

LUMEN_DEVICE_TEST("sophia: a NaN or Inf gradient or loss skips the step and changes nothing") {
    check_bad_steps_write_nothing(optim::Kind::sophia, s1_hyper(), device);
}

LUMEN_DEVICE_TEST("sophia: a bad step keeps the last good step's win rate") {
    optim::Hyper h = s1_hyper();
    optim::Optimizer opt = one_group(optim::Kind::sophia, h, generic_params(device));
    const std::vector<nn::Parameter> ps = opt.parameters();
    optim::SophiaRule& rule = sophia(opt);
    for (size_t i = 0; i < ps.size(); ++i) set_grad(ps[i], hessian_grad(ps[i], 1, i));
    rule.update_hessian(flags(1.0, 0.0, device));
    for (size_t i = 0; i < ps.size(); ++i) set_grad(ps[i], grad_values(ps[i], 1, i));
    opt.step();
    const double rate = rule.win_rate();
    CHECK(rate > 0.0);
    opt.step({1.0, flags(1.0, 1.0, device)});
    CHECK(rule.win_rate() == rate);
}

LUMEN_DEVICE_TEST("sophia: a NaN or Inf estimator gradient leaves h unchanged and counts hess_bad") {
    optim::Hyper h = s1_hyper();
    optim::Optimizer opt = one_group(optim::Kind::sophia, h, generic_params(device));
    const std::vector<nn::Parameter> ps = opt.parameters();
    optim::SophiaRule& rule = sophia(opt);
    for (int step = 1; step <= 2; ++step) {
        for (size_t i = 0; i < ps.size(); ++i) set_grad(ps[i], grad_values(ps[i], step, i));
        opt.step();
        for (size_t i = 0; i < ps.size(); ++i) set_grad(ps[i], hessian_grad(ps[i], step, i));
        rule.update_hessian(optim::clip_flags(ps, 1.0));
    }
    CHECK(rule.hess_bad() == 0);
    int64_t bad = 0;
    for (float poison : {NAN, INFINITY, -INFINITY}) {
        INFO("poison " << poison);
        const Snapshot before = snapshot(opt);
        for (size_t i = 0; i < ps.size(); ++i) {
            std::vector<float> g = hessian_grad(ps[i], 10, i);
            if (i == 2) g[500] = poison;
            set_grad(ps[i], g);
        }
        // The trainer's flags for the estimator gradient: clip_flags over ĝ raises bad.
        rule.update_hessian(optim::clip_flags(ps, 1.0));
        check_same(snapshot(opt), before);
        CHECK(rule.hess_bad() == ++bad);
    }
    // A finite estimator gradient updates h again.
    const Tensor h_before = state_of(opt, "v.hessian").clone();
    for (size_t i = 0; i < ps.size(); ++i) set_grad(ps[i], hessian_grad(ps[i], 11, i));
    rule.update_hessian(optim::clip_flags(ps, 1.0));
    CHECK_FALSE(test::same_bits(state_of(opt, "v.hessian"), h_before));
    CHECK(rule.hess_bad() == bad);
}

LUMEN_DEVICE_TEST("sophia: save -> load -> continue equals the uninterrupted run bit for bit (hooks included)") {
    optim::Hyper h = optim::api_defaults(optim::Kind::sophia);
    h.lr = 6e-4;
    check_save_load_continue(optim::Kind::sophia, h, device, 5);
    check_save_load_continue(optim::Kind::sophia, h, device, 0);
    // With hooks before and after the save.
    auto hook = [](optim::Optimizer& opt, const std::vector<nn::Parameter>& ps, int k) {
        for (size_t i = 0; i < ps.size(); ++i) set_grad(ps[i], hessian_grad(ps[i], k, i));
        sophia(opt).update_hessian(optim::clip_flags(ps, 1.0));
    };
    auto feed = [](const std::vector<nn::Parameter>& ps, int step) {
        for (size_t i = 0; i < ps.size(); ++i) set_grad(ps[i], grad_values(ps[i], step, i));
    };
    optim::Optimizer a = one_group(optim::Kind::sophia, h, generic_params(device));
    const std::vector<nn::Parameter> pa = a.parameters();
    for (int step = 1; step <= 3; ++step) {
        feed(pa, step);
        a.step();
        if (step == 2) hook(a, pa, 1);
    }
    const optim::StateDict saved = a.state_dict();
    std::vector<nn::Parameter> pb;
    for (const nn::Parameter& p : pa) {
        Tensor t = p.tensor.detach().clone();
        t.set_requires_grad(true);
        pb.push_back({p.name, t, p.role, p.row_parts});
    }
    auto cont = [&](optim::Optimizer& opt, const std::vector<nn::Parameter>& ps) {
        for (int step = 4; step <= 7; ++step) {
            feed(ps, step);
            opt.step(0.8);
            if (step % 2 == 0) hook(opt, ps, step);
        }
    };
    cont(a, pa);
    optim::Optimizer b = one_group(optim::Kind::sophia, h, pb);
    b.load_state_dict(saved);
    cont(b, pb);
    check_same(snapshot(b), snapshot(a));
    CHECK(sophia(b).win_rate() == sophia(a).win_rate());
}

TEST_CASE("sophia: state names and bytes") {
    std::vector<optim::Group> groups(1);
    groups[0].kind = optim::Kind::sophia;
    groups[0].hyper = optim::api_defaults(optim::Kind::sophia);
    groups[0].params = {param("w", {16, 64}, 1), param("b", {7}, 2)};
    optim::SophiaRule rule(groups[0]);
    const auto st = rule.state();
    REQUIRE(st.size() == 4);
    CHECK(st[0].first == "w.exp_avg");
    CHECK(st[1].first == "w.hessian");
    CHECK(st[2].first == "b.exp_avg");
    CHECK(st[3].first == "b.hessian");
    CHECK(rule.state_bytes() == 8 * (16 * 64 + 7));
    CHECK(rule.num_elements() == 16 * 64 + 7);
    CHECK(rule.hess_interval() == 10);
    CHECK(rule.win_rate() == 0.0);
}

// ---------------------------------------------------------------- CUDA against the CPU

LUMEN_CUDA_TEST("sophia: CUDA step and hook match the CPU bit for bit on awkward shapes (statistics too)") {
    optim::Hyper h = optim::api_defaults(optim::Kind::sophia);
    h.lr = 6e-4;
    auto make = [&](Device d) {
        std::vector<nn::Parameter> ps = {param("w", {257, 129}, 1, d), param("b", {1}, 2, d),
                                         param("v", {65537}, 3, d), param("e", {0}, 4, d),
                                         param("big", {1024, 1031}, 5, d)};
        Tensor base = Tensor::from(normal(1001, 5, 0.1), {1001}, d);  // an odd offset in its storage
        Layout shifted = Layout::contiguous({40, 25});
        shifted.offset = 1;
        Tensor odd = Tensor::over(base.storage(), shifted, DType::f32);
        odd.set_requires_grad(true);
        ps.push_back({"odd", odd, nn::Role::other, {}});
        return one_group(optim::Kind::sophia, h, ps);
    };
    optim::Optimizer cpu_opt = make(Device::cpu()), gpu_opt = make(device);
    const std::vector<nn::Parameter> pc = cpu_opt.parameters(), pg = gpu_opt.parameters();
    for (int step = 1; step <= 12; ++step) {
        INFO("step " << step);
        for (size_t i = 0; i < pc.size(); ++i) {
            const std::vector<float> g = grad_values(pc[i], step, i);
            set_grad(pc[i], g);
            set_grad(pg[i], g);
        }
        const double scale = 1.0 - 0.02 * step;
        const float bad = step == 7 ? 1.f : 0.f;  // one bad step in the middle
        cpu_opt.step({scale, flags(0.3, bad, Device::cpu())});
        gpu_opt.step({scale, flags(0.3, bad, device)});
        if (step % 3 == 2) {
            for (size_t i = 0; i < pc.size(); ++i) {
                const std::vector<float> g = hessian_grad(pc[i], step, i);
                set_grad(pc[i], g);
                set_grad(pg[i], g);
            }
            const float hbad = step == 8 ? 1.f : 0.f;
            sophia(cpu_opt).update_hessian(flags(0.7, hbad, Device::cpu()));
            sophia(gpu_opt).update_hessian(flags(0.7, hbad, device));
        }
        for (size_t i = 0; i < pc.size(); ++i) CHECK_MESSAGE(test::same_bits(pg[i].tensor, pc[i].tensor), pc[i].name);
        const auto sc = cpu_opt.state_dict().tensors, sg = gpu_opt.state_dict().tensors;
        REQUIRE(sc.size() == sg.size());
        for (size_t i = 0; i < sc.size(); ++i) CHECK_MESSAGE(test::same_bits(sg[i].second, sc[i].second), sc[i].first);
        CHECK(sophia(gpu_opt).win_rate() == sophia(cpu_opt).win_rate());
        CHECK(sophia(gpu_opt).hess_bad() == sophia(cpu_opt).hess_bad());
    }
    CHECK(sophia(gpu_opt).hess_bad() == 1);
    CHECK(sophia(gpu_opt).win_rate() > 0.0);
}

LUMEN_CUDA_TEST("sophia: CUDA matches the CPU on the generic awkward shapes; CUDA repeats bit for bit") {
    optim::Hyper h = optim::api_defaults(optim::Kind::sophia);
    h.lr = 6e-4;
    check_cuda_matches_cpu(optim::Kind::sophia, h, device, 20);
    check_cuda_repeats_bitwise(optim::Kind::sophia, h, device);
}
