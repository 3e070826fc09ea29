// cuda/embedding.cu: the CUDA embedding gather and its deterministic backward (conventions in
// core/kernels/embedding.h; reference: core/cpu/embedding.cpp).
//
// Forward: a row copy of raw bytes in the widest unit (16, 8, 4, 2 or 1 bytes) that the row size
// and both base pointers allow, one unit per thread, grid-stride.
// Backward, with no float atomics: the (index, position) pairs are sorted by index with CUB's
// stable radix sort, so each table row's positions come out in increasing order; a binary search
// gives each row its run [offsets[v], offsets[v + 1]); then one thread per (row, column chunk)
// sums dy over the run in that order in f32 (f64 for f64) and writes dweight (=), zero for rows no
// index names. The sum order is the CPU reference's, so the results match it bit for bit.
//
// Out-of-range indices on CUDA: the CPU kernel throws, but checking here would need a host read of
// the indices (a synchronisation). Instead an index outside [0, V) gathers a row of all-one bits
// (NaN for float dtypes, -1 for integer ones), and the backward drops its dy row. Every run does
// the same; tests/ops/embedding_test.cpp checks this.
#include "core/kernels/embedding.h"
#include "cuda/common.cuh"

#include <cub/device/device_radix_sort.cuh>

namespace lumen::cuda {

namespace {

template <typename U>
__device__ __forceinline__ U all_ones() {
    if constexpr (std::is_same_v<U, uint4>) return make_uint4(~0u, ~0u, ~0u, ~0u);
    else if constexpr (std::is_same_v<U, uint2>) return make_uint2(~0u, ~0u);
    else return U(~U(0));
}

// out[n, j] = weight[indices[n], j] for units j of a row (units_per_row units of sizeof(U) bytes).
template <typename U, typename I>
__global__ void embedding_kernel(int64_t N, int64_t units_per_row, int64_t V, const U* __restrict__ weight,
                                 const I* __restrict__ indices, U* __restrict__ out) {
    const int64_t total = N * units_per_row;
    for (int64_t u = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; u < total;
         u += int64_t(gridDim.x) * blockDim.x) {
        const int64_t n = u / units_per_row, j = u - n * units_per_row;
        const int64_t v = int64_t(indices[n]);
        out[u] = v >= 0 && v < V ? weight[v * units_per_row + j] : all_ones<U>();
    }
}

// Sort keys: the index, or V (sorted last, read by no row) when it is out of range.
template <typename I, typename K>
__global__ void embedding_keys_kernel(int64_t N, int64_t V, const I* __restrict__ indices,
                                      K* __restrict__ keys, int64_t* __restrict__ positions) {
    for (int64_t n = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; n < N;
         n += int64_t(gridDim.x) * blockDim.x) {
        const int64_t v = int64_t(indices[n]);
        keys[n] = K(v >= 0 && v < V ? v : V);
        positions[n] = n;
    }
}

// offsets[v] = the first sorted position whose key is ≥ v, for v in [0, V].
template <typename K>
__global__ void embedding_offsets_kernel(int64_t N, int64_t V, const K* __restrict__ sorted_keys,
                                         int64_t* __restrict__ offsets) {
    for (int64_t v = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; v <= V;
         v += int64_t(gridDim.x) * blockDim.x) {
        int64_t lo = 0, hi = N;
        while (lo < hi) {
            const int64_t mid = lo + (hi - lo) / 2;
            if (int64_t(sorted_keys[mid]) < v) lo = mid + 1;
            else hi = mid;
        }
        offsets[v] = lo;
    }
}

// dweight[v, chunk] = Σ over the run of v, in position order, of dy[position, chunk].
// threadIdx.x walks the chunks of VEC columns, threadIdx.y picks the row within the block.
template <typename DT, typename A, int VEC>
__global__ void embedding_backward_kernel(int64_t V, int64_t C, const int64_t* __restrict__ offsets,
                                          const int64_t* __restrict__ positions,
                                          const DT* __restrict__ dy, DT* __restrict__ dweight) {
    struct alignas(sizeof(DT) * VEC) Pack { DT e[VEC]; };
    const int64_t chunks = C / VEC;
    for (int64_t v = int64_t(blockIdx.x) * blockDim.y + threadIdx.y; v < V;
         v += int64_t(gridDim.x) * blockDim.y) {
        const int64_t begin = offsets[v], end = offsets[v + 1];
        for (int64_t c = threadIdx.x; c < chunks; c += blockDim.x) {
            A acc[VEC];
#pragma unroll
            for (int j = 0; j < VEC; ++j) acc[j] = A(0);
            constexpr int U = 4;  // rows loaded ahead; they are still added in order
            int64_t q = begin;
            for (; q + U <= end; q += U) {
                Pack p[U];
#pragma unroll
                for (int u = 0; u < U; ++u)
                    p[u] = reinterpret_cast<const Pack*>(dy + positions[q + u] * C)[c];
#pragma unroll
                for (int u = 0; u < U; ++u)
#pragma unroll
                    for (int j = 0; j < VEC; ++j) acc[j] += load_as<A>(p[u].e[j]);
            }
            for (; q < end; ++q) {
                const Pack p = reinterpret_cast<const Pack*>(dy + positions[q] * C)[c];
#pragma unroll
                for (int j = 0; j < VEC; ++j) acc[j] += load_as<A>(p.e[j]);
            }
            Pack out;
#pragma unroll
            for (int j = 0; j < VEC; ++j) out.e[j] = store_from<DT>(acc[j]);
            reinterpret_cast<Pack*>(dweight + v * C)[c] = out;
        }
    }
}

int64_t grid_for(int64_t work, int threads, int device) {
    return std::min<int64_t>(blocks_for(work, threads), int64_t(properties(device).sm_count) * 32);
}

bool aligned_to(const void* p, size_t bytes) { return reinterpret_cast<uintptr_t>(p) % bytes == 0; }

template <typename U, typename I>
void launch_gather(Tensor& out, const Tensor& weight, const Tensor& indices, int64_t V,
                   size_t row_bytes, cudaStream_t stream, int device) {
    const int64_t N = indices.numel(), units = int64_t(row_bytes / sizeof(U));
    const int64_t blocks = grid_for(N * units, 256, device);
    embedding_kernel<U, I><<<unsigned(blocks), 256, 0, stream>>>(
        N, units, V, static_cast<const U*>(weight.data_ptr()), static_cast<const I*>(indices.data_ptr()),
        static_cast<U*>(out.data_ptr()));
}

template <typename T, typename I, typename K>
void backward_with_keys(Tensor& dweight, const Tensor& dy, const Tensor& indices, cudaStream_t stream,
                        int device) {
    using DT = device_t<T>;
    using A = compute_t<T>;
    const int64_t V = dweight.shape()[0], C = dweight.shape()[1], N = indices.numel();
    const Device dev = dweight.device();
    const DType key_dtype = sizeof(K) == 4 ? DType::i32 : DType::i64;
    Tensor keys = Tensor::empty({2, N}, key_dtype, dev);         // unsorted, sorted
    Tensor positions = Tensor::empty({2, N}, DType::i64, dev);   // unsorted, sorted
    Tensor offsets = Tensor::empty({V + 1}, DType::i64, dev);
    K* keys_in = static_cast<K*>(keys.data_ptr());
    K* keys_out = keys_in + N;
    int64_t* pos_in = data_ptr<int64_t>(positions);
    int64_t* pos_out = pos_in + N;
    if (N > 0) {
        embedding_keys_kernel<I, K><<<unsigned(grid_for(N, 256, device)), 256, 0, stream>>>(
            N, V, static_cast<const I*>(indices.data_ptr()), keys_in, pos_in);
        check_launch("embedding_keys_kernel", {{"indices", indices}});
        int end_bit = 1;
        while (end_bit < int(sizeof(K) * 8) && (uint64_t(V) >> end_bit) != 0) ++end_bit;  // V fits
        size_t temp_bytes = 0;
        LUMEN_CUDA_CHECK(cub::DeviceRadixSort::SortPairs(nullptr, temp_bytes, keys_in, keys_out, pos_in,
                                                         pos_out, N, 0, end_bit, stream));
        Tensor temp = Tensor::empty({int64_t(temp_bytes)}, DType::u8, dev);
        LUMEN_CUDA_CHECK(cub::DeviceRadixSort::SortPairs(temp.data_ptr(), temp_bytes, keys_in, keys_out,
                                                         pos_in, pos_out, N, 0, end_bit, stream));
    }
    embedding_offsets_kernel<K><<<unsigned(grid_for(V + 1, 256, device)), 256, 0, stream>>>(
        N, V, keys_out, data_ptr<int64_t>(offsets));
    check_launch("embedding_offsets_kernel", {{"dweight", dweight}});

    constexpr int VEC = 16 / sizeof(DT);
    const bool vector = C % VEC == 0 && aligned_to(dy.data_ptr(), 16) && aligned_to(dweight.data_ptr(), 16);
    const int64_t chunks = vector ? C / VEC : C;
    int tx = 32;
    while (tx < 256 && tx < chunks) tx *= 2;
    const dim3 threads(unsigned(tx), unsigned(256 / tx));
    const int64_t blocks = std::min<int64_t>((V + threads.y - 1) / threads.y, (int64_t(1) << 31) - 1);
    if (vector)
        embedding_backward_kernel<DT, A, VEC><<<unsigned(blocks), threads, 0, stream>>>(
            V, C, data_ptr<int64_t>(offsets), pos_out, data_ptr<T>(dy), data_ptr<T>(dweight));
    else
        embedding_backward_kernel<DT, A, 1><<<unsigned(blocks), threads, 0, stream>>>(
            V, C, data_ptr<int64_t>(offsets), pos_out, data_ptr<T>(dy), data_ptr<T>(dweight));
    check_launch("embedding_backward_kernel", {{"dweight", dweight}, {"dy", dy}, {"indices", indices}});
}

}  // namespace

void embedding(Tensor& out, const Tensor& weight, const Tensor& indices) {
    const int64_t V = weight.shape()[0], C = weight.shape()[1];
    const size_t row_bytes = static_cast<size_t>(C) * dtype_size(weight.dtype());
    if (indices.numel() == 0 || row_bytes == 0) return;
    const int device = out.device().index;
    set_device(device);
    cudaStream_t stream = compute_stream(device);
    size_t unit = 16;  // the widest unit dividing the row and both base addresses
    while (unit > 1 && (row_bytes % unit != 0 || !aligned_to(weight.data_ptr(), unit) ||
                        !aligned_to(out.data_ptr(), unit)))
        unit /= 2;
    dispatch_index(indices.dtype(), "embedding", [&]<typename I>() {
        switch (unit) {
        case 16: launch_gather<uint4, I>(out, weight, indices, V, row_bytes, stream, device); break;
        case 8: launch_gather<uint2, I>(out, weight, indices, V, row_bytes, stream, device); break;
        case 4: launch_gather<uint32_t, I>(out, weight, indices, V, row_bytes, stream, device); break;
        case 2: launch_gather<uint16_t, I>(out, weight, indices, V, row_bytes, stream, device); break;
        default: launch_gather<uint8_t, I>(out, weight, indices, V, row_bytes, stream, device); break;
        }
    });
    check_launch("embedding_kernel", {{"out", out}, {"weight", weight}, {"indices", indices}});
}

void embedding_backward(Tensor& dweight, const Tensor& dy, const Tensor& indices) {
    const int64_t V = dweight.shape()[0], C = dweight.shape()[1];
    if (V == 0 || C == 0) return;
    const int device = dweight.device().index;
    set_device(device);
    cudaStream_t stream = compute_stream(device);
    dispatch_index(indices.dtype(), "embedding_backward", [&]<typename I>() {
        dispatch_float(dweight.dtype(), "embedding_backward", [&]<typename T>() {
            if (V < int64_t(UINT32_MAX))  // keys 0..V (V marks an out-of-range index)
                backward_with_keys<T, I, uint32_t>(dweight, dy, indices, stream, device);
            else
                backward_with_keys<T, I, uint64_t>(dweight, dy, indices, stream, device);
        });
    });
}

}  // namespace lumen::cuda
