// core/dtype.h: the element types lumen stores, and conversions between them.
//
// Storage dtypes are f32, f64, bf16, f16, i32, i64, u16, u8, i8 and boolean. Kernels load the
// storage dtype and compute in f32 registers (f64 for f64 tensors, which gradcheck uses; i64 for
// integer arithmetic). bf16 and f16 conversions round to nearest, ties to even, and keep NaN
// (quiet) and ±Inf; they are written here so the CPU defines the bits the GPU must reproduce.
#pragma once

#include <bit>
#include <cstdint>
#include <cstring>
#include <string_view>

namespace lumen {

enum class DType : uint8_t { f32, f64, bf16, f16, i32, i64, u16, u8, i8, boolean };

size_t dtype_size(DType dt);
std::string_view dtype_name(DType dt);
// Parses "f32", "float32", "bf16", "bfloat16", ...; throws naming the string on failure.
DType dtype_from_name(std::string_view name);
inline bool is_floating(DType dt) {
    return dt == DType::f32 || dt == DType::f64 || dt == DType::bf16 || dt == DType::f16;
}
inline bool is_integral(DType dt) { return !is_floating(dt) && dt != DType::boolean; }

// ---- bf16: the high 16 bits of an f32, rounded to nearest even ----
struct bf16 {
    uint16_t bits;
    bf16() = default;
    static constexpr bf16 from_bits(uint16_t b) { bf16 h{}; h.bits = b; return h; }
    explicit bf16(float f) : bits(from_float(f)) {}
    explicit operator float() const { return std::bit_cast<float>(uint32_t(bits) << 16); }
    static uint16_t from_float(float f) {
        uint32_t u = std::bit_cast<uint32_t>(f);
        if ((u & 0x7fffffffu) > 0x7f800000u) return uint16_t((u >> 16) | 0x0040u);  // quiet NaN
        uint32_t rounding = 0x7fffu + ((u >> 16) & 1u);  // NOTE: ties go to the even mantissa
        return uint16_t((u + rounding) >> 16);
    }
};

// ---- f16: IEEE binary16, rounded to nearest even, subnormals kept ----
struct f16 {
    uint16_t bits;
    f16() = default;
    static constexpr f16 from_bits(uint16_t b) { f16 h{}; h.bits = b; return h; }
    explicit f16(float f) : bits(from_float(f)) {}
    explicit operator float() const { return to_float(bits); }
    static uint16_t from_float(float f);
    static float to_float(uint16_t h);
};

// The C++ type behind each storage dtype.
template <DType D> struct dtype_traits;
template <> struct dtype_traits<DType::f32> { using type = float; };
template <> struct dtype_traits<DType::f64> { using type = double; };
template <> struct dtype_traits<DType::bf16> { using type = bf16; };
template <> struct dtype_traits<DType::f16> { using type = f16; };
template <> struct dtype_traits<DType::i32> { using type = int32_t; };
template <> struct dtype_traits<DType::i64> { using type = int64_t; };
template <> struct dtype_traits<DType::u16> { using type = uint16_t; };
template <> struct dtype_traits<DType::u8> { using type = uint8_t; };
template <> struct dtype_traits<DType::i8> { using type = int8_t; };
template <> struct dtype_traits<DType::boolean> { using type = bool; };

template <typename T> constexpr DType dtype_of();
template <> constexpr DType dtype_of<float>() { return DType::f32; }
template <> constexpr DType dtype_of<double>() { return DType::f64; }
template <> constexpr DType dtype_of<bf16>() { return DType::bf16; }
template <> constexpr DType dtype_of<f16>() { return DType::f16; }
template <> constexpr DType dtype_of<int32_t>() { return DType::i32; }
template <> constexpr DType dtype_of<int64_t>() { return DType::i64; }
template <> constexpr DType dtype_of<uint16_t>() { return DType::u16; }
template <> constexpr DType dtype_of<uint8_t>() { return DType::u8; }
template <> constexpr DType dtype_of<int8_t>() { return DType::i8; }
template <> constexpr DType dtype_of<bool>() { return DType::boolean; }

// The type a kernel computes in for storage type T: double for f64, float for the other floats,
// int64_t for integers, bool for boolean.
template <typename T> struct compute_type { using type = int64_t; };
template <> struct compute_type<float> { using type = float; };
template <> struct compute_type<double> { using type = double; };
template <> struct compute_type<bf16> { using type = float; };
template <> struct compute_type<f16> { using type = float; };
template <> struct compute_type<bool> { using type = bool; };
template <typename T> using compute_t = typename compute_type<T>::type;

// Converts between any two element types (through float for bf16/f16).
template <typename To, typename From>
inline To convert(From v) {
    if constexpr (std::is_same_v<To, From>) {
        return v;
    } else if constexpr (std::is_same_v<From, bf16> || std::is_same_v<From, f16>) {
        return convert<To>(static_cast<float>(v));
    } else if constexpr (std::is_same_v<To, bf16> || std::is_same_v<To, f16>) {
        return To(static_cast<float>(v));
    } else if constexpr (std::is_same_v<To, bool>) {
        return v != From(0);
    } else {
        return static_cast<To>(v);
    }
}

}  // namespace lumen
