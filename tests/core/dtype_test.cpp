// tests/core/dtype_test.cpp: dtype names and sizes; the bf16 and f16 conversions (known values,
// every bit pattern, f16 against the compiler's _Float16 on a million random floats); and
// Tensor::to(DType) between every pair of the ten dtypes, from contiguous and strided sources.
//
// The references here are written from the formats' definitions (sign, exponent, mantissa), not
// from core/dtype.h, so a shared mistake cannot hide.
#include "tests/harness.h"

#include <fmt/format.h>

#include <cfloat>
#include <cmath>
#include <limits>

using namespace lumen;

namespace {

const DType all_dtypes[] = {DType::f32, DType::f64, DType::bf16, DType::f16, DType::i32,
                            DType::i64, DType::u16, DType::u8,   DType::i8,  DType::boolean};

uint32_t bits_of(float f) { return std::bit_cast<uint32_t>(f); }
float float_of(uint32_t u) { return std::bit_cast<float>(u); }

bool f16_is_nan(uint16_t h) { return (h & 0x7c00u) == 0x7c00u && (h & 0x3ffu) != 0; }
bool bf16_is_nan(uint16_t h) { return (h & 0x7f80u) == 0x7f80u && (h & 0x7fu) != 0; }

// The value of an IEEE binary16 bit pattern, from the format's definition.
double f16_value(uint16_t h) {
    const double sign = (h & 0x8000u) ? -1.0 : 1.0;
    const int e = (h >> 10) & 0x1f, m = h & 0x3ff;
    if (e == 0x1f) return m ? std::numeric_limits<double>::quiet_NaN() : sign * INFINITY;
    if (e == 0) return sign * std::ldexp(double(m), -24);
    return sign * std::ldexp(double(1024 + m), e - 25);
}

// bf16 rounding written as "pick the nearer of the two neighbouring bf16 patterns; on a tie the
// even one": the two candidates are the f32 pattern truncated to 16 bits and the next one up.
uint16_t bf16_reference(uint32_t u) {
    const uint32_t lower = u >> 16, remainder = u & 0xffffu;
    if (remainder > 0x8000u) return uint16_t(lower + 1);
    if (remainder < 0x8000u) return uint16_t(lower);
    return uint16_t((lower & 1u) ? lower + 1 : lower);
}

// Whether `v` is exactly representable in dt.
bool holds(DType dt, double v) {
    switch (dt) {
    case DType::f64: return true;
    case DType::f32: return double(float(v)) == v;
    case DType::bf16: return double(float(v)) == v && (bits_of(float(v)) & 0xffffu) == 0;
    case DType::f16: {
        if (v == 0) return true;
        if (std::fabs(v) > 65504) return false;
        int e;
        std::frexp(v, &e);  // |v| in [2^(e-1), 2^e)
        const double ulp = std::ldexp(1.0, std::max(e - 1, -14) - 10);
        return std::fmod(v, ulp) == 0;
    }
    case DType::i32: return v == std::trunc(v) && v >= INT32_MIN && v <= INT32_MAX;
    case DType::i64: return v == std::trunc(v) && v >= -0x1p63 && v < 0x1p63;
    case DType::u16: return v == std::trunc(v) && v >= 0 && v <= UINT16_MAX;
    case DType::u8: return v == std::trunc(v) && v >= 0 && v <= UINT8_MAX;
    case DType::i8: return v == std::trunc(v) && v >= INT8_MIN && v <= INT8_MAX;
    case DType::boolean: return v == 0 || v == 1;
    }
    return false;
}

// A tensor of dtype dt holding `values`, built with plain static_casts on the host (no cast op).
Tensor make(DType dt, const std::vector<double>& values, const Shape& shape) {
    auto from = [&]<typename T>() {
        std::vector<T> v;
        for (double x : values) {
            if constexpr (std::is_same_v<T, bf16> || std::is_same_v<T, f16>) v.push_back(T(float(x)));
            else v.push_back(static_cast<T>(x));
        }
        return Tensor::from<T>(v, shape);
    };
    switch (dt) {
    case DType::f32: return from.operator()<float>();
    case DType::f64: return from.operator()<double>();
    case DType::bf16: return from.operator()<bf16>();
    case DType::f16: return from.operator()<f16>();
    case DType::i32: return from.operator()<int32_t>();
    case DType::i64: return from.operator()<int64_t>();
    case DType::u16: return from.operator()<uint16_t>();
    case DType::u8: return from.operator()<uint8_t>();
    case DType::i8: return from.operator()<int8_t>();
    case DType::boolean: {
        std::vector<bool> v;
        for (double x : values) v.push_back(x != 0);
        return Tensor::from<bool>(v, shape);
    }
    }
    return {};
}

// A contiguous tensor's elements read through data<T>() (no copy kernel), as doubles.
std::vector<double> raw_values(const Tensor& t) {
    REQUIRE(t.is_contiguous());
    std::vector<double> out;
    auto read = [&]<typename T>() {
        const T* p = t.data<T>();
        for (int64_t i = 0; i < t.numel(); ++i) {
            if constexpr (std::is_same_v<T, bf16> || std::is_same_v<T, f16>) out.push_back(double(float(p[i])));
            else out.push_back(double(p[i]));
        }
    };
    switch (t.dtype()) {
    case DType::f32: read.operator()<float>(); break;
    case DType::f64: read.operator()<double>(); break;
    case DType::bf16: read.operator()<bf16>(); break;
    case DType::f16: read.operator()<f16>(); break;
    case DType::i32: read.operator()<int32_t>(); break;
    case DType::i64: read.operator()<int64_t>(); break;
    case DType::u16: read.operator()<uint16_t>(); break;
    case DType::u8: read.operator()<uint8_t>(); break;
    case DType::i8: read.operator()<int8_t>(); break;
    case DType::boolean: read.operator()<bool>(); break;
    }
    return out;
}

// Values some dtype can hold: fractions (truncation toward zero), signs, each integer type's
// limits, and magnitudes only the wide types reach.
const std::vector<double> cast_candidates = {
    0, 1, -1, 2, -3, 0.5, -0.5, 2.75, -2.5, -7.75, 3.140625, 100, -100, 127, -128, 200, 255,
    1000, -1000, 32767, 65504, 65535, 70000, 1e6, -2147483648.0, 2147483647.0, 0x1p40, -0x1p53};

// What casting v (held by the source) to dt gives, or nullopt when dt cannot hold the result.
std::optional<double> expected_cast(DType dt, double v) {
    if (dt == DType::boolean) return v != 0 ? 1.0 : 0.0;
    if (is_integral(dt)) {
        const double t = std::trunc(v);  // float -> int truncates toward zero
        return holds(dt, t) ? std::optional<double>(t) : std::nullopt;
    }
    return holds(dt, v) ? std::optional<double>(v) : std::nullopt;
}

}  // namespace

