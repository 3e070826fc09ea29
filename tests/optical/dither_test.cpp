// tests/optical/dither_test.cpp: the output dither (specs/optical.md §5, §10 R2–R5): FNV-1a stream
// names, element-mode Philox addressing and scalar-mode offsets against the spec's known answers,
// the output quantizer using exactly those offsets (every device), and the statistics of k - s
// over 2^20 outputs on the CPU (stochastic rounding: E[k] = s; det: |k - s| <= 1/2).
#include "tests/harness.h"

#include "core/kernels/optical_output.h"

#include <bit>
#include <cmath>
#include <string>

using namespace lumen;

namespace {

uint32_t fnv(const std::string& s) { return optical::fnv1a32(s.data(), s.size()); }
uint32_t bits(float v) { return std::bit_cast<uint32_t>(v); }

}  // namespace

TEST_CASE("optical dither R2: FNV-1a-32 of module names") {
    CHECK(fnv("") == 0x811C9DC5u);
    CHECK(fnv("a") == 0xE40C292Cu);
    CHECK(fnv("blocks.0.mlp.c_fc") == 0x05E8484Fu);
}

TEST_CASE("optical dither R3: element addressing known answers") {
    optical::DitherKey key{0, 0x05E8484Fu, 0};
    const uint32_t words[] = {0x344230e2u, 0x0559046eu, 0xfb71a314u, 0xf5d08a0au, 0x7b053a89u};
    const double u[] = {0.20413494, 0.020889521, 0.98220271, 0.96021330, 0.48054850};
    for (uint64_t i = 0; i < 5; ++i) {
        INFO("i = " << i);
        CHECK(optical::dither_word(key, i) == words[i]);
        const float r = optical::dither_offset(key, i);
        CHECK(std::fabs(double(r) + 0.5 - u[i]) < 1e-8);
        CHECK(double(r) + 0.5 == double(words[i] >> 8) * 0x1p-24);  // u = (w >> 8)·2^-24, r = u - 0.5 exactly
        CHECK(optical::dither_block(key, i >> 2).v[i & 3] == words[i]);
    }
    CHECK(optical::dither_word(key, (uint64_t(1) << 32) + 5) == 0xbec4792cu);
    key.n = 1;
    CHECK(optical::dither_word(key, 0) == 0x1c5dd120u);
    key.n = uint64_t(1) << 63;  // eval counter 0
    CHECK(optical::dither_word(key, 0) == 0x161b36d4u);
}

TEST_CASE("optical dither R4: scalar-mode offsets of seeds 0, 1, 7") {
    const uint32_t u_bits[] = {0x3F4C4FD1u, 0x3E60BFCBu, 0x3DB9F85Cu};
    const double r_expected[] = {0.29809290, -0.28051835, -0.40919426};
    const uint64_t seeds[] = {0, 1, 7};
    for (int j = 0; j < 3; ++j) {
        INFO("seed " << seeds[j]);
        const float r = optical::scalar_dither_offset(seeds[j]);
        CHECK(bits(r) == bits(std::bit_cast<float>(u_bits[j]) - 0.5f));
        CHECK(std::fabs(double(r) - r_expected[j]) < 1e-7);
    }
}

// acc values with level s = c (range [0, 255], 256 levels): the output quantizer's k for each.
namespace {

struct Rounding {
    std::vector<double> k_minus_s;
};

Rounding round_on(Device device, const std::vector<float>& acc_values, int64_t N, const optical::OutputDither& d) {
    const int64_t M = int64_t(acc_values.size()) / N;
    Tensor acc = Tensor::from(acc_values, {M, N}).to(device);
    Tensor ranges = Tensor::from(std::vector<float>{0.0f, 255.0f}, {1, 2}).to(device);
    Tensor out = Tensor::empty({M, N}, DType::f32, device), stats;
    kernels::optical_output(out, stats, acc, ranges, {}, {256, false, 0.0f}, d, Tensor(), optical::OutputStats::none);
    const std::vector<float> q = out.to_vector<float>();
    Rounding r;
    for (size_t i = 0; i < q.size(); ++i) {
        const float s = optical::continuous_level(acc_values[i], 0.0f, 255.0f, 256);
        r.k_minus_s.push_back(std::nearbyint(double(q[i])) - double(s));  // the grid step is 1
    }
    return r;
}

}  // namespace

