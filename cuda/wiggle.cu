// cuda/wiggle.cu: CUDA kernels for the oscillating activation and the bio gate (see
// core/kernels/wiggle.h; reference core/cpu/wiggle.cpp). The per-element formulas are the CPU's
// (wiggle_math, full-accuracy sin/cos/tanh/exp: this file is built without fast math).
//
// oscillate: the forward, and the backward when no parameter gradient is wanted, are grid-stride
// maps; the channel j = i mod H is stepped along with i rather than divided out per element. With
// parameter gradients the backward is two kernels, as cuda/norm_backward.cu: block (bx, part)
// takes columns bx·32 + [0, 32) over the fixed row range `part` (threadIdx.y takes every 8th row),
// writes those elements' dx and one partial sum per column of x·q, q and dy to row `part` of three
// (parts, H) buffers (f32, f64 for f64), the 8 row-strided sums added in order; a second kernel
// adds each column's partials in a fixed order. No float atomics: the same bits on every run.
// bio_gate: grid-stride maps; with counts, each block adds its integer count with one 64-bit
// atomic (integer sums do not depend on order) and block 0 adds numel. Nothing is read back.
#include "core/kernels/elementwise.h"
#include "core/kernels/wiggle.h"
#include "cuda/elementwise.cuh"

#include <algorithm>

