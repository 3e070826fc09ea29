// cuda/rope.cu: CUDA rotary position embedding (see core/kernels/rope.h; reference
// core/cpu/rope.cpp).
//
// One thread per (t, pair i) computes its angle and cos/sin once, in f64 (full-accuracy sincos,
// so positions of 100k+ keep their precision), then rotates that pair for a chunk of the B·nh
// heads (grid.y splits the heads so that short sequences still fill the GPU). Consecutive
// threads take consecutive pairs of one token, so the loads of a (b, h, t) row coalesce when
// the head dim is contiguous; x is read through its strides, y written contiguously.
#include "core/kernels/rope.h"
#include "cuda/common.cuh"

#include <algorithm>

namespace lumen::cuda {

namespace {

constexpr int rope_threads = 128;

struct RopeGeometry {
    int64_t nh, T, hs, half;
    int64_t sb, sh, st, sd;   // x's strides (elements)
    int64_t heads_per_chunk;  // of the B·nh heads, per grid.y index
    int64_t bh_count;         // B·nh
};

template <typename DT, typename A>
__global__ void __launch_bounds__(rope_threads)
rope_kernel(RopeGeometry g, DT* y, const DT* x, int64_t pos0, double theta, bool interleaved,
            bool inverse) {
    const int64_t j = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
    if (j >= g.T * g.half) return;
    const int64_t t = j / g.half, i = j - t * g.half;
    const double inv_freq = pow(theta, -2.0 * double(i) / double(g.hs));
    const double angle = double(pos0 + t) * inv_freq;
    double s64, c64;
    sincos(angle, &s64, &c64);
    const A c = A(c64), s = A(inverse ? -s64 : s64);
    const int64_t d0 = interleaved ? 2 * i : i, d1 = interleaved ? d0 + 1 : i + g.half;
    const int64_t bh_begin = int64_t(blockIdx.y) * g.heads_per_chunk;
    const int64_t bh_end = min(g.bh_count, bh_begin + g.heads_per_chunk);
    int64_t b = bh_begin / g.nh, h = bh_begin - b * g.nh;
    for (int64_t bh = bh_begin; bh < bh_end; ++bh) {
        const DT* xr = x + b * g.sb + h * g.sh + t * g.st;
        DT* yr = y + (bh * g.T + t) * g.hs;
        const A a = load_as<A>(xr[d0 * g.sd]), bv = load_as<A>(xr[d1 * g.sd]);
        yr[d0] = store_from<DT>(a * c - bv * s);
        yr[d1] = store_from<DT>(a * s + bv * c);
        if (++h == g.nh) h = 0, ++b;
    }
}

}  // namespace

void rope(Tensor& y, const Tensor& x, const RopeParams& params) {
    const auto [B, nh, T, hs] = x.dims<4>();
    const int64_t half = hs / 2, pairs = T * half, bh_count = B * nh;
    if (pairs == 0 || bh_count == 0) return;
    const int device = y.device().index;
    set_device(device);
    // Enough blocks for about 8 per SM: split the heads over grid.y when the (t, i) pairs alone
    // give fewer (grid.y is at most 65535).
    const int64_t blocks_x = blocks_for(pairs, rope_threads);
    const int64_t want_chunks = std::clamp<int64_t>(
        (int64_t(properties(device).sm_count) * 8 + blocks_x - 1) / blocks_x, 1, bh_count);
    int64_t heads_per_chunk = (bh_count + want_chunks - 1) / want_chunks;
    heads_per_chunk = std::max<int64_t>(heads_per_chunk, (bh_count + 65534) / 65535);
    const int64_t chunks = (bh_count + heads_per_chunk - 1) / heads_per_chunk;
    const Strides& st = x.strides();
    const RopeGeometry g{nh, T, hs, half, st[0], st[1], st[2], st[3], heads_per_chunk, bh_count};
    const dim3 grid{unsigned(blocks_x), unsigned(chunks)};
    dispatch_float(x.dtype(), "rope", [&]<typename T_>() {
        using DT = device_t<T_>;
        using A = compute_t<T_>;
        rope_kernel<DT, A><<<grid, rope_threads, 0, compute_stream(device)>>>(
            g, data_ptr<T_>(y), data_ptr<T_>(x), params.pos0, params.theta, params.interleaved,
            params.inverse);
    });
    check_launch("rope_kernel", {{"y", y}, {"x", x}});
}

}  // namespace lumen::cuda
