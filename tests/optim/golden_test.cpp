// tests/optim/golden_test.cpp: lumen's AdamW, SGD and Muon against trajectories recorded from
// PyTorch 2.11's own optimizers (specs/optimizers.md §13.1 item 2). The data is
// tests/fixtures/optim/golden.json, written by tests/reference/make_optim_golden.py: torch's f32
// initial parameters and gradients (base64 of little-endian f32), hyper-parameters, and torch's
// parameters and states after every step. Each case is replayed through optim::Optimizer with one
// hand-built group and compared after every step:
//   AdamW (foreach=False), SGD momentum and SGD Nesterov: parameters and states at rtol 1e-5,
//     atol 1e-6 (§13.1 item 1's tolerances), 20 steps on a (17, 9) and a (5,) tensor;
//   Muon (lr 1, wd 0, so O = p_before − p_after): momentum at the same tolerance; O against torch's
//     O (its bf16 Newton–Schulz on the CPU and, when recorded, on the GPU) at atol 2e-2 in lumen's
//     f32 NS mode and 6e-2 in the bf16 mode, each times the shape scale (see the NOTE below); and
//     in the f32 mode, O against the exact-arithmetic iteration on torch's own update U at
//     2e-5 times the shape scale.
#include "tests/optim/optim_testing.h"

#include "optim/muon.h"

#include <nlohmann/json.hpp>

#include <array>
#include <bit>
#include <fstream>
#include <sstream>

using namespace lumen;
using namespace lumen::optim_test;
using nlohmann::json;

namespace {

const json& golden() {
    static const json data = [] {
        const std::string path =
            std::string(LUMEN_SOURCE_DIR) + "/tests/fixtures/optim/golden.json";
        std::ifstream in(path, std::ios::binary);
        REQUIRE_MESSAGE(in.good(), "cannot open " << path);
        std::stringstream text;
        text << in.rdbuf();
        return json::parse(text.str());
    }();
    return data;
}

// base64 of little-endian IEEE f32 values → the floats (bytes assembled explicitly: host-order
// free).
std::vector<float> decode_f32(const std::string& text) {
    static const std::array<int, 256> value = [] {
        std::array<int, 256> v{};
        v.fill(-1);
        const char* alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
        for (int i = 0; i < 64; ++i) v[static_cast<unsigned char>(alphabet[i])] = i;
        return v;
    }();
    std::vector<uint8_t> bytes;
    uint32_t acc = 0;
    int bits = 0;
    bool valid = true;
    for (char ch : text) {
        if (ch == '=') break;
        const int v = value[static_cast<unsigned char>(ch)];
        valid = valid && v >= 0;
        acc = (acc << 6) | uint32_t(v & 63);
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            bytes.push_back(uint8_t(acc >> bits));
        }
    }
    REQUIRE_MESSAGE(valid, "golden.json: an array is not base64");
    REQUIRE(bytes.size() % 4 == 0);
    std::vector<float> out(bytes.size() / 4);
    for (size_t i = 0; i < out.size(); ++i) {
        const uint32_t u = uint32_t(bytes[4 * i]) | uint32_t(bytes[4 * i + 1]) << 8 |
                           uint32_t(bytes[4 * i + 2]) << 16 | uint32_t(bytes[4 * i + 3]) << 24;
        out[i] = std::bit_cast<float>(u);
    }
    return out;
}

std::vector<double> decode(const json& j) { return to_double(decode_f32(j.get<std::string>())); }

Shape shape_of(const json& j) { return j.get<Shape>(); }

// A trainable parameter on `device` holding torch's initial values.
nn::Parameter golden_param(const std::string& name, const json& values, const Shape& shape,
                           Device device) {
    const std::vector<float> v = decode_f32(values.get<std::string>());
    REQUIRE(int64_t(v.size()) == numel_of(shape));
    return param_from(name, v, shape, device);
}

