// core/dtype.cpp: dtype names and sizes, and the f16 conversions (round to nearest even).
#include "core/dtype.h"

#include "core/error.h"

namespace lumen {

size_t dtype_size(DType dt) {
    switch (dt) {
    case DType::f64: case DType::i64: return 8;
    case DType::f32: case DType::i32: return 4;
    case DType::bf16: case DType::f16: case DType::u16: return 2;
    case DType::u8: case DType::i8: case DType::boolean: return 1;
    }
    return 0;
}

std::string_view dtype_name(DType dt) {
    switch (dt) {
    case DType::f32: return "f32";
    case DType::f64: return "f64";
    case DType::bf16: return "bf16";
    case DType::f16: return "f16";
    case DType::i32: return "i32";
    case DType::i64: return "i64";
    case DType::u16: return "u16";
    case DType::u8: return "u8";
    case DType::i8: return "i8";
    case DType::boolean: return "bool";
    }
    return "?";
}

DType dtype_from_name(std::string_view name) {
    struct Alias { std::string_view name; DType dt; };
    static constexpr Alias aliases[] = {
        {"f32", DType::f32}, {"float32", DType::f32}, {"float", DType::f32},
        {"f64", DType::f64}, {"float64", DType::f64}, {"double", DType::f64},
        {"bf16", DType::bf16}, {"bfloat16", DType::bf16},
        {"f16", DType::f16}, {"float16", DType::f16}, {"half", DType::f16},
        {"i32", DType::i32}, {"int32", DType::i32}, {"i64", DType::i64}, {"int64", DType::i64},
        {"u16", DType::u16}, {"uint16", DType::u16}, {"u8", DType::u8}, {"uint8", DType::u8},
        {"i8", DType::i8}, {"int8", DType::i8}, {"bool", DType::boolean},
    };
    for (const Alias& a : aliases)
        if (a.name == name) return a.dt;
    throw Error(fmt::format("unknown dtype '{}': expected one of f32, f64, bf16, f16, i32, i64, "
                            "u16, u8, i8, bool", name));
}

uint16_t f16::from_float(float f) {
    const uint32_t u = std::bit_cast<uint32_t>(f);
    const uint32_t sign = (u >> 16) & 0x8000u;
    const uint32_t abs = u & 0x7fffffffu;
    if (abs > 0x7f800000u) return uint16_t(sign | 0x7e00u | ((abs >> 13) & 0x3ffu));  // NaN
    if (abs >= 0x477ff000u) return uint16_t(sign | 0x7c00u);  // rounds to or past 65520: ±Inf
    if (abs >= 0x38800000u) {                                  // normal in f16
        uint32_t rounded = abs + 0x0fffu + ((abs >> 13) & 1u);
        return uint16_t(sign | ((rounded - 0x38000000u) >> 13));
    }
    if (abs < 0x33000000u) return uint16_t(sign);  // below half the smallest subnormal: ±0
    // Subnormal: shift the implicit-1 mantissa right, rounding to nearest even.
    const uint32_t exponent = abs >> 23;              // 102..112
    const uint32_t mantissa = (abs & 0x7fffffu) | 0x800000u;
    const uint32_t shift = 126 - exponent;            // 14..24
    uint32_t value = mantissa >> shift;
    const uint32_t remainder = mantissa & ((1u << shift) - 1);
    const uint32_t half = 1u << (shift - 1);
    if (remainder > half || (remainder == half && (value & 1u))) ++value;
    return uint16_t(sign | value);
}

float f16::to_float(uint16_t h) {
    const uint32_t sign = uint32_t(h & 0x8000u) << 16;
    const uint32_t exponent = (h >> 10) & 0x1fu;
    const uint32_t mantissa = h & 0x3ffu;
    if (exponent == 0x1f) return std::bit_cast<float>(sign | 0x7f800000u | (mantissa << 13));
    if (exponent != 0) return std::bit_cast<float>(sign | ((exponent + 112) << 23) | (mantissa << 13));
    if (mantissa == 0) return std::bit_cast<float>(sign);
    // Subnormal: value = mantissa · 2^-24, exact in f32.
    float magnitude = float(mantissa) * 5.9604644775390625e-8f;
    return sign ? -magnitude : magnitude;
}

}  // namespace lumen