TEST_CASE("dtype: names, sizes, classes and parsing") {
    struct Row { DType dt; std::string_view name; size_t size; bool floating, integral; };
    const Row rows[] = {
        {DType::f32, "f32", 4, true, false},   {DType::f64, "f64", 8, true, false},
        {DType::bf16, "bf16", 2, true, false}, {DType::f16, "f16", 2, true, false},
        {DType::i32, "i32", 4, false, true},   {DType::i64, "i64", 8, false, true},
        {DType::u16, "u16", 2, false, true},   {DType::u8, "u8", 1, false, true},
        {DType::i8, "i8", 1, false, true},     {DType::boolean, "bool", 1, false, false},
    };
    for (const Row& r : rows) {
        INFO(r.name);
        CHECK(dtype_name(r.dt) == r.name);
        CHECK(dtype_size(r.dt) == r.size);
        CHECK(is_floating(r.dt) == r.floating);
        CHECK(is_integral(r.dt) == r.integral);
        CHECK(dtype_from_name(r.name) == r.dt);
    }
    const std::pair<std::string_view, DType> aliases[] = {
        {"float32", DType::f32}, {"float", DType::f32},    {"float64", DType::f64},
        {"double", DType::f64},  {"bfloat16", DType::bf16}, {"float16", DType::f16},
        {"half", DType::f16},    {"int32", DType::i32},    {"int64", DType::i64},
        {"uint16", DType::u16},  {"uint8", DType::u8},     {"int8", DType::i8}};
    for (const auto& [name, dt] : aliases) CHECK(dtype_from_name(name) == dt);
    CHECK_THROWS_CONTAINING(dtype_from_name("f33"), "unknown dtype 'f33': expected one of f32, f64");
    CHECK_THROWS_CONTAINING(dtype_from_name(""), "unknown dtype ''");
    CHECK_THROWS_CONTAINING(dtype_from_name("F32"), "unknown dtype 'F32'");  // names are lower case
    CHECK_THROWS_CONTAINING(dtype_from_name("boolean"), "unknown dtype 'boolean'");
}

