// tests/optical/stats_test.cpp: the range statistics (specs/optical.md §4, §10 S1, S4) on every
// device against plain loops written here: min/max over the finite elements (any dtype, strides,
// -0, nothing finite), quantiles against a sorted-array evaluation of §4.1, the update rule §4.2
// (S1's EMA bits, eval mode, uncalibrated, empty batches), and the output quantizer's fused
// per-part statistics (accumulator or quantized output).
#include "tests/harness.h"

#include "core/kernels/optical_output.h"
#include "core/kernels/optical_stats.h"

#include <algorithm>
#include <bit>
#include <cmath>

using namespace lumen;

namespace {

uint32_t bits(float v) { return std::bit_cast<uint32_t>(v); }

// x's values as f32 (row-major), keeping only the finite ones.
std::vector<float> finite_values(const Tensor& x) {
    std::vector<float> out;
    for (float v : x.to_vector<float>())
        if (std::isfinite(v)) out.push_back(v);
    return out;
}

// §4.1 written out: sort, pos = a·(n-1) in f64, j = floor(pos), w = f32(pos - j), v_j + w·(v_{j+1} - v_j).
float reference_quantile(std::vector<float> v, double a) {
    std::sort(v.begin(), v.end());
    const int64_t n = int64_t(v.size());
    const double pos = a * double(n - 1);
    const int64_t j = int64_t(std::floor(pos));
    const float w = float(pos - double(j));
    if (j + 1 >= n) return v[size_t(j)];
    const float diff = v[size_t(j + 1)] - v[size_t(j)];
    const float scaled = w * diff;
    return v[size_t(j)] + scaled;
}

// A tensor with NaN and ±inf sprinkled in, in dtype dt.
Tensor with_non_finite(const Shape& shape, uint64_t seed, DType dt, double lo, double hi) {
    std::vector<double> v = test::random(shape, seed, DType::f64, Device::cpu(), lo, hi).to_vector<double>();
    for (size_t i = 0; i < v.size(); i += 7) v[i] = (i / 7) % 3 == 0 ? NAN : ((i / 7) % 3 == 1 ? INFINITY : -INFINITY);
    return Tensor::from(v, shape).to(dt);
}

Tensor pair(float lo, float hi, Device device) { return Tensor::from(std::vector<float>{lo, hi}).to(device); }

}  // namespace

LUMEN_DEVICE_TEST("optical stats: min_max over the finite elements, any dtype and layout") {
    for (DType dt : {DType::f32, DType::bf16, DType::f16}) {
        for (const Shape& shape : {Shape{0}, Shape{1}, Shape{5}, Shape{37, 129}, Shape{3, 1000}}) {
            const Tensor x = with_non_finite(shape, uint64_t(numel_of(shape)) + 1, dt, -3, 5);
            const std::vector<Tensor> views = shape.size() == 2
                ? std::vector<Tensor>{x, x.transpose(0, 1), x.slice(1, 1, shape[1], 3)}
                : std::vector<Tensor>{x};
            for (const Tensor& v : views) {
                INFO(dtype_name(dt) << " " << describe(v));
                const std::vector<float> f = finite_values(v);
                Tensor buffer = Tensor::full({3, 2}, 9.0, DType::f32, device);  // write into row 1 only
                Tensor row = buffer.select(0, 1);
                kernels::optical_min_max(row, v.to(device));
                const std::vector<float> got = buffer.to_vector<float>();
                const float lo = f.empty() ? INFINITY : *std::min_element(f.begin(), f.end());
                const float hi = f.empty() ? -INFINITY : *std::max_element(f.begin(), f.end());
                CHECK(got[2] == lo);
                CHECK(got[3] == hi);
                CHECK(got[0] == 9.0f);
                CHECK(got[5] == 9.0f);
            }
        }
    }
    Tensor out = Tensor::empty({2}, DType::f32, device);
    kernels::optical_min_max(out, Tensor::from(std::vector<float>{0.0f, -0.0f, NAN}).to(device));
    CHECK(bits(out.to_vector<float>()[0]) == 0x80000000u);  // -0 below +0, exactly as the GPU orders them
    CHECK(bits(out.to_vector<float>()[1]) == 0u);
    kernels::optical_min_max(out, Tensor::from(std::vector<float>{NAN, INFINITY, -INFINITY}).to(device));
    CHECK(out.to_vector<float>() == std::vector<float>{INFINITY, -INFINITY});
}

LUMEN_DEVICE_TEST("optical stats S4: quantiles equal a sorted-array evaluation of 4.1, non-finite ignored") {
    Tensor out = Tensor::empty({2}, DType::f32, device);
    kernels::optical_quantiles(out, Tensor::from(std::vector<float>{5, 1, 4, 2, 3}).to(device), 0.1, 0.25);
    CHECK(out.to_vector<float>() == std::vector<float>{1.4f, 2.0f});
    kernels::optical_quantiles(out, Tensor::from(std::vector<float>{NAN, 2.5f, INFINITY}).to(device), 0.001, 0.999);
    CHECK(out.to_vector<float>() == std::vector<float>{2.5f, 2.5f});  // one finite value
    kernels::optical_quantiles(out, Tensor::from(std::vector<float>{NAN, -INFINITY}).to(device), 0.001, 0.999);
    CHECK(out.to_vector<float>() == std::vector<float>{INFINITY, -INFINITY});
    kernels::optical_quantiles(out, Tensor::empty({0}, DType::f32, device), 0.001, 0.999);
    CHECK(out.to_vector<float>() == std::vector<float>{INFINITY, -INFINITY});

    const std::pair<double, double> qs[] = {{0.001, 0.999}, {0.25, 0.75}, {0.1, 0.9000001}};
    for (DType dt : {DType::f32, DType::bf16, DType::f16})
        for (const Shape& shape : {Shape{2}, Shape{3, 7}, Shape{64, 301}, Shape{1000, 1001}}) {
            const Tensor x = with_non_finite(shape, uint64_t(shape[0]) * 3 + 1, dt, -2, 7);
            const Tensor v = shape.size() == 2 ? x.transpose(0, 1) : x;
            for (const auto& [a, b] : qs) {
                INFO(dtype_name(dt) << " " << describe(v) << " (" << a << ", " << b << ")");
                kernels::optical_quantiles(out, v.to(device), a, b);
                const std::vector<float> f = finite_values(v);
                const std::vector<float> got = out.to_vector<float>();
                CHECK(bits(got[0]) == bits(reference_quantile(f, a)));
                CHECK(bits(got[1]) == bits(reference_quantile(f, b)));
            }
        }
}

