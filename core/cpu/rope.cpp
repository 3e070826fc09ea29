// core/cpu/rope.cpp: CPU reference rotary position embedding (see core/kernels/rope.h).
//
// A (T, hs/2) table of cos α and sin α is built once per call in f64 (α = (pos0 + t)·inv_freq_i)
// and shared by every (b, h); the rows (b, h, t) are then rotated in parallel, reading x through
// its strides and writing the contiguous y.
#include "core/cpu/loops.h"
#include "core/kernels/rope.h"

#include <cmath>
#include <vector>

namespace lumen::cpu {
namespace {

template <typename T>
void rope_impl(Tensor& y, const Tensor& x, const RopeParams& params) {
    using A = compute_t<T>;
    const auto [B, nh, T_, hs] = x.dims<4>();
    const int64_t half = hs / 2, rows = B * nh * T_;
    if (rows == 0 || half == 0) return;
    // (T, half) cos and sin, in f64 then rounded to the compute type.
    std::vector<A> cos_t(static_cast<size_t>(T_ * half)), sin_t(cos_t.size());
    const double sign = params.inverse ? -1.0 : 1.0;
    for (int64_t i = 0; i < half; ++i) {
        const double inv_freq = rope_inv_freq(params.theta, i, hs);
        for (int64_t t = 0; t < T_; ++t) {
            const double angle = double(params.pos0 + t) * inv_freq;
            cos_t[size_t(t * half + i)] = A(std::cos(angle));
            sin_t[size_t(t * half + i)] = A(sign * std::sin(angle));
        }
    }
    const Strides& st = x.strides();
    const int64_t sb = st[0], sh = st[1], s_t = st[2], sd = st[3];
    // Pair i's two dims: (i, i + half) or (2i, 2i + 1).
    const int64_t first_step = params.interleaved ? 2 : 1, second_offset = params.interleaved ? 1 : half;
    const T* xs = static_cast<const T*>(x.data_ptr());
    T* ys = static_cast<T*>(y.data_ptr());
    parallel_for(rows, std::max<int64_t>(1, parallel_grain / hs), [&](int64_t begin, int64_t end) {
        for (int64_t r = begin; r < end; ++r) {
            const int64_t t = r % T_, bh = r / T_, h = bh % nh, b = bh / nh;
            const T* xr = xs + b * sb + h * sh + t * s_t;
            T* yr = ys + r * hs;
            const A* c = cos_t.data() + t * half;
            const A* s = sin_t.data() + t * half;
            for (int64_t i = 0; i < half; ++i) {
                const int64_t d0 = i * first_step, d1 = d0 + second_offset;
                const A a = convert<A>(xr[d0 * sd]), bv = convert<A>(xr[d1 * sd]);
                yr[d0] = convert<T>(a * c[i] - bv * s[i]);
                yr[d1] = convert<T>(a * s[i] + bv * c[i]);
            }
        }
    });
}

}  // namespace

void rope(Tensor& y, const Tensor& x, const RopeParams& params) {
    dispatch_float(x.dtype(), "rope", [&]<typename T>() { rope_impl<T>(y, x, params); });
}

}  // namespace lumen::cpu
