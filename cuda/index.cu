// cuda/index.cu: CUDA index_select and gather, and their deterministic backward (conventions in
// core/kernels/index.h; reference: core/cpu/index.cpp).
//
// Forward, grid-stride, elements copied as raw units of their size (1, 2, 4 or 8 bytes):
// - index_select: a row walk over (outer·m rows, inner): threadIdx.y picks the row (o, j), which
//   reads indices[j] once, threadIdx.x steps along its inner positions.
// - gather: one thread per output element; an OffsetCalc over the index's shape gives its index
//   offset and x's offset without dim.
// x and the indices may have any strides (offsets come from OffsetCalcs; a part of the shape that
// coalesces to one dim costs a multiply, no division).
//
// Backward, with no float atomics; each dx element receives its terms in ascending j from 0 in
// f32 (f64 for f64) and is rounded once, the CPU reference's order, so results equal the CPU's
// bit for bit:
// - index_select: the (index, j) pairs are sorted by index with CUB's stable radix sort, so each
//   index value's positions come out ascending; a binary search gives each value v its run
//   [offsets[v], offsets[v + 1]); then a row walk over (outer·n rows, inner) gives each dx
//   element (o, v, k) one thread that sums dy (o, j, k) over the run and writes dx (=), zero where
//   no index names v. Repeated indices cost their run's length, not m.
// - gather: one thread per line (all dims but `dim` fixed) walks j = 0..m-1 and adds dy into its
//   own line of an accumulator (dx itself for f32/f64, an f32 buffer for bf16/f16, rounded into
//   dx afterwards). Lines never share a dx element, so there are no races; a line of length m is
//   serial work (loads batched 8 terms at a time), fine for the usual small m (picks along the
//   last dim, top-k), slow only when few lines are very long (768 lines of 8192: 3.3 ms on an H200).
//
// Indices are trusted: the public op (autograd/ops/index.cpp) range-checks them on the host.
#include "core/kernels/index.h"
#include "cuda/common.cuh"

#include <cub/device/device_radix_sort.cuh>

#include <algorithm>

