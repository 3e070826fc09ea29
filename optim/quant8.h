// optim/quant8.h: bnb's 8-bit dynamic quantization (specs/optimizers.md §5.1–5.2): the signed and
// unsigned dynamic maps, the quantizer (bnb's binary search, step for step), state 1's sign fix,
// and block-wise quantize / dequantize of a tensor (B = 256 elements per block, one f32 absmax per
// block). The per-element functions are shared by the CPU code and the CUDA kernels
// (cuda/quant8.cu, cuda/optim_adamw8bit.cu), so both devices pick the same codes.
//
//   codes, absmax = quantize_blockwise(x, signed)     // x f32, any shape
//   x ≈ dequantize_blockwise(codes, absmax, signed)   // code → map[code]·absmax of its block
//
// A block whose absmax is 0 (all zeros) gets the codes of 0: 127 signed, 0 unsigned.
#pragma once

#include "core/host_device.h"
#include "core/tensor.h"

#include <array>
#include <cmath>
#include <cstdint>

namespace lumen::optim {

inline constexpr int64_t quant_block = 256;  // B: elements per absmax (bnb ≥ 0.44.0)
inline constexpr uint8_t signed_zero_code = 127, unsigned_zero_code = 0;

inline int64_t quant_blocks(int64_t numel) { return (numel + quant_block - 1) / quant_block; }

using QuantMap = std::array<float, 256>;

// bnb create_dynamic_map(signed, 7, 8), built in f64 and rounded to f32: ascending; signed has
// 0 at 127 and 1 at 255 (and no −1), unsigned has 0 at 0 and 1 at 255.
const QuantMap& dynamic_map(bool is_signed);
// The map as a (256,) f32 tensor on `device` (what the optimizer saves as qmap1 / qmap2).
Tensor dynamic_map_tensor(bool is_signed, Device device = Device::cpu());
// Distance in units in the last place between two finite floats (0 for +0 vs −0).
int64_t ulp_distance(float a, float b);

LUMEN_HOST_DEVICE bool sign_bit(float x) {
#ifdef __CUDA_ARCH__
    return signbit(x) != 0;
#else
    return std::signbit(x);
#endif
}

// The code of x = value/absmax in `map` (bnb quantize_2D<SIGNED>): a binary search over the
// ascending map, then the nearer neighbour by f32 midpoint, ties to the search's last pivot.
LUMEN_HOST_DEVICE uint8_t quantize_code(const float* map, float x, bool is_signed) {
    int pivot = 127, lo = 0, hi = 255;
    float lo_val = is_signed ? -1.f : 0.f, hi_val = 1.f;
    for (int step = 64; step > 0; step >>= 1) {  // NOTE: selects, not branches: x is unpredictable
        const float c = map[pivot];
        const bool up = x > c;
        lo = up ? pivot : lo;
        lo_val = up ? c : lo_val;
        hi = up ? hi : pivot;
        hi_val = up ? hi_val : c;
        pivot += up ? step : -step;
    }
    const float c = map[pivot];
    if (x > c) return uint8_t(x > (hi_val + c) * 0.5f ? hi : pivot);
    return uint8_t(x < (lo_val + c) * 0.5f ? lo : pivot);
}

// State 1's sign fix: a code whose map value has the other sign than m moves one step towards m's
// sign, so a tiny negative m keeps a negative code (126) and a tiny positive one 127.
LUMEN_HOST_DEVICE uint8_t fix_sign(const float* signed_map, uint8_t q, float m) {
    if (sign_bit(signed_map[q]) != sign_bit(m)) return uint8_t(m > 0.f ? q + 1 : q - 1);
    return q;
}

// The first moment's code: absmax 0 (an all-zero block) gives the zero code.
LUMEN_HOST_DEVICE uint8_t quantize_state1(const float* signed_map, float m, float absmax) {
    if (absmax == 0.f) return signed_zero_code;
    return fix_sign(signed_map, quantize_code(signed_map, m / absmax, true), m);
}
LUMEN_HOST_DEVICE uint8_t quantize_state2(const float* unsigned_map, float v, float absmax) {
    if (absmax == 0.f) return unsigned_zero_code;
    return quantize_code(unsigned_map, v / absmax, false);
}

// Block-wise quantization of a contiguous f32 tensor: codes u8 (numel), absmax f32
// (quant_blocks(numel)); with the signed map, the plain quantizer without the sign fix.
std::pair<Tensor, Tensor> quantize_blockwise(const Tensor& x, bool is_signed);
// f32 values of x's shape from codes and absmax on the same device.
Tensor dequantize_blockwise(const Tensor& codes, const Tensor& absmax, bool is_signed);

}  // namespace lumen::optim

namespace lumen {

// ---- kernels: contiguous operands on one device; map is (256,) f32 on that device ----
namespace cpu {
void quantize_blockwise8(Tensor& codes, Tensor& absmax, const Tensor& x, const Tensor& map, bool is_signed);
void dequantize_blockwise8(Tensor& out, const Tensor& codes, const Tensor& absmax, const Tensor& map);
}  // namespace cpu

#ifdef LUMEN_WITH_CUDA
namespace cuda {
void quantize_blockwise8(Tensor& codes, Tensor& absmax, const Tensor& x, const Tensor& map, bool is_signed);
void dequantize_blockwise8(Tensor& out, const Tensor& codes, const Tensor& absmax, const Tensor& map);
}  // namespace cuda
#endif

}  // namespace lumen
