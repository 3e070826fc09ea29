// cuda/reduce.cu: CUDA row reductions (sum, max, min, argmax) over x (rows, n) contiguous.
//
// Rows of up to 1024 elements get one warp each, longer rows one block of 256 threads. Each thread
// folds a fixed set of elements in a fixed order (16-byte loads when the row is aligned), then the
// partials combine through a fixed shuffle tree: the result is bit-reproducible run to run
// (no atomics). Sums of f32/bf16/f16 accumulate in f32, f64 in f64, integers in i64; max/min
// propagate NaN; argmax returns the first maximal index (NaN counts as the maximum).
// Reference: core/cpu/reduce.cpp.
#include "core/kernels/elementwise.h"
#include "core/kernels/reduce.h"
#include "cuda/common.cuh"

namespace lumen::cuda {

namespace {

template <typename A>
struct Fold {
    ReduceOp op;
    __device__ __forceinline__ A identity_like(A first) const { return op == ReduceOp::sum ? A(0) : first; }
    __device__ __forceinline__ A operator()(A acc, A v) const {
        if (op == ReduceOp::sum) return acc + v;
        if constexpr (std::is_floating_point_v<A>) {
            if (v != v) return v;      // NaN wins
            if (acc != acc) return acc;
        }
        return op == ReduceOp::max ? (v > acc ? v : acc) : (v < acc ? v : acc);
    }
};

template <typename A>
__device__ __forceinline__ A warp_fold(A v, const Fold<A>& f) {
#pragma unroll
    for (int offset = 16; offset > 0; offset /= 2) v = f(v, __shfl_down_sync(0xffffffffu, v, offset));
    return v;
}

// Folds elements lane, lane + width, ... of one row (width threads), vectorised when aligned.
template <typename DT, typename A>
__device__ __forceinline__ A fold_row(const DT* row, int64_t n, int lane, int width, const Fold<A>& f) {
    A acc = f.identity_like(load_as<A>(row[0]));
    constexpr int VEC = 16 / sizeof(DT);
    if (VEC > 1 && reinterpret_cast<uintptr_t>(row) % 16 == 0) {
        const int64_t vecs = n / VEC;
        for (int64_t i = lane; i < vecs; i += width) {
            struct alignas(16) Pack { DT v[VEC]; };
            const Pack p = reinterpret_cast<const Pack*>(row)[i];
#pragma unroll
            for (int j = 0; j < VEC; ++j) acc = f(acc, load_as<A>(p.v[j]));
        }
        for (int64_t i = vecs * VEC + lane; i < n; i += width) acc = f(acc, load_as<A>(row[i]));
    } else {
        for (int64_t i = lane; i < n; i += width) acc = f(acc, load_as<A>(row[i]));
    }
    return acc;
}

template <typename DT, typename A, typename OT>
__global__ void reduce_warp_rows_kernel(int64_t rows, int64_t n, const DT* x, OT* out, Fold<A> f) {
    const int64_t row = int64_t(blockIdx.x) * (blockDim.x / 32) + threadIdx.x / 32;
    const int lane = threadIdx.x % 32;
    if (row >= rows) return;
    A acc = fold_row(x + row * n, n, lane, 32, f);  // lanes past n hold the identity
    acc = warp_fold(acc, f);
    if (lane == 0) out[row] = store_from<OT>(acc);
}

template <typename DT, typename A, typename OT>
__global__ void reduce_block_rows_kernel(int64_t n, const DT* x, OT* out, Fold<A> f) {
    __shared__ A partial[32];
    const int64_t row = blockIdx.x;
    A acc = fold_row(x + row * n, n, threadIdx.x, blockDim.x, f);
    acc = warp_fold(acc, f);
    if (threadIdx.x % 32 == 0) partial[threadIdx.x / 32] = acc;
    __syncthreads();
    if (threadIdx.x < 32) {
        const int warps = blockDim.x / 32;
        acc = threadIdx.x < warps ? partial[threadIdx.x] : partial[0];
        if (f.op == ReduceOp::sum && threadIdx.x >= warps) acc = A(0);
        acc = warp_fold(acc, f);
        if (threadIdx.x == 0) out[row] = store_from<OT>(acc);
    }
}

// argmax: (value, index) pairs; larger value wins, NaN wins, ties keep the smaller index.
template <typename A>
__device__ __forceinline__ void arg_combine(A& v, int64_t& i, A ov, int64_t oi) {
    const bool nan = v != v, onan = ov != ov;
    bool take;
    if (nan || onan) take = onan && (!nan || oi < i);
    else take = ov > v || (ov == v && oi < i);
    if (take) { v = ov; i = oi; }
}

template <typename DT, typename A>
__global__ void argmax_rows_kernel(int64_t n, const DT* x, int64_t* out) {
    __shared__ A pv[32];
    __shared__ int64_t pi[32];
    const DT* row = x + int64_t(blockIdx.x) * n;
    A v = load_as<A>(row[0]);
    int64_t idx = 0;
    for (int64_t i = threadIdx.x; i < n; i += blockDim.x) arg_combine(v, idx, load_as<A>(row[i]), i);
#pragma unroll
    for (int offset = 16; offset > 0; offset /= 2) {
        const A ov = __shfl_down_sync(0xffffffffu, v, offset);
        const int64_t oi = __shfl_down_sync(0xffffffffu, idx, offset);
        arg_combine(v, idx, ov, oi);
    }
    if (threadIdx.x % 32 == 0) { pv[threadIdx.x / 32] = v; pi[threadIdx.x / 32] = idx; }
    __syncthreads();
    if (threadIdx.x == 0) {
        for (int w = 1; w < int(blockDim.x / 32); ++w) arg_combine(v, idx, pv[w], pi[w]);
        out[blockIdx.x] = idx;
    }
}

}  // namespace

void reduce_rows(ReduceOp op, Tensor& out, const Tensor& x, int64_t n) {
    const int64_t rows = out.numel();
    if (rows == 0) return;
    const int device = out.device().index;
    set_device(device);
    cudaStream_t stream = compute_stream(device);
    if (n == 0) {  // sums of empty rows (max/min of empty rows are refused by the op)
        kernels::fill(out, 0.0);
        return;
    }
    dispatch_all(x.dtype(), "reduce", [&]<typename T>() {
        using A = std::conditional_t<std::is_same_v<T, double>, double,
                  std::conditional_t<std::is_floating_point_v<compute_t<T>>, float, int64_t>>;
        dispatch_all(out.dtype(), "reduce", [&]<typename O>() {
            const auto* in = data_ptr<T>(x);
            auto* o = data_ptr<O>(out);
            if (n <= 1024) {
                const int64_t blocks = (rows + 7) / 8;
                reduce_warp_rows_kernel<<<unsigned(blocks), 256, 0, stream>>>(rows, n, in, o, Fold<A>{op});
            } else {
                reduce_block_rows_kernel<<<unsigned(rows), 256, 0, stream>>>(n, in, o, Fold<A>{op});
            }
        });
    });
    check_launch("reduce_rows_kernel", {{"out", out}, {"x", x}});
}

void argmax_rows(Tensor& out, const Tensor& x, int64_t n) {
    const int64_t rows = out.numel();
    if (rows == 0) return;
    const int device = out.device().index;
    set_device(device);
    dispatch_all(x.dtype(), "argmax", [&]<typename T>() {
        using A = std::conditional_t<std::is_same_v<T, double>, double,
                  std::conditional_t<std::is_floating_point_v<compute_t<T>>, float, int64_t>>;
        argmax_rows_kernel<device_t<T>, A><<<unsigned(rows), 256, 0, compute_stream(device)>>>(
            n, data_ptr<T>(x), data_ptr<int64_t>(out));
    });
    check_launch("argmax_rows_kernel", {{"out", out}, {"x", x}});
}

}  // namespace lumen::cuda
