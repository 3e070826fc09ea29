// tests/optical/quantize_test.cpp: the operand quantizer Q_det (core/kernels/optical_stats.h) on
// the spec's known answers (specs/optical.md §10 Q1–Q4, Q7, M(a)) for f32, bf16 and f16 inputs on
// every device, and CPU = CUDA bit for bit (Q5) for the operand and the output quantizer on random
// and awkward inputs (0, 1 and odd sizes, ties, ±inf, NaN, strided views, every dtype pair).
#include "tests/harness.h"

#include "core/kernels/optical_output.h"
#include "core/kernels/optical_stats.h"

#include <bit>
#include <cmath>
#include <cstring>
#include <optional>

using namespace lumen;

namespace {

constexpr DType float_dtypes[] = {DType::f32, DType::bf16, DType::f16};

Tensor range_tensor(float lo, float hi, Device device) { return Tensor::from(std::vector<float>{lo, hi}).to(device); }

// Q_det of `values` (rounded to `dt` first) over [lo, hi] with L levels and an optional LUT, in f32.
std::vector<float> quantize(const std::vector<double>& values, DType dt, Device device, float lo, float hi,
                            int32_t L = 256, std::optional<float> lut = std::nullopt) {
    Tensor x = Tensor::from(values).to(dt).to(device);
    Tensor out = Tensor::empty(x.shape(), DType::f32, device);
    kernels::optical_quantize(out, x, range_tensor(lo, hi, device), {L, lut.has_value(), lut.value_or(0.0f)});
    return out.to_vector<float>();
}

uint32_t bits(float v) { return std::bit_cast<uint32_t>(v); }

// |actual - expected| within 2e-9 (the spec gives 8 digits; f32 steps near 0.03 are 1.9e-9).
void check_value(float actual, double expected, double input) {
    INFO("input " << input << ": got " << actual << ", expected " << expected);
    CHECK(std::fabs(double(actual) - expected) <= 2e-9);
}

}  // namespace

LUMEN_DEVICE_TEST("optical quantize Q1: LUT floor on [-1, 1], lambda = 0.02004") {
    for (DType dt : float_dtypes) {
        INFO("dtype " << dtype_name(dt));
        const std::vector<double> in = {0.0, 0.01, -0.01, 0.02, -0.02, 1e-6, -1e-6, 0.03, -0.03, 1.0, 2.0, -5.0};
        const std::vector<float> q = quantize(in, dt, device, -1.0f, 1.0f, 256, 0.02004f);
        CHECK(bits(q[0]) == 0x3CA42AEDu);  // an exact 0 weight becomes +λ·hi
        for (size_t i : {1u, 3u, 5u}) CHECK(bits(q[i]) == 0x3CA42AEDu);
        for (size_t i : {2u, 4u, 6u}) CHECK(bits(q[i]) == (0x3CA42AEDu | 0x80000000u));
        check_value(q[7], 0.027451038, in[7]);    // level 131
        check_value(q[8], -0.027450979, in[8]);   // level 124
        CHECK(q[9] == 1.0f);
        CHECK(q[10] == 1.0f);
        CHECK(q[11] == -1.0f);
    }
}

LUMEN_DEVICE_TEST("optical quantize Q2: the LUT keeps exact zeros and uses lambda*|lo| below zero") {
    for (DType dt : float_dtypes) {
        INFO("dtype " << dtype_name(dt));
        const std::vector<float> a = quantize({0.0, 0.001, 0.003, -0.2}, dt, device, 0.0f, 1.0f, 256, 0.02004f);
        CHECK(bits(a[0]) == 0u);
        CHECK(bits(a[1]) == 0u);           // level 0 stays exactly 0
        CHECK(bits(a[2]) == 0x3CA42AEDu);  // level 1 is floored up to λ·hi
        CHECK(bits(a[3]) == 0u);
        const std::vector<float> b = quantize({0.0, 0.001, -0.001, -0.004}, dt, device, -0.5f, 1.0f, 256, 0.02004f);
        CHECK(b[0] == 0.0f);  // level 85 of [-0.5, 1] is exactly 0
        CHECK(b[1] == 0.0f);
        CHECK(b[2] == 0.0f);
        check_value(b[3], -0.01002, -0.004);  // -λ·|lo|
        CHECK(b[3] == -(0.02004f * 0.5f));
    }
}

