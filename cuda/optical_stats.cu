// cuda/optical_stats.cu: CUDA range statistics and operand quantizer for the optical layers (see
// core/kernels/optical_stats.h; reference core/cpu/optical_stats.cpp).
//
// Nothing here waits for the host or reads a value back: ranges are read and written in device
// memory, and every size the host needs is a tensor's shape.
//   min_max     the two words of `out` hold order keys (optical::order_key) while the reduction
//               runs: an init kernel writes the identities, a grid-stride kernel folds keys per
//               block (warp reductions, then one atomicMin/atomicMax per block), and a 1-thread
//               kernel decodes the keys to floats in place. Integer min/max is order-free, so the
//               result is exact and the same run to run.
//   quantiles   keys of every element (non-finite ones as +inf's key, which sorts last) and the
//               finite count (atomics) go to scratch; cub::DeviceRadixSort sorts the keys; a
//               1-thread kernel computes §4.1's positions from the device count and interpolates.
//   range_update  one thread (§4.2).
//   quantize    elementwise Q_det, x read through its strides, out contiguous; NaN stored as the
//               CPU's canonical quiet NaN (cuda/optical_store.cuh).
#include "core/kernels/optical_stats.h"
#include "cuda/common.cuh"
#include "cuda/optical_store.cuh"

#include <cub/device/device_radix_sort.cuh>

namespace lumen::cuda {

namespace {

constexpr int threads = 256;

int64_t grid_for(int64_t work, int device) {
    return std::min<int64_t>(blocks_for(work, threads), int64_t(properties(device).sm_count) * 8);
}

// The two elements of a range tensor ((2,) or a row of a (P, 2) buffer): element 0 at ptr, 1 at
// ptr + step.
struct RangeRef {
    float* ptr;
    int64_t step;
};
RangeRef range_ref(const Tensor& t, const char* op) {
    check(t.dtype() == DType::f32 && t.numel() == 2, op, "a range is 2 f32 values [lo, hi]", {{"range", t}});
    return {static_cast<float*>(t.data_ptr()), t.strides().back()};
}

// Element offsets of row-major index i: one multiply when the layouts coalesce to one dim (the
// contiguous case), OffsetCalc's divisions otherwise.
template <int N>
__device__ __forceinline__ void offsets_of(const OffsetCalc<N>& calc, int64_t i, int64_t (&off)[N]) {
    if (calc.rank <= 1) {
#pragma unroll
        for (int k = 0; k < N; ++k) off[k] = calc.base[k] + (calc.rank == 1 ? i * calc.strides[k][0] : 0);
    } else {
        calc.get(i, off);
    }
}

__device__ __forceinline__ uint32_t* key_word(RangeRef r, int c) {
    return reinterpret_cast<uint32_t*>(r.ptr + c * r.step);
}

__global__ void keys_init_kernel(RangeRef r) {
    *key_word(r, 0) = optical::min_identity_key;
    *key_word(r, 1) = optical::max_identity_key;
}

__global__ void keys_decode_kernel(RangeRef r) {
    r.ptr[0] = optical::from_order_key(*key_word(r, 0));
    r.ptr[r.step] = optical::from_order_key(*key_word(r, 1));
}

template <typename DT>
__global__ void min_max_kernel(int64_t n, OffsetCalc<1> calc, const DT* x, RangeRef r) {
    uint32_t lo = optical::min_identity_key, hi = optical::max_identity_key;
    for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x) {
        int64_t off[1];
        offsets_of(calc, i, off);
        const float v = load_as<float>(x[off[0]]);
        if (isfinite(v)) {
            const uint32_t k = optical::order_key(v);
            lo = min(lo, k);
            hi = max(hi, k);
        }
    }
    lo = __reduce_min_sync(0xffffffffu, lo);
    hi = __reduce_max_sync(0xffffffffu, hi);
    __shared__ uint32_t s_lo[threads / 32], s_hi[threads / 32];
    if (threadIdx.x % 32 == 0) {
        s_lo[threadIdx.x / 32] = lo;
        s_hi[threadIdx.x / 32] = hi;
    }
    __syncthreads();
    if (threadIdx.x == 0) {
        for (int w = 1; w < int(blockDim.x / 32); ++w) {
            lo = min(lo, s_lo[w]);
            hi = max(hi, s_hi[w]);
        }
        atomicMin(key_word(r, 0), lo);
        atomicMax(key_word(r, 1), hi);
    }
}

template <typename DT>
__global__ void quantile_keys_kernel(int64_t n, OffsetCalc<1> calc, const DT* x, uint32_t* keys,
                                     unsigned long long* finite) {
    unsigned long long count = 0;
    for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x) {
        int64_t off[1];
        offsets_of(calc, i, off);
        const float v = load_as<float>(x[off[0]]);
        const bool ok = isfinite(v);
        keys[i] = ok ? optical::order_key(v) : optical::min_identity_key;  // non-finite: +inf's key
        count += ok ? 1 : 0;
    }
    for (int offset = 16; offset > 0; offset /= 2) count += __shfl_down_sync(0xffffffffu, count, offset);
    if (threadIdx.x % 32 == 0 && count > 0) atomicAdd(finite, count);
}

