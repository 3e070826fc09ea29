// core/cpu/wiggle.cpp: CPU reference kernels for the oscillating activation and the bio gate (see
// core/kernels/wiggle.h), in the compute type (f32 for f32/bf16/f16, f64 for f64).
//
// oscillate's backward splits the rows into fixed blocks (their count depends only on the row
// count); each block writes its rows' dx and its own partial sums of domega, dphi and dbaseline (in
// f64), and the partial sums are then added block by block in order: no races, and the same bits
// on any number of threads. The gate counts per chunk and adds each chunk's integer count
// atomically (integer sums do not depend on order).
#include "core/cpu/loops.h"
#include "core/cpu/row_blocks.h"
#include "core/kernels/wiggle.h"

#include <atomic>
#include <cmath>

namespace lumen::cpu {
namespace {

template <typename T>
const T* ptr(const Tensor& t) {
    return static_cast<const T*>(t.data_ptr());
}
template <typename T>
T* out_or_null(const Tensor& t) {
    return t.defined() ? static_cast<T*>(t.data_ptr()) : nullptr;
}

int64_t row_grain(int64_t H) { return std::max<int64_t>(1, parallel_grain / std::max<int64_t>(H, 1)); }

template <typename T>
void oscillate_forward(Tensor& y, const Tensor& x, const Tensor& omega, const Tensor& phi,
                       const Tensor& baseline) {
    using A = compute_t<T>;
    const int64_t H = x.size(-1), rows = H == 0 ? 0 : x.numel() / H;
    const T *xs = ptr<T>(x), *ws = ptr<T>(omega), *ps = ptr<T>(phi), *bs = ptr<T>(baseline);
    T* ys = static_cast<T*>(y.data_ptr());
    parallel_for(rows, row_grain(H), [&](int64_t begin, int64_t end) {
        for (int64_t r = begin; r < end; ++r)
            for (int64_t j = 0; j < H; ++j) {
                const int64_t i = r * H + j;
                ys[i] = convert<T>(wiggle_math::oscillate<A>(convert<A>(xs[i]), convert<A>(ws[j]),
                                                             convert<A>(ps[j]), convert<A>(bs[j])));
            }
    });
}

template <typename T>
void oscillate_backward_impl(Tensor& dx, Tensor& domega, Tensor& dphi, Tensor& dbaseline,
                             const Tensor& dy, const Tensor& x, const Tensor& omega,
                             const Tensor& phi) {
    using A = compute_t<T>;
    const int64_t H = x.size(-1), rows = H == 0 ? 0 : x.numel() / H;
    const T *xs = ptr<T>(x), *dys = ptr<T>(dy), *ws = ptr<T>(omega), *ps = ptr<T>(phi);
    T* dxs = out_or_null<T>(dx);
    const RowBlocks blocks(rows);
    auto partials = [&](const Tensor& out) {
        return std::vector<double>(out.defined() ? static_cast<size_t>(blocks.count * H) : 0, 0.0);
    };
    std::vector<double> pw = partials(domega), pp = partials(dphi), pb = partials(dbaseline);
    const bool need_q = !pw.empty() || !pp.empty();
    if (dxs || need_q || !pb.empty())
        parallel_for(blocks.count, 1, [&](int64_t bbegin, int64_t bend) {
            for (int64_t b = bbegin; b < bend; ++b) {
                double* pwb = pw.empty() ? nullptr : pw.data() + b * H;
                double* ppb = pp.empty() ? nullptr : pp.data() + b * H;
                double* pbb = pb.empty() ? nullptr : pb.data() + b * H;
                for (int64_t r = blocks.begin(b); r < blocks.begin(b + 1); ++r)
                    for (int64_t j = 0; j < H; ++j) {
                        const int64_t i = r * H + j;
                        const A g = convert<A>(dys[i]), xv = convert<A>(xs[i]);
                        if (pbb) pbb[j] += double(g);
                        if (!dxs && !need_q) continue;
                        A dxv, q;
                        wiggle_math::oscillate_backward<A>(g, xv, convert<A>(ws[j]),
                                                           convert<A>(ps[j]), dxv, q);
                        if (dxs) dxs[i] = convert<T>(dxv);
                        if (pwb) pwb[j] += double(xv * q);
                        if (ppb) ppb[j] += double(q);
                    }
            }
        });
    if (domega.defined()) sum_partials<T>(domega, pw, blocks.count, H);
    if (dphi.defined()) sum_partials<T>(dphi, pp, blocks.count, H);
    if (dbaseline.defined()) sum_partials<T>(dbaseline, pb, blocks.count, H);
}

template <typename T>
void bio_gate_forward(Tensor& m, const Tensor& a, const Tensor& z, double threshold, Tensor* counts) {
    using A = compute_t<T>;
    const int64_t n = m.numel();
    const T *as = ptr<T>(a), *zs = ptr<T>(z);
    T* ms = static_cast<T*>(m.data_ptr());
    const A theta = A(threshold);
    std::atomic<int64_t> active{0};
    parallel_for(n, parallel_grain, [&](int64_t begin, int64_t end) {
        int64_t chunk_active = 0;
        for (int64_t i = begin; i < end; ++i) {
            const wiggle_math::Gate<A> gate = wiggle_math::gate<A>(convert<A>(zs[i]), theta);
            ms[i] = convert<T>(convert<A>(as[i]) * gate.s);
            chunk_active += gate.v > theta;
        }
        active.fetch_add(chunk_active, std::memory_order_relaxed);
    });
    if (!counts) return;
    int64_t* c = static_cast<int64_t*>(counts->data_ptr());
    c[0] += active.load();
    c[counts->strides()[0]] += n;
}

template <typename T>
void bio_gate_backward_impl(Tensor& da, Tensor& dz, const Tensor& dm, const Tensor& a,
                            const Tensor& z, double threshold) {
    using A = compute_t<T>;
    const T *dms = ptr<T>(dm), *as = out_or_null<const T>(a), *zs = ptr<T>(z);
    T *das = out_or_null<T>(da), *dzs = out_or_null<T>(dz);
    const A theta = A(threshold), gain = A(bio_gate_gain);
    parallel_for(dm.numel(), parallel_grain, [&](int64_t begin, int64_t end) {
        for (int64_t i = begin; i < end; ++i) {
            const wiggle_math::Gate<A> gate = wiggle_math::gate<A>(convert<A>(zs[i]), theta);
            const A g = convert<A>(dms[i]);
            if (das) das[i] = convert<T>(g * gate.s);
            if (dzs)
                dzs[i] = convert<T>(g * convert<A>(as[i]) * gain * gate.s * (A(1) - gate.s) * gate.v *
                                    (A(1) - gate.v));
        }
    });
}

}  // namespace

void oscillate(Tensor& y, const Tensor& x, const Tensor& omega, const Tensor& phi,
               const Tensor& baseline) {
    dispatch_float(x.dtype(), "oscillate", [&]<typename T>() {
        oscillate_forward<T>(y, x, omega, phi, baseline);
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
        bio_gate_forward<T>(m, a, z, threshold, counts);
    });
}

void bio_gate_backward(Tensor& da, Tensor& dz, const Tensor& dm, const Tensor& a, const Tensor& z,
                       double threshold) {
    dispatch_float(z.dtype(), "bio_gate_backward", [&]<typename T>() {
        bio_gate_backward_impl<T>(da, dz, dm, a, z, threshold);
    });
}

}  // namespace lumen::cpu