// The kind's API defaults with every key of the case's "hyper" applied (an unknown key fails).
optim::Hyper hyper_from(optim::Kind kind, const json& hyper) {
    optim::Hyper h = optim::api_defaults(kind);
    for (const auto& [key, v] : hyper.items()) {
        if (key == "lr")
            h.lr = v.get<double>();
        else if (key == "beta1")
            h.beta1 = v.get<double>();
        else if (key == "beta2")
            h.beta2 = v.get<double>();
        else if (key == "eps")
            h.eps = v.get<double>();
        else if (key == "weight_decay")
            h.weight_decay = v.get<double>();
        else if (key == "momentum")
            h.momentum = v.get<double>();
        else if (key == "dampening")
            h.dampening = v.get<double>();
        else if (key == "nesterov")
            h.nesterov = v.get<bool>();
        else if (key == "ns_steps")
            h.ns_steps = v.get<int64_t>();
        else if (key == "adjust_lr_fn") {
            REQUIRE(v.get<std::string>() == "original");
            h.muon_scale = optim::MuonScale::original;
        } else
            FAIL("unknown hyper-parameter in golden.json: " << key);
    }
    return h;
}

// Whether every element of `actual` is within atol + rtol·|expected|; names the first miss.
void check_close(const std::vector<double>& actual, const std::vector<double>& expected,
                 double atol, double rtol, const std::string& what) {
    std::string first;
    const int64_t bad = mismatches(actual, expected, atol, rtol, &first);
    CHECK_MESSAGE(bad == 0, what << ": " << bad << " of " << expected.size() << " outside atol "
                                 << atol << " rtol " << rtol << ", first " << first);
}

double max_abs_diff(const std::vector<double>& a, const std::vector<double>& b) {
    REQUIRE(a.size() == b.size());
    double d = 0;
    for (size_t i = 0; i < a.size(); ++i) d = std::max(d, std::fabs(a[i] - b[i]));
    return d;
}

}  // namespace

TEST_CASE("golden: the fixture is torch's (version, Muon signature, the expected cases)") {
    const json& g = golden();
    const std::string version = g["meta"]["torch"].get<std::string>();
    MESSAGE("golden data from torch " << version);
    CHECK(version.rfind("2.11", 0) == 0);
    const std::string muon_signature = g["meta"]["muon_signature"].get<std::string>();
    CHECK(muon_signature.find("adjust_lr_fn") != std::string::npos);
    std::vector<std::string> names;
    for (const json& c : g["elementwise"]["cases"]) names.push_back(c["name"].get<std::string>());
    CHECK(names == std::vector<std::string>{"adamw", "sgd_momentum", "sgd_nesterov"});
    REQUIRE(g["muon"]["cases"].size() == 2);
    CHECK(shape_of(g["muon"]["cases"][0]["shape"]) == Shape{12, 20});
    CHECK(shape_of(g["muon"]["cases"][1]["shape"]) == Shape{24, 8});
}

LUMEN_DEVICE_TEST(
    "golden: AdamW and SGD (momentum, Nesterov) match torch after every step (20 steps)") {
    const json& e = golden()["elementwise"];
    const std::vector<std::string> names = e["names"].get<std::vector<std::string>>();
    const json& shapes = e["shapes"];
    const json& grads = e["grads"];
    REQUIRE(grads.size() == 20);
    for (const json& c : e["cases"]) {
        const std::string case_name = c["name"].get<std::string>();
        INFO("case " << case_name << ": " << c["torch"].get<std::string>());
        const std::optional<optim::Kind> kind = optim::kind_from_name(c["kind"].get<std::string>());
        REQUIRE(kind.has_value());
        std::vector<nn::Parameter> params;
        for (size_t i = 0; i < names.size(); ++i)
            params.push_back(golden_param(names[i], e["params0"][i], shape_of(shapes[i]), device));
        optim::Optimizer opt = one_group(*kind, hyper_from(*kind, c["hyper"]), params);
        const std::vector<std::string> states = c["states"].get<std::vector<std::string>>();
        const json& steps = c["steps"];
        REQUIRE(steps.size() == grads.size());
        for (size_t s = 0; s < steps.size(); ++s) {
            for (size_t i = 0; i < params.size(); ++i)
                set_grad(params[i], decode_f32(grads[s][i].get<std::string>()));
            opt.step(1.0);
            for (size_t i = 0; i < params.size(); ++i) {
                const std::string where = "step " + std::to_string(s + 1) + " " + names[i];
                check_close(values(params[i].tensor), decode(steps[s]["params"][i]), 1e-6, 1e-5,
                            where + " params");
                for (const std::string& st : states)
                    check_close(values(state_of(opt, names[i] + "." + st)), decode(steps[s][st][i]),
                                1e-6, 1e-5, where + " " + st);
            }
        }
        CHECK(opt.step_count(0) == int64_t(steps.size()));
    }
}

