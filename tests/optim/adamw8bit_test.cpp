// tests/optim/adamw8bit_test.cpp: 8-bit AdamW (specs/optimizers.md §5, §13.1 item 4, §13.2): the
// dynamic maps against an independent long-double construction and the §5.1 anchors (1 ulp), the
// quantizer's known answers and nearest-neighbour behaviour, block-wise round-trip error bounds
// (bnb test_dynamic_blockwise_quantization) and zero blocks, the 8-bit known answers with their
// codes, the f32-state routing (numel < min_8bit_size, embeddings) with AdamW's A1 answers, the
// bnb-protocol comparison against an f32 AdamW reference, save -> load -> continue, the map check
// on load, bad steps; on a GPU, CUDA against the CPU (codes and absmax) and CUDA repeats.
#include "tests/optim/optim_testing.h"

#include "optim/adamw8bit.h"
#include "optim/quant8.h"

#include <algorithm>
#include <chrono>
#include <cmath>

using namespace lumen;
using namespace lumen::optim_test;

namespace {

// §5.1 written again: decade i holds the midpoints of n points evenly spaced over [0.1, 1]
// times 10^(i−6) (n = 2^i + 1 signed with both signs, 2^(i+1) + 1 unsigned), then 0 and 1.
std::vector<long double> map_in_long_double(bool is_signed) {
    std::vector<long double> v;
    for (int i = 0; i < 7; ++i) {
        const int n = is_signed ? (1 << i) + 1 : (1 << (i + 1)) + 1;
        const long double scale = std::pow(10.0L, i - 6);
        for (int k = 0; k + 1 < n; ++k) {
            const long double mid = scale * (0.1L + 0.9L * (k + 0.5L) / (n - 1));
            v.push_back(mid);
            if (is_signed) v.push_back(-mid);
        }
    }
    v.push_back(0.0L);
    v.push_back(1.0L);
    std::sort(v.begin(), v.end());
    return v;
}

// The index of the map entry nearest to x, or −1 when the two nearest are (nearly) tied.
int nearest_code(const optim::QuantMap& map, double x) {
    int best = 0, second = -1;
    for (int i = 1; i < 256; ++i) {
        if (std::fabs(x - map[i]) < std::fabs(x - map[best])) second = best, best = i;
        else if (second < 0 || std::fabs(x - map[i]) < std::fabs(x - map[second])) second = i;
    }
    const double d1 = std::fabs(x - map[best]), d2 = std::fabs(x - map[second]);
    return d2 - d1 <= 1e-12 * std::max(1.0, std::fabs(x)) ? -1 : best;
}

optim::Hyper hyper_8bit(int64_t min_8bit_size) {
    optim::Hyper h = optim::api_defaults(optim::Kind::adamw8bit);
    h.min_8bit_size = min_8bit_size;
    return h;
}

std::vector<double> dequantized(const Tensor& codes, const Tensor& absmax, bool is_signed) {
    const optim::QuantMap& map = optim::dynamic_map(is_signed);
    const std::vector<uint8_t> q = codes.to_vector<uint8_t>();
    const std::vector<float> a = absmax.to_vector<float>();
    std::vector<double> out(q.size());
    for (size_t i = 0; i < q.size(); ++i) out[i] = double(map[q[i]] * a[i / 256]);  // f32 product, as the kernel
    return out;
}

// torch AdamW in f32 (decay before the update), the comparison target of bnb's test_optimizer8bit.
struct AdamWF32 {
    float lr, beta1, beta2, eps, wd;
    std::vector<float> p, m, v;
    int t = 0;
    void step(const std::vector<float>& g) {
        ++t;
        const float c1 = float(1 - std::pow(double(beta1), t)), c2 = float(1 - std::pow(double(beta2), t));
        for (size_t i = 0; i < p.size(); ++i) {
            p[i] *= 1 - lr * wd;
            m[i] = beta1 * m[i] + (1 - beta1) * g[i];
            v[i] = beta2 * v[i] + (1 - beta2) * g[i] * g[i];
            p[i] -= lr / c1 * m[i] / (std::sqrt(v[i]) / std::sqrt(c2) + eps);
        }
    }
};

}  // namespace

