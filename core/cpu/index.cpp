// core/cpu/index.cpp: CPU reference kernels for index_select and gather and their backward (see
// core/kernels/index.h for the conventions).
//
// Both ops are one walk: index_select is a gather whose index is indices (m,) broadcast (stride
// 0) to out's shape. The walk sees the index's shape as (outer, m, inner) around dim and
// precomputes, per operand, the element offset of every outer and every inner position, so any
// strides cost one table look-up per element. The backward splits work between threads only by
// (outer, inner) line: a line of dx receives its additions from one thread, in ascending j.
#include "core/cpu/loops.h"
#include "core/kernels/index.h"

#include <algorithm>

namespace lumen::cpu {
namespace {

template <typename T>
T* at(const Tensor& t, int64_t offset) {
    return static_cast<T*>(t.storage()->data()) + offset;
}

// Element offsets, under `strides`, of the row-major positions of shape[first, last).
std::vector<int64_t> offsets_of(const Shape& shape, const Strides& strides, int64_t first, int64_t last) {
    std::vector<int64_t> offsets{0};
    for (int64_t d = first; d < last; ++d) {
        std::vector<int64_t> next;
        next.reserve(offsets.size() * static_cast<size_t>(shape[size_t(d)]));
        for (int64_t base : offsets)
            for (int64_t i = 0; i < shape[size_t(d)]; ++i) next.push_back(base + i * strides[size_t(d)]);
        offsets = std::move(next);
    }
    return offsets;
}

// An operand's offsets over the walk's (outer, inner) positions, and its stride along dim.
struct Walk {
    std::vector<int64_t> outer, inner;
    int64_t step;
    Walk(const Shape& shape, const Tensor& t, int64_t dim)
        : outer(offsets_of(shape, t.strides(), 0, dim)),
          inner(offsets_of(shape, t.strides(), dim + 1, int64_t(shape.size()))),
          step(t.strides()[size_t(dim)]) {}
};

// indices (m,) as a view of `shape` that repeats index j at every position with p[dim] = j.
Tensor broadcast_index(const Tensor& indices, const Shape& shape, int64_t dim) {
    Strides strides(shape.size(), 0);
    strides[size_t(dim)] = indices.strides()[0];
    return Tensor::over(indices.storage(), Layout{shape, strides, indices.offset()}, indices.dtype());
}

// out (index's shape, contiguous) = x[p with p[dim] = index[p]].
void gather_walk(Tensor& out, const Tensor& x, int64_t dim, const Tensor& index) {
    const Shape& shape = index.shape();
    const Walk wx(shape, x, dim), wi(shape, index, dim);
    const int64_t outer = int64_t(wx.outer.size()), m = shape[size_t(dim)], inner = int64_t(wx.inner.size());
    dispatch_all(x.dtype(), "gather", [&]<typename T>() {
        dispatch_index(index.dtype(), "gather", [&]<typename I>() {
            T* y = static_cast<T*>(out.data_ptr());
            const T* xp = at<T>(x, x.offset());
            const I* ip = at<I>(index, index.offset());
            parallel_for(outer * m, std::max<int64_t>(1, parallel_grain / std::max<int64_t>(inner, 1)),
                         [&](int64_t begin, int64_t end) {
                for (int64_t r = begin; r < end; ++r) {  // r = o·m + j: one row of out
                    const int64_t o = r / m, j = r % m;
                    const T* xrow = xp + wx.outer[size_t(o)];
                    const I* irow = ip + wi.outer[size_t(o)] + j * wi.step;
                    T* yrow = y + r * inner;
                    for (int64_t k = 0; k < inner; ++k)
                        yrow[k] = xrow[int64_t(irow[wi.inner[size_t(k)]]) * wx.step + wx.inner[size_t(k)]];
                }
            });
        });
    });
}

// dx (contiguous) = 0, then dx[p with p[dim] = index[p]] += dy[p] in ascending p[dim].
void gather_backward_walk(Tensor& dx, const Tensor& dy, int64_t dim, const Tensor& index) {
    const Shape& shape = index.shape();
    const Walk wdx(shape, dx, dim), wdy(shape, dy, dim), wi(shape, index, dim);
    const int64_t outer = int64_t(wdx.outer.size()), m = shape[size_t(dim)], inner = int64_t(wdx.inner.size());
    // Lines are split into blocks of `block` inner positions so that dim = 0 still parallelises.
    const int64_t block = 1024, blocks = (inner + block - 1) / block;
    dispatch_float(dx.dtype(), "gather_backward", [&]<typename T>() {
        dispatch_index(index.dtype(), "gather_backward", [&]<typename I>() {
            using Acc = compute_t<T>;
            const int64_t numel = dx.numel();
            T* dxp = static_cast<T*>(dx.data_ptr());
            // NOTE: bf16/f16 sums go through an f32 buffer: a bf16 running sum loses the small terms.
            std::vector<Acc> scratch;
            Acc* acc = nullptr;
            if constexpr (std::is_same_v<T, Acc>) {
                acc = dxp;
            } else {
                scratch.resize(static_cast<size_t>(numel));
                acc = scratch.data();
            }
            std::fill(acc, acc + numel, Acc(0));
            const T* dyp = at<T>(dy, dy.offset());
            const I* ip = at<I>(index, index.offset());
            const int64_t grain = std::max<int64_t>(1, parallel_grain / std::max<int64_t>(m * std::min(inner, block), 1));
            parallel_for(outer * blocks, grain, [&](int64_t begin, int64_t end) {
                for (int64_t t = begin; t < end; ++t) {  // t = o·blocks + b: lines (o, k) for k in block b
                    const int64_t o = t / blocks, k0 = (t % blocks) * block, k1 = std::min(inner, k0 + block);
                    Acc* line = acc + wdx.outer[size_t(o)];
                    for (int64_t j = 0; j < m; ++j) {
                        const T* dyrow = dyp + wdy.outer[size_t(o)] + j * wdy.step;
                        const I* irow = ip + wi.outer[size_t(o)] + j * wi.step;
                        for (int64_t k = k0; k < k1; ++k)
                            line[int64_t(irow[wi.inner[size_t(k)]]) * wdx.step + wdx.inner[size_t(k)]] +=
                                convert<Acc>(dyrow[wdy.inner[size_t(k)]]);
                    }
                }
            });
            if constexpr (!std::is_same_v<T, Acc>) {
                parallel_for(numel, parallel_grain, [&](int64_t begin, int64_t end) {
                    for (int64_t i = begin; i < end; ++i) dxp[i] = convert<T>(acc[i]);
                });
            }
        });
    });
}

}  // namespace

void index_select(Tensor& out, const Tensor& x, int64_t dim, const Tensor& indices) {
    gather_walk(out, x, dim, broadcast_index(indices, out.shape(), dim));
}

void index_select_backward(Tensor& dx, const Tensor& dy, int64_t dim, const Tensor& indices) {
    gather_backward_walk(dx, dy, dim, broadcast_index(indices, dy.shape(), dim));
}

void gather(Tensor& out, const Tensor& x, int64_t dim, const Tensor& indices) {
    gather_walk(out, x, dim, indices);
}

void gather_backward(Tensor& dx, const Tensor& dy, int64_t dim, const Tensor& indices) {
    gather_backward_walk(dx, dy, dim, indices);
}

}  // namespace lumen::cpu