LUMEN_DEVICE_TEST("optical quantize Q3: ties round half to even") {
    for (DType dt : float_dtypes) {
        INFO("dtype " << dtype_name(dt));
        CHECK(quantize({0.5, 1.5, 2.5, 3.5, 2.51, -3.0, 7.0}, dt, device, 0.0f, 4.0f, 5) ==
              std::vector<float>{0, 2, 2, 4, 3, 0, 4});
        CHECK(quantize({-3.5, -2.5, -1.5, -0.5, 0.5, 1.5, 2.5, 3.5}, dt, device, -4.0f, 4.0f, 9) ==
              std::vector<float>{-4, -2, -2, 0, 0, 2, 2, 4});
    }
}

LUMEN_DEVICE_TEST("optical quantize Q4: every bf16 value in [-1, 1] lands on the f32 level, within 0.004") {
    std::vector<double> values;
    for (uint32_t b = 0; b < 0x10000u; ++b) {
        const double v = double(static_cast<float>(bf16::from_bits(uint16_t(b))));
        if (v >= -1.0 && v <= 1.0) values.push_back(v);
    }
    Tensor x = Tensor::from(values).to(DType::bf16).to(device);
    Tensor out = Tensor::empty(x.shape(), DType::bf16, device);
    kernels::optical_quantize(out, x, range_tensor(-1.0f, 1.0f, device), {256, false, 0.0f});
    const std::vector<float> q = out.to_vector<float>();
    double worst = 0;
    size_t wrong_level = 0;
    for (size_t i = 0; i < values.size(); ++i) {
        // §2.1 in f32, written out here: s = ((x - lo) / d) · 255, k = rne(s)
        const float x32 = float(values[i]);
        const float d = (1.0f - -1.0f) + 1e-8f;
        const float s = ((x32 - -1.0f) / d) * 255.0f;
        const float k = std::nearbyint(s);
        const double level = std::nearbyint((double(q[i]) + 1.0) / 2.0 * 255.0);  // the grid level nearest q
        wrong_level += level != double(k);
        worst = std::max(worst, std::fabs(double(q[i]) - values[i]));
    }
    CHECK(values.size() > 30000);
    CHECK(wrong_level == 0);
    CHECK(worst <= 0.004);
    CHECK(worst >= 0.0039);  // 0.0039368 [derived]
}

LUMEN_DEVICE_TEST("optical quantize Q7: the probability quantizer on [0, 1]") {
    const float p0 = 1.0f / 510.0f;
    const std::vector<float> q = quantize({p0, 0.0019, 1.0 - double(p0), 0.999}, DType::f32, device, 0.0f, 1.0f);
    CHECK(q[0] == 0.0f);  // the tie at 1/510 rounds to the even level 0
    CHECK(q[1] == 0.0f);
    CHECK(q[2] == (254.0f / 255.0f) * 1.0f + 0.0f);  // level 254
    CHECK(q[3] == 1.0f);                            // level 255
    for (DType dt : {DType::bf16, DType::f16}) {
        const std::vector<float> r = quantize({0.0015, 0.001, 0.999}, dt, device, 0.0f, 1.0f);
        CHECK(r == std::vector<float>{0.0f, 0.0f, 1.0f});
    }
}