namespace lumen::cuda {

namespace {

constexpr int map_threads = 256;
constexpr int64_t max_parts = 512;  // row ranges of the parameter-gradient partial sums

// Grid of a grid-stride map over n elements.
unsigned map_blocks(int64_t n, int device) {
    const int64_t max_blocks = int64_t(properties(device).sm_count) * 16;
    return unsigned(std::min<int64_t>(blocks_for(n, map_threads), max_blocks));
}

// Row ranges for the partial sums: a function of the row count alone.
int64_t parts_for(int64_t rows) { return std::clamp<int64_t>((rows + 63) / 64, 1, max_parts); }

// Element i's channel, stepped by the grid stride without a division per element.
struct Channel {
    int64_t j, step, H;
    __device__ Channel(int64_t i, int64_t stride, int64_t H_) : j(i % H_), step(stride % H_), H(H_) {}
    __device__ void advance() {
        j += step;
        if (j >= H) j -= H;
    }
};

template <typename DT, typename A>
__global__ void oscillate_forward_kernel(int64_t n, int64_t H, DT* y, const DT* x, const DT* omega,
                                         const DT* phi, const DT* baseline) {
    const int64_t stride = int64_t(gridDim.x) * blockDim.x;
    int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
    for (Channel c(i, stride, H); i < n; i += stride, c.advance())
        y[i] = store_from<DT>(wiggle_math::oscillate<A>(load_as<A>(x[i]), load_as<A>(omega[c.j]),
                                                        load_as<A>(phi[c.j]), load_as<A>(baseline[c.j])));
}

template <typename DT, typename A>
__global__ void oscillate_dx_kernel(int64_t n, int64_t H, DT* dx, const DT* dy, const DT* x,
                                    const DT* omega, const DT* phi) {
    const int64_t stride = int64_t(gridDim.x) * blockDim.x;
    int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
    for (Channel c(i, stride, H); i < n; i += stride, c.advance()) {
        A dxv, q;
        wiggle_math::oscillate_backward<A>(load_as<A>(dy[i]), load_as<A>(x[i]), load_as<A>(omega[c.j]),
                                           load_as<A>(phi[c.j]), dxv, q);
        dx[i] = store_from<DT>(dxv);
    }
}

// dx (optional) and the partial sums of x·q, q and dy (each optional) of columns
// blockIdx.x·32 + [0, 32) over row range blockIdx.y.
template <typename DT, typename A>
__global__ void oscillate_partials_kernel(int64_t rows, int64_t H, int64_t parts, DT* dx,
                                          A* part_w, A* part_p, A* part_b, const DT* dy,
                                          const DT* x, const DT* omega, const DT* phi) {
    __shared__ A sums[3][8][33];
    const int64_t c = int64_t(blockIdx.x) * 32 + threadIdx.x, part = blockIdx.y;
    const int64_t begin = rows * part / parts, end = rows * (part + 1) / parts;
    const bool need_q = dx || part_w || part_p;
    A sw = A(0), sp = A(0), sb = A(0);
    if (c < H) {
        const A w = load_as<A>(omega[c]), p = load_as<A>(phi[c]);
        for (int64_t row = begin + threadIdx.y; row < end; row += 8) {
            const int64_t i = row * H + c;
            const A g = load_as<A>(dy[i]);
            sb += g;
            if (!need_q) continue;
            const A xv = load_as<A>(x[i]);
            A dxv, q;
            wiggle_math::oscillate_backward<A>(g, xv, w, p, dxv, q);
            if (dx) dx[i] = store_from<DT>(dxv);
            sw += xv * q;
            sp += q;
        }
    }
    sums[0][threadIdx.y][threadIdx.x] = sw;
    sums[1][threadIdx.y][threadIdx.x] = sp;
    sums[2][threadIdx.y][threadIdx.x] = sb;
    __syncthreads();
    if (threadIdx.y != 0 || c >= H) return;
    A tw = A(0), tp = A(0), tb = A(0);
    for (int k = 0; k < 8; ++k) {
        tw += sums[0][k][threadIdx.x];
        tp += sums[1][k][threadIdx.x];
        tb += sums[2][k][threadIdx.x];
    }
    if (part_w) part_w[part * H + c] = tw;
    if (part_p) part_p[part * H + c] = tp;
    if (part_b) part_b[part * H + c] = tb;
}

// out_k[c] = Σ_b part_k[b][c] for k = blockIdx.y (0: domega, 1: dphi, 2: dbaseline; a null out is
// skipped): threadIdx.y takes every 32nd partial, then the 32 sums are added in order.
template <typename DT, typename A>
__global__ void oscillate_sum_partials_kernel(int64_t parts, int64_t H, DT* out_w, const A* part_w,
                                              DT* out_p, const A* part_p, DT* out_b,
                                              const A* part_b) {
    __shared__ A sums[32][33];
    DT* out = blockIdx.y == 0 ? out_w : blockIdx.y == 1 ? out_p : out_b;
    const A* part = blockIdx.y == 0 ? part_w : blockIdx.y == 1 ? part_p : part_b;
    if (!out) return;  // uniform across the block
    const int64_t c = int64_t(blockIdx.x) * 32 + threadIdx.x;
    A acc = A(0);
    if (c < H)
        for (int64_t b = threadIdx.y; b < parts; b += 32) acc += part[b * H + c];
    sums[threadIdx.y][threadIdx.x] = acc;
    __syncthreads();
    if (threadIdx.y != 0 || c >= H) return;
    A total = A(0);
    for (int k = 0; k < 32; ++k) total += sums[k][threadIdx.x];
    out[c] = store_from<DT>(total);
}

template <typename T>
void oscillate_backward_impl(Tensor& dx, Tensor& domega, Tensor& dphi, Tensor& dbaseline,
                             const Tensor& dy, const Tensor& x, const Tensor& omega,
                             const Tensor& phi) {
    using DT = device_t<T>;
    using A = compute_t<T>;
    const int64_t H = x.size(-1);
    if (H == 0) return;  // every output is empty
    const int64_t n = x.numel(), rows = n / H;
    const int device = x.device().index;
    set_device(device);
    cudaStream_t stream = compute_stream(device);
    const bool want_params = domega.defined() || dphi.defined() || dbaseline.defined();
    if (rows == 0) {  // sums over no rows, written as the CPU writes them
        for (Tensor* out : {&domega, &dphi, &dbaseline})
            if (out->defined()) kernels::fill(*out, 0.0);
        return;
    }
    DT* dxp = dx.defined() ? data_ptr<T>(dx) : nullptr;
    const DT *dyp = data_ptr<T>(dy), *xp = data_ptr<T>(x);
    const DT *wp = data_ptr<T>(omega), *pp = data_ptr<T>(phi);
    if (!want_params) {
        if (!dxp) return;
        oscillate_dx_kernel<DT, A><<<map_blocks(n, device), map_threads, 0, stream>>>(n, H, dxp, dyp, xp, wp, pp);
        check_launch("oscillate_dx_kernel", {{"dy", dy}, {"x", x}});
        return;
    }
    const int64_t parts = parts_for(rows);
    const DType acc_dtype = std::is_same_v<T, double> ? DType::f64 : DType::f32;
    auto partials = [&](const Tensor& out) {
        return out.defined() ? Tensor::empty({parts, H}, acc_dtype, x.device()) : Tensor();
    };
    Tensor part_w = partials(domega), part_p = partials(dphi), part_b = partials(dbaseline);
    auto acc_ptr = [](const Tensor& t) { return t.defined() ? data_ptr<A>(t) : nullptr; };
    const dim3 grid(unsigned((H + 31) / 32), unsigned(parts));
    oscillate_partials_kernel<DT, A><<<grid, dim3(32, 8), 0, stream>>>(
        rows, H, parts, dxp, acc_ptr(part_w), acc_ptr(part_p), acc_ptr(part_b), dyp, xp, wp, pp);
    check_launch("oscillate_partials_kernel", {{"dy", dy}, {"x", x}});
    auto out_ptr = [](const Tensor& t) { return t.defined() ? data_ptr<T>(t) : nullptr; };
    oscillate_sum_partials_kernel<DT, A><<<dim3(unsigned((H + 31) / 32), 3), dim3(32, 32), 0, stream>>>(
        parts, H, out_ptr(domega), acc_ptr(part_w), out_ptr(dphi), acc_ptr(part_p),
        out_ptr(dbaseline), acc_ptr(part_b));
    check_launch("oscillate_sum_partials_kernel", {{"dy", dy}, {"x", x}});
}

// m = a·s; with COUNT, counts[0] += count(v > threshold), counts[count_stride] += n.
template <typename DT, typename A, bool COUNT>
__global__ void bio_gate_forward_kernel(int64_t n, DT* m, const DT* a, const DT* z, A threshold,
                                        unsigned long long* counts, int64_t count_stride) {
    unsigned long long active = 0;
    for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n;
         i += int64_t(gridDim.x) * blockDim.x) {
        const wiggle_math::Gate<A> gate = wiggle_math::gate<A>(load_as<A>(z[i]), threshold);
        m[i] = store_from<DT>(load_as<A>(a[i]) * gate.s);
        if constexpr (COUNT) active += gate.v > threshold;
    }
    if constexpr (COUNT) {
        __shared__ unsigned long long warp_counts[32];
#pragma unroll
        for (int offset = 16; offset > 0; offset /= 2) active += __shfl_down_sync(0xffffffffu, active, offset);
        if (threadIdx.x % 32 == 0) warp_counts[threadIdx.x / 32] = active;
        __syncthreads();
        if (threadIdx.x != 0) return;
        unsigned long long total = 0;
        for (int w = 0; w < int(blockDim.x / 32); ++w) total += warp_counts[w];
        if (total) atomicAdd(counts, total);
        if (blockIdx.x == 0) atomicAdd(counts + count_stride, static_cast<unsigned long long>(n));
    }
}

template <typename DT, typename A>
__global__ void bio_gate_backward_kernel(int64_t n, DT* da, DT* dz, const DT* dm, const DT* a,
                                         const DT* z, A threshold) {
    for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n;
         i += int64_t(gridDim.x) * blockDim.x) {
        const wiggle_math::Gate<A> gate = wiggle_math::gate<A>(load_as<A>(z[i]), threshold);
        const A g = load_as<A>(dm[i]);
        if (da) da[i] = store_from<DT>(g * gate.s);
        if (dz)
            dz[i] = store_from<DT>(g * load_as<A>(a[i]) * A(bio_gate_gain) * gate.s * (A(1) - gate.s) *
                                   gate.v * (A(1) - gate.v));
    }
}

}  // namespace