__global__ void quantile_pick_kernel(const uint32_t* sorted, const unsigned long long* finite, double a, double b,
                                     RangeRef r) {
    const int64_t n = int64_t(*finite);
    if (n == 0) {
        r.ptr[0] = INFINITY;
        r.ptr[r.step] = -INFINITY;
        return;
    }
    const auto at = [sorted](int64_t j) { return optical::from_order_key(sorted[j]); };
    r.ptr[0] = optical::sorted_quantile(at, n, a);
    r.ptr[r.step] = optical::sorted_quantile(at, n, b);
}

__global__ void range_update_kernel(RangeRef mm, RangeRef batch, float f, float g, bool training) {
    const float blo = batch.ptr[0], bhi = batch.ptr[batch.step];
    if (!optical::range_is_calibrated(blo, bhi)) return;
    float& lo = mm.ptr[0];
    float& hi = mm.ptr[mm.step];
    if (!optical::range_is_calibrated(lo, hi)) {
        lo = blo;
        hi = bhi;
    } else if (training) {
        lo = optical::add_rn(optical::mul_rn(f, lo), optical::mul_rn(g, blo));
        hi = optical::add_rn(optical::mul_rn(f, hi), optical::mul_rn(g, bhi));
    }
}

template <typename OT, typename DT>
__global__ void quantize_kernel(int64_t n, OffsetCalc<2> calc, OT* out, const DT* x, const float* range,
                                int64_t range_step, optical::QuantParams p) {
    const float lo = range[0], hi = range[range_step];
    for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x) {
        int64_t off[2];
        offsets_of(calc, i, off);
        out[off[0]] = store_canonical<OT>(optical::quantize_det(load_as<float>(x[off[1]]), lo, hi, p));
    }
}

}  // namespace

void optical_min_max(Tensor& out, const Tensor& x) {
    const RangeRef r = range_ref(out, "optical_min_max");
    const int device = out.device().index;
    set_device(device);
    cudaStream_t stream = compute_stream(device);
    keys_init_kernel<<<1, 1, 0, stream>>>(r);
    check_launch("optical_keys_init_kernel", {{"out", out}});
    const int64_t n = x.numel();
    if (n > 0) {
        dispatch_float(x.dtype(), "optical_min_max", [&]<typename T>() {
            const auto calc = make_offset_calc<1>(x.shape(), {&x.layout()}, "optical_min_max");
            min_max_kernel<<<unsigned(grid_for(n, device)), threads, 0, stream>>>(n, calc, device_ptr<T>(x), r);
        });
        check_launch("optical_min_max_kernel", {{"out", out}, {"x", x}});
    }
    keys_decode_kernel<<<1, 1, 0, stream>>>(r);
    check_launch("optical_keys_decode_kernel", {{"out", out}});
}