LUMEN_DEVICE_TEST("optical quantize: NaN passes through as one canonical quiet NaN, inf saturates") {
    const uint32_t negative_nan = 0xFFC00001u;
    for (DType out_dt : float_dtypes) {
        Tensor x = Tensor::from(std::vector<float>{NAN, std::bit_cast<float>(negative_nan), INFINITY, -INFINITY}).to(device);
        Tensor out = Tensor::empty({4}, out_dt, device);
        kernels::optical_quantize(out, x, range_tensor(-1.0f, 2.0f, device), {256, true, 0.02004f});
        const std::vector<float> q = out.to_vector<float>();
        CHECK(q[2] == 2.0f);
        CHECK(q[3] == -1.0f);
        if (out_dt == DType::f32) {
            CHECK(bits(q[0]) == 0x7FC00000u);
            CHECK(bits(q[1]) == 0x7FC00000u);
        } else {
            const std::vector<uint16_t> raw = [&] {
                std::vector<uint16_t> r(4);
                std::memcpy(r.data(), out.to(Device::cpu()).data_ptr(), 8);
                return r;
            }();
            const uint16_t want = out_dt == DType::bf16 ? 0x7FC0 : 0x7E00;
            CHECK(raw[0] == want);
            CHECK(raw[1] == want);
        }
    }
}

LUMEN_DEVICE_TEST("optical quantize M(a): det Q within 2/256 of x outside the LUT band") {
    std::vector<double> values = test::random({8}, 11, DType::f64).to_vector<double>();
    values.push_back(0.0015);  // inside the band |x| < 0.0022 (with seed 11's values outside it)
    values.push_back(-0.002);
    const std::vector<float> q = quantize(values, DType::f32, device, -1.0f, 1.0f, 256, 0.01f);
    for (size_t i = 0; i < values.size(); ++i) {
        INFO("x = " << values[i] << ", q = " << q[i]);
        // Q1's rule: a value whose level dequantizes to |q| < λ·1 is shown at ±λ.
        if (std::fabs(values[i]) < 0.0022) CHECK(std::fabs(q[i]) == 0.01f);
        else CHECK(std::fabs(double(q[i]) - values[i]) < 2.0 / 256);
    }
}

// ---- Q5: CPU = CUDA, bit for bit ----

namespace {

// Awkward values: ties of [0, 255] with 256 levels, ±inf, NaN, -0, range ends, outside the range.
Tensor awkward(int64_t n, uint64_t seed, DType dt) {
    std::vector<double> v = test::random({n}, seed, DType::f64, Device::cpu(), -300, 300).to_vector<double>();
    const double special[] = {0.5, 1.5, 2.5, 127.5, 254.5, INFINITY, -INFINITY, NAN, -0.0, 0.0, 255.0, 300.0, -1e-30};
    for (int64_t i = 0; i < n; i += 3) v[size_t(i)] = special[size_t(i / 3) % std::size(special)];
    return Tensor::from(v).to(dt);
}

// x views of one shape family: contiguous, transposed, every other column.
std::vector<Tensor> layouts_of(const Tensor& flat, int64_t rows, int64_t cols) {
    std::vector<Tensor> out = {flat.narrow(0, 0, rows * cols).reshape({rows, cols})};
    if (flat.numel() >= 2 * rows * cols && rows * cols > 0) {
        out.push_back(flat.narrow(0, 0, rows * cols).reshape({cols, rows}).transpose(0, 1));
        out.push_back(flat.narrow(0, 0, 2 * rows * cols).reshape({rows, 2 * cols}).slice(1, 0, 2 * cols, 2));
    }
    return out;
}

}  // namespace