namespace lumen::cuda {

namespace {

constexpr int threads = 256;

int64_t grid_for(int64_t work, int device) {
    return std::min<int64_t>(blocks_for(work, threads), int64_t(properties(device).sm_count) * 32);
}

// A copy of `layout` that starts at offset 0: kernels get pointers that include the offset.
Layout from_zero(Layout layout) {
    layout.offset = 0;
    return layout;
}

// t's element offsets (from t's first element) over the row-major positions of its dims
// [first, last): the outer (before dim) or inner (after dim) part of a row walk.
OffsetCalc<1> part_calc(const Tensor& t, int64_t first, int64_t last, const char* op) {
    const Layout part{Shape(t.shape().begin() + first, t.shape().begin() + last),
                      Strides(t.strides().begin() + first, t.strides().begin() + last), 0};
    return make_offset_calc<1>(part.shape, {&part}, op);
}

// The offset of position i under c; no division when the dims coalesced to one (or none).
__device__ __forceinline__ int64_t offset_of(const OffsetCalc<1>& c, int64_t i) {
    if (c.rank == 0) return 0;
    if (c.rank == 1) return i * c.strides[0][0];
    int64_t off[1];
    c.get(i, off);
    return off[0];
}

// Row walks over (rows, inner): threadIdx.y and blockIdx.x pick the row, so one row's index and
// bookkeeping (a 64-bit division) are paid once for all the inner positions a thread visits;
// threadIdx.x steps along them. Only when the rows alone cannot fill the GPU does blockIdx.y split
// rows into chunks, so that a few long rows still spread over every SM.
struct RowGrid {
    dim3 blocks, block;
};
RowGrid row_grid(int64_t rows, int64_t inner, int device) {
    unsigned tx = 1;
    while (tx < unsigned(threads) && int64_t(tx) < inner) tx *= 2;
    const dim3 block(tx, unsigned(threads) / tx);
    const int64_t sms = properties(device).sm_count;
    const int64_t row_blocks = (rows + block.y - 1) / block.y, chunks = (inner + tx - 1) / tx;
    const int64_t by = std::clamp<int64_t>((sms * 8 + row_blocks - 1) / row_blocks, 1, std::min<int64_t>(chunks, 65535));
    const int64_t bx = std::clamp<int64_t>(row_blocks, 1, std::max<int64_t>(sms * 32 / by, 1));
    return {dim3(unsigned(bx), unsigned(by)), block};
}

// ---- forward ----

// out[e] = x[xoff(e) + index[ioff(e)] · x_step] over the index's shape, row-major (= out's layout).
template <typename U, typename I>
__global__ void gather_kernel(int64_t total, OffsetCalc<2> calc, int64_t x_step, const U* __restrict__ x,
                              const I* __restrict__ index, U* __restrict__ out) {
    for (int64_t e = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; e < total;
         e += int64_t(gridDim.x) * blockDim.x) {
        int64_t off[2];
        calc.get(e, off);
        out[e] = x[off[0] + int64_t(index[off[1]]) * x_step];
    }
}

// out[o, j, k] (contiguous (outer, m, inner)) = x[o, indices[j], k].
template <typename U, typename I>
__global__ void index_select_kernel(int64_t rows, int64_t m, int64_t inner, OffsetCalc<1> x_outer,
                                    OffsetCalc<1> x_inner, int64_t x_step, const U* __restrict__ x,
                                    const I* __restrict__ indices, int64_t index_stride, U* __restrict__ out) {
    for (int64_t r = int64_t(blockIdx.x) * blockDim.y + threadIdx.y; r < rows; r += int64_t(gridDim.x) * blockDim.y) {
        const int64_t o = r / m, j = r - o * m;
        const U* xrow = x + offset_of(x_outer, o) + int64_t(indices[j * index_stride]) * x_step;
        U* orow = out + r * inner;
        for (int64_t k = int64_t(blockIdx.y) * blockDim.x + threadIdx.x; k < inner; k += int64_t(gridDim.y) * blockDim.x)
            orow[k] = xrow[offset_of(x_inner, k)];
    }
}

// ---- index_select backward ----

// keys[j] = indices[j], positions[j] = j.
template <typename I, typename K>
__global__ void index_keys_kernel(int64_t m, int64_t stride, const I* __restrict__ indices,
                                  K* __restrict__ keys, int64_t* __restrict__ positions) {
    for (int64_t j = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; j < m; j += int64_t(gridDim.x) * blockDim.x) {
        keys[j] = K(indices[j * stride]);
        positions[j] = j;
    }
}

// offsets[v] = the first sorted position whose key is ≥ v, for v in [0, n].
template <typename K>
__global__ void index_offsets_kernel(int64_t m, int64_t n, const K* __restrict__ sorted_keys,
                                     int64_t* __restrict__ offsets) {
    for (int64_t v = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; v <= n; v += int64_t(gridDim.x) * blockDim.x) {
        int64_t lo = 0, hi = m;
        while (lo < hi) {
            const int64_t mid = lo + (hi - lo) / 2;
            if (int64_t(sorted_keys[mid]) < v) lo = mid + 1;
            else hi = mid;
        }
        offsets[v] = lo;
    }
}

// dx[o, v, k] (contiguous, (outer, n, inner)) = Σ over v's run, in position order, of dy[o, j, k].
template <typename DT, typename A>
__global__ void index_select_backward_kernel(int64_t rows, int64_t n, int64_t inner, OffsetCalc<1> dy_outer,
                                             OffsetCalc<1> dy_inner, int64_t dy_step,
                                             const int64_t* __restrict__ offsets,
                                             const int64_t* __restrict__ positions, const DT* __restrict__ dy,
                                             DT* __restrict__ dx) {
    for (int64_t r = int64_t(blockIdx.x) * blockDim.y + threadIdx.y; r < rows; r += int64_t(gridDim.x) * blockDim.y) {
        const int64_t o = r / n, v = r - o * n;
        const int64_t begin = offsets[v], end = offsets[v + 1];
        const DT* dyo = dy + offset_of(dy_outer, o);
        DT* dxrow = dx + r * inner;
        for (int64_t k = int64_t(blockIdx.y) * blockDim.x + threadIdx.x; k < inner;
             k += int64_t(gridDim.y) * blockDim.x) {
            const DT* line = dyo + offset_of(dy_inner, k);
            A acc = A(0);
            int64_t q = begin;
            constexpr int ahead = 4;  // terms loaded ahead; they are still added in order
            for (; q + ahead <= end; q += ahead) {
                DT t[ahead];
#pragma unroll
                for (int u = 0; u < ahead; ++u) t[u] = line[positions[q + u] * dy_step];
#pragma unroll
                for (int u = 0; u < ahead; ++u) acc += load_as<A>(t[u]);
            }
            for (; q < end; ++q) acc += load_as<A>(line[positions[q] * dy_step]);
            dxrow[k] = store_from<DT>(acc);
        }
    }
}

template <typename T, typename I, typename K>
void index_select_backward_with_keys(Tensor& dx, const Tensor& dy, int64_t dim, const Tensor& indices,
                                     cudaStream_t stream, int device) {
    using DT = device_t<T>;
    using A = compute_t<T>;
    const int64_t n = dx.shape()[size_t(dim)], m = indices.numel();
    const int64_t inner = numel_of(Shape(dx.shape().begin() + dim + 1, dx.shape().end()));
    const Device dev = dx.device();
    Tensor keys = Tensor::empty({2, m}, sizeof(K) == 4 ? DType::i32 : DType::i64, dev);  // unsorted, sorted
    Tensor positions = Tensor::empty({2, m}, DType::i64, dev);                            // unsorted, sorted
    Tensor offsets = Tensor::empty({n + 1}, DType::i64, dev);
    K* keys_in = static_cast<K*>(keys.data_ptr());
    K* keys_out = keys_in + m;
    int64_t* pos_in = data_ptr<int64_t>(positions);
    int64_t* pos_out = pos_in + m;
    if (m > 0) {
        index_keys_kernel<I, K><<<unsigned(grid_for(m, device)), threads, 0, stream>>>(
            m, indices.strides()[0], static_cast<const I*>(indices.data_ptr()), keys_in, pos_in);
        check_launch("index_keys_kernel", {{"indices", indices}});
        int end_bit = 1;  // enough bits for every key in [0, n)
        while (end_bit < int(sizeof(K) * 8) && (uint64_t(n - 1) >> end_bit) != 0) ++end_bit;
        size_t temp_bytes = 0;
        LUMEN_CUDA_CHECK(cub::DeviceRadixSort::SortPairs(nullptr, temp_bytes, keys_in, keys_out, pos_in, pos_out,
                                                         m, 0, end_bit, stream));
        Tensor temp = Tensor::empty({int64_t(temp_bytes)}, DType::u8, dev);
        LUMEN_CUDA_CHECK(cub::DeviceRadixSort::SortPairs(temp.data_ptr(), temp_bytes, keys_in, keys_out, pos_in,
                                                         pos_out, m, 0, end_bit, stream));
    }
    index_offsets_kernel<K><<<unsigned(grid_for(n + 1, device)), threads, 0, stream>>>(
        m, n, keys_out, data_ptr<int64_t>(offsets));
    check_launch("index_offsets_kernel", {{"dx", dx}, {"indices", indices}});

    const OffsetCalc<1> dy_outer = part_calc(dy, 0, dim, "index_select_backward");
    const OffsetCalc<1> dy_inner = part_calc(dy, dim + 1, dy.dim(), "index_select_backward");
    const int64_t rows = dx.numel() / inner;  // outer · n
    const RowGrid grid = row_grid(rows, inner, device);
    index_select_backward_kernel<DT, A><<<grid.blocks, grid.block, 0, stream>>>(
        rows, n, inner, dy_outer, dy_inner, dy.strides()[size_t(dim)], data_ptr<int64_t>(offsets), pos_out,
        data_ptr<T>(dy), data_ptr<T>(dx));
    check_launch("index_select_backward_kernel", {{"dx", dx}, {"dy", dy}, {"indices", indices}});
}

// ---- gather backward ----

// For each line l (index's shape with dim = 1, row-major): acc[line + index[j] · acc_step] += dy[j]
// for j = 0, 1, ..., m - 1. calc gives acc's, dy's and the index's offsets of line l.
// The line is walked in windows of `window` terms whose loads are issued together (one memory
// latency per window, not per term); a repeat inside a window continues from the sum its earlier
// occurrence just made, so every element still adds its terms one by one in ascending j.
template <typename DT, typename A, typename I>
__global__ void gather_backward_kernel(int64_t lines, int64_t m, OffsetCalc<3> calc, int64_t acc_step,
                                       int64_t dy_step, int64_t index_step, const DT* __restrict__ dy,
                                       const I* __restrict__ index, A* __restrict__ acc) {
    constexpr int window = 8;
    for (int64_t l = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; l < lines;
         l += int64_t(gridDim.x) * blockDim.x) {
        int64_t off[3];
        calc.get(l, off);
        A* line = acc + off[0];
        const DT* d = dy + off[1];
        const I* ix = index + off[2];
        int64_t j = 0;
        for (; j + window <= m; j += window) {
            int64_t at[window];
            A term[window], sum[window];
#pragma unroll
            for (int u = 0; u < window; ++u) {
                at[u] = int64_t(ix[(j + u) * index_step]) * acc_step;
                term[u] = load_as<A>(d[(j + u) * dy_step]);
            }
#pragma unroll
            for (int u = 0; u < window; ++u) sum[u] = line[at[u]];
#pragma unroll
            for (int u = 0; u < window; ++u) {
                A base = sum[u];
#pragma unroll
                for (int w = 0; w < u; ++w)
                    if (at[w] == at[u]) base = sum[w];  // the latest earlier occurrence's running sum
                sum[u] = base + term[u];
            }
#pragma unroll
            for (int u = 0; u < window; ++u) line[at[u]] = sum[u];  // in order: a repeat's last store is its final sum
        }
        for (; j < m; ++j) line[int64_t(ix[j * index_step]) * acc_step] += load_as<A>(d[j * dy_step]);
    }
}

template <typename DT, typename A>
__global__ void round_kernel(int64_t total, const A* __restrict__ acc, DT* __restrict__ dx) {
    for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < total; i += int64_t(gridDim.x) * blockDim.x)
        dx[i] = store_from<DT>(acc[i]);
}

}  // namespace

