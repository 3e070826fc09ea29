// core/cpu/norm.cpp: CPU reference kernels for layernorm and rmsnorm (see core/kernels/norm.h).
//
// One row at a time, in the compute type (f32 for f32/bf16/f16, f64 for f64): the forward takes
// the mean, then the biased variance around it (two passes, no E[x²] - E[x]² cancellation). The
// backward splits the rows into fixed blocks (their count depends only on the row count); each
// block writes its rows' dx and its own partial sums of dweight and dbias (in f64), and the
// partial sums are then added block by block in order: no races, and the same bits on any number
// of threads.
#include "core/cpu/loops.h"
#include "core/cpu/row_blocks.h"
#include "core/kernels/norm.h"

#include <cmath>

namespace lumen::cpu {
namespace {

template <typename T>
const T* ptr_or_null(const Tensor& t) {
    return t.defined() ? static_cast<const T*>(t.data_ptr()) : nullptr;
}

int64_t row_grain(int64_t C) { return std::max<int64_t>(1, parallel_grain / std::max<int64_t>(C, 1)); }

template <typename T>
void layernorm_forward(Tensor& y, Tensor& mean, Tensor& rstd, const Tensor& x, const Tensor& weight,
                       const Tensor& bias, double eps) {
    using A = compute_t<T>;
    const int64_t rows = mean.numel(), C = x.size(-1);
    const T* xs = static_cast<const T*>(x.data_ptr());
    const T* ws = ptr_or_null<T>(weight);
    const T* bs = ptr_or_null<T>(bias);
    T* ys = static_cast<T*>(y.data_ptr());
    A* means = static_cast<A*>(mean.data_ptr());
    A* rstds = static_cast<A*>(rstd.data_ptr());
    const A inv_C = C > 0 ? A(1) / A(C) : A(0);
    parallel_for(rows, row_grain(C), [&](int64_t begin, int64_t end) {
        for (int64_t r = begin; r < end; ++r) {
            const T* xr = xs + r * C;
            T* yr = ys + r * C;
            A sum = 0;
            for (int64_t c = 0; c < C; ++c) sum += convert<A>(xr[c]);
            const A mu = sum * inv_C;
            A sq = 0;
            for (int64_t c = 0; c < C; ++c) {
                const A d = convert<A>(xr[c]) - mu;
                sq += d * d;
            }
            const A rs = A(1) / std::sqrt(sq * inv_C + A(eps));
            for (int64_t c = 0; c < C; ++c) {
                A v = (convert<A>(xr[c]) - mu) * rs;
                if (ws) v *= convert<A>(ws[c]);
                if (bs) v += convert<A>(bs[c]);
                yr[c] = convert<T>(v);
            }
            means[r] = mu;
            rstds[r] = rs;
        }
    });
}

// xhat = (x - mean)·rstd, g = dy·weight:
//   dx = rstd·(g - mean(g) - xhat·mean(g·xhat)),  dweight = Σ_rows dy·xhat,  dbias = Σ_rows dy
template <typename T>
void layernorm_backward_impl(Tensor& dx, Tensor& dweight, Tensor& dbias, const Tensor& dy,
                             const Tensor& x, const Tensor& mean, const Tensor& rstd,
                             const Tensor& weight) {
    using A = compute_t<T>;
    const int64_t rows = rstd.numel(), C = x.size(-1);
    const T* xs = static_cast<const T*>(x.data_ptr());
    const T* dys = static_cast<const T*>(dy.data_ptr());
    const T* ws = ptr_or_null<T>(weight);
    const A* means = static_cast<const A*>(mean.data_ptr());
    const A* rstds = static_cast<const A*>(rstd.data_ptr());
    T* dxs = dx.defined() ? static_cast<T*>(dx.data_ptr()) : nullptr;
    const A inv_C = C > 0 ? A(1) / A(C) : A(0);
    const RowBlocks blocks(rows);
    std::vector<double> pw(dweight.defined() ? static_cast<size_t>(blocks.count * C) : 0, 0.0);
    std::vector<double> pb(dbias.defined() ? static_cast<size_t>(blocks.count * C) : 0, 0.0);
    parallel_for(blocks.count, 1, [&](int64_t bbegin, int64_t bend) {
        for (int64_t b = bbegin; b < bend; ++b) {
            double* pwb = pw.empty() ? nullptr : pw.data() + b * C;
            double* pbb = pb.empty() ? nullptr : pb.data() + b * C;
            for (int64_t r = blocks.begin(b); r < blocks.begin(b + 1); ++r) {
                const T* xr = xs + r * C;
                const T* dyr = dys + r * C;
                const A mu = means[r], rs = rstds[r];
                if (dxs) {
                    A sum_g = 0, sum_gx = 0;
                    for (int64_t c = 0; c < C; ++c) {
                        const A xhat = (convert<A>(xr[c]) - mu) * rs;
                        const A g = convert<A>(dyr[c]) * (ws ? convert<A>(ws[c]) : A(1));
                        sum_g += g;
                        sum_gx += g * xhat;
                    }
                    const A mean_g = sum_g * inv_C, mean_gx = sum_gx * inv_C;
                    T* dxr = dxs + r * C;
                    for (int64_t c = 0; c < C; ++c) {
                        const A xhat = (convert<A>(xr[c]) - mu) * rs;
                        const A g = convert<A>(dyr[c]) * (ws ? convert<A>(ws[c]) : A(1));
                        dxr[c] = convert<T>(rs * (g - mean_g - xhat * mean_gx));
                    }
                }
                for (int64_t c = 0; c < C; ++c) {
                    const A d = convert<A>(dyr[c]);
                    if (pwb) pwb[c] += double(d * ((convert<A>(xr[c]) - mu) * rs));
                    if (pbb) pbb[c] += double(d);
                }
            }
        }
    });
    if (dweight.defined()) sum_partials<T>(dweight, pw, blocks.count, C);
    if (dbias.defined()) sum_partials<T>(dbias, pb, blocks.count, C);
}

template <typename T>
void rmsnorm_forward(Tensor& y, Tensor& rstd, const Tensor& x, const Tensor& weight, double eps) {
    using A = compute_t<T>;
    const int64_t rows = rstd.numel(), C = x.size(-1);
    const T* xs = static_cast<const T*>(x.data_ptr());
    const T* ws = ptr_or_null<T>(weight);
    T* ys = static_cast<T*>(y.data_ptr());
    A* rstds = static_cast<A*>(rstd.data_ptr());
    const A inv_C = C > 0 ? A(1) / A(C) : A(0);
    parallel_for(rows, row_grain(C), [&](int64_t begin, int64_t end) {
        for (int64_t r = begin; r < end; ++r) {
            const T* xr = xs + r * C;
            T* yr = ys + r * C;
            A sq = 0;
            for (int64_t c = 0; c < C; ++c) {
                const A v = convert<A>(xr[c]);
                sq += v * v;
            }
            const A rs = A(1) / std::sqrt(sq * inv_C + A(eps));
            for (int64_t c = 0; c < C; ++c) {
                A v = convert<A>(xr[c]) * rs;
                if (ws) v *= convert<A>(ws[c]);
                yr[c] = convert<T>(v);
            }
            rstds[r] = rs;
        }
    });
}

// xhat = x·rstd, g = dy·weight:  dx = rstd·(g - xhat·mean(g·xhat)),  dweight = Σ_rows dy·xhat
template <typename T>
void rmsnorm_backward_impl(Tensor& dx, Tensor& dweight, const Tensor& dy, const Tensor& x,
                           const Tensor& rstd, const Tensor& weight) {
    using A = compute_t<T>;
    const int64_t rows = rstd.numel(), C = x.size(-1);
    const T* xs = static_cast<const T*>(x.data_ptr());
    const T* dys = static_cast<const T*>(dy.data_ptr());
    const T* ws = ptr_or_null<T>(weight);
    const A* rstds = static_cast<const A*>(rstd.data_ptr());
    T* dxs = dx.defined() ? static_cast<T*>(dx.data_ptr()) : nullptr;
    const A inv_C = C > 0 ? A(1) / A(C) : A(0);
    const RowBlocks blocks(rows);
    std::vector<double> pw(dweight.defined() ? static_cast<size_t>(blocks.count * C) : 0, 0.0);
    parallel_for(blocks.count, 1, [&](int64_t bbegin, int64_t bend) {
        for (int64_t b = bbegin; b < bend; ++b) {
            double* pwb = pw.empty() ? nullptr : pw.data() + b * C;
            for (int64_t r = blocks.begin(b); r < blocks.begin(b + 1); ++r) {
                const T* xr = xs + r * C;
                const T* dyr = dys + r * C;
                const A rs = rstds[r];
                if (dxs) {
                    A sum_gx = 0;
                    for (int64_t c = 0; c < C; ++c) {
                        const A g = convert<A>(dyr[c]) * (ws ? convert<A>(ws[c]) : A(1));
                        sum_gx += g * convert<A>(xr[c]) * rs;
                    }
                    const A mean_gx = sum_gx * inv_C;
                    T* dxr = dxs + r * C;
                    for (int64_t c = 0; c < C; ++c) {
                        const A xhat = convert<A>(xr[c]) * rs;
                        const A g = convert<A>(dyr[c]) * (ws ? convert<A>(ws[c]) : A(1));
                        dxr[c] = convert<T>(rs * (g - xhat * mean_gx));
                    }
                }
                if (pwb)
                    for (int64_t c = 0; c < C; ++c)
                        pwb[c] += double(convert<A>(dyr[c]) * (convert<A>(xr[c]) * rs));
            }
        }
    });
    if (dweight.defined()) sum_partials<T>(dweight, pw, blocks.count, C);
}

}  // namespace

void layernorm(Tensor& y, Tensor& mean, Tensor& rstd, const Tensor& x, const Tensor& weight,
               const Tensor& bias, double eps) {
    dispatch_float(x.dtype(), "layernorm", [&]<typename T>() {
        layernorm_forward<T>(y, mean, rstd, x, weight, bias, eps);
    });
}

void layernorm_backward(Tensor& dx, Tensor& dweight, Tensor& dbias, const Tensor& dy,
                        const Tensor& x, const Tensor& mean, const Tensor& rstd,
                        const Tensor& weight) {
    dispatch_float(x.dtype(), "layernorm_backward", [&]<typename T>() {
        layernorm_backward_impl<T>(dx, dweight, dbias, dy, x, mean, rstd, weight);
    });
}

void rmsnorm(Tensor& y, Tensor& rstd, const Tensor& x, const Tensor& weight, double eps) {
    dispatch_float(x.dtype(), "rmsnorm", [&]<typename T>() {
        rmsnorm_forward<T>(y, rstd, x, weight, eps);
    });
}

void rmsnorm_backward(Tensor& dx, Tensor& dweight, const Tensor& dy, const Tensor& x,
                      const Tensor& rstd, const Tensor& weight) {
    dispatch_float(x.dtype(), "rmsnorm_backward", [&]<typename T>() {
        rmsnorm_backward_impl<T>(dx, dweight, dy, x, rstd, weight);
    });
}

}  // namespace lumen::cpu
