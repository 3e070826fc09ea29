// cuda/norm.cu: CUDA layernorm and rmsnorm forward (see core/kernels/norm.h; reference
// core/cpu/norm.cpp). Row geometry and the launch plan: cuda/norm.cuh; backward:
// cuda/norm_backward.cu.
//
// Per row, in f32 (f64 for f64): the mean, then the biased variance around it (the CPU's two
// passes; on the fast path both passes read the registers, not memory); rstd = 1 / sqrt(var + eps)
// with IEEE sqrt and division as on the CPU. rmsnorm is the same with the mean fixed at 0. Writes y
// and the saved statistics: mean (layernorm) and rstd, (rows,) in f32 (f64 for f64).
#include "core/kernels/norm.h"
#include "cuda/norm.cuh"

namespace lumen::cuda {

namespace {

using namespace norm_detail;

// The fast path: each thread loads its VPT 16-byte vectors of the row once.
template <typename DT, typename A, bool RMS, bool BLOCK, int VPT>
__global__ void __launch_bounds__(BLOCK ? max_block_threads : warp_mode_threads)
norm_forward_vec_kernel(int64_t rows, int64_t C, DT* y, A* mean, A* rstd, const DT* x, const DT* w,
                        const DT* b, A eps) {
    constexpr int VEC = 16 / sizeof(DT);
    using Pack = Vec<DT, VEC>;
    __shared__ A shared[32];
    const RowThreads<BLOCK> t;
    const int64_t nvec = C / VEC;
    const A inv_C = A(1) / A(C);
    for (int64_t row = t.first; row < rows; row += t.step) {
        const Pack* xr = reinterpret_cast<const Pack*>(x + row * C);
        Pack px[VPT];
#pragma unroll
        for (int k = 0; k < VPT; ++k)
            if (t.lane + k * t.width < nvec) px[k] = xr[t.lane + k * t.width];
        A mu = A(0);
        if constexpr (!RMS) {
            A sum[1] = {A(0)};
#pragma unroll
            for (int k = 0; k < VPT; ++k)
                if (t.lane + k * t.width < nvec)
#pragma unroll
                    for (int e = 0; e < VEC; ++e) sum[0] += load_as<A>(px[k].v[e]);
            row_sum<BLOCK>(sum, shared);
            mu = sum[0] * inv_C;
        }
        A sq[1] = {A(0)};
#pragma unroll
        for (int k = 0; k < VPT; ++k)
            if (t.lane + k * t.width < nvec)
#pragma unroll
                for (int e = 0; e < VEC; ++e) {
                    const A d = load_as<A>(px[k].v[e]) - mu;
                    sq[0] += d * d;
                }
        row_sum<BLOCK>(sq, shared);
        const A rs = A(1) / sqrt_of(sq[0] * inv_C + eps);
        Pack* yr = reinterpret_cast<Pack*>(y + row * C);
#pragma unroll
        for (int k = 0; k < VPT; ++k) {
            const int64_t j = t.lane + k * t.width;
            if (j >= nvec) continue;
            Pack wp, bp, o;
            if (w) wp = reinterpret_cast<const Pack*>(w)[j];
            if (b) bp = reinterpret_cast<const Pack*>(b)[j];
#pragma unroll
            for (int e = 0; e < VEC; ++e) {
                A val = (load_as<A>(px[k].v[e]) - mu) * rs;
                if (w) val *= load_as<A>(wp.v[e]);
                if (b) val += load_as<A>(bp.v[e]);
                o.v[e] = store_from<DT>(val);
            }
            yr[j] = o;
        }
        if (t.lane == 0) {
            if constexpr (!RMS) mean[row] = mu;
            rstd[row] = rs;
        }
    }
}

// The general kernel: any C and alignment; three passes over the row in memory.
template <typename DT, typename A, bool RMS, bool BLOCK>
__global__ void __launch_bounds__(BLOCK ? max_block_threads : warp_mode_threads)
norm_forward_kernel(int64_t rows, int64_t C, DT* y, A* mean, A* rstd, const DT* x, const DT* w,
                    const DT* b, A eps) {
    __shared__ A shared[32];
    const RowThreads<BLOCK> t;
    const A inv_C = C > 0 ? A(1) / A(C) : A(0);
    for (int64_t row = t.first; row < rows; row += t.step) {
        const DT* xr = x + row * C;
        A mu = A(0);
        if constexpr (!RMS) {
            A sum[1] = {A(0)};
            for (int64_t c = t.lane; c < C; c += t.width) sum[0] += load_as<A>(xr[c]);
            row_sum<BLOCK>(sum, shared);
            mu = sum[0] * inv_C;
        }
        A sq[1] = {A(0)};
        for (int64_t c = t.lane; c < C; c += t.width) {
            const A d = load_as<A>(xr[c]) - mu;
            sq[0] += d * d;
        }
        row_sum<BLOCK>(sq, shared);
        const A rs = A(1) / sqrt_of(sq[0] * inv_C + eps);
        DT* yr = y + row * C;
        for (int64_t c = t.lane; c < C; c += t.width) {
            A val = (load_as<A>(xr[c]) - mu) * rs;
            if (w) val *= load_as<A>(w[c]);
            if (b) val += load_as<A>(b[c]);
            yr[c] = store_from<DT>(val);
        }
        if (t.lane == 0) {
            if constexpr (!RMS) mean[row] = mu;
            rstd[row] = rs;
        }
    }
}

template <typename T, bool RMS>
void norm_forward(Tensor& y, Tensor* mean, Tensor& rstd, const Tensor& x, const Tensor& weight,
                  const Tensor& bias, double eps) {
    using DT = device_t<T>;
    using A = compute_t<T>;
    constexpr int VEC = 16 / sizeof(T);
    const int64_t rows = rstd.numel(), C = x.size(-1);
    if (rows == 0) return;
    const int device = x.device().index;
    set_device(device);
    cudaStream_t stream = compute_stream(device);
    const bool aligned = aligned16(x.data_ptr()) && aligned16(y.data_ptr()) &&
                         aligned_or_none(weight) && aligned_or_none(bias);
    const Plan p = plan_rows<T>(C, aligned, max_cached_forward);
    A* const mp = mean ? data_ptr<A>(*mean) : nullptr;
    auto launch = [&](auto kernel) {
        kernel<<<row_blocks(rows, p), p.threads, 0, stream>>>(rows, C, data_ptr<T>(y), mp,
                                                              data_ptr<A>(rstd), data_ptr<T>(x),
                                                              ptr_or_null<T>(weight),
                                                              ptr_or_null<T>(bias), A(eps));
    };
    if (p.vec) {
        if constexpr (!std::is_same_v<T, double>)
            with_vpt(p.vpt, [&]<int VPT>() {
                if constexpr (VPT * VEC <= max_cached_forward)
                    launch(p.block ? norm_forward_vec_kernel<DT, A, RMS, true, VPT>
                                   : norm_forward_vec_kernel<DT, A, RMS, false, VPT>);
            });
    } else {
        launch(p.block ? norm_forward_kernel<DT, A, RMS, true>
                       : norm_forward_kernel<DT, A, RMS, false>);
    }
    check_launch(RMS ? "rmsnorm_kernel" : "layernorm_kernel", {{"y", y}, {"x", x}});
}

}  // namespace

void layernorm(Tensor& y, Tensor& mean, Tensor& rstd, const Tensor& x, const Tensor& weight,
               const Tensor& bias, double eps) {
    dispatch_float(x.dtype(), "layernorm", [&]<typename T>() {
        norm_forward<T, false>(y, &mean, rstd, x, weight, bias, eps);
    });
}

void rmsnorm(Tensor& y, Tensor& rstd, const Tensor& x, const Tensor& weight, double eps) {
    dispatch_float(x.dtype(), "rmsnorm", [&]<typename T>() {
        norm_forward<T, true>(y, nullptr, rstd, x, weight, Tensor(), eps);
    });
}

}  // namespace lumen::cuda