void index_select(Tensor& out, const Tensor& x, int64_t dim, const Tensor& indices) {
    if (out.numel() == 0) return;
    const int device = out.device().index;
    set_device(device);
    cudaStream_t stream = compute_stream(device);
    const int64_t m = indices.numel(), inner = numel_of(Shape(out.shape().begin() + dim + 1, out.shape().end()));
    const int64_t rows = out.numel() / inner;  // outer · m
    const OffsetCalc<1> x_outer = part_calc(x, 0, dim, "index_select");
    const OffsetCalc<1> x_inner = part_calc(x, dim + 1, x.dim(), "index_select");
    const RowGrid grid = row_grid(rows, inner, device);
    dispatch_index(indices.dtype(), "index_select", [&]<typename I>() {
        auto launch = [&]<typename U>() {
            index_select_kernel<U, I><<<grid.blocks, grid.block, 0, stream>>>(
                rows, m, inner, x_outer, x_inner, x.strides()[size_t(dim)], static_cast<const U*>(x.data_ptr()),
                static_cast<const I*>(indices.data_ptr()), indices.strides()[0], static_cast<U*>(out.data_ptr()));
        };
        switch (dtype_size(x.dtype())) {
        case 1: launch.template operator()<uint8_t>(); break;
        case 2: launch.template operator()<uint16_t>(); break;
        case 4: launch.template operator()<uint32_t>(); break;
        default: launch.template operator()<uint64_t>(); break;
        }
    });
    check_launch("index_select_kernel", {{"out", out}, {"x", x}, {"indices", indices}});
}

