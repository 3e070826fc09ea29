// core/host_device.h: LUMEN_HOST_DEVICE marks small functions shared by the CPU reference and the
// CUDA kernels (the RNG, per-element formulas), so both compute the same thing from one source.
#pragma once

#if defined(__CUDACC__)
#define LUMEN_HOST_DEVICE __host__ __device__ __forceinline__
#else
#define LUMEN_HOST_DEVICE inline
#endif