// NOTE (a discrepancy between spec §13.1 item 2 and torch): the spec compares O with torch's at
// atol 2e-2, but torch's own O is computed with bf16 Newton–Schulz and is itself up to 0.026 away
// from the exact iteration on the 24×8 matrix at step 1 (meta.diagnostics of golden.json), where
// the shape scale sqrt(24/8) = 1.73 multiplies the bf16 error of the orthogonalised matrix. lumen's
// f32 mode (≈ exact) therefore cannot meet a flat 2e-2 there. The tolerances below apply to the
// orthogonalised matrix before the shape scale, i.e. atol·scale on O: 2e-2 (f32 mode) and 6e-2
// (bf16 mode, §13.2's Muon note), exactly the spec's numbers for the 12×20 matrix (scale 1).
LUMEN_DEVICE_TEST(
    "golden: Muon's update O matches torch (1 and 3 steps; f32 NS at 2e-2, bf16 NS at 6e-2)") {
    const json& m = golden()["muon"];
    const optim::Hyper base = hyper_from(optim::Kind::muon, m["hyper"]);
    REQUIRE(base.lr == 1.0);
    REQUIRE(base.weight_decay == 0.0);
    for (bool f32 : {true, false}) {
        for (const json& c : m["cases"]) {
            const Shape shape = shape_of(c["shape"]);
            const std::string name = c["name"].get<std::string>();
            INFO(std::string(f32 ? "f32 NS " : "bf16 NS ")
                 << name << ": " << m["torch"].get<std::string>());
            optim::Hyper h = base;
            h.ns_f32 = f32;
            nn::Parameter p = golden_param("w", c["p0"], shape, device);
            optim::Optimizer opt = one_group(optim::Kind::muon, h, {p});
            const double scale = optim::MuonRule::shape_scale(h.muon_scale, shape[0], shape[1]);
            const double atol = (f32 ? 2e-2 : 6e-2) * scale;
            const json& steps = c["steps"];
            REQUIRE(steps.size() == 3);
            for (size_t s = 0; s < steps.size(); ++s) {
                const std::string where = "step " + std::to_string(s + 1);
                const std::vector<double> before = values(p.tensor);
                set_grad(p, decode_f32(c["grads"][s].get<std::string>()));
                opt.step(1.0);
                const std::vector<double> after = values(p.tensor);
                std::vector<double> o(before.size());
                for (size_t e = 0; e < o.size(); ++e) o[e] = before[e] - after[e];  // lr 1, wd 0
                check_close(values(state_of(opt, "w.momentum_buffer")),
                            decode(steps[s]["momentum_buffer"]), 1e-6, 1e-5,
                            where + " momentum_buffer");
                const std::vector<double> torch_cpu = decode(steps[s]["O"]);
                check_close(o, torch_cpu, atol, 0.0, where + " O vs torch (CPU)");
                std::string seen =
                    "max |O - O_torch_cpu| " + std::to_string(max_abs_diff(o, torch_cpu));
                if (steps[s].contains("O_cuda")) {
                    const std::vector<double> torch_cuda = decode(steps[s]["O_cuda"]);
                    check_close(o, torch_cuda, atol, 0.0, where + " O vs torch (CUDA)");
                    seen += ", O_torch_cuda " + std::to_string(max_abs_diff(o, torch_cuda));
                }
                // The f32 mode against the exact iteration on torch's own U at 2e-5·scale: U's f32
                // rounding (lumen's mix and torch's lerp may differ by an ulp), amplified by the
                // iteration's slope at small singular values, leaves ~1e-5 (1.5e-5 seen on 24×8).
                const std::vector<double> exact = decode(steps[s]["O_exact"]);
                if (f32)
                    check_close(o, exact, 2e-5 * scale, 0.0,
                                where + " O vs exact NS of torch's update");
                seen += ", O_exact " + std::to_string(max_abs_diff(o, exact));
                MESSAGE(std::string(f32 ? "f32 NS " : "bf16 NS ")
                        << device.str() << " " << name << " " << where << ": " << seen);
            }
        }
    }
}