TEST_CASE("bf16: round to nearest even on known values") {
    const std::pair<uint32_t, uint16_t> cases[] = {
        {0x3f800000u, 0x3f80},  // 1.0
        {0x3f808000u, 0x3f80},  // exact tie, lower is even: stays
        {0x3f818000u, 0x3f82},  // exact tie, lower is odd: rounds up to even
        {0x3f808001u, 0x3f81},  // just above the tie
        {0x3f807fffu, 0x3f80},  // just below the tie
        {0x80000000u, 0x8000},  // -0.0 keeps its sign
        {0x00000000u, 0x0000},
        {0x7f7fffffu, 0x7f80},  // FLT_MAX rounds to +Inf
        {0xff7fffffu, 0xff80},  // -FLT_MAX rounds to -Inf
        {0x7f7f7fffu, 0x7f7f},  // below the tie at the top stays finite
        {0x7f800000u, 0x7f80},  // +Inf kept
        {0xff800000u, 0xff80},  // -Inf kept
        {0x00000001u, 0x0000},  // the smallest f32 subnormal rounds to 0
        {0x00018000u, 0x0002},  // subnormal tie, odd lower: up
        {0xbf818000u, 0xbf82},  // negative tie
        {0x3fffffffu, 0x4000},  // carry into the exponent
    };
    for (const auto& [in, out] : cases) {
        INFO(fmt::format("0x{:08x}", in));
        CHECK(bf16::from_float(float_of(in)) == out);
        CHECK(bf16(float_of(in)).bits == out);
    }
    // NaN stays NaN and is quiet. 0x7f800001 is a signalling NaN whose payload lives only in the
    // low bits: adding the rounding bias naively would give 0x7f80 (+Inf).
    for (uint32_t nan : {0x7f800001u, 0x7fc00000u, 0xffc00001u, 0x7fffffffu, 0x7f80ffffu, 0xff800001u}) {
        INFO(fmt::format("0x{:08x}", nan));
        const uint16_t h = bf16::from_float(float_of(nan));
        CHECK(bf16_is_nan(h));
        CHECK((h & 0x0040u) != 0);                      // quiet bit
        CHECK((h & 0x8000u) == ((nan >> 16) & 0x8000u));  // sign kept
        CHECK(std::isnan(float(bf16::from_bits(h))));
    }
    // Widening is exact: the bits become the high half of an f32.
    CHECK(float(bf16::from_bits(0x3f80)) == 1.0f);
    CHECK(float(bf16::from_bits(0xc049)) == -3.140625f);
    CHECK(bits_of(float(bf16::from_bits(0x8000))) == 0x80000000u);
}

