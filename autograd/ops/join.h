// autograd/ops/join.h: joining and splitting along a dim, and indexed reads.
//
// cat/stack take tensors of one dtype and device. split/chunk return views (slices).
// index_select and gather take i32/i64 indices; their backward adds gradients back in index
// order (deterministic), so repeated indices accumulate. An index out of range is an error.
#pragma once

#include "core/tensor.h"

namespace lumen::ops {

Tensor cat(const std::vector<Tensor>& tensors, int64_t dim);
Tensor stack(const std::vector<Tensor>& tensors, int64_t dim);
// Pieces of `size` along dim (the last may be smaller).
std::vector<Tensor> split(const Tensor& x, int64_t size, int64_t dim);
// `chunks` pieces of ceil(size / chunks) along dim (fewer when the size is small).
std::vector<Tensor> chunk(const Tensor& x, int64_t chunks, int64_t dim);

// x (..., n, ...) with indices (m,) -> (..., m, ...): rows of dim picked by index.
Tensor index_select(const Tensor& x, int64_t dim, const Tensor& indices);
// out[i][j][k] = x[i][index[i][j][k]][k] for dim = 1 (any rank); index has x's rank, and its
// sizes are at most x's in every dim but `dim`.
Tensor gather(const Tensor& x, int64_t dim, const Tensor& indices);

}  // namespace lumen::ops
