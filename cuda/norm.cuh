// cuda/norm.cuh: what the layernorm/rmsnorm CUDA files share (cuda/norm.cu, the forward;
// cuda/norm_backward.cu): row geometry, the fixed-order row reductions, and the launch plan.
//
// Geometry: rows of C <= 1024 get one warp each (8 rows per 256-thread block), longer rows one
// block each. The fast path (f32/bf16/f16 with C a multiple of the 16-byte vector width and every
// pointer 16-byte aligned) keeps each thread's VPT vectors of the row in registers as loaded, so x
// (and dy) are read from memory once; block-mode rows use as few threads as the register budget
// allows (more bytes in flight per thread). Everything else (f64, odd C, unaligned views, very
// long rows) takes general kernels that walk the row in memory with scalar loads, once per pass.
#pragma once

#include "cuda/elementwise.cuh"

#include <algorithm>

namespace lumen::cuda::norm_detail {

constexpr int warp_mode_threads = 256;   // 8 rows per block
constexpr int max_block_threads = 512;   // one row per block
constexpr int max_cached_forward = 32;   // row elements a thread keeps in registers
constexpr int max_cached_backward = 16;  // block mode (x, dy and two partial sums per element)

template <typename A>
__device__ __forceinline__ A sqrt_of(A v) {
    if constexpr (std::is_same_v<A, float>) return sqrtf(v);
    else return sqrt(v);
}

template <typename A>
__device__ __forceinline__ A warp_sum(A v) {
#pragma unroll
    for (int offset = 16; offset > 0; offset /= 2) v += __shfl_xor_sync(0xffffffffu, v, offset);
    return v;  // the same bits in every lane (a + b = b + a)
}

// Sums N values over the threads of one row (its warp, or with BLOCK the whole block) in a fixed
// order; every thread receives the sums. `shared` holds N·32 values.
template <bool BLOCK, int N, typename A>
__device__ __forceinline__ void row_sum(A (&v)[N], A* shared) {
#pragma unroll
    for (int k = 0; k < N; ++k) v[k] = warp_sum(v[k]);
    if constexpr (BLOCK) {
        __syncthreads();  // the previous call's readers are done with `shared`
        if (threadIdx.x % 32 == 0)
            for (int k = 0; k < N; ++k) shared[k * 32 + threadIdx.x / 32] = v[k];
        __syncthreads();
        for (int k = 0; k < N; ++k) {
            A total = 0;
            for (int w = 0; w < int(blockDim.x / 32); ++w) total += shared[k * 32 + w];
            v[k] = total;
        }
    }
}

// Which rows a thread works on and where in them: rows first, first + step, ...; elements (or
// vectors) lane, lane + width, ... (BLOCK: one row per block; else one per warp).
template <bool BLOCK>
struct RowThreads {
    int lane, width;
    int64_t first, step;
    __device__ RowThreads() {
        if constexpr (BLOCK) {
            lane = threadIdx.x, width = blockDim.x, first = blockIdx.x, step = gridDim.x;
        } else {
            const int per_block = blockDim.x / 32;
            lane = threadIdx.x % 32, width = 32;
            first = int64_t(blockIdx.x) * per_block + threadIdx.x / 32;
            step = int64_t(gridDim.x) * per_block;
        }
    }
};

struct Plan {
    bool block = false;  // one block per row (else one warp per row)
    bool vec = false;    // the register-cached fast path
    int vpt = 1;         // 16-byte vectors per thread on the fast path (1, 2, 4 or 8)
    int threads = warp_mode_threads;
};

// Block mode keeps up to `max_cached` elements per thread on the fast path; rows needing more
// than max_block_threads threads for that take the general kernels.
template <typename T>
Plan plan_rows(int64_t C, bool aligned, int max_cached) {
    constexpr int64_t VEC = 16 / int64_t(sizeof(T));
    Plan p;
    p.block = C > 1024;
    p.threads = p.block ? max_block_threads : warp_mode_threads;
    if (std::is_same_v<T, double> || C == 0 || C % VEC != 0 || !aligned) return p;
    const int64_t nvec = C / VEC;
    if (!p.block) {  // C <= 1024: at most 32 elements per lane
        while (p.vpt * 32 < nvec) p.vpt *= 2;
        p.vec = true;
        return p;
    }
    int vpt = int(std::max<int64_t>(1, max_cached / VEC));
    const int64_t threads = ((nvec + vpt - 1) / vpt + 31) / 32 * 32;
    if (threads > max_block_threads) return p;
    while (vpt > 1 && (vpt / 2) * threads >= nvec) vpt /= 2;
    p.vec = true;
    p.vpt = vpt;
    p.threads = int(threads);
    return p;
}

// Calls f.template operator()<VPT>() for vpt in {1, 2, 4, 8}.
template <typename F>
void with_vpt(int vpt, F&& f) {
    switch (vpt) {
    case 1: f.template operator()<1>(); break;
    case 2: f.template operator()<2>(); break;
    case 4: f.template operator()<4>(); break;
    default: f.template operator()<8>(); break;
    }
}

// The grid of a row-per-warp or row-per-block kernel (grid-stride past 2^30 blocks).
inline unsigned row_blocks(int64_t rows, const Plan& p) {
    const int64_t per_block = p.block ? 1 : warp_mode_threads / 32;
    return unsigned(std::min<int64_t>((rows + per_block - 1) / per_block, int64_t(1) << 30));
}

inline bool aligned_or_none(const Tensor& t) { return !t.defined() || aligned16(t.data_ptr()); }

template <typename T>
device_t<T>* ptr_or_null(const Tensor& t) {
    return t.defined() ? data_ptr<T>(t) : nullptr;
}

}  // namespace lumen::cuda::norm_detail