TEST_CASE("bf16: every bit pattern survives a round trip") {
    int64_t bad = 0, nans = 0;
    for (uint32_t h = 0; h < 65536; ++h) {
        const float f = float(bf16::from_bits(uint16_t(h)));
        const uint16_t back = bf16::from_float(f);
        const bool ok = bits_of(f) == (h << 16) &&
                        (bf16_is_nan(uint16_t(h)) ? (bf16_is_nan(back) && (back & 0x40u)) : back == h);
        nans += bf16_is_nan(uint16_t(h));
        if (!ok && bad++ == 0) FAIL_CHECK(fmt::format("bf16 0x{:04x} -> 0x{:04x}", h, back));
    }
    CHECK(bad == 0);
    CHECK(nans == 2 * 127);  // both signs, every non-zero 7-bit payload
}

TEST_CASE("bf16: rounding matches the nearest-even reference on a million random floats") {
    int64_t bad = 0;
    for (uint32_t c = 0; c < (1u << 18); ++c) {
        const Philox4 r = philox4x32_10(Philox4{{c, 0, 0, 0}}, 0xbf16u, 1);
        for (uint32_t u : r.v) {
            const uint16_t got = bf16::from_float(float_of(u));
            const bool is_nan = (u & 0x7fffffffu) > 0x7f800000u;
            const bool ok = is_nan ? bf16_is_nan(got) && (got & 0x40u) : got == bf16_reference(u);
            if (!ok && bad++ == 0)
                FAIL_CHECK(fmt::format("0x{:08x} -> 0x{:04x}, expected 0x{:04x}", u, got, bf16_reference(u)));
        }
    }
    CHECK(bad == 0);
}

TEST_CASE("f16: known values, subnormal boundaries and overflow") {
    const std::pair<float, uint16_t> cases[] = {
        {1.0f, 0x3c00},          {-2.0f, 0xc000},          {0.0f, 0x0000},
        {-0.0f, 0x8000},         {65504.0f, 0x7bff},       {65519.99f, 0x7bff},
        {65520.0f, 0x7c00},      {-65520.0f, 0xfc00},      {70000.0f, 0x7c00},
        {FLT_MAX, 0x7c00},       {INFINITY, 0x7c00},       {-INFINITY, 0xfc00},
        {0x1p-24f, 0x0001},      // the smallest subnormal
        {0x1p-25f, 0x0000},      // half of it: a tie, rounds to even (0)
        {0x1.8p-25f, 0x0001},    // 1.5·2^-25: above the tie
        {0x1p-26f, 0x0000},      {-0x1p-26f, 0x8000},
        {0x1.8p-24f, 0x0002},    // 1.5·2^-24: tie between 1 and 2, to even
        {0x1.4p-23f, 0x0002},    // 2.5·2^-24: tie between 2 and 3, to even
        {0x1p-14f, 0x0400},      // the smallest normal
        {0x1.ffcp-15f, 0x0400},  // 1023.5·2^-24: tie between the largest subnormal and 2^-14
        {0x1.ff8p-15f, 0x03ff},  // 1023·2^-24, the largest subnormal
        {0x1.ffp-15f, 0x03fe},   // 1022·2^-24
        {1.0f + 0x1p-11f, 0x3c00},                // tie, even stays
        {1.0f + 0x1.8p-10f, 0x3c02},              // tie, odd rounds up
        {1.0f + 0x1p-11f + 0x1p-20f, 0x3c01},     // above the tie
        {FLT_MIN, 0x0000},       {float_of(1), 0x0000},
    };
    for (const auto& [in, out] : cases) {
        INFO(fmt::format("{:a}", in));
        CHECK(f16::from_float(in) == out);
    }
    for (uint32_t nan : {0x7f800001u, 0x7fc00000u, 0xffc00001u, 0x7fffffffu}) {
        INFO(fmt::format("0x{:08x}", nan));
        const uint16_t h = f16::from_float(float_of(nan));
        CHECK(f16_is_nan(h));
        CHECK((h & 0x0200u) != 0);  // quiet bit
        CHECK((h & 0x8000u) == ((nan >> 16) & 0x8000u));
    }
}

