// cuda/softmax.cu: CUDA softmax and log_softmax over the last dim, forward and backward
// (conventions in core/kernels/softmax.h; reference: core/cpu/softmax.cpp).
//
// Rows of up to 128 elements get 8 lanes each, up to 1024 a warp, longer rows one block
// (cuda/rows.cuh). The forward reads a row twice: once for the online (max, Σ exp(x − max)) pair,
// whose special values follow the reference (an all -inf row, or one holding +inf or NaN, is NaN
// throughout), and once to write y (short rows come back from L2; 50304-wide ones mostly do not).
// The backward reads (dy, y) once for Σ dy·y (softmax) or Σ dy (log_softmax) and once to write
// dx. Loads and stores move 16 bytes where the rows allow; math is f32 (f64 for f64).
// Fixed-order reductions: two runs give the same bits. The causal variant (attention probabilities)
// masks and scales inside the same two passes.
#include "core/kernels/softmax.h"
#include "cuda/rows.cuh"

namespace lumen::cuda {

namespace {

enum class Log : bool { no, yes };

// scale·x rounded on its own (never contracted into an FMA with the max subtraction), so the
// causal variant gives the bits of scaling first and taking the softmax after.
__device__ __forceinline__ float mul_rn(float a, float b) { return __fmul_rn(a, b); }
__device__ __forceinline__ double mul_rn(double a, double b) { return __dmul_rn(a, b); }

// tq > 0: the causal variant (core/kernels/softmax.h): row r keeps keys j ≤ r mod tq + n − tq,
// of scale·x; the rest are -inf in the reduction and 0 in y.
template <typename DT, typename C, Log LOG, bool BLOCK, int LANES>
__global__ void softmax_forward_kernel(int64_t rows, int64_t n, const DT* __restrict__ x,
                                       DT* __restrict__ y, int64_t tq, C scale) {
    using namespace rows;
    __shared__ MaxSum<C> scratch[33];
    const RowGrid<BLOCK, LANES> grid;
    const int t = grid.t(), width = grid.width();
    for (int64_t group = grid.first(); group < rows; group += grid.stride()) {
        const int64_t r = group + grid.offset();
        const int64_t len = r < rows ? n : 0;  // past the last row: fold nothing, write nothing
        const DT* xr = x + (r < rows ? r : group) * n;  // (n,)
        DT* yr = y + (r < rows ? r : group) * n;
        const int64_t last = tq > 0 ? (r < rows ? r : group) % tq + (n - tq) : n - 1;
        MaxSum<C> part = identity_max_sum<C>();
        walk_row(xr, len, t, width, true, [&]<int K>(int64_t i) {
            C v[K];
            load_k<K>(xr + i, v);
            if (tq > 0) {
#pragma unroll
                for (int j = 0; j < K; ++j) v[j] = i + j <= last ? mul_rn(v[j], scale) : C(-INFINITY);
            }
            update(part, v);
        });
        const MaxSum<C> row = finish(grid.all_reduce(part, Combine{}, identity_max_sum<C>(), scratch));
        const C log_sum = log_c(row.s), inv_sum = C(1) / row.s;
        walk_row(xr, len, t, width, same_alignment(xr, yr), [&]<int K>(int64_t i) {
            C v[K];
            load_k<K>(xr + i, v);
            if (tq > 0) {
#pragma unroll
                for (int j = 0; j < K; ++j) v[j] = i + j <= last ? exp_c(mul_rn(v[j], scale) - row.m) * inv_sum : C(0);
            } else {
#pragma unroll
                for (int j = 0; j < K; ++j)
                    v[j] = LOG == Log::yes ? v[j] - row.m - log_sum : exp_c(v[j] - row.m) * inv_sum;
            }
            store_k<K>(yr + i, v);
        });
    }
}

// softmax:      dx = y · (dy − Σ dy·y)
// log_softmax:  dx = dy − exp(y) · Σ dy
// scale: the causal variant's factor (1 otherwise, which changes no bits).
template <typename DT, typename C, Log LOG, bool BLOCK, int LANES>
__global__ void softmax_backward_kernel(int64_t rows, int64_t n, const DT* __restrict__ dy,
                                        const DT* __restrict__ y, DT* __restrict__ dx, C scale) {
    using namespace rows;
    __shared__ C scratch[33];
    const RowGrid<BLOCK, LANES> grid;
    const int t = grid.t(), width = grid.width();
    for (int64_t group = grid.first(); group < rows; group += grid.stride()) {
        const int64_t r = group + grid.offset();
        const int64_t len = r < rows ? n : 0;  // past the last row: fold nothing, write nothing
        const int64_t at = (r < rows ? r : group) * n;
        const DT* gr = dy + at;  // (n,)
        const DT* yr = y + at;
        DT* dr = dx + at;
        C part = 0;
        walk_row(yr, len, t, width, same_alignment(yr, gr), [&]<int K>(int64_t i) {
            C g[K];
            load_k<K>(gr + i, g);
            if constexpr (LOG == Log::yes) {
#pragma unroll
                for (int j = 0; j < K; ++j) part += g[j];
            } else {
                C v[K];
                load_k<K>(yr + i, v);
#pragma unroll
                for (int j = 0; j < K; ++j) part += g[j] * v[j];
            }
        });
        const C total = grid.all_reduce(part, Add{}, C(0), scratch);
        const bool vector = same_alignment(yr, gr) && same_alignment(yr, dr);
        walk_row(yr, len, t, width, vector, [&]<int K>(int64_t i) {
            C g[K], v[K];
            load_k<K>(gr + i, g);
            load_k<K>(yr + i, v);
#pragma unroll
            for (int j = 0; j < K; ++j)
                v[j] = LOG == Log::yes ? g[j] - exp_c(v[j]) * total : v[j] * (g[j] - total) * scale;
            store_k<K>(dr + i, v);
        });
    }
}

// Rows of n elements in a contiguous tensor (a 0-d tensor is one row of one element).
int64_t row_length(const Tensor& t) { return t.dim() == 0 ? 1 : t.shape().back(); }

template <Log LOG>
void forward(const char* name, Tensor& y, const Tensor& x, const CausalSoftmax& causal = {}) {
    const int64_t n = row_length(x);
    if (n == 0 || x.numel() == 0) return;
    const int64_t rows = x.numel() / n;
    const int device = y.device().index;
    set_device(device);
    cudaStream_t stream = compute_stream(device);
    dispatch_float(x.dtype(), name, [&]<typename T>() {
        using DT = device_t<T>;
        using C = compute_t<T>;
        rows::launch_rows<true>(rows, n, [&](auto block, auto lanes, unsigned blocks, int threads) {
            softmax_forward_kernel<DT, C, LOG, decltype(block)::value, decltype(lanes)::value>
                <<<blocks, threads, 0, stream>>>(rows, n, data_ptr<T>(x), data_ptr<T>(y), causal.tq,
                                                 C(causal.scale));
        });
    });
    check_launch(LOG == Log::yes ? "log_softmax_forward_kernel" : "softmax_forward_kernel",
                 {{"y", y}, {"x", x}});
}

template <Log LOG>
void backward(const char* name, Tensor& dx, const Tensor& dy, const Tensor& y, double scale = 1.0) {
    const int64_t n = row_length(y);
    if (n == 0 || y.numel() == 0) return;
    const int64_t rows = y.numel() / n;
    const int device = dx.device().index;
    set_device(device);
    cudaStream_t stream = compute_stream(device);
    dispatch_float(y.dtype(), name, [&]<typename T>() {
        using DT = device_t<T>;
        using C = compute_t<T>;
        rows::launch_rows<true>(rows, n, [&](auto block, auto lanes, unsigned blocks, int threads) {
            softmax_backward_kernel<DT, C, LOG, decltype(block)::value, decltype(lanes)::value>
                <<<blocks, threads, 0, stream>>>(rows, n, data_ptr<T>(dy), data_ptr<T>(y),
                                                 data_ptr<T>(dx), C(scale));
        });
    });
    check_launch(LOG == Log::yes ? "log_softmax_backward_kernel" : "softmax_backward_kernel",
                 {{"dx", dx}, {"dy", dy}, {"y", y}});
}

}  // namespace

void softmax(Tensor& y, const Tensor& x) { forward<Log::no>("softmax", y, x); }
void causal_softmax(Tensor& y, const Tensor& x, const CausalSoftmax& c) {
    forward<Log::no>("causal_softmax", y, x, c);
}
void causal_softmax_backward(Tensor& dx, const Tensor& dy, const Tensor& y, const CausalSoftmax& c) {
    backward<Log::no>("causal_softmax_backward", dx, dy, y, c.scale);
}
void log_softmax(Tensor& y, const Tensor& x) { forward<Log::yes>("log_softmax", y, x); }
void softmax_backward(Tensor& dx, const Tensor& dy, const Tensor& y) {
    backward<Log::no>("softmax_backward", dx, dy, y);
}
void log_softmax_backward(Tensor& dx, const Tensor& dy, const Tensor& y) {
    backward<Log::yes>("log_softmax_backward", dx, dy, y);
}

}  // namespace lumen::cuda