TEST_CASE("adamw8bit: the dynamic maps equal their construction and the §5.1 anchors within 1 ulp") {
    for (bool is_signed : {true, false}) {
        INFO((is_signed ? "signed" : "unsigned"));
        const optim::QuantMap& map = optim::dynamic_map(is_signed);
        const std::vector<long double> ref = map_in_long_double(is_signed);
        REQUIRE(ref.size() == 256);
        for (size_t i = 0; i < 256; ++i)
            CHECK_MESSAGE(optim::ulp_distance(map[i], float(ref[i])) <= 1, "entry " << i << ": " << map[i]);
        for (size_t i = 1; i < 256; ++i) CHECK(map[i - 1] < map[i]);
        // Per decade (10^(i−7), 10^(i−6)]: 2^i positive values signed, 2^(i+1) unsigned.
        for (int i = 0; i < 7; ++i) {
            const double lo = std::pow(10.0, i - 7), hi = std::pow(10.0, i - 6);
            const auto count = std::count_if(map.begin(), map.end(), [&](float x) { return x > lo && x < hi; });
            CHECK(count == (is_signed ? (1 << i) : (1 << (i + 1))));
        }
        const std::vector<float> as_tensor = optim::dynamic_map_tensor(is_signed).to_vector<float>();
        CHECK(std::equal(as_tensor.begin(), as_tensor.end(), map.begin()));
    }
    const optim::QuantMap& s = optim::dynamic_map(true);
    const optim::QuantMap& u = optim::dynamic_map(false);
    // Exact anchors (the nearest f32 of the decimal), within 1 ulp.
    const std::pair<int, double> signed_anchors[] = {
        {0, -0.99296875}, {1, -0.97890625}, {63, -0.10703125}, {64, -0.09859375}, {126, -5.5e-7}, {127, 0.0},
        {128, 5.5e-7},    {129, 3.25e-6},   {191, 0.10703125}, {192, 0.12109375}, {254, 0.99296875}, {255, 1.0}};
    for (const auto& [i, value] : signed_anchors)
        CHECK_MESSAGE(optim::ulp_distance(s[size_t(i)], float(value)) <= 1, "signed " << i << ": " << s[size_t(i)]);
    const std::pair<int, double> unsigned_anchors[] = {{0, 0.0},           {1, 3.25e-7},   {2, 7.75e-7},
                                                       {127, 0.103515625}, {254, 0.996484375}, {255, 1.0}};
    for (const auto& [i, value] : unsigned_anchors)
        CHECK_MESSAGE(optim::ulp_distance(u[size_t(i)], float(value)) <= 1, "unsigned " << i << ": " << u[size_t(i)]);
    // Anchors the spec gives rounded to 7 decimals.
    CHECK(std::fabs(u[126] - 0.0992969) <= 5e-8);
    CHECK(std::fabs(u[128] - 0.1105469) <= 5e-8);
    CHECK(std::fabs(u[253] - 0.9894531) <= 5e-8);
    // No −1 in the signed map; top-decade spacing 0.0140625 (signed) and 0.00703125 (unsigned).
    CHECK(s[0] > -1.0f);
    CHECK(std::fabs((s[254] - s[253]) - 0.0140625) <= 1e-7);
    CHECK(std::fabs((u[254] - u[253]) - 0.00703125) <= 1e-7);
    CHECK(optim::ulp_distance(1.0f, std::nextafter(1.0f, 2.0f)) == 1);
    CHECK(optim::ulp_distance(-0.0f, 0.0f) == 0);
    CHECK(optim::ulp_distance(-1e-45f, 1e-45f) == 2);
}

