// core/kernels/optical_output.h: the device switch for the optical output quantizer (the ADC,
// specs/optical.md §3.1, §5): the f32 accumulator of a matrix product is dithered onto the output
// range of its column part, the bias is added in f32 after quantization, and the result is rounded
// once to the output dtype.
//
//   optical_output(out, stats, acc, ranges, parts, p, dither, bias, what):
//     acc    (M, N) f32 contiguous       the GEMM's accumulator C
//     ranges (P, 2) f32 (any strides)    [lo, hi] of each column part, read in device memory
//     parts  column part sizes along N (sum N; {} = one part); at most max_output_parts
//     p      levels (a LUT is refused: outputs never have one)
//     dither element mode: r_i = dither_offset(key, index_base + m·N + n); scalar mode: r for all
//     bias   (N) any float dtype, or undefined
//     out    (M, N) contiguous, f32, bf16 or f16: Q_dith(acc) + bias, rounded once (a NaN result
//            is stored as the canonical quiet NaN on every device: optical::canonical_nan)
//     stats  (P, 2) f32 contiguous, written when what != none: per part [min, max] over the finite
//            accumulator values (product) or over the stored outputs read back in f32 (quantized);
//            [+inf, -inf] for a part without finite values. Fused into the same pass on CUDA.
#pragma once

#include "core/dispatch.h"
#include "core/optical_math.h"
#include "core/tensor.h"

#include <vector>

namespace lumen {

namespace optical {

// The ADC's dither for one call.
struct OutputDither {
    bool scalar = false;      // true: one offset r for every element (the reference kernels)
    DitherKey key;            // element mode: (q_init_seed, stream, call counter)
    uint64_t index_base = 0;  // element mode: added to the flat index (a rank's offset under DP)
    float r = 0.0f;           // scalar mode
};

// What the fused per-part statistics measure.
enum class OutputStats : uint8_t { none, product, quantized };

inline constexpr int max_output_parts = 8;

// Element mode's Philox block b: word i & 3 of block i >> 2 is optical::dither_word(key, i). The
// kernels draw one block per four consecutive elements.
LUMEN_HOST_DEVICE Philox4 dither_block(const DitherKey& key, uint64_t b) {
    return philox4x32_10(Philox4{{uint32_t(b), uint32_t(b >> 32), uint32_t(key.n), uint32_t(key.n >> 32)}},
                         key.seed, key.stream);
}

}  // namespace optical

namespace cpu {
void optical_output(Tensor& out, Tensor& stats, const Tensor& acc, const Tensor& ranges,
                    const std::vector<int64_t>& parts, const optical::QuantParams& p,
                    const optical::OutputDither& dither, const Tensor& bias, optical::OutputStats what);
}  // namespace cpu

#ifdef LUMEN_WITH_CUDA
namespace cuda {
void optical_output(Tensor& out, Tensor& stats, const Tensor& acc, const Tensor& ranges,
                    const std::vector<int64_t>& parts, const optical::QuantParams& p,
                    const optical::OutputDither& dither, const Tensor& bias, optical::OutputStats what);
}  // namespace cuda
#endif

namespace kernels {
inline void optical_output(Tensor& out, Tensor& stats, const Tensor& acc, const Tensor& ranges,
                           const std::vector<int64_t>& parts, const optical::QuantParams& p,
                           const optical::OutputDither& dither, const Tensor& bias,
                           optical::OutputStats what) {
    LUMEN_DISPATCH(out.device(), optical_output(out, stats, acc, ranges, parts, p, dither, bias, what))
}
}  // namespace kernels

// The column part boundaries of `parts` (sizes) over N: ends[p] = parts[0] + … + parts[p]; one part
// {N} when parts is empty. Checks the sizes sum to N and the count is at most max_output_parts.
std::vector<int64_t> optical_part_ends(const std::vector<int64_t>& parts, int64_t N, const char* op);
// optical_output's argument checks (both devices): returns the part ends.
std::vector<int64_t> check_optical_output(const Tensor& out, const Tensor& stats, const Tensor& acc,
                                          const Tensor& ranges, const std::vector<int64_t>& parts,
                                          const optical::QuantParams& p, const Tensor& bias,
                                          optical::OutputStats what);

}  // namespace lumen
