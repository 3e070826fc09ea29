// autograd/ops/optical_linear.h: the optical linear layer and matrix product as autograd ops
// (specs/optical.md §3.1, §3.2, §4, §5). Forward: operands quantized (det; LUT on the weight side),
// product accumulated in f32, output dithered onto its range, bias added in f32; range statistics
// updated in device memory. Backward: straight-through, the float op's gradients at the
// unquantized operands, computed by the same kernels as the digital op (nodes "optical_linear",
// "optical_matmul").
//
// GEMM operand dtype: bf16 when x (a) is bf16, f32 otherwise; the output has x's (a's) dtype.
#pragma once

#include "core/kernels/optical_output.h"
#include "core/tensor.h"

#include <optional>
#include <utility>
#include <vector>

namespace lumen::ops {

// The ranges one optical linear call quantized with (after the x/w updates and the output
// calibration, before the output EMA): what an activation-checkpoint recompute must reuse.
struct OpticalLinearRanges {
    Tensor x, w, out;  // (2,), (P, 2), (P, 2) f32
};

// Everything an optical linear call reads besides x, W and b. Ranges are f32 tensors on x's device,
// [+inf, -inf] while uncalibrated; they are updated in place (never read back to the host).
struct OpticalLinearCall {
    Tensor x_range;    // (2,)
    Tensor w_range;    // (P, 2): one per row part of W
    Tensor out_range;  // (P, 2): one per column part of the output
    std::vector<int64_t> parts;  // row parts of W (sizes summing to N); {} = one part
    int32_t levels = 256;
    std::optional<float> lut_min = 0.020040f;             // weight-side LUT floor λ; none: no LUT
    std::optional<std::pair<double, double>> quantiles;   // statistics by quantiles, not min/max
    float smooth_f = 0.9f, smooth_g = 0.1f;               // EMA: mm = f·mm + g·batch (f32 of f, 1-f)
    bool training = true;        // EMA of calibrated ranges; the output EMA at all
    bool update_ranges = true;   // false: quantize with the ranges as given and update nothing
    bool calibrate_out = false;  // set out_range from the unquantized f32 X·Wᵀ (no bias) first
    optical::OutputDither dither;
    optical::OutputStats out_stats = optical::OutputStats::product;  // what the output EMA measures
    OpticalLinearRanges* used = nullptr;  // when set: receives copies of the ranges quantized with
};

// x (..., K) any strides, weight (N, K), bias (N) or undefined -> (..., N) in x's dtype.
Tensor optical_linear(const Tensor& x, const Tensor& weight, const Tensor& bias, const OpticalLinearCall& call);

// The ranges and dither of an optical matrix product (no statistics: the caller owns them).
struct OpticalMatmulCall {
    Tensor a_range, b_range, out_range;  // (2,) f32 each
    int32_t levels = 256;
    std::optional<float> lut_min = 0.020040f;  // on b (the weight side)
    optical::OutputDither dither;               // element i = flat index of the (..., M, N) output
};

// a (..., M, K) @ b (..., K, N) -> (..., M, N) in a's dtype, batch dims broadcast, any strides:
// Q_dith(Q_det(a) · Q_det(b; λ)) with straight-through gradients (the float matmul's).
Tensor optical_matmul(const Tensor& a, const Tensor& b, const OpticalMatmulCall& call);

}  // namespace lumen::ops