void index_select_backward(Tensor& dx, const Tensor& dy, int64_t dim, const Tensor& indices) {
    if (dx.numel() == 0) return;
    const int device = dx.device().index;
    set_device(device);
    cudaStream_t stream = compute_stream(device);
    const int64_t n = dx.shape()[size_t(dim)];
    dispatch_index(indices.dtype(), "index_select_backward", [&]<typename I>() {
        dispatch_float(dx.dtype(), "index_select_backward", [&]<typename T>() {
            if (n <= int64_t(UINT32_MAX))
                index_select_backward_with_keys<T, I, uint32_t>(dx, dy, dim, indices, stream, device);
            else
                index_select_backward_with_keys<T, I, uint64_t>(dx, dy, dim, indices, stream, device);
        });
    });
}

void gather(Tensor& out, const Tensor& x, int64_t dim, const Tensor& indices) {
    const int64_t total = out.numel();
    if (total == 0) return;
    const int device = out.device().index;
    set_device(device);
    Layout xl = from_zero(x.layout());
    xl.strides[size_t(dim)] = 0;  // dim's contribution comes from the index
    const Layout il = from_zero(indices.layout());
    const OffsetCalc<2> calc = make_offset_calc<2>(indices.shape(), {&xl, &il}, "gather");
    const unsigned blocks = unsigned(grid_for(total, device));
    dispatch_index(indices.dtype(), "gather", [&]<typename I>() {
        auto launch = [&]<typename U>() {
            gather_kernel<U, I><<<blocks, threads, 0, compute_stream(device)>>>(
                total, calc, x.strides()[size_t(dim)], static_cast<const U*>(x.data_ptr()),
                static_cast<const I*>(indices.data_ptr()), static_cast<U*>(out.data_ptr()));
        };
        switch (dtype_size(x.dtype())) {
        case 1: launch.template operator()<uint8_t>(); break;
        case 2: launch.template operator()<uint16_t>(); break;
        case 4: launch.template operator()<uint32_t>(); break;
        default: launch.template operator()<uint64_t>(); break;
        }
    });
    check_launch("gather_kernel", {{"out", out}, {"x", x}, {"indices", indices}});
}