void optical_quantiles(Tensor& out, const Tensor& x, double a, double b) {
    const RangeRef r = range_ref(out, "optical_quantiles");
    const int device = out.device().index;
    set_device(device);
    cudaStream_t stream = compute_stream(device);
    const int64_t n = x.numel();
    // [keys | sorted keys] as one i32 scratch, read as uint32; the finite count as one i64.
    Tensor keys = Tensor::empty({2, std::max<int64_t>(n, 1)}, DType::i32, out.device());
    Tensor finite = Tensor::empty({1}, DType::i64, out.device());
    auto* count = static_cast<unsigned long long*>(finite.data_ptr());
    LUMEN_CUDA_CHECK(cudaMemsetAsync(count, 0, sizeof(unsigned long long), stream));
    uint32_t* keys_in = static_cast<uint32_t*>(keys.data_ptr());
    uint32_t* keys_out = keys_in + std::max<int64_t>(n, 1);
    if (n > 0) {
        dispatch_float(x.dtype(), "optical_quantiles", [&]<typename T>() {
            const auto calc = make_offset_calc<1>(x.shape(), {&x.layout()}, "optical_quantiles");
            quantile_keys_kernel<<<unsigned(grid_for(n, device)), threads, 0, stream>>>(n, calc, device_ptr<T>(x),
                                                                                      keys_in, count);
        });
        check_launch("optical_quantile_keys_kernel", {{"x", x}});
        size_t temp_bytes = 0;
        LUMEN_CUDA_CHECK(cub::DeviceRadixSort::SortKeys(nullptr, temp_bytes, keys_in, keys_out, n, 0, 32, stream));
        Tensor temp = Tensor::empty({int64_t(std::max<size_t>(temp_bytes, 1))}, DType::u8, out.device());
        LUMEN_CUDA_CHECK(cub::DeviceRadixSort::SortKeys(temp.data_ptr(), temp_bytes, keys_in, keys_out, n, 0, 32, stream));
    }
    quantile_pick_kernel<<<1, 1, 0, stream>>>(keys_out, count, a, b, r);
    check_launch("optical_quantile_pick_kernel", {{"out", out}, {"x", x}});
}

void optical_range_update(Tensor& mm, const Tensor& batch, float f, float g, bool training) {
    const RangeRef m = range_ref(mm, "optical_range_update");
    const RangeRef b = range_ref(batch, "optical_range_update");
    const int device = mm.device().index;
    set_device(device);
    range_update_kernel<<<1, 1, 0, compute_stream(device)>>>(m, b, f, g, training);
    check_launch("optical_range_update_kernel", {{"mm", mm}, {"batch", batch}});
}

void optical_quantize(Tensor& out, const Tensor& x, const Tensor& range, const optical::QuantParams& p) {
    const RangeRef r = range_ref(range, "optical_quantize");
    check(out.shape() == x.shape() && out.is_contiguous(), "optical_quantize",
          "out must be contiguous with x's shape", {{"out", out}, {"x", x}});
    const int64_t n = x.numel();
    if (n == 0) return;
    const int device = out.device().index;
    set_device(device);
    cudaStream_t stream = compute_stream(device);
    dispatch_float(x.dtype(), "optical_quantize", [&]<typename T>() {
        dispatch_float(out.dtype(), "optical_quantize", [&]<typename O>() {
            const auto calc = make_offset_calc<2>(x.shape(), {&out.layout(), &x.layout()}, "optical_quantize");
            quantize_kernel<<<unsigned(grid_for(n, device)), threads, 0, stream>>>(
                n, calc, device_ptr<O>(out), device_ptr<T>(x), r.ptr, r.step, p);
        });
    });
    check_launch("optical_quantize_kernel", {{"out", out}, {"x", x}});
}

}  // namespace lumen::cuda
