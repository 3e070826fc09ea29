// core/optical_math.h: the optical quantizer and its dither offsets (specs/optical.md §2.1, §5), one
// source for the CPU reference and the CUDA kernels, so both compute the same bits.
//
//   d = (hi - lo) + 1e-8;  y = clamp(x, lo, hi);  s = ((y - lo) / d) · (L - 1)
//   k = rne(s) (det) or rne(s + r) (dithered, r in [-0.5, 0.5)), clamped to [0, L-1]
//   q = (k / (L - 1)) · (hi - lo) + lo, then the LUT floor (weight side only)
// Every step is one IEEE f32 operation rounded to nearest even, never fused into an FMA (device:
// __fadd_rn and friends; host: separate statements, and lumen builds with -ffp-contract=off).
#pragma once

#include "core/host_device.h"
#include "core/philox.h"

#include <cmath>
#include <cstdint>

namespace lumen::optical {

// f32 operations that are never contracted.
LUMEN_HOST_DEVICE float add_rn(float a, float b) {
#if defined(__CUDA_ARCH__)
    return __fadd_rn(a, b);
#else
    return a + b;
#endif
}
LUMEN_HOST_DEVICE float sub_rn(float a, float b) {
#if defined(__CUDA_ARCH__)
    return __fsub_rn(a, b);
#else
    return a - b;
#endif
}
LUMEN_HOST_DEVICE float mul_rn(float a, float b) {
#if defined(__CUDA_ARCH__)
    return __fmul_rn(a, b);
#else
    return a * b;
#endif
}
LUMEN_HOST_DEVICE float div_rn(float a, float b) {
#if defined(__CUDA_ARCH__)
    return __fdiv_rn(a, b);
#else
    return a / b;
#endif
}

// A quantizer's fixed parameters: L levels and, on the weight side, the LUT floor λ (lut = false:
// none). The range [lo, hi] is read per call (from device memory on the GPU).
struct QuantParams {
    int32_t levels = 256;
    bool lut = false;
    float lut_min = 0.0f;
};

// The continuous level s of x in [lo, hi] (clamped by comparisons: NaN passes, ±inf saturate).
LUMEN_HOST_DEVICE float continuous_level(float x, float lo, float hi, int32_t levels) {
    const float d = add_rn(sub_rn(hi, lo), 1e-8f);
    const float y = (x < lo) ? lo : ((x > hi) ? hi : x);
    return mul_rn(div_rn(sub_rn(y, lo), d), float(levels - 1));
}

// Level k (as a float) back to real units, then the LUT floor when set. NaN stays NaN.
LUMEN_HOST_DEVICE float dequantize_level(float k, float lo, float hi, const QuantParams& p) {
    float q = add_rn(mul_rn(div_rn(k, float(p.levels - 1)), sub_rn(hi, lo)), lo);
    if (p.lut) {
        const float fpos = mul_rn(p.lut_min, hi);
        const float fneg = mul_rn(p.lut_min, fabsf(lo));
        if (q > 0.0f && q < fpos) q = fpos;
        else if (q < 0.0f && q > -fneg) q = -fneg;
    }
    return q;
}

// rne, then clamp to [0, L-1] (s + r can round to L at the top edge). NaN stays NaN.
LUMEN_HOST_DEVICE float clamp_level(float s, int32_t levels) {
    float k = rintf(s);
    const float top = float(levels - 1);
    return (k < 0.0f) ? 0.0f : ((k > top) ? top : k);
}

// Deterministic (round half to even): inputs, probabilities and weights.
LUMEN_HOST_DEVICE float quantize_det(float x, float lo, float hi, const QuantParams& p) {
    return dequantize_level(clamp_level(continuous_level(x, lo, hi, p.levels), p.levels), lo, hi, p);
}

// Dithered with offset r = u - 0.5 (outputs, the ADC).
LUMEN_HOST_DEVICE float quantize_dithered(float x, float lo, float hi, float r, const QuantParams& p) {
    return dequantize_level(clamp_level(add_rn(continuous_level(x, lo, hi, p.levels), r), p.levels), lo,
                            hi, p);
}

// FNV-1a-32 of a byte string (the dither stream of a module's dotted name, "#qk"/"#av" appended).
LUMEN_HOST_DEVICE uint32_t fnv1a32(const char* bytes, uint64_t n) {
    uint32_t h = 0x811C9DC5u;
    for (uint64_t i = 0; i < n; ++i) h = (h ^ uint32_t(uint8_t(bytes[i]))) * 0x01000193u;
    return h;
}

// Element-mode dither (§5): key (seed, stream), counter (lo32(i>>2), hi32(i>>2), lo32(n), hi32(n)),
// word i & 3. n = the training counter, or 2^63 + the eval counter in eval mode.
struct DitherKey {
    uint32_t seed = 0;    // q_init_seed
    uint32_t stream = 0;  // fnv1a32(name)
    uint64_t n = 0;       // call counter
};

LUMEN_HOST_DEVICE uint32_t dither_word(const DitherKey& key, uint64_t i) {
    const uint64_t b = i >> 2;
    const Philox4 block = philox4x32_10(
        Philox4{{uint32_t(b), uint32_t(b >> 32), uint32_t(key.n), uint32_t(key.n >> 32)}}, key.seed, key.stream);
    return block.v[i & 3];
}

// r = u - 0.5 with u = (w >> 8)·2^-24: exact, in [-0.5, 0.5 - 2^-24].
LUMEN_HOST_DEVICE float dither_offset(const DitherKey& key, uint64_t i) {
    return philox_uniform_from_word(dither_word(key, i)) - 0.5f;
}

// Scalar mode (the reference kernels: one offset per launch) from seed s: word 0 of
// philox((0,0,0,0), (lo32(s), hi32(s))) as int32, negatives mapped to -x-1, times Triton's
// 4.6566127342e-10 (f32 bits 0x2FFFFFFF), minus 0.5.
LUMEN_HOST_DEVICE float scalar_dither_offset(uint64_t seed) {
    const Philox4 block = philox4x32_10(Philox4{{0u, 0u, 0u, 0u}}, uint32_t(seed), uint32_t(seed >> 32));
    int32_t x = int32_t(block.v[0]);
    if (x < 0) x = -(x + 1);  // NOTE: = -x - 1 without overflowing at INT32_MIN
    return sub_rn(mul_rn(float(x), 0x1.fffffep-32f), 0.5f);
}

// The reference's "uncalibrated" sentinel: [+inf, -inf].
LUMEN_HOST_DEVICE bool range_is_calibrated(float lo, float hi) { return lo <= hi; }

}  // namespace lumen::optical
