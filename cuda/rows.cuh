// cuda/rows.cuh: the pieces that the row kernels of softmax (cuda/softmax.cu) and cross-entropy
// (cuda/loss.cu) share: a walk over one row in 16-byte chunks, deterministic warp and block
// reductions, and the online (max, Σ exp) pair that lets a row's logsumexp come from one read.
//
// Determinism: a thread folds a fixed set of a row's elements in a fixed order (walk_row), and
// the partials combine through a fixed shuffle tree and then a fixed tree over the warps; nothing
// depends on timing, so two runs give the same bits. The walk depends only on n and on the row
// pointer's alignment modulo 16.
#pragma once

#include "cuda/common.cuh"

#include <cstdint>

namespace lumen::cuda::rows {

// Rows of up to warp_row_max elements get one warp each (warps_per_block rows per block); longer
// rows get one block each of block_threads(n) threads.
inline constexpr int64_t warp_row_max = 1024;
inline constexpr int warps_per_block = 8;
inline int block_threads(int64_t n) {
    int threads = 128;
    while (threads < 512 && int64_t(threads) * 32 < n) threads *= 2;  // about 32+ elements each
    return threads;
}
inline constexpr int64_t max_grid = (int64_t(1) << 31) - 1;

template <typename C>
__device__ __forceinline__ C neg_inf() {
    return -C(INFINITY);
}
template <typename C>
__device__ __forceinline__ C quiet_nan() {
    return C(NAN);
}
template <typename C>
__device__ __forceinline__ C exp_c(C x) {
    if constexpr (std::is_same_v<C, double>) return ::exp(x);
    else return ::expf(x);
}
template <typename C>
__device__ __forceinline__ C log_c(C x) {
    if constexpr (std::is_same_v<C, double>) return ::log(x);
    else return ::logf(x);
}

// Elements [0, n) of one row, cut into a scalar head up to the first 16-byte boundary of `row`,
// a body of 16-byte chunks and a scalar tail. Thread t of `width` calls
// f.template operator()<K>(i) for elements [i, i + K): head and tail elements t, t + width, ...
// (K = 1) and body chunks t, t + width, ... (K = 16 / sizeof(DT)). With vector = false the whole
// row is scalar. Every other pointer f reads or writes at i must share row's alignment mod 16.
template <typename DT, typename F>
__device__ __forceinline__ void walk_row(const DT* row, int64_t n, int t, int width, bool vector,
                                         F&& f) {
    constexpr int VEC = 16 / sizeof(DT);
    int64_t head = n, body = 0;
    if (vector) {
        const auto address = reinterpret_cast<uintptr_t>(row);
        head = std::min<int64_t>(n, int64_t((16 - address % 16) % 16 / sizeof(DT)));
        body = (n - head) / VEC;
    }
    for (int64_t i = t; i < head; i += width) f.template operator()<1>(i);
#pragma unroll 4
    for (int64_t c = t; c < body; c += width) f.template operator()<VEC>(head + c * VEC);
    for (int64_t i = head + body * VEC + t; i < n; i += width) f.template operator()<1>(i);
}

// Whether pointers a and b can share one walk_row chunking (same address mod 16).
__device__ __forceinline__ bool same_alignment(const void* a, const void* b) {
    return (reinterpret_cast<uintptr_t>(a) ^ reinterpret_cast<uintptr_t>(b)) % 16 == 0;
}

// K elements at p (16-byte aligned when K > 1) converted to the compute type, and back.
template <int K, typename C, typename DT>
__device__ __forceinline__ void load_k(const DT* p, C (&v)[K]) {
    if constexpr (K == 1) {
        v[0] = load_as<C>(*p);
    } else {
        struct alignas(16) Pack { DT e[K]; };
        const Pack pack = *reinterpret_cast<const Pack*>(p);
#pragma unroll
        for (int j = 0; j < K; ++j) v[j] = load_as<C>(pack.e[j]);
    }
}
template <int K, typename DT, typename C>
__device__ __forceinline__ void store_k(DT* p, const C (&v)[K]) {
    if constexpr (K == 1) {
        *p = store_from<DT>(v[0]);
    } else {
        struct alignas(16) Pack { DT e[K]; };
        Pack pack;
#pragma unroll
        for (int j = 0; j < K; ++j) pack.e[j] = store_from<DT>(v[j]);
        *reinterpret_cast<Pack*>(p) = pack;
    }
}

// The running (max m, Σ exp(x − m)) of the elements seen so far; {-inf, 0} is the identity.
// Matches the CPU reference's max-then-sum on special values: -inf entries add 0, a NaN entry
// makes s NaN, and finish() turns an infinite max (an all -inf row, or a +inf entry, where the
// reference computes -inf − -inf or inf − inf) into s = NaN.
template <typename C>
struct MaxSum {
    C m, s;
};
template <typename C>
__device__ __forceinline__ MaxSum<C> identity_max_sum() {
    return {neg_inf<C>(), C(0)};
}
// Symmetric in a and b, so a butterfly or a tree gives the same bits either way round.
template <typename C>
__device__ __forceinline__ MaxSum<C> combine(MaxSum<C> a, MaxSum<C> b) {
    const C m = a.m > b.m ? a.m : b.m;
    if (m == neg_inf<C>()) return {m, a.s + b.s};  // only -inf (or NaN) seen: s is 0 or NaN
    return {m, a.s * exp_c(a.m - m) + b.s * exp_c(b.m - m)};
}
// The pair of K values: the max first (NaN never becomes the max), then the sum under it.
template <typename C, int K>
__device__ __forceinline__ MaxSum<C> chunk_max_sum(const C (&v)[K]) {
    C m = neg_inf<C>();
#pragma unroll
    for (int j = 0; j < K; ++j) m = v[j] > m ? v[j] : m;
    C s = 0;
#pragma unroll
    for (int j = 0; j < K; ++j)
        if (v[j] != neg_inf<C>()) s += exp_c(v[j] - m);
    return {m, s};
}
template <typename C>
__device__ __forceinline__ MaxSum<C> finish(MaxSum<C> p) {
    if (isinf(p.m)) p.s = quiet_nan<C>();
    return p;
}

template <typename C>
__device__ __forceinline__ C shuffle_down(C v, int offset) {
    return __shfl_down_sync(0xffffffffu, v, offset);
}
template <typename C>
__device__ __forceinline__ MaxSum<C> shuffle_down(MaxSum<C> v, int offset) {
    return {__shfl_down_sync(0xffffffffu, v.m, offset), __shfl_down_sync(0xffffffffu, v.s, offset)};
}
template <typename C>
__device__ __forceinline__ C shuffle_from_lane0(C v) {
    return __shfl_sync(0xffffffffu, v, 0);
}
template <typename C>
__device__ __forceinline__ MaxSum<C> shuffle_from_lane0(MaxSum<C> v) {
    return {__shfl_sync(0xffffffffu, v.m, 0), __shfl_sync(0xffffffffu, v.s, 0)};
}

struct Add {
    template <typename C>
    __device__ __forceinline__ C operator()(C a, C b) const { return a + b; }
};
struct Combine {
    template <typename C>
    __device__ __forceinline__ MaxSum<C> operator()(MaxSum<C> a, MaxSum<C> b) const {
        return combine(a, b);
    }
};

// The fold of a whole warp's values, returned to every lane (lane 0's tree result, broadcast).
template <typename V, typename Op>
__device__ __forceinline__ V warp_all_reduce(V v, Op op) {
#pragma unroll
    for (int offset = 16; offset > 0; offset /= 2) v = op(v, shuffle_down(v, offset));
    return shuffle_from_lane0(v);
}

// The fold of a whole block's values, returned to every thread. Every thread of the block must
// call it; `scratch` is __shared__ V[33]; identity fills the warps past the block's last.
template <typename V, typename Op>
__device__ __forceinline__ V block_all_reduce(V v, Op op, V identity, V* scratch) {
    const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
    v = warp_all_reduce(v, op);
    if (lane == 0) scratch[warp] = v;
    __syncthreads();
    if (warp == 0) {
        v = lane < int(blockDim.x / 32) ? scratch[lane] : identity;
        v = warp_all_reduce(v, op);
        if (lane == 0) scratch[32] = v;
    }
    __syncthreads();
    return scratch[32];
}

// One row per warp (BLOCK = false: rows warp, warp + warps, ...) or per block (BLOCK = true):
// the thread's index and width inside its row, and the grid-stride walk over rows.
template <bool BLOCK>
struct RowGrid {
    __device__ __forceinline__ int t() const { return BLOCK ? int(threadIdx.x) : int(threadIdx.x % 32); }
    __device__ __forceinline__ int width() const { return BLOCK ? int(blockDim.x) : 32; }
    __device__ __forceinline__ int64_t first() const {
        return BLOCK ? int64_t(blockIdx.x) : int64_t(blockIdx.x) * (blockDim.x / 32) + threadIdx.x / 32;
    }
    __device__ __forceinline__ int64_t stride() const {
        return BLOCK ? int64_t(gridDim.x) : int64_t(gridDim.x) * (blockDim.x / 32);
    }
    template <typename V, typename Op>
    __device__ __forceinline__ V all_reduce(V v, Op op, V identity, V* scratch) const {
        if constexpr (BLOCK) return block_all_reduce(v, op, identity, scratch);
        else return warp_all_reduce(v, op);
    }
};

// Launches kernel_for<BLOCK>() over `rows` rows of n elements as described above:
// launch(kernel, blocks, threads).
template <typename Launch>
void launch_rows(int64_t rows, int64_t n, Launch&& launch) {
    if (n <= warp_row_max) {
        const int64_t blocks = std::min<int64_t>((rows + warps_per_block - 1) / warps_per_block, max_grid);
        launch(std::false_type{}, unsigned(blocks), warps_per_block * 32);
    } else {
        launch(std::true_type{}, unsigned(std::min<int64_t>(rows, max_grid)), block_threads(n));
    }
}

}  // namespace lumen::cuda::rows