LUMEN_CUDA_TEST("optical quantize Q5: operand quantizer, CPU = CUDA bit for bit") {
    const std::pair<int64_t, int64_t> shapes[] = {{0, 5}, {1, 1}, {1, 7}, {33, 65}, {3, 257}};
    const std::pair<float, float> ranges[] = {{0.0f, 255.0f}, {-1.0f, 1.0f}, {-0.5f, 3.0f}, {2.0f, 2.0f}};
    for (DType dt : float_dtypes)
        for (DType out_dt : float_dtypes)
            for (const auto& [rows, cols] : shapes) {
                const Tensor flat = awkward(std::max<int64_t>(2 * rows * cols, 1), uint64_t(rows * 31 + cols), dt);
                for (const Tensor& x : layouts_of(flat, rows, cols))
                    for (const auto& [lo, hi] : ranges)
                        for (bool lut : {false, true}) {
                            INFO(dtype_name(dt) << " -> " << dtype_name(out_dt) << " " << describe(x) << " [" << lo
                                                << ", " << hi << "] lut " << lut);
                            const optical::QuantParams p{256, lut, 0.02004f};
                            Tensor cpu_out = Tensor::empty(x.shape(), out_dt);
                            kernels::optical_quantize(cpu_out, x, range_tensor(lo, hi, Device::cpu()), p);
                            Tensor gpu_out = Tensor::empty(x.shape(), out_dt, device);
                            kernels::optical_quantize(gpu_out, x.to(device), range_tensor(lo, hi, device), p);
                            CHECK(test::same_bits(gpu_out.to(Device::cpu()), cpu_out));
                        }
            }
}

LUMEN_CUDA_TEST("optical quantize Q5: output quantizer (dither, parts, bias, statistics), CPU = CUDA") {
    struct Case {
        int64_t M, N;
        std::vector<int64_t> parts;
    };
    const Case cases[] = {{0, 4, {}}, {1, 1, {}}, {3, 5, {2, 3}}, {17, 33, {11, 11, 11}}, {129, 70, {64, 3, 3}}};
    for (const Case& c : cases)
        for (DType out_dt : float_dtypes)
            for (int mode = 0; mode < 3; ++mode) {  // element (base 0), element (base 6), scalar
                const int64_t P = std::max<int64_t>(int64_t(c.parts.size()), 1);
                const Tensor acc = awkward(std::max<int64_t>(c.M * c.N, 1), uint64_t(c.M + 7 * c.N), DType::f32)
                                       .narrow(0, 0, c.M * c.N).reshape({c.M, c.N}).contiguous();
                std::vector<float> r;
                for (int64_t q = 0; q < P; ++q) {
                    r.push_back(q == 1 ? -3.0f : 0.0f);
                    r.push_back(q == 1 ? 7.5f : 255.0f);
                }
                const Tensor ranges = Tensor::from(r, {P, 2});
                optical::OutputDither dither;
                dither.key = {7, optical::fnv1a32("blocks.0.mlp.c_fc", 17), uint64_t(mode) << 62 | 5u};
                dither.index_base = mode == 1 ? 6 : 0;
                dither.scalar = mode == 2;
                dither.r = optical::scalar_dither_offset(7);
                const Tensor bias = mode == 0 ? Tensor() : test::random({c.N}, 3, mode == 1 ? DType::bf16 : DType::f32);
                const auto what = mode == 0 ? optical::OutputStats::product
                                            : (mode == 1 ? optical::OutputStats::quantized : optical::OutputStats::none);
                INFO("M " << c.M << " N " << c.N << " mode " << mode << " out " << dtype_name(out_dt));
                const optical::QuantParams p{256, false, 0.0f};
                Tensor out_cpu = Tensor::empty({c.M, c.N}, out_dt), stats_cpu = Tensor::empty({P, 2});
                kernels::optical_output(out_cpu, stats_cpu, acc, ranges, c.parts, p, dither, bias, what);
                Tensor out_gpu = Tensor::empty({c.M, c.N}, out_dt, device), stats_gpu = Tensor::empty({P, 2}, DType::f32, device);
                kernels::optical_output(out_gpu, stats_gpu, acc.to(device), ranges.to(device), c.parts, p, dither,
                                        bias.defined() ? bias.to(device) : Tensor(), what);
                CHECK(test::same_bits(out_gpu.to(Device::cpu()), out_cpu));
                if (what != optical::OutputStats::none) CHECK(test::same_bits(stats_gpu.to(Device::cpu()), stats_cpu));
            }
}
