// cuda/optim_muon.cu: CUDA element-wise kernels of Muon: the Newton–Schulz load/normalise/combine/
// store steps (optim/newton_schulz.h) and the momentum mix and decayed update
// (optim/muon_kernels.h). References: optim/newton_schulz.cpp, optim/muon.cpp.
//
// Every f32 operation is written with the _rn intrinsics (the momentum and update formulas are
// optim/muon_kernels.h's, shared with the CPU), so nvcc cannot contract them into FMAs: the kernels
// round exactly like the CPU references. The flags (γ, bad) and the norm are read on the device.
// ns_load sums ||X||² per fixed 4096-element chunk (16 elements per thread, a fixed tree over the
// block): bit-reproducible, no atomics.
#include "cuda/common.cuh"
#include "optim/muon_kernels.h"
#include "optim/newton_schulz.h"

namespace lumen::cuda {

namespace {

constexpr int threads = 256;
static_assert(optim::ns_norm_chunk % threads == 0);

template <typename F>
void dispatch_ns(DType dt, const char* op, F&& f) {
    if (dt == DType::f32) return f.template operator()<float>();
    if (dt == DType::bf16) return f.template operator()<bf16>();
    throw Error(concat_message({op, ": Newton–Schulz works in f32 or bf16, got ", dtype_name(dt)}));
}

int64_t grid_for(int64_t n, const Tensor& t) {
    return std::min(blocks_for(n, threads), int64_t(properties(t.device().index).sm_count) * 16);
}

// Sum over a block of 256 threads in a fixed order: shuffles within warps, then warp 0.
__device__ __forceinline__ float block_sum(float v) {
    __shared__ float partial[threads / 32];
#pragma unroll
    for (int offset = 16; offset > 0; offset /= 2) v = __fadd_rn(v, __shfl_down_sync(0xffffffffu, v, offset));
    if (threadIdx.x % 32 == 0) partial[threadIdx.x / 32] = v;
    __syncthreads();
    if (threadIdx.x < 32) {
        v = threadIdx.x < threads / 32 ? partial[threadIdx.x] : 0.f;
#pragma unroll
        for (int offset = 16; offset > 0; offset /= 2) v = __fadd_rn(v, __shfl_down_sync(0xffffffffu, v, offset));
    }
    return v;  // valid in thread 0
}

template <typename W>
__global__ void __launch_bounds__(threads)
ns_load_kernel(int64_t count, int64_t m, W* x, float* partials, const float* src, int64_t s0, int64_t s1) {
    const int64_t first = int64_t(blockIdx.x) * optim::ns_norm_chunk;
    float sum = 0.f;
    for (int k = 0; k < int(optim::ns_norm_chunk / threads); ++k) {
        const int64_t e = first + k * threads + threadIdx.x;
        if (e >= count) break;
        const int64_t i = e / m, j = e % m;
        const W v = store_from<W>(src[i * s0 + j * s1]);
        const float f = load_as<float>(v);
        sum = __fadd_rn(sum, __fmul_rn(f, f));
        x[e] = v;
    }
    sum = block_sum(sum);
    if (threadIdx.x == 0) partials[blockIdx.x] = sum;
}

template <typename W>
__global__ void ns_normalize_kernel(int64_t n, W* x, const float* sumsq) {
    const float norm = load_as<float>(store_from<W>(__fsqrt_rn(sumsq[0])));
    const float denom = load_as<float>(store_from<W>(__fadd_rn(norm, optim::ns_norm_eps)));
    for (int64_t e = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; e < n; e += int64_t(gridDim.x) * blockDim.x)
        x[e] = store_from<W>(__fdiv_rn(load_as<float>(x[e]), denom));
}

template <typename W>
__global__ void ns_combine_kernel(int64_t n, W* out, const W* x, const float* p, float alpha, float beta) {
    for (int64_t e = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; e < n; e += int64_t(gridDim.x) * blockDim.x) {
        const float scaled_x = __fmul_rn(alpha, load_as<float>(x[e]));
        const float scaled_p = __fmul_rn(beta, p[e]);
        out[e] = store_from<W>(__fadd_rn(scaled_x, scaled_p));
    }
}

template <typename W>
__global__ void ns_store_kernel(int64_t rows, int64_t cols, float* dst, int64_t d0, int64_t d1, const W* src,
                                int64_t s0, int64_t s1, float scale) {
    const int64_t n = rows * cols;
    for (int64_t e = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; e < n; e += int64_t(gridDim.x) * blockDim.x) {
        const int64_t i = e / cols, j = e % cols;
        dst[i * d0 + j * d1] = __fmul_rn(load_as<float>(src[i * s0 + j * s1]), scale);
    }
}

__global__ void muon_momentum_kernel(int64_t n, float* u, float* m, const float* g, const float* flags,
                                     optim::MuonMomentum mix) {
    mix.gamma = flags[0];
    const bool bad = flags[1] != 0.f;
    for (int64_t e = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; e < n; e += int64_t(gridDim.x) * blockDim.x) {
        float m_new;
        u[e] = mix(g ? g[e] : 0.f, m[e], m_new);
        if (!bad) m[e] = m_new;
    }
}

__global__ void muon_update_kernel(int64_t n, float* p, const float* o, const float* flags, float lr, float decay) {
    if (flags[1] != 0.f) return;
    for (int64_t e = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; e < n; e += int64_t(gridDim.x) * blockDim.x)
        p[e] = optim::muon_apply(p[e], o[e], lr, decay);
}

}  // namespace

void ns_load(Tensor& x, Tensor& partials, const Tensor& src) {
    const auto [n, m] = x.dims<2>();
    if (n * m == 0) return;
    const int device = x.device().index;
    set_device(device);
    cudaStream_t stream = compute_stream(device);
    dispatch_ns(x.dtype(), "ns_load", [&]<typename T>() {
        ns_load_kernel<<<unsigned(partials.numel()), threads, 0, stream>>>(
            n * m, m, data_ptr<T>(x), data_ptr<float>(partials), data_ptr<float>(src), src.strides()[0],
            src.strides()[1]);
    });
    check_launch("ns_load_kernel", {{"x", x}, {"src", src}});
}

void ns_normalize(Tensor& x, const Tensor& sumsq) {
    const int64_t n = x.numel();
    if (n == 0) return;
    const int device = x.device().index;
    set_device(device);
    dispatch_ns(x.dtype(), "ns_normalize", [&]<typename T>() {
        ns_normalize_kernel<<<unsigned(grid_for(n, x)), threads, 0, compute_stream(device)>>>(
            n, data_ptr<T>(x), data_ptr<float>(sumsq));
    });
    check_launch("ns_normalize_kernel", {{"x", x}});
}

void ns_combine(Tensor& out, const Tensor& x, const Tensor& p, float alpha, float beta) {
    const int64_t n = out.numel();
    if (n == 0) return;
    const int device = out.device().index;
    set_device(device);
    dispatch_ns(out.dtype(), "ns_combine", [&]<typename T>() {
        ns_combine_kernel<<<unsigned(grid_for(n, out)), threads, 0, compute_stream(device)>>>(
            n, data_ptr<T>(out), data_ptr<T>(x), data_ptr<float>(p), alpha, beta);
    });
    check_launch("ns_combine_kernel", {{"out", out}, {"x", x}, {"p", p}});
}

void ns_store(Tensor& dst, const Tensor& src, float scale) {
    const auto [rows, cols] = dst.dims<2>();
    if (rows * cols == 0) return;
    const int device = dst.device().index;
    set_device(device);
    dispatch_ns(src.dtype(), "ns_store", [&]<typename T>() {
        ns_store_kernel<<<unsigned(grid_for(rows * cols, dst)), threads, 0, compute_stream(device)>>>(
            rows, cols, data_ptr<float>(dst), dst.strides()[0], dst.strides()[1], data_ptr<T>(src),
            src.strides()[0], src.strides()[1], scale);
    });
    check_launch("ns_store_kernel", {{"dst", dst}, {"src", src}});
}

void muon_momentum(Tensor& u, Tensor& m, const Tensor& g, const Tensor& flags, double mu, bool nesterov) {
    const int64_t n = u.numel();
    if (n == 0) return;
    const int device = u.device().index;
    set_device(device);
    muon_momentum_kernel<<<unsigned(grid_for(n, u)), threads, 0, compute_stream(device)>>>(
        n, data_ptr<float>(u), data_ptr<float>(m), g.defined() ? data_ptr<float>(g) : nullptr,
        data_ptr<float>(flags), optim::MuonMomentum{1.f, float(mu), float(1.0 - mu), nesterov});
    check_launch("muon_momentum_kernel", {{"u", u}, {"m", m}});
}

void muon_update(Tensor& p, const Tensor& o, const Tensor& flags, float lr, float decay) {
    const int64_t n = p.numel();
    if (n == 0) return;
    const int device = p.device().index;
    set_device(device);
    muon_update_kernel<<<unsigned(grid_for(n, p)), threads, 0, compute_stream(device)>>>(
        n, data_ptr<float>(p), data_ptr<float>(o), data_ptr<float>(flags), lr, decay);
    check_launch("muon_update_kernel", {{"p", p}, {"o", o}});
}

}  // namespace lumen::cuda
