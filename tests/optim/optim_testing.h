// tests/optim/optim_testing.h: what the element-wise optimizer tests (AdamW, Lion, SGD, the
// framework) share: seeded normal values, parameters with gradients, flags, element comparisons
// that count mismatches, and the generic checks every rule must pass (a bad step writes nothing,
// save -> load -> continue is bit-exact, CUDA matches the CPU and repeats bit for bit).
#pragma once

#include "tests/harness.h"

#include "optim/clip.h"
#include "optim/optimizer.h"

#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

namespace lumen::optim_test {

inline uint64_t mix64(uint64_t z) {  // splitmix64's finaliser
    z += 0x9E3779B97F4A7C15ull;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

// 65536 N(0, 1) values (Box–Muller over a fixed splitmix64 stream), computed once.
inline const std::vector<double>& normal_pool() {
    static const std::vector<double> pool = [] {
        std::vector<double> v(65536);
        for (size_t i = 0; i < v.size(); i += 2) {
            const double u1 = (double(mix64(2 * i) >> 11) + 1.0) * 0x1.0p-53;  // (0, 1]
            const double u2 = double(mix64(2 * i + 1) >> 11) * 0x1.0p-53;
            const double r = std::sqrt(-2.0 * std::log(u1)), a = 2.0 * M_PI * u2;
            v[i] = r * std::cos(a);
            v[i + 1] = r * std::sin(a);
        }
        return v;
    }();
    return pool;
}

// n values scale·N(0, 1), f32-rounded: element i of stream `seed` is the pool entry a hash of
// (seed, i) picks, so values are independent draws from a 65536-point normal sample (cheap
// enough for 20 steps over 4M elements on a loaded 2-core machine).
inline std::vector<float> normal(int64_t n, uint64_t seed, double scale) {
    const std::vector<double>& pool = normal_pool();
    const uint64_t key = mix64(seed * 0xD1B54A32D192ED03ull);
    std::vector<float> out(static_cast<size_t>(n));
    for (int64_t i = 0; i < n; ++i) out[size_t(i)] = float(scale * pool[mix64(key + uint64_t(i)) & 0xFFFF]);
    return out;
}

inline std::vector<double> to_double(const std::vector<float>& v) { return {v.begin(), v.end()}; }

// A trainable f32 parameter with values 0.1·N(0, 1) (seeded), on `device`.
inline nn::Parameter param(const std::string& name, const Shape& shape, uint64_t seed, Device device = Device::cpu(),
                           nn::Role role = nn::Role::other) {
    Tensor t = Tensor::from(normal(numel_of(shape), seed, 0.1), shape, device);
    t.set_requires_grad(true);
    return {name, t, role, {}};
}

// A parameter whose values are given.
inline nn::Parameter param_from(const std::string& name, const std::vector<float>& values, const Shape& shape,
                                Device device = Device::cpu()) {
    Tensor t = Tensor::from(values, shape, device);
    t.set_requires_grad(true);
    return {name, t, nn::Role::other, {}};
}

inline void set_grad(const nn::Parameter& p, const std::vector<float>& values) {
    p.tensor.set_grad(Tensor::from(values, p.tensor.shape(), p.tensor.device()));
}

// Step s's gradient for parameter i: 0.01·N(0, 1).
inline std::vector<float> grad_values(const nn::Parameter& p, int step, size_t i) {
    return normal(p.tensor.numel(), 1000003ull * uint64_t(step) + 7919ull * i + 17, 0.01);
}

inline Tensor flags(double gamma, double bad, Device device) {
    return Tensor::from(std::vector<float>{float(gamma), float(bad)}, {2}, device);
}

inline optim::Optimizer one_group(optim::Kind kind, const optim::Hyper& hyper, std::vector<nn::Parameter> params) {
    std::vector<optim::Group> groups(1);
    groups[0].label = "all";
    groups[0].kind = kind;
    groups[0].hyper = hyper;
    groups[0].params = std::move(params);
    return optim::Optimizer(std::move(groups));
}

// A tensor's values in row-major order (a plain copy for contiguous CPU f32 tensors).
inline std::vector<double> values(const Tensor& t) { return t.to_vector<double>(); }
inline std::vector<float> floats(const Tensor& t) {
    if (!t.device().is_cpu() || !t.is_contiguous() || t.dtype() != DType::f32) return t.to_vector<float>();
    const float* p = t.data<float>();
    return std::vector<float>(p, p + t.numel());
}

// The state tensor `name` of an optimizer: the live tensor (non-const), or a copy (const).
inline Tensor state_of(const optim::Optimizer& opt, const std::string& name) {
    for (const auto& [n, t] : opt.state_dict().tensors)
        if (n == name) return t;
    FAIL("no state tensor " << name);
    return {};
}
inline Tensor state_of(optim::Optimizer& opt, const std::string& name) {
    for (size_t g = 0; g < opt.groups().size(); ++g)
        for (const auto& [n, t] : opt.rule(g).state())
            if (n == name) return t;
    FAIL("no state tensor " << name);
    return {};
}

// How many elements are outside atol + rtol·|expected|; `first` describes the first of them.
template <typename A>
int64_t mismatches(const std::vector<A>& actual, const std::vector<double>& expected, double atol, double rtol,
                   std::string* first = nullptr) {
    REQUIRE(actual.size() == expected.size());
    int64_t bad = 0;
    for (size_t i = 0; i < actual.size(); ++i) {
        const double err = std::fabs(double(actual[i]) - expected[i]);
        if (!(err <= atol + rtol * std::fabs(expected[i]))) {
            if (bad == 0 && first)
                *first = "element " + std::to_string(i) + ": " + std::to_string(double(actual[i])) + " vs " +
                         std::to_string(expected[i]);
            ++bad;
        }
    }
    return bad;
}

// Every parameter, state and step count of `opt`, as copies.
struct Snapshot {
    std::vector<Tensor> params;
    std::vector<std::pair<std::string, Tensor>> states;
    std::vector<int64_t> steps;
};
inline Snapshot snapshot(const optim::Optimizer& opt) {
    Snapshot s;
    for (const nn::Parameter& p : opt.parameters()) s.params.push_back(p.tensor.detach().clone());
    s.states = opt.state_dict().tensors;
    for (size_t g = 0; g < opt.groups().size(); ++g) s.steps.push_back(opt.step_count(g));
    return s;
}
inline void check_same(const Snapshot& a, const Snapshot& b) {
    REQUIRE(a.params.size() == b.params.size());
    for (size_t i = 0; i < a.params.size(); ++i) CHECK_MESSAGE(test::same_bits(a.params[i], b.params[i]), "param " << i);
    REQUIRE(a.states.size() == b.states.size());
    for (size_t i = 0; i < a.states.size(); ++i) {
        CHECK(a.states[i].first == b.states[i].first);
        CHECK_MESSAGE(test::same_bits(a.states[i].second, b.states[i].second), "state " << a.states[i].first);
    }
    CHECK(a.steps == b.steps);
}

// The parameters a generic check runs on: awkward sizes (1 element, odd, a matrix, 0 elements).
inline std::vector<nn::Parameter> generic_params(Device device) {
    return {param("w", {33, 17}, 1, device), param("b", {1}, 2, device), param("v", {1000}, 3, device),
            param("e", {0}, 4, device)};
}

// A NaN or an Inf in one gradient leaves parameters, states and step counts bit-identical (the
// API step computes the flag itself), and so does a NaN loss through clip_flags.
inline void check_bad_steps_write_nothing(optim::Kind kind, const optim::Hyper& hyper, Device device) {
    optim::Optimizer opt = one_group(kind, hyper, generic_params(device));
    const std::vector<nn::Parameter> ps = opt.parameters();
    for (int step = 1; step <= 3; ++step) {
        for (size_t i = 0; i < ps.size(); ++i) set_grad(ps[i], grad_values(ps[i], step, i));
        opt.step();
    }
    for (float poison : {NAN, INFINITY, -INFINITY}) {
        INFO("poison " << poison);
        const Snapshot before = snapshot(opt);
        for (size_t i = 0; i < ps.size(); ++i) {
            std::vector<float> g = grad_values(ps[i], 10, i);
            if (i == 2) g[500] = poison;
            set_grad(ps[i], g);
        }
        opt.step();
        check_same(snapshot(opt), before);
    }
    // A finite gradient but a NaN loss: clip_flags raises bad, the step writes nothing.
    const Snapshot before = snapshot(opt);
    for (size_t i = 0; i < ps.size(); ++i) set_grad(ps[i], grad_values(ps[i], 11, i));
    Tensor loss = Tensor::from(std::vector<float>{NAN}, {1}, device);
    opt.step({1.0, optim::clip_flags(ps, 1.0, loss)});
    check_same(snapshot(opt), before);
    // An explicit bad flag with γ = 0.5 does the same.
    opt.step({1.0, flags(0.5, 1.0, device)});
    check_same(snapshot(opt), before);
    // And the next good step moves everything (the counter included).
    opt.step();
    CHECK(opt.step_count(0) == 4);
}

// Saving after `steps_before` steps, loading into a fresh optimizer (parameters copied) and
// continuing equals the uninterrupted run bit for bit.
inline void check_save_load_continue(optim::Kind kind, const optim::Hyper& hyper, Device device, int steps_before) {
    optim::Optimizer a = one_group(kind, hyper, generic_params(device));
    const std::vector<nn::Parameter> pa = a.parameters();
    auto feed = [](const std::vector<nn::Parameter>& ps, int step) {
        for (size_t i = 0; i < ps.size(); ++i) set_grad(ps[i], grad_values(ps[i], step, i));
    };
    for (int step = 1; step <= steps_before; ++step) {
        feed(pa, step);
        a.step();
    }
    const optim::StateDict saved = a.state_dict();
    std::vector<nn::Parameter> pb;
    for (const nn::Parameter& p : pa) {
        Tensor t = p.tensor.detach().clone();
        t.set_requires_grad(true);
        pb.push_back({p.name, t, p.role, p.row_parts});
    }
    for (int step = steps_before + 1; step <= steps_before + 4; ++step) {
        feed(pa, step);
        a.step(0.75);
    }
    optim::Optimizer b = one_group(kind, hyper, pb);
    b.load_state_dict(saved);
    CHECK(b.step_count(0) == steps_before);
    for (int step = steps_before + 1; step <= steps_before + 4; ++step) {
        feed(pb, step);
        b.step(0.75);
    }
    check_same(snapshot(b), snapshot(a));
}

// The CUDA step against the CPU step: same parameters and gradients (with γ ≠ 1 and a schedule
// factor), `steps` steps, parameters and states compared after every step; at most
// `allowed_mismatches` elements per tensor outside rtol 1e-5, atol 1e-6 (Lion's sign boundary).
inline void check_cuda_matches_cpu(optim::Kind kind, const optim::Hyper& hyper, Device device, int steps,
                                   int64_t allowed_mismatches = 0) {
    auto make = [&](Device d) {
        std::vector<nn::Parameter> ps = {param("w", {257, 129}, 1, d), param("b", {1}, 2, d),
                                         param("v", {100003}, 3, d), param("e", {0}, 4, d)};
        // A parameter at an odd offset in its storage: the kernel's unaligned path.
        Tensor base = Tensor::from(normal(1001, 5, 0.1), {1001}, d);
        Layout shifted = Layout::contiguous({40, 25});
        shifted.offset = 1;
        Tensor odd = Tensor::over(base.storage(), shifted, DType::f32);
        odd.set_requires_grad(true);
        ps.push_back({"odd", odd, nn::Role::other, {}});
        return one_group(kind, hyper, ps);
    };
    optim::Optimizer cpu = make(Device::cpu()), gpu = make(device);
    const std::vector<nn::Parameter> pc = cpu.parameters(), pg = gpu.parameters();
    for (int step = 1; step <= steps; ++step) {
        for (size_t i = 0; i < pc.size(); ++i) {
            const std::vector<float> g = grad_values(pc[i], step, i);
            set_grad(pc[i], g);
            set_grad(pg[i], g);
        }
        const double scale = 1.0 - 0.02 * step;
        cpu.step({scale, optim::clip_flags(pc, 0.05)});
        gpu.step({scale, optim::clip_flags(pg, 0.05)});
        for (size_t i = 0; i < pc.size(); ++i) {
            std::string first;
            const int64_t bad = mismatches(values(pg[i].tensor), values(pc[i].tensor), 1e-6, 1e-5, &first);
            CHECK_MESSAGE(bad <= allowed_mismatches, "step " << step << " param " << pc[i].name << ": " << bad
                                                             << " mismatches, " << first);
        }
        const auto sc = cpu.state_dict().tensors, sg = gpu.state_dict().tensors;
        REQUIRE(sc.size() == sg.size());
        for (size_t i = 0; i < sc.size(); ++i) {
            std::string first;
            const int64_t bad = mismatches(values(sg[i].second), values(sc[i].second), 1e-6, 1e-5, &first);
            CHECK_MESSAGE(bad <= allowed_mismatches,
                          "step " << step << " state " << sc[i].first << ": " << bad << " mismatches, " << first);
        }
    }
    CHECK(gpu.step_count(0) == steps);
}

// Two CUDA runs from the same start give the same bits.
inline void check_cuda_repeats_bitwise(optim::Kind kind, const optim::Hyper& hyper, Device device) {
    auto run = [&] {
        optim::Optimizer opt = one_group(kind, hyper, {param("w", {1024, 1031}, 1, device), param("b", {77}, 2, device)});
        const std::vector<nn::Parameter> ps = opt.parameters();
        for (int step = 1; step <= 5; ++step) {
            for (size_t i = 0; i < ps.size(); ++i) set_grad(ps[i], grad_values(ps[i], step, i));
            opt.step({1.0, optim::clip_flags(ps, 0.5)});
        }
        return snapshot(opt);
    };
    check_same(run(), run());
}

}  // namespace lumen::optim_test
