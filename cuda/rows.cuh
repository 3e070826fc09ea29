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

// Rows of up to warp_row_max elements get one warp each (or 8 lanes, see launch_rows), longer rows
// one block each of block_threads(n) threads.
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
// exp in the compute type. NOTE: f32 goes through exp2f (the hardware ex2, 2 ulp) of x·log2(e):
// expf's extra range reduction made the bf16 row kernels compute-bound. The product's rounding
// adds |x|·2^-24 to the exponent: about 1e-6 relative for x = -20, far inside f32 tolerances.
template <typename C>
__device__ __forceinline__ C exp_c(C x) {
    if constexpr (std::is_same_v<C, double>) return ::exp(x);
    else return exp2f(x * 1.4426950408889634f);
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
        static_assert(K * sizeof(DT) == 16);
        const uint4 raw = *reinterpret_cast<const uint4*>(p);
        DT e[K];
        memcpy(e, &raw, 16);
#pragma unroll
        for (int j = 0; j < K; ++j) v[j] = load_as<C>(e[j]);
    }
}
template <int K, typename DT, typename C>
__device__ __forceinline__ void store_k(DT* p, const C (&v)[K]) {
    if constexpr (K == 1) {
        *p = store_from<DT>(v[0]);
    } else {
        // NOTE: through a uint4: a struct of 8 __nv_bfloat16 is stored as 8 2-byte stores.
        static_assert(K * sizeof(DT) == 16);
        DT e[K];
#pragma unroll
        for (int j = 0; j < K; ++j) e[j] = store_from<DT>(v[j]);
        uint4 raw;
        memcpy(&raw, e, 16);
        *reinterpret_cast<uint4*>(p) = raw;
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
// Folds K more values into a thread's pair: the new max first (NaN never becomes the max), then
// one exp per value; s is rescaled only when the max grows, which is rare after a row's start.
template <typename C, int K>
__device__ __forceinline__ void update(MaxSum<C>& p, const C (&v)[K]) {
    C m = p.m;
#pragma unroll
    for (int j = 0; j < K; ++j) m = v[j] > m ? v[j] : m;
    if (m > p.m) {
        p.s *= exp_c(p.m - m);  // 0 when p.m = -inf (NaN stays NaN)
        p.m = m;
    }
#pragma unroll
    for (int j = 0; j < K; ++j)
        if (v[j] != neg_inf<C>()) p.s += exp_c(v[j] - p.m);
}
// Merges two threads' pairs. Symmetric in a and b, so either order gives the same bits.
template <typename C>
__device__ __forceinline__ MaxSum<C> combine(MaxSum<C> a, MaxSum<C> b) {
    const C m = a.m > b.m ? a.m : b.m;
    if (m == neg_inf<C>()) return {m, a.s + b.s};  // only -inf (or NaN) seen: s is 0 or NaN
    return {m, a.s * exp_c(a.m - m) + b.s * exp_c(b.m - m)};
}
template <typename C>
__device__ __forceinline__ MaxSum<C> finish(MaxSum<C> p) {
    if (isinf(p.m)) p.s = quiet_nan<C>();
    return p;
}

template <typename C>
__device__ __forceinline__ C shuffle_down(C v, int offset, int width) {
    return __shfl_down_sync(0xffffffffu, v, offset, width);
}
template <typename C>
__device__ __forceinline__ MaxSum<C> shuffle_down(MaxSum<C> v, int offset, int width) {
    return {__shfl_down_sync(0xffffffffu, v.m, offset, width),
            __shfl_down_sync(0xffffffffu, v.s, offset, width)};
}
template <typename C>
__device__ __forceinline__ C shuffle_from_first(C v, int width) {
    return __shfl_sync(0xffffffffu, v, 0, width);
}
template <typename C>
__device__ __forceinline__ MaxSum<C> shuffle_from_first(MaxSum<C> v, int width) {
    return {__shfl_sync(0xffffffffu, v.m, 0, width), __shfl_sync(0xffffffffu, v.s, 0, width)};
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

// The fold of each group of LANES consecutive lanes, returned to every lane of the group (the
// group's first lane's tree result, broadcast). Every lane of the warp must call it.
template <int LANES = 32, typename V, typename Op>
__device__ __forceinline__ V lanes_all_reduce(V v, Op op) {
#pragma unroll
    for (int offset = LANES / 2; offset > 0; offset /= 2) v = op(v, shuffle_down(v, offset, LANES));
    return shuffle_from_first(v, LANES);
}

// The fold of a whole block's values, returned to every thread. Every thread of the block must
// call it; `scratch` is __shared__ V[33]; identity fills the warps past the block's last.
template <typename V, typename Op>
__device__ __forceinline__ V block_all_reduce(V v, Op op, V identity, V* scratch) {
    const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
    v = lanes_all_reduce(v, op);
    if (lane == 0) scratch[warp] = v;
    __syncthreads();
    if (warp == 0) {
        v = lane < int(blockDim.x / 32) ? scratch[lane] : identity;
        v = lanes_all_reduce(v, op);
        if (lane == 0) scratch[32] = v;
    }
    __syncthreads();
    return scratch[32];
}

// Who works on which row. BLOCK: one row per block. Otherwise one row per group of LANES lanes
// (8, 16 or 32), so a warp takes 32 / LANES consecutive rows. Kernels loop over row groups,
//   for (int64_t g = grid.first(); g < rows; g += grid.stride()) { r = g + grid.offset(); ... }
// a condition uniform across each warp (and block), so every lane reaches every shuffle; a lane
// group whose row r is past the last (r ≥ rows) walks 0 elements and writes nothing.
template <bool BLOCK, int LANES = 32>
struct RowGrid {
    static_assert(LANES == 8 || LANES == 16 || LANES == 32);
    static constexpr int64_t per_warp = 32 / LANES;
    __device__ __forceinline__ int t() const { return BLOCK ? int(threadIdx.x) : int(threadIdx.x % LANES); }
    __device__ __forceinline__ int width() const { return BLOCK ? int(blockDim.x) : LANES; }
    __device__ __forceinline__ int64_t first() const {
        return BLOCK ? int64_t(blockIdx.x)
                     : (int64_t(blockIdx.x) * (blockDim.x / 32) + threadIdx.x / 32) * per_warp;
    }
    __device__ __forceinline__ int64_t stride() const {
        return BLOCK ? int64_t(gridDim.x) : int64_t(gridDim.x) * (blockDim.x / 32) * per_warp;
    }
    __device__ __forceinline__ int64_t offset() const { return BLOCK ? 0 : (threadIdx.x % 32) / LANES; }
    template <typename V, typename Op>
    __device__ __forceinline__ V all_reduce(V v, Op op, V identity, V* scratch) const {
        if constexpr (BLOCK) return block_all_reduce(v, op, identity, scratch);
        else return lanes_all_reduce<LANES>(v, op);
    }
};

// Launches over `rows` rows of n elements as described above, calling
// launch(block, lanes, blocks, threads) with block a std::bool_constant and lanes a
// std::integral_constant<int, LANES>. Rows of up to narrow_row_max elements (when NARROW) get 8
// lanes each, rows up to warp_row_max a warp, longer rows a block.
inline constexpr int64_t narrow_row_max = 128;
template <bool NARROW = false, typename Launch>
void launch_rows(int64_t rows, int64_t n, Launch&& launch) {
    auto warp_rows = [&](auto lanes) {
        const int64_t per_block = warps_per_block * (32 / decltype(lanes)::value);
        const int64_t blocks = std::min<int64_t>((rows + per_block - 1) / per_block, max_grid);
        launch(std::false_type{}, lanes, unsigned(blocks), warps_per_block * 32);
    };
    if (NARROW && n <= narrow_row_max) {
        warp_rows(std::integral_constant<int, 8>{});
    } else if (n <= warp_row_max) {
        warp_rows(std::integral_constant<int, 32>{});
    } else {
        launch(std::true_type{}, std::integral_constant<int, 32>{},
               unsigned(std::min<int64_t>(rows, max_grid)), block_threads(n));
    }
}

}  // namespace lumen::cuda::rows
