// core/cpu/loops.h: the CPU iteration helpers every reference kernel uses.
//
// for_each_strided walks N operands of one shape, each with its own strides and offset (in
// elements), and calls fn(offsets) with each operand's element offset in row-major order of the
// shape. Dimensions are coalesced first, and the walk is split into OpenMP chunks that each
// compute their start index once and then step like an odometer, so strided and broadcast views
// (stride 0) cost no division per element.
#pragma once

#include "core/layout.h"

#include <array>
#include <omp.h>

namespace lumen::cpu {

// Below this many elements a loop runs on one thread (thread start-up costs more than it saves).
inline constexpr int64_t parallel_grain = 32768;

template <size_t N, typename Fn>
void for_each_strided(const Shape& shape, const std::array<const Layout*, N>& layouts, Fn&& fn) {
    const int64_t numel = numel_of(shape);
    if (numel == 0) return;
    // Coalesce: drop size-1 dims, merge dim d into d+1 when every operand is contiguous across them.
    Shape sizes;
    std::array<Strides, N> strides;
    for (size_t d = 0; d < shape.size(); ++d) {
        if (shape[d] == 1) continue;
        bool merge = !sizes.empty();
        for (size_t k = 0; k < N && merge; ++k)
            merge = strides[k].back() == layouts[k]->strides[d] * shape[d];
        if (merge) {
            sizes.back() *= shape[d];
            for (size_t k = 0; k < N; ++k) strides[k].back() = layouts[k]->strides[d];
        } else {
            sizes.push_back(shape[d]);
            for (size_t k = 0; k < N; ++k) strides[k].push_back(layouts[k]->strides[d]);
        }
    }
    if (sizes.empty()) {  // a single element
        sizes.push_back(1);
        for (size_t k = 0; k < N; ++k) strides[k].push_back(0);
    }
    const int64_t rank = int64_t(sizes.size());
    const int64_t inner = sizes.back();
    const int64_t chunks = std::max<int64_t>(1, std::min<int64_t>(numel / parallel_grain, 4 * omp_get_max_threads()));
#pragma omp parallel for schedule(static) if (chunks > 1)
    for (int64_t chunk = 0; chunk < chunks; ++chunk) {
        const int64_t begin = numel * chunk / chunks, end = numel * (chunk + 1) / chunks;
        // Start index of this chunk, as a multi-index and as offsets.
        std::vector<int64_t> index(static_cast<size_t>(rank));
        std::array<int64_t, N> off;
        for (size_t k = 0; k < N; ++k) off[k] = layouts[k]->offset;
        int64_t rest = begin;
        for (int64_t d = rank - 1; d >= 0; --d) {
            index[d] = rest % sizes[d];
            rest /= sizes[d];
            for (size_t k = 0; k < N; ++k) off[k] += index[d] * strides[k][d];
        }
        int64_t i = begin;
        while (i < end) {
            const int64_t run = std::min(inner - index[rank - 1], end - i);
            std::array<int64_t, N> o = off;
            for (int64_t j = 0; j < run; ++j) {
                fn(o);
                for (size_t k = 0; k < N; ++k) o[k] += strides[k][rank - 1];
            }
            i += run;
            // Advance the odometer by `run` along the innermost dim, carrying outward.
            for (size_t k = 0; k < N; ++k) off[k] += run * strides[k][rank - 1];
            index[rank - 1] += run;
            for (int64_t d = rank - 1; d > 0 && index[d] == sizes[d]; --d) {
                for (size_t k = 0; k < N; ++k) off[k] += strides[k][d - 1] - sizes[d] * strides[k][d];
                index[d] = 0;
                ++index[d - 1];
            }
        }
    }
}

// Runs fn(begin, end) over [0, n) in OpenMP chunks of at least `grain` iterations.
template <typename Fn>
void parallel_for(int64_t n, int64_t grain, Fn&& fn) {
    if (n <= 0) return;
    const int64_t chunks = std::max<int64_t>(1, std::min<int64_t>(n / std::max<int64_t>(grain, 1),
                                                                  4 * omp_get_max_threads()));
#pragma omp parallel for schedule(static) if (chunks > 1)
    for (int64_t c = 0; c < chunks; ++c) fn(n * c / chunks, n * (c + 1) / chunks);
}

}  // namespace lumen::cpu