TEST_CASE("adamw8bit: the quantizer's known answers (§5.2), exactly") {
    const float* s = optim::dynamic_map(true).data();
    const float* u = optim::dynamic_map(false).data();
    // Signed, as state 1 codes them (absmax 1, with the sign fix).
    auto qs = [&](float x) { return int(optim::quantize_state1(s, x, 1.0f)); };
    CHECK(qs(1.0f) == 255);
    CHECK(qs(-1.0f) == 0);
    CHECK(s[0] == doctest::Approx(-0.99296875).epsilon(1e-7));
    CHECK(qs(0.0f) == 127);
    CHECK(qs(1e-9f) == 127);
    CHECK(qs(-1e-9f) == 126);
    CHECK(qs(0.5f) == 219);
    CHECK(std::fabs(s[219] - 0.50078125) <= 1e-7);
    CHECK(qs(-0.5f) == 35);
    CHECK(qs(0.25f) == 201);
    CHECK(std::fabs(s[201] - 0.24765625) <= 1e-7);
    // Without the sign fix a tiny negative value rounds to the zero code.
    CHECK(int(optim::quantize_code(s, -1e-9f, true)) == 127);
    auto qu = [&](float x) { return int(optim::quantize_state2(u, x, 1.0f)); };
    CHECK(qu(1.0f) == 255);
    CHECK(qu(0.0f) == 0);
    CHECK(qu(0.5f) == 183);
    CHECK(std::fabs(u[183] - 0.4972656) <= 5e-8);
    CHECK(qu(0.25f) == 148);
    CHECK(std::fabs(u[148] - 0.2511719) <= 5e-8);
    CHECK(qu(0.0625f) == 100);
    CHECK(qu(1.6e-7f) == 0);
    CHECK(qu(1.7e-7f) == 1);
    // absmax 0 (an all-zero block): the zero codes.
    CHECK(int(optim::quantize_state1(s, 0.0f, 0.0f)) == 127);
    CHECK(int(optim::quantize_state2(u, 0.0f, 0.0f)) == 0);
}

TEST_CASE("adamw8bit: the quantizer is nearest-neighbour away from exact ties") {
    for (bool is_signed : {true, false}) {
        INFO((is_signed ? "signed" : "unsigned"));
        const optim::QuantMap& map = optim::dynamic_map(is_signed);
        const std::vector<float> uniform = test::random({20000}, 7, DType::f32, Device::cpu(), is_signed ? -1 : 0, 1)
                                               .to_vector<float>();
        std::vector<float> xs = uniform;
        // Small magnitudes, where the decades are dense.
        for (float x : normal(20000, 11, 1.0)) xs.push_back((is_signed ? x : std::fabs(x)) * 1e-4f);
        for (size_t i = 0; i < 256; ++i) xs.push_back(map[i]);  // the entries map to themselves
        int64_t compared = 0, wrong = 0;
        for (float x : xs) {
            const int expected = nearest_code(map, x);
            if (expected < 0) continue;
            ++compared;
            if (int(optim::quantize_code(map.data(), x, is_signed)) != expected) ++wrong;
        }
        CHECK(compared > 40000);
        CHECK(wrong == 0);
    }
}

TEST_CASE("adamw8bit: block-wise round trip error bounds on 1024^2 values (bnb, B 256, mean of 10 draws)") {
    struct Case {
        const char* name;
        bool normal_values, is_signed;
        double abs_bound, rel_bound;
    };
    const Case cases[] = {{"randn, signed", true, true, 0.011, 0.018},
                          {"uniform, signed", false, true, 0.0036, 0.015},
                          {"uniform, unsigned", false, false, 0.0023, 0.012}};
    for (const Case& c : cases) {
        INFO(std::string(c.name));
        double abs_sum = 0, rel_sum = 0;
        for (int draw = 0; draw < 10; ++draw) {
            const Tensor x = c.normal_values ? Tensor::from(normal(1 << 20, 100 + draw, 1.0), {1024, 1024})
                                             : test::random({1024, 1024}, 200 + draw, DType::f32, Device::cpu(), 0, 1);
            const auto [codes, absmax] = optim::quantize_blockwise(x, c.is_signed);
            CHECK(absmax.numel() == 4096);
            const std::vector<float> a = x.to_vector<float>();
            const std::vector<float> b = optim::dequantize_blockwise(codes, absmax, c.is_signed).to_vector<float>();
            double abs_err = 0, rel_err = 0;
            for (size_t i = 0; i < a.size(); ++i) {
                const double d = std::fabs(double(a[i]) - b[i]);
                abs_err += d;
                rel_err += d / std::fabs(double(a[i]) + 1e-8);
            }
            abs_sum += abs_err / double(a.size());
            rel_sum += rel_err / double(a.size());
        }
        MESSAGE(std::string(c.name) << ": mean abs error " << abs_sum / 10 << ", mean rel error " << rel_sum / 10);
        CHECK(abs_sum / 10 < c.abs_bound);
        CHECK(rel_sum / 10 < c.rel_bound);
    }
}

