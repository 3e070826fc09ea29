// cuda/elementwise.cuh: the one elementwise launch template every map-style kernel uses.
//
//   launch_map<OutT, AT, BT>("add", out, {&a, &b}, AddFn<OutT, float>{});
//
// OutT/InT are device element types (device_t<T>); the functor receives raw input elements and
// returns an OutT (it converts with load_as/store_from). Inputs are already broadcast to out's
// shape. When every operand is contiguous and 16-byte aligned, each thread moves 16 bytes per
// operand per step (vector loads); otherwise offsets come from the coalesced strided layout.
#pragma once

#include "cuda/common.cuh"

#include <utility>

namespace lumen::cuda {

template <typename T, int VEC>
struct alignas(sizeof(T) * VEC) Vec {
    T v[VEC];
};

template <typename OutT, typename F, typename... InT, size_t... I>
__device__ __forceinline__ void map_one(OutT* out, const F& f, const int64_t (&off)[sizeof...(InT) + 1],
                                        std::index_sequence<I...>, const InT*... in) {
    out[off[0]] = f(in[off[I + 1]]...);
}

template <typename OutT, typename F, typename... InT>
__global__ void map_strided_kernel(int64_t n, OffsetCalc<sizeof...(InT) + 1> calc, OutT* out, F f,
                                   const InT*... in) {
    for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x) {
        int64_t off[sizeof...(InT) + 1];
        calc.get(i, off);
        map_one(out, f, off, std::index_sequence_for<InT...>{}, in...);
    }
}

template <int VEC, typename OutT, typename F, typename... V>
__device__ __forceinline__ void map_vector(Vec<OutT, VEC>& o, const F& f, const V&... vs) {
#pragma unroll
    for (int j = 0; j < VEC; ++j) o.v[j] = f(vs.v[j]...);
}

// Each thread handles UNROLL vectors per step, blockDim apart (coalesced), loading all of them
// before computing any: more bytes in flight per thread is what memory-bound kernels need.
template <int VEC, int UNROLL, typename OutT, typename F, typename... InT>
__global__ void map_contiguous_kernel(int64_t n, OutT* out, F f, const InT*... in) {
    const int64_t tile = int64_t(blockDim.x) * VEC * UNROLL;
    for (int64_t start = int64_t(blockIdx.x) * tile; start < n; start += int64_t(gridDim.x) * tile) {
        if (start + tile <= n) {
            Vec<OutT, VEC> o[UNROLL];
#pragma unroll
            for (int u = 0; u < UNROLL; ++u) {
                const int64_t base = start + (int64_t(u) * blockDim.x + threadIdx.x) * VEC;
                // NOTE: the arguments are the vector loads, one per input.
                map_vector<VEC>(o[u], f, *reinterpret_cast<const Vec<InT, VEC>*>(in + base)...);
            }
#pragma unroll
            for (int u = 0; u < UNROLL; ++u) {
                const int64_t base = start + (int64_t(u) * blockDim.x + threadIdx.x) * VEC;
                *reinterpret_cast<Vec<OutT, VEC>*>(out + base) = o[u];
            }
        } else {  // the last, partial tile
            for (int64_t i = start + threadIdx.x; i < n && i < start + tile; i += blockDim.x) out[i] = f(in[i]...);
        }
    }
}

template <typename... T>
constexpr size_t widest_of() {
    size_t w = 1;
    ((w = sizeof(T) > w ? sizeof(T) : w), ...);
    return w;
}

inline bool aligned16(const void* p) { return reinterpret_cast<uintptr_t>(p) % 16 == 0; }

template <typename OutT, typename... InT, typename F>
void launch_map(const char* name, const Tensor& out, const std::array<const Tensor*, sizeof...(InT)>& in, F f) {
    const int64_t n = out.numel();
    if (n == 0) return;
    const int device = out.device().index;
    set_device(device);
    cudaStream_t stream = compute_stream(device);
    constexpr int threads = 256;
    constexpr size_t widest = widest_of<OutT, InT...>();
    constexpr int VEC = int(16 / widest) > 0 ? int(16 / widest) : 1;

    bool contiguous = out.is_contiguous() && aligned16(out.data_ptr());
    for (const Tensor* t : in) contiguous = contiguous && t->is_contiguous() && t->shape() == out.shape() && aligned16(t->data_ptr());
    const int64_t max_blocks = int64_t(properties(device).sm_count) * 16;
    if (contiguous) {
        constexpr int UNROLL = 4;
        const int64_t blocks = std::min<int64_t>(blocks_for((n + VEC * UNROLL - 1) / (VEC * UNROLL), threads), max_blocks);
        std::apply([&](const auto*... tensors) {
            map_contiguous_kernel<VEC, UNROLL><<<unsigned(blocks), threads, 0, stream>>>(
                n, static_cast<OutT*>(out.data_ptr()), f, static_cast<const InT*>(tensors->data_ptr())...);
        }, in);
    } else {
        std::array<const Layout*, sizeof...(InT) + 1> layouts;
        layouts[0] = &out.layout();
        for (size_t k = 0; k < in.size(); ++k) layouts[k + 1] = &in[k]->layout();
        const auto calc = make_offset_calc<int(sizeof...(InT) + 1)>(out.shape(), layouts, name);
        const int64_t blocks = std::min<int64_t>(blocks_for(n, threads), max_blocks);
        std::apply([&](const auto*... tensors) {
            map_strided_kernel<<<unsigned(blocks), threads, 0, stream>>>(
                n, calc, static_cast<OutT*>(out.storage()->data()), f,
                static_cast<const InT*>(tensors->storage()->data())...);
        }, in);
    }
    check_launch(name, {{"out", out}});
}

}  // namespace lumen::cuda
