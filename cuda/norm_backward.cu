// cuda/norm_backward.cu: CUDA layernorm and rmsnorm backward (see core/kernels/norm.h; reference
// core/cpu/norm.cpp). Row geometry and the launch plan: cuda/norm.cuh.
//
// xhat = (x - mean)·rstd (mean = 0 for rmsnorm), g = dy·weight:
//   layernorm dx = rstd·(g - mean(g) - xhat·mean(g·xhat)),
//   rmsnorm   dx = rstd·(g - xhat·mean(g·xhat)),
//   dweight = Σ_rows dy·xhat,  dbias = Σ_rows dy.
// dx: per row, one pass from the saved statistics. dweight/dbias: the rows are cut into `parts`
// fixed ranges (their count depends only on the row count and the kernel path); the block of
// range b writes its sums to row b of a (parts, C) f32 (f64 for f64) buffer, each column summed
// by one thread in a fixed row order (a warp-per-row block adds its warps' sums in warp order),
// then a second kernel adds each column's partials in a fixed order. No atomics: the same bits on
// every run. Outputs are written (=); an undefined one is not computed; zero rows give
// dweight = dbias = 0.
#include "core/kernels/elementwise.h"
#include "core/kernels/norm.h"
#include "cuda/norm.cuh"

#include <mutex>
#include <set>
#include <utility>