LUMEN_DEVICE_TEST("adamw8bit: block-wise quantization on awkward sizes; a zero block dequantizes to 0") {
    for (int64_t n : {int64_t(0), int64_t(1), int64_t(255), int64_t(256), int64_t(257), int64_t(1000), int64_t(70000)}) {
        for (bool is_signed : {true, false}) {
            INFO("n " << n << (is_signed ? " signed" : " unsigned"));
            std::vector<float> v = normal(n, uint64_t(n) + 3, 2.0);
            if (!is_signed)
                for (float& x : v) x = std::fabs(x);
            if (n > 512) std::fill(v.begin() + 256, v.begin() + 512, 0.0f);  // block 1 all zeros
            const Tensor x = Tensor::from(v, {n}, device);
            const auto [codes, absmax] = optim::quantize_blockwise(x, is_signed);
            const std::vector<uint8_t> q = codes.to_vector<uint8_t>();
            const std::vector<float> a = absmax.to_vector<float>();
            REQUIRE(int64_t(a.size()) == optim::quant_blocks(n));
            const optim::QuantMap& map = optim::dynamic_map(is_signed);
            for (int64_t b = 0; b < int64_t(a.size()); ++b) {
                float amax = 0;
                for (int64_t i = b * 256; i < std::min(n, b * 256 + 256); ++i) amax = std::max(amax, std::fabs(v[size_t(i)]));
                CHECK(a[size_t(b)] == amax);
            }
            int64_t wrong = 0;
            for (int64_t i = 0; i < n; ++i) {
                const float amax = a[size_t(i / 256)];
                const int expected = amax == 0 ? (is_signed ? 127 : 0)
                                               : int(optim::quantize_code(map.data(), v[size_t(i)] / amax, is_signed));
                wrong += int(q[size_t(i)]) != expected;
            }
            CHECK(wrong == 0);
            const std::vector<float> back = optim::dequantize_blockwise(codes, absmax, is_signed).to_vector<float>();
            if (n > 512) {
                CHECK(a[1] == 0.0f);
                for (int64_t i = 256; i < 512; ++i) CHECK(back[size_t(i)] == 0.0f);
            }
            for (int64_t i = 0; i < n; ++i)
                CHECK(std::fabs(back[size_t(i)] - v[size_t(i)]) <= 0.00704 * a[size_t(i / 256)]);
        }
    }
    // A non-contiguous input is quantized in its logical (row-major) order.
    const Tensor base = Tensor::from(normal(600, 5, 1.0), {20, 30}, device);
    const Tensor xt = base.transpose(0, 1);
    const auto [qt, at] = optim::quantize_blockwise(xt, true);
    const auto [qc, ac] = optim::quantize_blockwise(xt.contiguous(), true);
    CHECK(test::same_bits(qt, qc));
    CHECK(test::same_bits(at, ac));
}

LUMEN_DEVICE_TEST("adamw8bit: known answers (§13.2): codes, absmax and parameters of steps 1-3") {
    optim::Hyper h = hyper_8bit(0);  // the 4-element tensor is forced to 8-bit
    h.lr = 1e-3, h.weight_decay = 0.0;
    nn::Parameter p = param_from("p", {1.0f, 1.0f, 1.0f, 1.0f}, {4}, device);
    optim::Optimizer opt = one_group(optim::Kind::adamw8bit, h, {p});
    const std::vector<float> g = {0.1f, -0.2f, 0.05f, 0.0f};
    const std::vector<std::vector<double>> expected_p = {{0.999, 1.001, 0.999, 1.0},
                                                         {0.998000430, 1.001996669, 0.998005373, 1.0},
                                                         {0.997003106, 1.002990146, 0.997014607, 1.0}};
    for (int step = 0; step < 3; ++step) {
        INFO("step " << step + 1);
        set_grad(p, g);
        opt.step();
        CHECK(state_of(opt, "p.state1").to_vector<int>() == std::vector<int>{219, 0, 201, 127});
        CHECK(state_of(opt, "p.state2").to_vector<int>() == std::vector<int>{148, 255, 100, 0});
        CHECK(state_of(opt, "p.state1").dtype() == DType::u8);
        if (step == 0) {
            CHECK(std::fabs(state_of(opt, "p.absmax1").item() - 0.02) <= 1e-8);  // f32 values
            CHECK(std::fabs(state_of(opt, "p.absmax2").item() - 4e-5) <= 1e-11);
        }
        CHECK(mismatches(values(p.tensor), expected_p[size_t(step)], step == 0 ? 2e-6 : 5e-7, 0) == 0);
    }
    // f32 AdamW would give 0.997000000, 1.003000000, 0.997000001 at step 3: the quantization error
    // is part of the expected result.
    CHECK(std::fabs(p.tensor.to_vector<double>()[0] - 0.997) > 2e-6);
}

