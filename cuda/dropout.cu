// cuda/dropout.cu: CUDA dropout (see core/kernels/dropout.h); reference core/cpu/dropout.cpp.
//
// x and out are contiguous (the public op makes x so), element i is the row-major index. Each
// thread takes G consecutive elements starting at a multiple of 4 (G = 4, or 8 for bf16/f16 so the
// loads are 16 bytes), computes each of their Philox blocks once, and applies the CPU's test to
// every element: dropped when double(philox uniform) < p. A kept element is x · scale in the
// compute type, scale = 1/(1 - p) rounded once to it, as on the CPU: CPU and CUDA masks and values
// are the same bits. Unaligned pointers and the tail take scalar loads.
#include "core/kernels/dropout.h"
#include "cuda/common.cuh"

namespace lumen::cuda {

namespace {

template <typename DT, typename A, int G>
__global__ void dropout_kernel(int64_t n, DT* out, const DT* x, double p, A scale, RngState rng,
                               bool aligned) {
    static_assert(G % 4 == 0 && (G * sizeof(DT)) % 16 == 0, "whole Philox blocks and 16-byte packs");
    constexpr int packs = int(G * sizeof(DT) / 16);
    const int64_t groups = (n + G - 1) / G;
    for (int64_t g = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; g < groups;
         g += int64_t(gridDim.x) * blockDim.x) {
        const int64_t base = g * G;
        const bool full = aligned && base + G <= n;
        alignas(16) DT v[G];
        if (full) {
#pragma unroll
            for (int k = 0; k < packs; ++k)
                reinterpret_cast<uint4*>(v)[k] = reinterpret_cast<const uint4*>(x + base)[k];
        } else {
#pragma unroll
            for (int j = 0; j < G; ++j) v[j] = base + j < n ? x[base + j] : x[base];
        }
#pragma unroll
        for (int q = 0; q < G / 4; ++q) {
            // Elements base + 4q + j (j < 4) share Philox block (base + 4q) / 4; word j is theirs.
            const Philox4 block = philox_block(rng, uint64_t(base / 4 + q));
#pragma unroll
            for (int j = 0; j < 4; ++j) {
                const bool drop = double(philox_uniform_from_word(block.v[j])) < p;
                DT& e = v[4 * q + j];
                e = drop ? store_from<DT>(A(0)) : store_from<DT>(load_as<A>(e) * scale);
            }
        }
        if (full) {
#pragma unroll
            for (int k = 0; k < packs; ++k)
                reinterpret_cast<uint4*>(out + base)[k] = reinterpret_cast<const uint4*>(v)[k];
        } else {
#pragma unroll
            for (int j = 0; j < G; ++j)
                if (base + j < n) out[base + j] = v[j];
        }
    }
}

}  // namespace

void dropout(Tensor& out, const Tensor& x, double p, const RngState& rng) {
    const int64_t n = x.numel();
    if (n == 0) return;
    const int device = out.device().index;
    set_device(device);
    dispatch_float(x.dtype(), "dropout", [&]<typename T>() {
        using DT = device_t<T>;
        using A = compute_t<T>;
        constexpr int G = sizeof(DT) == 2 ? 8 : 4;
        const bool aligned = reinterpret_cast<uintptr_t>(x.data_ptr()) % 16 == 0 &&
                             reinterpret_cast<uintptr_t>(out.data_ptr()) % 16 == 0;
        const int64_t blocks = std::min<int64_t>(blocks_for((n + G - 1) / G, 256),
                                                 int64_t(properties(device).sm_count) * 16);
        dropout_kernel<DT, A, G><<<unsigned(blocks), 256, 0, compute_stream(device)>>>(
            n, data_ptr<T>(out), data_ptr<T>(x), p, A(1.0 / (1.0 - p)), rng, aligned);
    });
    check_launch("dropout_kernel", {{"out", out}, {"x", x}});
}

}  // namespace lumen::cuda