TEST_CASE("f16: every bit pattern survives a round trip") {
    int64_t bad = 0;
    for (uint32_t h = 0; h < 65536; ++h) {
        const float f = f16::to_float(uint16_t(h));
        const double expected = f16_value(uint16_t(h));
        const uint16_t back = f16::from_float(f);
        bool ok;
        if (f16_is_nan(uint16_t(h))) ok = std::isnan(f) && f16_is_nan(back) && (back & 0x200u);
        else ok = double(f) == expected && std::signbit(f) == bool(h & 0x8000u) && back == h;
        if (!ok && bad++ == 0) FAIL_CHECK(fmt::format("f16 0x{:04x} -> {} -> 0x{:04x}", h, f, back));
    }
    CHECK(bad == 0);
}

#ifdef __FLT16_MAX__
TEST_CASE("f16: matches the compiler's _Float16 on random floats and edge values") {
    auto native = [](float f) { return std::bit_cast<uint16_t>(static_cast<_Float16>(f)); };
    int64_t bad = 0, checked = 0;
    auto compare = [&](uint32_t u) {
        const uint16_t got = f16::from_float(float_of(u)), want = native(float_of(u));
        ++checked;
        if (got != want && bad++ == 0)
            FAIL_CHECK(fmt::format("0x{:08x} ({:a}): lumen 0x{:04x}, _Float16 0x{:04x}", u, float_of(u), got, want));
    };
    for (uint32_t c = 0; c < (1u << 18); ++c) {
        const Philox4 r = philox4x32_10(Philox4{{c, 0, 0, 0}}, 0xf16u, 2);
        for (uint32_t u : r.v) compare(u);  // any bit pattern: mostly far outside f16's range
        // Exponents 100..147 (f16's subnormals, normals and overflow), random sign and mantissa.
        compare((r.v[0] & 0x807fffffu) | ((100u + r.v[1] % 48u) << 23));
    }
    const float edges[] = {65504.0f, 65519.99f, 65520.0f, 0x1p-24f, 0x1p-25f, 0x1.8p-25f, 0x1p-14f,
                           0x1.ffcp-15f, 0x1.ff8p-15f, 1.0f + 0x1p-11f, FLT_MAX, FLT_MIN, INFINITY,
                           -INFINITY, 0.0f, -0.0f};
    for (float e : edges) {
        compare(bits_of(e));
        compare(bits_of(-e));
        compare(bits_of(e) + 1);
        compare(bits_of(e) - 1);
    }
    CHECK(checked > 1250000);
    CHECK(bad == 0);
    // Widening: every pattern, against the native conversion (NaNs compared as NaNs).
    int64_t bad_widen = 0;
    for (uint32_t h = 0; h < 65536; ++h) {
        const float want = float(std::bit_cast<_Float16>(uint16_t(h)));
        const float got = f16::to_float(uint16_t(h));
        const bool ok = std::isnan(want) ? std::isnan(got) : bits_of(got) == bits_of(want);
        if (!ok && bad_widen++ == 0) FAIL_CHECK(fmt::format("f16 0x{:04x}: {} vs {}", h, got, want));
    }
    CHECK(bad_widen == 0);
}
#endif

TEST_CASE("cast: every pair of dtypes, on values both can hold") {
    int64_t pairs_checked = 0;
    for (DType from : all_dtypes)
        for (DType to : all_dtypes) {
            std::vector<double> in, expected;
            for (double v : cast_candidates) {
                if (!holds(from, v)) continue;
                if (auto e = expected_cast(to, v)) {
                    in.push_back(v);
                    expected.push_back(*e);
                }
            }
            INFO(dtype_name(from) << " -> " << dtype_name(to) << ", " << in.size() << " values");
            REQUIRE(in.size() >= 2);  // at least 0 and 1
            Tensor x = make(from, in, {int64_t(in.size())});
            Tensor y = x.to(to);
            CHECK(y.dtype() == to);
            CHECK(y.shape() == x.shape());
            CHECK(raw_values(y) == expected);
            CHECK(y.to_vector<double>() == expected);
            CHECK(raw_values(x) == in);  // the source is untouched
            if (from == to) CHECK(y.same(x));  // no copy
            ++pairs_checked;
        }
    CHECK(pairs_checked == 100);
}