TEST_CASE("adamw8bit: tensors below min_8bit_size keep f32 state with AdamW's math (A1 answers)") {
    optim::Hyper h = optim::api_defaults(optim::Kind::adamw8bit);
    h.lr = 0.01, h.weight_decay = 0.1;
    nn::Parameter p = param_from("p", {1.0f}, {1});
    optim::Optimizer opt = one_group(optim::Kind::adamw8bit, h, {p});
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

TEST_CASE("adamw8bit: routing, state names, shapes, bytes and the report") {
    for (bool embed_fp32 : {false, true}) {
        INFO("embed_fp32_state " << embed_fp32);
        optim::Hyper h = optim::api_defaults(optim::Kind::adamw8bit);
        h.embed_fp32_state = embed_fp32;
        const std::vector<nn::Parameter> ps = {param("blocks.0.w", {64, 128}, 1, Device::cpu(), nn::Role::matrix),
                                               param("blocks.0.b", {4095}, 2, Device::cpu(), nn::Role::bias),
                                               param("wte", {100, 41}, 3, Device::cpu(), nn::Role::embedding),
                                               param("ln.weight", {64}, 4, Device::cpu(), nn::Role::norm)};
        optim::Optimizer opt = one_group(optim::Kind::adamw8bit, h, ps);
        auto& rule = dynamic_cast<optim::AdamW8bitRule&>(opt.rule(0));
        CHECK(rule.is_8bit(0));
        CHECK(!rule.is_8bit(1));  // 4095 < 4096
        CHECK(rule.is_8bit(2) == !embed_fp32);
        CHECK(!rule.is_8bit(3));
        std::map<std::string, Tensor> st;
        for (const auto& [name, t] : opt.state_dict().tensors) st[name] = t;
        CHECK(st.at("blocks.0.w.state1").shape() == Shape{64, 128});
        CHECK(st.at("blocks.0.w.state2").dtype() == DType::u8);
        CHECK(st.at("blocks.0.w.absmax1").shape() == Shape{32});
        CHECK(st.at("blocks.0.w.absmax2").dtype() == DType::f32);
        CHECK(st.at("blocks.0.b.exp_avg").shape() == Shape{4095});
        CHECK(st.at("blocks.0.b.exp_avg_sq").dtype() == DType::f32);
        CHECK(st.count("blocks.0.b.state1") == 0);
        CHECK(st.at(embed_fp32 ? "wte.exp_avg" : "wte.absmax1").shape() == (embed_fp32 ? Shape{100, 41} : Shape{17}));
        CHECK(st.at("qmap1").shape() == Shape{256});
        CHECK(st.at("qmap2").shape() == Shape{256});
        const int64_t wte = embed_fp32 ? 8 * 4100 : 2 * 4100 + 8 * 17;
        const int64_t expected = (2 * 8192 + 8 * 32) + 8 * 4095 + wte + 8 * 64 + 2 * 1024;
        CHECK(opt.state_bytes() == expected);
        const std::string line = opt.report()[0];
        INFO(line);
        CHECK(line.find(embed_fp32 ? "(3 with f32 state: numel < 4096 or embedding)"
                                   : "(2 with f32 state: numel < 4096)") != std::string::npos);
    }
}

namespace {

// bnb test_optimizer8bit's protocol on `device`: 50 steps of g = 0.01·N(0, 1) from p = 0.1·N(0, 1)
// with the API defaults; after every step, the parameters within mean |Δp| < 6e-5 and mean
// |Δp|/|p| < 6e-4 of an f32 AdamW step from the same start, fewer than 20 elements of each
// dequantized state outside isclose(atol 3e-3, rtol 1e-3) of the reference's; then the reference
// continues from the 8-bit parameters and dequantized states.
void check_bnb_protocol(const Shape& shape, Device device) {
    INFO("shape " << shape_str(shape));
    const optim::Hyper h = optim::api_defaults(optim::Kind::adamw8bit);
    const auto start = std::chrono::steady_clock::now();
    nn::Parameter p = param("p", shape, 21, device);
    optim::Optimizer opt = one_group(optim::Kind::adamw8bit, h, {p});
    const auto& rule = dynamic_cast<optim::AdamW8bitRule&>(opt.rule(0));
    REQUIRE(rule.is_8bit(0));
    std::map<std::string, Tensor> st;
    for (const auto& [name, t] : rule.state()) st[name] = t;  // live handles, no copies
    const size_t n = size_t(p.tensor.numel());
    AdamWF32 ref{float(h.lr), float(h.beta1), float(h.beta2), float(h.eps), float(h.weight_decay),
                 p.tensor.to_vector<float>(), std::vector<float>(n), std::vector<float>(n)};
    for (int step = 1; step <= 50; ++step) {
        INFO("step " << step);
        const std::vector<float> g = grad_values(p, step, 0);
        set_grad(p, g);
        opt.step();
        ref.step(g);
        const std::vector<float> p8 = p.tensor.to_vector<float>();
        double err = 0, rel = 0;
        for (size_t i = 0; i < n; ++i) {
            const double d = std::fabs(double(ref.p[i]) - p8[i]);
            err += d;
            rel += d / (std::fabs(double(ref.p[i])) + 1e-9);
        }
        CHECK(err / double(n) < 6e-5);
        CHECK(rel / double(n) < 6e-4);
        const std::vector<double> m8 = dequantized(st.at("p.state1"), st.at("p.absmax1"), true);
        const std::vector<double> v8 = dequantized(st.at("p.state2"), st.at("p.absmax2"), false);
        int64_t far_m = 0, far_v = 0;
        for (size_t i = 0; i < n; ++i) {  // torch.isclose(reference, dequantized, atol 3e-3, rtol 1e-3)
            far_m += !(std::fabs(ref.m[i] - m8[i]) <= 3e-3 + 1e-3 * std::fabs(m8[i]));
            far_v += !(std::fabs(ref.v[i] - v8[i]) <= 3e-3 + 1e-3 * std::fabs(v8[i]));
        }
        CHECK(far_m < 20);
        CHECK(far_v < 20);
        // Keep the two close: the reference continues from the 8-bit parameters and states.
        ref.p = p8;
        for (size_t i = 0; i < n; ++i) ref.m[i] = float(m8[i]), ref.v[i] = float(v8[i]);
    }
    MESSAGE("adamw8bit bnb protocol " << shape_str(shape) << " on " << device.str() << ": "
                                      << std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count()
                                      << " s");
}

}  // namespace

TEST_CASE("adamw8bit: against f32 AdamW with bnb's protocol (50 steps, params and dequantized states)") {
    // NOTE: 1024×4097 (≈ 20 s of CPU here) runs in the CUDA case only.
    for (const Shape& shape : {Shape{1024, 32}, Shape{1024, 1024}}) check_bnb_protocol(shape, Device::cpu());
}

LUMEN_CUDA_TEST("adamw8bit: against f32 AdamW with bnb's protocol on the GPU (incl. 1024x4097)") {
    for (const Shape& shape : {Shape{1024, 32}, Shape{1024, 1024}, Shape{1024, 4097}}) check_bnb_protocol(shape, device);
}

LUMEN_DEVICE_TEST("adamw8bit: a NaN or Inf gradient or loss skips the step and changes nothing") {
    check_bad_steps_write_nothing(optim::Kind::adamw8bit, hyper_8bit(500), device);
}

LUMEN_DEVICE_TEST("adamw8bit: save -> load -> continue equals the uninterrupted run bit for bit") {
    optim::Hyper h = hyper_8bit(500);  // w (561) and v (1000) 8-bit, b (1) and e (0) f32
    h.weight_decay = 0.1;
    check_save_load_continue(optim::Kind::adamw8bit, h, device, 5);
    check_save_load_continue(optim::Kind::adamw8bit, h, device, 0);
    check_save_load_continue(optim::Kind::adamw8bit, hyper_8bit(0), device, 3);
}

TEST_CASE("adamw8bit: loading a map more than 1 ulp from the built one is an error naming it") {
    nn::Parameter p = param("p", {300}, 1);
    optim::Optimizer opt = one_group(optim::Kind::adamw8bit, hyper_8bit(0), {p});
    set_grad(p, grad_values(p, 1, 0));
    opt.step();
    const optim::StateDict saved = opt.state_dict();
    auto with_map_entry = [&](const char* key, size_t index, int ulps) {
        optim::StateDict s = saved;
        for (auto& [name, t] : s.tensors)
            if (name == key) {
                std::vector<float> v = t.to_vector<float>();
                for (int k = 0; k < ulps; ++k) v[index] = std::nextafter(v[index], 2.0f);
                t = Tensor::from(v, {256});
            }
        return s;
    };
    nn::Parameter q = param("p", {300}, 1);
    optim::Optimizer other = one_group(optim::Kind::adamw8bit, hyper_8bit(0), {q});
    CHECK_NOTHROW(other.load_state_dict(with_map_entry("qmap1", 200, 1)));
    CHECK_NOTHROW(other.load_state_dict(with_map_entry("qmap2", 3, 1)));
    CHECK_THROWS_CONTAINING(other.load_state_dict(with_map_entry("qmap1", 200, 2)), "qmap1 entry 200");
    CHECK_THROWS_CONTAINING(other.load_state_dict(with_map_entry("qmap2", 3, 2)), "more than 1 ulp");
}

namespace {

// The CUDA step against the CPU step on every kind of 8-bit tensor (partial blocks, one element,
// none, an odd storage offset) plus f32-state tensors: per step, the codes equal except at most 20
// that differ by one code; absmax and parameters within rtol 1e-5, atol 1e-6; f32 states too.
void check_codes_cuda_vs_cpu(Device device, const optim::Hyper& h) {
    auto make = [&](Device d) {
        std::vector<nn::Parameter> ps = {param("w", {257, 129}, 1, d), param("b", {1}, 2, d), param("v", {100003}, 3, d),
                                         param("e", {0}, 4, d), param("m", {1024, 4097}, 6, d),
                                         param("small", {300}, 7, d)};
        Tensor base = Tensor::from(normal(1001, 5, 0.1), {1001}, d);
        Layout shifted = Layout::contiguous({40, 25});
        shifted.offset = 1;
        Tensor odd = Tensor::over(base.storage(), shifted, DType::f32);
        odd.set_requires_grad(true);
        ps.push_back({"odd", odd, nn::Role::other, {}});
        return one_group(optim::Kind::adamw8bit, h, ps);
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
        const double scale = 1.0 - 0.02 * step;
        cpu.step({scale, optim::clip_flags(pc, 0.05)});
        gpu.step({scale, optim::clip_flags(pg, 0.05)});
        for (size_t i = 0; i < pc.size(); ++i) {
            std::string first;
            CHECK_MESSAGE(mismatches(values(pg[i].tensor), values(pc[i].tensor), 1e-6, 1e-5, &first) == 0,
                          "param " << pc[i].name << ": " << first);
        }
        const auto sc = cpu.state_dict().tensors, sg = gpu.state_dict().tensors;
        REQUIRE(sc.size() == sg.size());
        int64_t code_diffs = 0;
        for (size_t i = 0; i < sc.size(); ++i) {
            INFO("state " << sc[i].first);
            REQUIRE(sc[i].first == sg[i].first);
            if (sc[i].second.dtype() == DType::u8) {
                const std::vector<int> a = sc[i].second.to_vector<int>(), b = sg[i].second.to_vector<int>();
                for (size_t k = 0; k < a.size(); ++k) {
                    CHECK(std::abs(a[k] - b[k]) <= 1);
                    code_diffs += a[k] != b[k];
                }
            } else {
                std::string first;
                CHECK_MESSAGE(mismatches(values(sg[i].second), values(sc[i].second), 1e-6, 1e-5, &first) == 0, first);
            }
        }
        CHECK(code_diffs <= 20);
    }
    CHECK(gpu.step_count(0) == 20);
}

}  // namespace

LUMEN_CUDA_TEST("adamw8bit: CUDA matches the CPU: codes equal but for <= 20 off by one per step") {
    optim::Hyper h = hyper_8bit(0);
    h.weight_decay = 0.1, h.beta2 = 0.95;
    check_codes_cuda_vs_cpu(device, h);
    h.min_8bit_size = 4096;  // "b", "small", "odd" and "e" keep f32 state
    h.embed_fp32_state = true;
    check_codes_cuda_vs_cpu(device, h);
}

LUMEN_CUDA_TEST("adamw8bit: the same CUDA steps twice give the same bits") {
    check_cuda_repeats_bitwise(optim::Kind::adamw8bit, hyper_8bit(0), device);
    check_cuda_repeats_bitwise(optim::Kind::adamw8bit, optim::api_defaults(optim::Kind::adamw8bit), device);
}
