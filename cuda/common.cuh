// cuda/common.cuh: what every lumen CUDA kernel file includes: device element types, conversions
// between them, launch geometry, and strided offset calculation.
//
// lumen's host bf16/f16 structs have the bit layout of CUDA's __nv_bfloat16/__half, so kernels see
// tensors through device_t<T>. Loads convert to the compute type (f32, f64 for f64, i64 for
// integers) with load_as<C>, stores convert back with round-to-nearest-even (store_from).
#pragma once

#include "core/dtype.h"
#include "core/tensor.h"
#include "cuda/runtime.h"

#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <array>

namespace lumen::cuda {

template <typename T> struct device_type { using type = T; };
template <> struct device_type<bf16> { using type = __nv_bfloat16; };
template <> struct device_type<f16> { using type = __half; };
template <typename T> using device_t = typename device_type<T>::type;

template <typename T>
device_t<T>* device_ptr(const Tensor& t) {
    return static_cast<device_t<T>*>(t.storage()->data());  // NOTE: base pointer; offsets added by kernels
}
template <typename T>
device_t<T>* data_ptr(const Tensor& t) {
    return static_cast<device_t<T>*>(t.data_ptr());
}

// Any device element type -> compute type C.
template <typename C, typename T>
__device__ __forceinline__ C load_as(T v) {
    if constexpr (std::is_same_v<T, __nv_bfloat16>) return C(__bfloat162float(v));
    else if constexpr (std::is_same_v<T, __half>) return C(__half2float(v));
    else if constexpr (std::is_same_v<C, bool>) return v != T(0);
    else return C(v);
}

// Compute value -> device element type T (round to nearest even for bf16/f16).
template <typename T, typename C>
__device__ __forceinline__ T store_from(C v) {
    if constexpr (std::is_same_v<T, __nv_bfloat16>) return __float2bfloat16_rn(float(v));
    else if constexpr (std::is_same_v<T, __half>) return __float2half_rn(float(v));
    else if constexpr (std::is_same_v<T, bool>) return v != C(0);
    else return T(v);
}

// The compute type of storage type T on the device.
template <typename T> struct device_compute { using type = compute_t<T>; };
template <typename T> using device_compute_t = typename device_compute<T>::type;

inline constexpr int max_dims = 8;

// Row-major offsets of N operands sharing one (coalesced) shape.
template <int N>
struct OffsetCalc {
    int rank = 0;
    int64_t sizes[max_dims];
    int64_t strides[N][max_dims];
    int64_t base[N];

    __device__ __forceinline__ void get(int64_t index, int64_t (&off)[N]) const {
#pragma unroll
        for (int k = 0; k < N; ++k) off[k] = base[k];
        for (int d = rank - 1; d >= 0; --d) {
            const int64_t i = index % sizes[d];
            index /= sizes[d];
#pragma unroll
            for (int k = 0; k < N; ++k) off[k] += i * strides[k][d];
        }
    }
};

// Coalesces the layouts (all of `shape`) into an OffsetCalc; throws past max_dims dims.
template <int N>
OffsetCalc<N> make_offset_calc(const Shape& shape, const std::array<const Layout*, N>& layouts, const char* op) {
    OffsetCalc<N> c;
    for (int k = 0; k < N; ++k) c.base[k] = layouts[k]->offset;
    for (size_t d = 0; d < shape.size(); ++d) {
        if (shape[d] == 1) continue;
        bool merge = c.rank > 0;
        for (int k = 0; k < N && merge; ++k) merge = c.strides[k][c.rank - 1] == layouts[k]->strides[d] * shape[d];
        if (merge) {
            c.sizes[c.rank - 1] *= shape[d];
            for (int k = 0; k < N; ++k) c.strides[k][c.rank - 1] = layouts[k]->strides[d];
            continue;
        }
        if (c.rank == max_dims)
            throw Error(concat_message({op, ": more than 8 non-mergeable dims in shape ", shape_str(shape)}));
        c.sizes[c.rank] = shape[d];
        for (int k = 0; k < N; ++k) c.strides[k][c.rank] = layouts[k]->strides[d];
        ++c.rank;
    }
    return c;
}

inline int64_t blocks_for(int64_t n, int threads, int64_t max_blocks = int64_t(1) << 31) {
    return std::min<int64_t>(std::max<int64_t>((n + threads - 1) / threads, 1), max_blocks - 1);
}

}  // namespace lumen::cuda