void oscillate(Tensor& y, const Tensor& x, const Tensor& omega, const Tensor& phi,
               const Tensor& baseline) {
    dispatch_float(x.dtype(), "oscillate", [&]<typename T>() {
        using DT = device_t<T>;
        const int64_t n = x.numel(), H = x.size(-1);
        if (n == 0) return;
        const int device = x.device().index;
        set_device(device);
        oscillate_forward_kernel<DT, compute_t<T>><<<map_blocks(n, device), map_threads, 0,
                                                     compute_stream(device)>>>(
            n, H, data_ptr<T>(y), data_ptr<T>(x), data_ptr<T>(omega), data_ptr<T>(phi),
            data_ptr<T>(baseline));
        check_launch("oscillate_forward_kernel", {{"x", x}, {"omega", omega}});
    });
}

void oscillate_backward(Tensor& dx, Tensor& domega, Tensor& dphi, Tensor& dbaseline,
                        const Tensor& dy, const Tensor& x, const Tensor& omega, const Tensor& phi) {
    dispatch_float(x.dtype(), "oscillate_backward", [&]<typename T>() {
        oscillate_backward_impl<T>(dx, domega, dphi, dbaseline, dy, x, omega, phi);
    });
}

void bio_gate(Tensor& m, const Tensor& a, const Tensor& z, double threshold, Tensor* counts) {
    dispatch_float(z.dtype(), "bio_gate", [&]<typename T>() {
        using DT = device_t<T>;
        using A = compute_t<T>;
        const int64_t n = z.numel();
        if (n == 0) return;  // nothing to write or count
        const int device = z.device().index;
        set_device(device);
        cudaStream_t stream = compute_stream(device);
        const unsigned blocks = map_blocks(n, device);
        if (counts) {
            auto* c = static_cast<unsigned long long*>(counts->data_ptr());
            bio_gate_forward_kernel<DT, A, true><<<blocks, map_threads, 0, stream>>>(
                n, data_ptr<T>(m), data_ptr<T>(a), data_ptr<T>(z), A(threshold), c, counts->strides()[0]);
        } else {
            bio_gate_forward_kernel<DT, A, false><<<blocks, map_threads, 0, stream>>>(
                n, data_ptr<T>(m), data_ptr<T>(a), data_ptr<T>(z), A(threshold), nullptr, 0);
        }
        check_launch("bio_gate_forward_kernel", {{"a", a}, {"z", z}});
    });
}

void bio_gate_backward(Tensor& da, Tensor& dz, const Tensor& dm, const Tensor& a, const Tensor& z,
                       double threshold) {
    dispatch_float(z.dtype(), "bio_gate_backward", [&]<typename T>() {
        using DT = device_t<T>;
        using A = compute_t<T>;
        const int64_t n = z.numel();
        if (n == 0 || (!da.defined() && !dz.defined())) return;
        const int device = z.device().index;
        set_device(device);
        bio_gate_backward_kernel<DT, A><<<map_blocks(n, device), map_threads, 0, compute_stream(device)>>>(
            n, da.defined() ? data_ptr<T>(da) : nullptr, dz.defined() ? data_ptr<T>(dz) : nullptr,
            data_ptr<T>(dm), a.defined() ? data_ptr<T>(a) : nullptr, data_ptr<T>(z), A(threshold));
        check_launch("bio_gate_backward_kernel", {{"dm", dm}, {"z", z}});
    });
}

}  // namespace lumen::cuda