namespace lumen::cuda {

namespace {

using namespace norm_detail;

constexpr int64_t max_parts = 512;  // row ranges of the parameter-gradient partial sums

// Row ranges for the partial sums: a function of the row count and the kernel choice alone.
int64_t parts_for(int64_t rows, const Plan& p) {
    const int64_t min_rows = !p.vec ? 64 : p.block ? 8 : 32;
    return std::clamp<int64_t>((rows + min_rows - 1) / min_rows, 1, max_parts);
}

// The fast path, dx and the partial sums in one pass. Block b takes rows
// [rows·b/parts, rows·(b+1)/parts): one row at a time (BLOCK), or warp w of the block takes rows
// begin + w, begin + w + warps, .... Each thread adds its columns' dy·xhat and dy over those rows:
// in registers in block mode; in warp mode in its warp's rows of shared memory (2, warps, C), which
// the block then adds in warp order.
template <typename DT, typename A, bool RMS, bool BLOCK, int VPT>
__global__ void __launch_bounds__(BLOCK ? max_block_threads : warp_mode_threads, BLOCK ? 1 : 2)
norm_backward_vec_kernel(int64_t rows, int64_t C, int64_t parts, DT* dx, A* part_w, A* part_b,
                         const DT* dy, const DT* x, const A* mean, const A* rstd, const DT* w) {
    constexpr int VEC = 16 / sizeof(DT);
    using Pack = Vec<DT, VEC>;
    using APack = Vec<A, VEC>;
    extern __shared__ __align__(32) unsigned char warp_acc_bytes[];  // warp mode: (2, warps, C)
    __shared__ A shared[64];
    const int64_t nvec = C / VEC;
    const A inv_C = A(1) / A(C);
    const int lane = BLOCK ? threadIdx.x : threadIdx.x % 32, width = BLOCK ? blockDim.x : 32;
    const int warp = BLOCK ? 0 : threadIdx.x / 32, warps = BLOCK ? 1 : blockDim.x / 32;
    const int64_t begin = rows * blockIdx.x / parts, end = rows * (blockIdx.x + 1) / parts;
    const bool want_params = part_w || part_b;
    // This warp's sums (warp mode).
    APack* const smem_w = reinterpret_cast<APack*>(warp_acc_bytes) + warp * nvec;
    APack* const smem_b = smem_w + warps * nvec;
    APack reg_w[VPT], reg_b[VPT];  // block mode's sums (unused in warp mode)
#pragma unroll
    for (int k = 0; k < VPT; ++k) {
        const int64_t j = lane + k * width;
        APack zero;
#pragma unroll
        for (int e = 0; e < VEC; ++e) zero.v[e] = A(0);
        if constexpr (BLOCK) reg_w[k] = reg_b[k] = zero;
        else if (want_params && j < nvec) smem_w[j] = smem_b[j] = zero;
    }

    for (int64_t row = begin + warp; row < end; row += warps) {
        const Pack* xr = reinterpret_cast<const Pack*>(x + row * C);
        const Pack* dyr = reinterpret_cast<const Pack*>(dy + row * C);
        Pack px[VPT], pd[VPT];
#pragma unroll
        for (int k = 0; k < VPT; ++k)
            if (lane + k * width < nvec) {
                px[k] = xr[lane + k * width];
                pd[k] = dyr[lane + k * width];
            }
        A mu = A(0);
        if constexpr (!RMS) mu = mean[row];
        const A rs = rstd[row];
        if (want_params)
#pragma unroll
            for (int k = 0; k < VPT; ++k) {
                const int64_t j = lane + k * width;
                if (j >= nvec) continue;
                APack aw = BLOCK ? reg_w[k] : smem_w[j], ab = BLOCK ? reg_b[k] : smem_b[j];
#pragma unroll
                for (int e = 0; e < VEC; ++e) {
                    const A d = load_as<A>(pd[k].v[e]);
                    aw.v[e] += d * ((load_as<A>(px[k].v[e]) - mu) * rs);
                    ab.v[e] += d;
                }
                (BLOCK ? reg_w[k] : smem_w[j]) = aw;
                (BLOCK ? reg_b[k] : smem_b[j]) = ab;
            }
        if (!dx) continue;
        A s[2] = {A(0), A(0)};  // Σ g, Σ g·xhat
        Pack pw[VPT];
#pragma unroll
        for (int k = 0; k < VPT; ++k) {
            const int64_t j = lane + k * width;
            if (j >= nvec) continue;
            if (w) pw[k] = reinterpret_cast<const Pack*>(w)[j];
#pragma unroll
            for (int e = 0; e < VEC; ++e) {
                const A g = load_as<A>(pd[k].v[e]) * (w ? load_as<A>(pw[k].v[e]) : A(1));
                s[0] += g;
                s[1] += g * ((load_as<A>(px[k].v[e]) - mu) * rs);
            }
        }
        row_sum<BLOCK>(s, shared);
        const A mean_g = RMS ? A(0) : s[0] * inv_C, mean_gx = s[1] * inv_C;
        Pack* dxr = reinterpret_cast<Pack*>(dx + row * C);
#pragma unroll
        for (int k = 0; k < VPT; ++k) {
            const int64_t j = lane + k * width;
            if (j >= nvec) continue;
            Pack o;
#pragma unroll
            for (int e = 0; e < VEC; ++e) {
                const A g = load_as<A>(pd[k].v[e]) * (w ? load_as<A>(pw[k].v[e]) : A(1));
                const A xhat = (load_as<A>(px[k].v[e]) - mu) * rs;
                o.v[e] = store_from<DT>(rs * (g - mean_g - xhat * mean_gx));
            }
            dxr[j] = o;
        }
    }

    if (!want_params) return;
    if constexpr (BLOCK) {
#pragma unroll
        for (int k = 0; k < VPT; ++k) {
            const int64_t j = lane + k * width;
            if (j >= nvec) continue;
            if (part_w) reinterpret_cast<APack*>(part_w + blockIdx.x * C)[j] = reg_w[k];
            if (part_b) reinterpret_cast<APack*>(part_b + blockIdx.x * C)[j] = reg_b[k];
        }
    } else {
        __syncthreads();
        const A* sums = reinterpret_cast<const A*>(warp_acc_bytes);  // (2, warps, C)
        for (int64_t c = threadIdx.x; c < C; c += blockDim.x) {
            A tw = A(0), tb = A(0);
            for (int v = 0; v < warps; ++v) tw += sums[v * C + c], tb += sums[(warps + v) * C + c];
            if (part_w) part_w[blockIdx.x * C + c] = tw;
            if (part_b) part_b[blockIdx.x * C + c] = tb;
        }
    }
}

// The general dx kernel: two passes over the row in memory (the sums, then dx).
template <typename DT, typename A, bool RMS, bool BLOCK>
__global__ void __launch_bounds__(BLOCK ? max_block_threads : warp_mode_threads)
norm_backward_dx_kernel(int64_t rows, int64_t C, DT* dx, const DT* dy, const DT* x, const A* mean,
                        const A* rstd, const DT* w) {
    __shared__ A shared[64];
    const RowThreads<BLOCK> t;
    const A inv_C = A(1) / A(C);
    for (int64_t row = t.first; row < rows; row += t.step) {
        const DT* xr = x + row * C;
        const DT* dyr = dy + row * C;
        A mu = A(0);
        if constexpr (!RMS) mu = mean[row];
        const A rs = rstd[row];
        A s[2] = {A(0), A(0)};  // Σ g, Σ g·xhat
        for (int64_t c = t.lane; c < C; c += t.width) {
            const A g = load_as<A>(dyr[c]) * (w ? load_as<A>(w[c]) : A(1));
            s[0] += g;
            s[1] += g * ((load_as<A>(xr[c]) - mu) * rs);
        }
        row_sum<BLOCK>(s, shared);
        const A mean_g = RMS ? A(0) : s[0] * inv_C, mean_gx = s[1] * inv_C;
        for (int64_t c = t.lane; c < C; c += t.width) {
            const A g = load_as<A>(dyr[c]) * (w ? load_as<A>(w[c]) : A(1));
            const A xhat = (load_as<A>(xr[c]) - mu) * rs;
            dx[row * C + c] = store_from<DT>(rs * (g - mean_g - xhat * mean_gx));
        }
    }
}

// The general partial sums: block (blockIdx.x, blockIdx.y) sums columns blockIdx.x·32 + [0, 32)
// over row range blockIdx.y; threadIdx.y takes every 8th row of it, then the 8 sums are added in
// order.
template <typename DT, typename A, bool RMS>
__global__ void norm_partials_kernel(int64_t rows, int64_t C, int64_t parts, A* part_w, A* part_b,
                                     const DT* dy, const DT* x, const A* mean, const A* rstd) {
    __shared__ A sums_w[8][33], sums_b[8][33];
    const int64_t c = int64_t(blockIdx.x) * 32 + threadIdx.x, part = blockIdx.y;
    const int64_t begin = rows * part / parts, end = rows * (part + 1) / parts;
    A aw = A(0), ab = A(0);
    if (c < C)
        for (int64_t row = begin + threadIdx.y; row < end; row += 8) {
            A mu = A(0);
            if constexpr (!RMS) mu = mean[row];
            const A d = load_as<A>(dy[row * C + c]);
            aw += d * ((load_as<A>(x[row * C + c]) - mu) * rstd[row]);
            ab += d;
        }
    sums_w[threadIdx.y][threadIdx.x] = aw;
    sums_b[threadIdx.y][threadIdx.x] = ab;
    __syncthreads();
    if (threadIdx.y != 0 || c >= C) return;
    A tw = A(0), tb = A(0);
    for (int k = 0; k < 8; ++k) tw += sums_w[k][threadIdx.x], tb += sums_b[k][threadIdx.x];
    if (part_w) part_w[part * C + c] = tw;
    if (part_b) part_b[part * C + c] = tb;
}

// out[c] = Σ_b partial[b][c] for the pair blockIdx.y selects (0: dweight, 1: dbias; a null out is
// skipped): threadIdx.y takes every 32nd partial, then the 32 sums are added in order.
template <typename DT, typename A>
__global__ void norm_sum_partials_kernel(int64_t parts, int64_t C, DT* out_w, const A* part_w,
                                         DT* out_b, const A* part_b) {
    __shared__ A sums[32][33];
    DT* const out = blockIdx.y == 0 ? out_w : out_b;
    const A* const partial = blockIdx.y == 0 ? part_w : part_b;
    if (!out) return;
    const int64_t c = int64_t(blockIdx.x) * 32 + threadIdx.x;
    A acc = A(0);
    if (c < C)
        for (int64_t b = threadIdx.y; b < parts; b += 32) acc += partial[b * C + c];
    sums[threadIdx.y][threadIdx.x] = acc;
    __syncthreads();
    if (threadIdx.y != 0 || c >= C) return;
    A total = A(0);
    for (int k = 0; k < 32; ++k) total += sums[k][threadIdx.x];
    out[c] = store_from<DT>(total);
}

// The shared memory of a warp-mode block's sums: (2, warps, C) in A.
template <typename A>
size_t warp_sums_bytes(int64_t C) {
    return 2 * size_t(warp_mode_threads / 32) * size_t(C) * sizeof(A);
}

// Lets a warp-mode kernel take up to 64 KiB of sums (C <= 1024), past the default 48 KiB; once
// per kernel and device.
template <typename A, typename Kernel>
void allow_warp_sums(Kernel kernel, int device) {
    static std::mutex mutex;
    static std::set<std::pair<const void*, int>> done;
    const std::pair<const void*, int> key{reinterpret_cast<const void*>(kernel), device};
    std::lock_guard<std::mutex> lock(mutex);
    if (done.count(key)) return;
    LUMEN_CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                          int(warp_sums_bytes<A>(1024))));
    done.insert(key);
}