LUMEN_DEVICE_TEST("optical stats S1: the EMA update, f = 0.9, bit exact") {
    const float f = float(0.9), g = float(1.0 - 0.9);
    Tensor mm = pair(INFINITY, -INFINITY, device);
    kernels::optical_range_update(mm, pair(-2, 3, device), f, g, true);
    CHECK(mm.to_vector<float>() == std::vector<float>{-2.0f, 3.0f});
    kernels::optical_range_update(mm, pair(-4, 1, device), f, g, true);
    std::vector<float> v = mm.to_vector<float>();
    CHECK(bits(v[0]) == 0xC00CCCCDu);  // -2.2000000
    CHECK(bits(v[1]) == 0x40333332u);  //  2.7999997
    kernels::optical_range_update(mm, pair(-1, 5, device), f, g, true);
    v = mm.to_vector<float>();
    CHECK(std::fabs(double(v[0]) - -2.0799999) < 2e-7);
    CHECK(std::fabs(double(v[1]) - 3.0199997) < 2e-7);
    CHECK(bits(v[0]) == bits(float(0.9) * -2.2000000476837158f + float(0.1) * -1.0f));
}

LUMEN_DEVICE_TEST("optical stats: update rule in eval mode, uncalibrated ranges and empty batches") {
    const float f = 0.9f, g = 0.1f;
    Tensor mm = pair(-1, 2, device);
    kernels::optical_range_update(mm, pair(-5, 5, device), f, g, false);  // eval: unchanged
    CHECK(mm.to_vector<float>() == std::vector<float>{-1.0f, 2.0f});
    for (bool training : {false, true}) {
        kernels::optical_range_update(mm, pair(INFINITY, -INFINITY, device), f, g, training);  // nothing finite
        CHECK(mm.to_vector<float>() == std::vector<float>{-1.0f, 2.0f});
        Tensor fresh = pair(INFINITY, -INFINITY, device);
        kernels::optical_range_update(fresh, pair(-3, 4, device), f, g, training);  // assigned in any mode
        CHECK(fresh.to_vector<float>() == std::vector<float>{-3.0f, 4.0f});
    }
    Tensor frozen = pair(-1, 2, device);
    kernels::optical_range_update(frozen, pair(-7, 9, device), 1.0f, 0.0f, true);  // f = 1 freezes
    CHECK(frozen.to_vector<float>() == std::vector<float>{-1.0f, 2.0f});
    Tensor rows = Tensor::full({3, 2}, 1.0, DType::f32, device);  // a row of a (P, 2) buffer
    Tensor row = rows.select(0, 2);
    kernels::optical_range_update(row, pair(-1, 3, device), 0.5f, 0.5f, true);
    CHECK(rows.to_vector<float>() == std::vector<float>{1, 1, 1, 1, 0, 2});
}

LUMEN_DEVICE_TEST("optical stats: the output quantizer's fused per-part statistics") {
    const int64_t M = 37, N = 23;
    const std::vector<int64_t> parts = {10, 0, 13};
    Tensor acc = with_non_finite({M, N}, 9, DType::f32, -6, 9).contiguous();
    const Tensor ranges = Tensor::from(std::vector<float>{-4, 4, 0, 1, -2, 8}, {3, 2});
    const Tensor bias = test::random({N}, 2, DType::f32);
    optical::OutputDither d;
    d.key = {1, 2, 3};
    for (auto what : {optical::OutputStats::product, optical::OutputStats::quantized}) {
        for (DType out_dt : {DType::f32, DType::bf16}) {
            Tensor out = Tensor::empty({M, N}, out_dt, device), stats = Tensor::empty({3, 2}, DType::f32, device);
            kernels::optical_output(out, stats, acc.to(device), ranges.to(device), parts, {256, false, 0.0f}, d,
                                    bias.to(device), what);
            const std::vector<float> a = acc.to_vector<float>(), y = out.to_vector<float>(), s = stats.to_vector<float>();
            int64_t n0 = 0;
            for (size_t q = 0; q < parts.size(); ++q) {
                float lo = INFINITY, hi = -INFINITY;
                for (int64_t m = 0; m < M; ++m)
                    for (int64_t n = n0; n < n0 + parts[q]; ++n) {
                        const float v = what == optical::OutputStats::product ? a[size_t(m * N + n)] : y[size_t(m * N + n)];
                        if (!std::isfinite(v)) continue;
                        lo = std::min(lo, v);
                        hi = std::max(hi, v);
                    }
                INFO("part " << q << " out " << dtype_name(out_dt));
                CHECK(s[2 * q] == lo);
                CHECK(s[2 * q + 1] == hi);
                n0 += parts[q];
            }
            CHECK(s[2] == INFINITY);  // the empty part
        }
    }
}