void gather_backward(Tensor& dx, const Tensor& dy, int64_t dim, const Tensor& indices) {
    const int64_t total = dx.numel();
    if (total == 0) return;
    const int device = dx.device().index;
    set_device(device);
    cudaStream_t stream = compute_stream(device);
    const int64_t m = indices.shape()[size_t(dim)];
    Shape line_shape = indices.shape();
    line_shape[size_t(dim)] = 1;
    const int64_t lines = m == 0 ? 0 : numel_of(line_shape);
    const Layout dxl = from_zero(dx.layout()), dyl = from_zero(dy.layout()), il = from_zero(indices.layout());
    const OffsetCalc<3> calc = make_offset_calc<3>(line_shape, {&dxl, &dyl, &il}, "gather_backward");
    dispatch_index(indices.dtype(), "gather_backward", [&]<typename I>() {
        dispatch_float(dx.dtype(), "gather_backward", [&]<typename T>() {
            using DT = device_t<T>;
            using A = compute_t<T>;
            // NOTE: bf16/f16 sums go through an f32 buffer: a bf16 running sum loses the small terms.
            Tensor scratch;
            A* acc = nullptr;
            if constexpr (std::is_same_v<T, A>) {
                acc = data_ptr<T>(dx);
            } else {
                scratch = Tensor::empty(dx.shape(), DType::f32, dx.device());
                acc = data_ptr<float>(scratch);
            }
            LUMEN_CUDA_CHECK(cudaMemsetAsync(acc, 0, static_cast<size_t>(total) * sizeof(A), stream));
            if (lines > 0) {
                gather_backward_kernel<DT, A, I><<<unsigned(grid_for(lines, device)), threads, 0, stream>>>(
                    lines, m, calc, dx.strides()[size_t(dim)], dy.strides()[size_t(dim)],
                    indices.strides()[size_t(dim)], data_ptr<T>(dy), static_cast<const I*>(indices.data_ptr()),
                    acc);
                check_launch("gather_backward_kernel", {{"dx", dx}, {"dy", dy}, {"indices", indices}});
            }
            if constexpr (!std::is_same_v<T, A>) {
                round_kernel<DT, A><<<unsigned(grid_for(total, device)), threads, 0, stream>>>(total, acc,
                                                                                                data_ptr<T>(dx));
                check_launch("gather_backward_round_kernel", {{"dx", dx}});
            }
        });
    });
}

}  // namespace lumen::cuda