template <typename T, bool RMS>
void norm_backward(Tensor& dx, Tensor& dweight, Tensor& dbias, const Tensor& dy, const Tensor& x,
                   const Tensor* mean, const Tensor& rstd, const Tensor& weight) {
    using DT = device_t<T>;
    using A = compute_t<T>;
    constexpr int VEC = 16 / sizeof(T);
    const int64_t rows = rstd.numel(), C = x.size(-1);
    if (C == 0) return;  // dx, dweight and dbias are all empty
    const int device = x.device().index;
    set_device(device);
    cudaStream_t stream = compute_stream(device);
    if (rows == 0) {  // sums over no rows, written as the CPU writes them
        if (dweight.defined()) kernels::fill(dweight, 0.0);
        if (dbias.defined()) kernels::fill(dbias, 0.0);
        return;
    }
    const bool want_params = dweight.defined() || dbias.defined();
    if (!dx.defined() && !want_params) return;
    const bool aligned = aligned16(x.data_ptr()) && aligned16(dy.data_ptr()) &&
                         aligned_or_none(dx) && aligned_or_none(weight);
    const Plan p = plan_rows<T>(C, aligned, max_cached_backward);
    const int64_t parts = parts_for(rows, p);
    const DType acc_dtype = norm_stats_dtype(x.dtype());
    Tensor part_w = dweight.defined() ? Tensor::empty({parts, C}, acc_dtype, x.device()) : Tensor();
    Tensor part_b = dbias.defined() ? Tensor::empty({parts, C}, acc_dtype, x.device()) : Tensor();
    DT* dxp = ptr_or_null<T>(dx);
    A* pw = part_w.defined() ? data_ptr<A>(part_w) : nullptr;
    A* pb = part_b.defined() ? data_ptr<A>(part_b) : nullptr;
    const A* mp = mean ? data_ptr<A>(*mean) : nullptr;
    const DT* dyp = data_ptr<T>(dy);
    const DT* xp = data_ptr<T>(x);
    const DT* wp = ptr_or_null<T>(weight);
    const A* rp = data_ptr<A>(rstd);
    auto launch_vec = [&](auto kernel, size_t smem) {
        kernel<<<unsigned(parts), p.threads, smem, stream>>>(rows, C, parts, dxp, pw, pb, dyp, xp,
                                                           mp, rp, wp);
    };
    if (p.vec) {
        if constexpr (!std::is_same_v<T, double>)
            with_vpt(p.vpt, [&]<int VPT>() {
                if (p.block) {
                    if constexpr (VPT * VEC <= max_cached_backward)
                        launch_vec(norm_backward_vec_kernel<DT, A, RMS, true, VPT>, 0);
                } else if constexpr (VPT * VEC <= max_cached_forward) {
                    auto kernel = norm_backward_vec_kernel<DT, A, RMS, false, VPT>;
                    allow_warp_sums<A>(kernel, device);
                    launch_vec(kernel, want_params ? warp_sums_bytes<A>(C) : 0);
                }
            });
    } else {
        if (dx.defined()) {
            auto kernel = p.block ? norm_backward_dx_kernel<DT, A, RMS, true>
                                  : norm_backward_dx_kernel<DT, A, RMS, false>;
            kernel<<<row_blocks(rows, p), p.threads, 0, stream>>>(rows, C, dxp, dyp, xp, mp, rp,
                                                                  wp);
        }
        if (want_params) {
            const dim3 grid(unsigned((C + 31) / 32), unsigned(parts));
            norm_partials_kernel<DT, A, RMS><<<grid, dim3(32, 8), 0, stream>>>(
                rows, C, parts, pw, pb, dyp, xp, mp, rp);
        }
    }
    check_launch(RMS ? "rmsnorm_backward_kernel" : "layernorm_backward_kernel",
                 {{"dy", dy}, {"x", x}});
    if (!want_params) return;
    norm_sum_partials_kernel<<<dim3(unsigned((C + 31) / 32), 2), dim3(32, 32), 0, stream>>>(
        parts, C, ptr_or_null<T>(dweight), pw, ptr_or_null<T>(dbias), pb);
    check_launch("norm_sum_partials_kernel", {{"dy", dy}, {"x", x}});
}

}  // namespace

void layernorm_backward(Tensor& dx, Tensor& dweight, Tensor& dbias, const Tensor& dy,
                        const Tensor& x, const Tensor& mean, const Tensor& rstd,
                        const Tensor& weight) {
    dispatch_float(x.dtype(), "layernorm_backward", [&]<typename T>() {
        norm_backward<T, false>(dx, dweight, dbias, dy, x, &mean, rstd, weight);
    });
}

void rmsnorm_backward(Tensor& dx, Tensor& dweight, const Tensor& dy, const Tensor& x,
                      const Tensor& rstd, const Tensor& weight) {
    Tensor no_dbias;
    dispatch_float(x.dtype(), "rmsnorm_backward", [&]<typename T>() {
        norm_backward<T, true>(dx, dweight, no_dbias, dy, x, nullptr, rstd, weight);
    });
}

}  // namespace lumen::cuda
