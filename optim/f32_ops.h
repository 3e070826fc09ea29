// optim/f32_ops.h: IEEE f32 arithmetic, rounded once per operation, that gives the same bits on
// the CPU and in CUDA kernels: nvcc would otherwise fuse a·b + c into one FMA (one rounding) where
// the CPU rounds twice. Used by the 8-bit AdamW and Adafactor element formulas so that the CPU
// reference and the fused kernels agree bit for bit on the same inputs.
#pragma once

#include "core/host_device.h"

#include <cmath>

namespace lumen::optim::f32 {

LUMEN_HOST_DEVICE float add(float a, float b) {
#ifdef __CUDA_ARCH__
    return __fadd_rn(a, b);
#else
    return a + b;
#endif
}
LUMEN_HOST_DEVICE float sub(float a, float b) {
#ifdef __CUDA_ARCH__
    return __fsub_rn(a, b);
#else
    return a - b;
#endif
}
LUMEN_HOST_DEVICE float mul(float a, float b) {
#ifdef __CUDA_ARCH__
    return __fmul_rn(a, b);
#else
    return a * b;
#endif
}
LUMEN_HOST_DEVICE float div(float a, float b) {
#ifdef __CUDA_ARCH__
    return __fdiv_rn(a, b);
#else
    return a / b;
#endif
}
LUMEN_HOST_DEVICE float sqrt(float a) {
#ifdef __CUDA_ARCH__
    return __fsqrt_rn(a);
#else
    return std::sqrt(a);
#endif
}

}  // namespace lumen::optim::f32