LUMEN_DEVICE_TEST("optical dither R3: the output quantizer uses r_i of i = base + m*N + n") {
    const int64_t M = 5, N = 7;
    std::vector<float> acc = test::random({M * N}, 5, DType::f32, Device::cpu(), 0, 255).to_vector<float>();
    optical::OutputDither d;
    d.key = {3, 0x05E8484Fu, 9};
    d.index_base = 13;
    Tensor out = Tensor::empty({M, N}, DType::f32, device), stats;
    kernels::optical_output(out, stats, Tensor::from(acc, {M, N}).to(device),
                            Tensor::from(std::vector<float>{0.0f, 255.0f}, {1, 2}).to(device), {}, {256, false, 0.0f}, d,
                            Tensor(), optical::OutputStats::none);
    const std::vector<float> q = out.to_vector<float>();
    for (int64_t i = 0; i < M * N; ++i) {
        const float r = optical::dither_offset(d.key, uint64_t(13 + i));
        CHECK(bits(q[size_t(i)]) == bits(optical::quantize_dithered(acc[size_t(i)], 0.0f, 255.0f, r, {256, false, 0.0f})));
    }
}

TEST_CASE("optical dither R4: scalar mode rounds up a fraction 0.5 + r of the outputs") {
    const int64_t n = 1 << 18;
    std::vector<float> acc = test::random({n}, 21, DType::f32, Device::cpu(), 0.5, 254.5).to_vector<float>();
    const double expected_up[] = {0.798, 0.219, 0.091};
    const uint64_t seeds[] = {0, 1, 7};
    for (int j = 0; j < 3; ++j) {
        optical::OutputDither d;
        d.scalar = true;
        d.r = optical::scalar_dither_offset(seeds[j]);
        const Rounding rr = round_on(Device::cpu(), acc, 512, d);
        int64_t up = 0;
        double lo = 1e9, hi = -1e9;
        for (double e : rr.k_minus_s) {
            up += e > 0;
            lo = std::min(lo, e);
            hi = std::max(hi, e);
        }
        INFO("seed " << seeds[j] << " r " << d.r);
        CHECK(std::fabs(double(up) / double(n) - expected_up[j]) < 0.005);
        CHECK(lo >= double(d.r) - 0.5 - 1e-4);  // k - s within [r - 1/2, r + 1/2]
        CHECK(hi <= double(d.r) + 0.5 + 1e-4);
    }
}

TEST_CASE("optical dither R5: element-mode rounding statistics over 2^20 outputs (CPU)") {
    const int64_t n = 1 << 20;
    const std::vector<float> acc = test::random({n}, 33, DType::f32, Device::cpu(), 0.5, 254.5).to_vector<float>();
    optical::OutputDither d;
    d.key = {0, 0x05E8484Fu, 0};
    const Rounding rr = round_on(Device::cpu(), acc, 1024, d);
    double sum = 0, sq = 0, lo = 1e9, hi = -1e9;
    int64_t up = 0;
    for (double e : rr.k_minus_s) {
        sum += e;
        sq += e * e;
        lo = std::min(lo, e);
        hi = std::max(hi, e);
        up += e > 0;
    }
    const double mean = sum / double(n), mean_sq = sq / double(n);
    CHECK(std::fabs(mean) < 5 * 0.41 / std::sqrt(double(n)));
    CHECK(mean_sq >= 0.160);
    CHECK(mean_sq <= 0.173);  // exact: 1/6
    CHECK(std::max(-lo, hi) < 1.0);
    CHECK(hi - lo > 1.9);  // spread ≈ 2 (per-element noise)
    CHECK(std::fabs(double(up) / double(n) - 0.5) < 0.002);

    // Values on the grid stay there with probability > 1 - 2^-15.
    std::vector<float> grid(static_cast<size_t>(n));
    for (int64_t i = 0; i < n; ++i) grid[size_t(i)] = float(i % 256);
    int64_t moved = 0;
    for (double e : round_on(Device::cpu(), grid, 1024, d).k_minus_s) moved += std::fabs(e) > 0.25;  // s is j ± ulps
    CHECK(double(moved) / double(n) < std::ldexp(1.0, -15));

    // Det mode (r = 0): |k - s| <= 1/2, mean square 1/12.
    optical::OutputDither det;
    det.scalar = true;
    det.r = 0.0f;
    double det_sq = 0, det_max = 0;
    for (double e : round_on(Device::cpu(), acc, 1024, det).k_minus_s) {
        det_sq += e * e;
        det_max = std::max(det_max, std::fabs(e));
    }
    CHECK(det_max <= 0.5);
    CHECK(std::fabs(det_sq / double(n) - 1.0 / 12) < 0.002);
}