TEST_CASE("cast: truncation toward zero and bool semantics") {
    Tensor x = Tensor::from<float>({2.75f, -2.75f, 0.5f, -0.5f, 7.0f, -0.0f});
    CHECK(x.to(DType::i32).to_vector<int32_t>() == std::vector<int32_t>{2, -2, 0, 0, 7, 0});
    CHECK(x.to(DType::i8).to_vector<int64_t>() == std::vector<int64_t>{2, -2, 0, 0, 7, 0});
    CHECK(Tensor::from<double>({255.9, 0.99}).to(DType::u8).to_vector<int64_t>() == std::vector<int64_t>{255, 0});
    // Any non-zero (NaN and ±Inf included) is true; ±0 is false. true converts to 1.
    Tensor f = Tensor::from<float>({0.0f, -0.0f, 0.25f, -3.0f, NAN, INFINITY, -INFINITY});
    CHECK(f.to(DType::boolean).to_vector<bool>() ==
          std::vector<bool>{false, false, true, true, true, true, true});
    Tensor small = Tensor::from<double>({1e-300, 0.0});  // non-zero in f64 even if it underflows elsewhere
    CHECK(small.to(DType::boolean).to_vector<bool>() == std::vector<bool>{true, false});
    Tensor i = Tensor::from<int64_t>({0, 5, -1, 256});
    CHECK(i.to(DType::boolean).to_vector<bool>() == std::vector<bool>{false, true, true, true});
    Tensor b = Tensor::from<bool>({true, false, true});
    for (DType dt : all_dtypes) {
        INFO(dtype_name(dt));
        CHECK(raw_values(b.to(dt)) == std::vector<double>{1, 0, 1});
    }
    // Rounding on the way into the narrow floats.
    Tensor r = Tensor::from<double>({1.0 + 0x1p-9, 1.0 + 0x1.8p-8, 1.0 + 0x1p-11, 65520.0});
    CHECK(r.to(DType::bf16).to_vector<double>() == std::vector<double>{1.0, 1.0 + 0x1p-7, 1.0, 65536.0});
    CHECK(r.to(DType::f16).to_vector<double>() == std::vector<double>{1.0 + 0x1p-9, 1.0 + 0x1.8p-8, 1.0, INFINITY});
}

TEST_CASE("cast: non-contiguous sources") {
    for (DType from : all_dtypes)
        for (DType to : all_dtypes) {
            INFO(dtype_name(from) << " -> " << dtype_name(to));
            // (4, 3) values 0/1 pattern that every dtype holds, plus small integers where allowed.
            std::vector<double> v;
            for (int i = 0; i < 12; ++i) v.push_back(from == DType::boolean || to == DType::boolean ? (i % 3 == 0) : i % 7);
            Tensor base = make(from, v, {4, 3});
            std::vector<double> expected_t;  // the transpose, row-major
            for (int c = 0; c < 3; ++c)
                for (int r = 0; r < 4; ++r) expected_t.push_back(*expected_cast(to, v[size_t(r * 3 + c)]));
            Tensor t = base.transpose(0, 1);  // (3, 4), strides (1, 3)
            REQUIRE_FALSE(t.is_contiguous());
            Tensor y = t.to(to);
            CHECK(y.is_contiguous() == (from != to));  // a cast to the same dtype is the tensor itself
            CHECK(y.shape() == Shape{3, 4});
            CHECK(raw_values(y.contiguous()) == expected_t);
            // A stepped slice with an offset: rows 1 and 3, column 2.
            Tensor s = base.slice(0, 1, 4, 2).select(1, 2);  // (2,), offset 5, stride 6
            REQUIRE(s.offset() == 5);
            CHECK(raw_values(s.to(to).contiguous()) ==
                  std::vector<double>{*expected_cast(to, v[5]), *expected_cast(to, v[11])});
        }
}
