// cuda/loss.cu: the CUDA fused cross-entropy, forward and backward (conventions in
// core/kernels/loss.h; reference: core/cpu/loss.cpp).
//
// Forward, two launches and no atomics: a row kernel (one warp per row up to V = 1024, one block
// per row above: cuda/rows.cuh) reads each row of logits once for its online (max, Σ exp) pair and
// writes lse[r] and the row's loss lse[r] − logits[r, target[r]] (f64) into a scratch buffer; then
// one block sums the counted rows' losses in a fixed order (f64) and writes the mean loss and the
// count. The backward writes dlogits row by row, reading dloss and count on the device.
//
// Out-of-range targets on CUDA: the CPU kernel throws, but checking here would need a host read
// of the targets (a synchronisation). Instead a target outside [0, V) that is not ignore_index
// counts as a row whose loss and lse are NaN: the loss is NaN and that row's dlogits are NaN, on
// every run. tests/ops/loss_test.cpp checks this.
#include "core/kernels/loss.h"
#include "cuda/rows.cuh"

namespace lumen::cuda {

namespace {

template <typename DT, typename C, typename I, bool BLOCK>
__global__ void cross_entropy_rows_kernel(int64_t rows, int64_t V, const DT* __restrict__ logits,
                                          const I* __restrict__ target, int64_t ignore_index,
                                          C* __restrict__ lse, double* __restrict__ row_loss) {
    using namespace rows;
    __shared__ MaxSum<C> scratch[33];
    const RowGrid<BLOCK> grid;
    const int t = grid.t(), width = grid.width();
    for (int64_t r = grid.first(); r < rows; r += grid.stride()) {
        const int64_t k = int64_t(target[r]);  // the same for every thread of the row
        if (k == ignore_index || k < 0 || k >= V) {
            if (t == 0) {
                const bool ignored = k == ignore_index;
                lse[r] = ignored ? C(0) : quiet_nan<C>();  // ignored: never read
                row_loss[r] = ignored ? 0.0 : quiet_nan<double>();
            }
            continue;
        }
        const DT* xr = logits + r * V;  // (V,)
        MaxSum<C> part = identity_max_sum<C>();
        walk_row(xr, V, t, width, true, [&]<int K>(int64_t i) {
            C v[K];
            load_k<K>(xr + i, v);
            update(part, v);
        });
        const MaxSum<C> row = finish(grid.all_reduce(part, Combine{}, identity_max_sum<C>(), scratch));
        if (t == 0) {
            const C l = row.m + log_c(row.s);
            lse[r] = l;
            row_loss[r] = double(l - load_as<C>(xr[k]));
        }
    }
}

// One block: loss = Σ_counted row_loss / count (0 when count = 0), summed in a fixed order.
template <typename C, typename I>
__global__ void cross_entropy_mean_kernel(int64_t rows, const double* __restrict__ row_loss,
                                          const I* __restrict__ target, int64_t ignore_index,
                                          C* __restrict__ loss, int64_t* __restrict__ count) {
    using namespace rows;
    __shared__ double sum_scratch[33];
    __shared__ int64_t count_scratch[33];
    double sum = 0;
    int64_t valid = 0;
    for (int64_t r = threadIdx.x; r < rows; r += blockDim.x) {
        if (int64_t(target[r]) == ignore_index) continue;
        sum += row_loss[r];
        ++valid;
    }
    sum = block_all_reduce(sum, Add{}, 0.0, sum_scratch);
    valid = block_all_reduce(valid, Add{}, int64_t(0), count_scratch);
    if (threadIdx.x == 0) {
        loss[0] = valid > 0 ? C(sum / double(valid)) : C(0);
        count[0] = valid;
    }
}

// The scalar dloss in any float dtype, read on the device.
__device__ __forceinline__ double read_scalar(const void* p, DType dt) {
    switch (dt) {
    case DType::f64: return *static_cast<const double*>(p);
    case DType::bf16: return double(__bfloat162float(*static_cast<const __nv_bfloat16*>(p)));
    case DType::f16: return double(__half2float(*static_cast<const __half*>(p)));
    default: return double(*static_cast<const float*>(p));
    }
}

// dlogits[r] = (exp(logits[r] − lse[r]) − onehot(target[r])) · dloss / count; 0 in ignored rows.
template <typename DT, typename C, typename I, bool BLOCK>
__global__ void cross_entropy_backward_kernel(int64_t rows, int64_t V, const DT* __restrict__ logits,
                                              const I* __restrict__ target, int64_t ignore_index,
                                              const C* __restrict__ lse, const void* dloss,
                                              DType dloss_dtype, const int64_t* __restrict__ count,
                                              DT* __restrict__ dlogits) {
    using namespace rows;
    const RowGrid<BLOCK> grid;
    const int t = grid.t(), width = grid.width();
    const int64_t valid = count[0];
    const C scale = valid > 0 ? C(read_scalar(dloss, dloss_dtype) / double(valid)) : C(0);
    for (int64_t r = grid.first(); r < rows; r += grid.stride()) {
        const int64_t k = int64_t(target[r]);
        const DT* xr = logits + r * V;  // (V,)
        DT* dr = dlogits + r * V;
        if (k == ignore_index) {
            walk_row(dr, V, t, width, true, [&]<int K>(int64_t i) {
                C zero[K];
#pragma unroll
                for (int j = 0; j < K; ++j) zero[j] = C(0);
                store_k<K>(dr + i, zero);
            });
            continue;
        }
        const C l = lse[r];  // NaN for an out-of-range target: the row becomes NaN
        walk_row(xr, V, t, width, same_alignment(xr, dr), [&]<int K>(int64_t i) {
            C v[K];
            load_k<K>(xr + i, v);
#pragma unroll
            for (int j = 0; j < K; ++j)
                v[j] = (exp_c(v[j] - l) - C(i + j == k ? 1 : 0)) * scale;
            store_k<K>(dr + i, v);
        });
    }
}

}  // namespace

void cross_entropy(Tensor& loss, Tensor& lse, Tensor& count, const Tensor& logits,
                   const Tensor& target, int64_t ignore_index) {
    const int64_t V = logits.shape().back();
    const int64_t rows = target.numel();
    const int device = loss.device().index;
    set_device(device);
    cudaStream_t stream = compute_stream(device);
    Tensor row_loss = Tensor::empty({rows}, DType::f64, loss.device());  // (rows,) scratch
    dispatch_index(target.dtype(), "cross_entropy", [&]<typename I>() {
        dispatch_float(logits.dtype(), "cross_entropy", [&]<typename T>() {
            using C = compute_t<T>;
            if (rows > 0) {
                rows::launch_rows(rows, V, [&](auto block, auto, unsigned blocks, int threads) {
                    cross_entropy_rows_kernel<device_t<T>, C, I, decltype(block)::value>
                        <<<blocks, threads, 0, stream>>>(rows, V, data_ptr<T>(logits),
                                                         data_ptr<I>(target), ignore_index,
                                                         data_ptr<C>(lse), data_ptr<double>(row_loss));
                });
                check_launch("cross_entropy_rows_kernel", {{"logits", logits}, {"target", target}});
            }
            cross_entropy_mean_kernel<C, I><<<1, 1024, 0, stream>>>(
                rows, data_ptr<double>(row_loss), data_ptr<I>(target), ignore_index,
                data_ptr<C>(loss), data_ptr<int64_t>(count));
            check_launch("cross_entropy_mean_kernel", {{"loss", loss}, {"target", target}});
        });
    });
}

void cross_entropy_backward(Tensor& dlogits, const Tensor& dloss, const Tensor& logits,
                            const Tensor& target, const Tensor& lse, const Tensor& count,
                            int64_t ignore_index) {
    const int64_t V = logits.shape().back();
    const int64_t rows = target.numel();
    if (rows == 0 || V == 0) return;
    const int device = dlogits.device().index;
    set_device(device);
    cudaStream_t stream = compute_stream(device);
    dispatch_index(target.dtype(), "cross_entropy_backward", [&]<typename I>() {
        dispatch_float(logits.dtype(), "cross_entropy_backward", [&]<typename T>() {
            using C = compute_t<T>;
            rows::launch_rows(rows, V, [&](auto block, auto, unsigned blocks, int threads) {
                cross_entropy_backward_kernel<device_t<T>, C, I, decltype(block)::value>
                    <<<blocks, threads, 0, stream>>>(rows, V, data_ptr<T>(logits), data_ptr<I>(target),
                                                     ignore_index, data_ptr<C>(lse), dloss.data_ptr(),
                                                     dloss.dtype(), data_ptr<int64_t>(count),
                                                     data_ptr<T>(dlogits));
            });
        });
    });
    check_launch("cross_entropy_backward_kernel",
                 {{"dlogits", dlogits}, {"logits", logits}, {"target", target}});
}

}  // namespace lumen::cuda
