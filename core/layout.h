// core/layout.h: how a tensor's elements sit in its storage: shape, strides (in elements) and a
// start offset (in elements). Views are new Layouts over the same storage.
//
// These functions only compute layouts; they do not check that a view fits its storage (the
// callers in autograd/ops/shape.cpp check the arguments and name the op).
#pragma once

#include "core/shape.h"

#include <optional>

namespace lumen {

struct Layout {
    Shape shape;
    Strides strides;
    int64_t offset = 0;

    static Layout contiguous(const Shape& shape) { return {shape, contiguous_strides(shape), 0}; }
    int64_t rank() const { return int64_t(shape.size()); }
    int64_t numel() const { return numel_of(shape); }
    // Row-major contiguous: strides equal contiguous_strides (size-1 dims may have any stride);
    // a layout without elements is contiguous whatever its strides.
    bool is_contiguous() const;

    Layout transpose(int64_t d0, int64_t d1) const;            // dims already normalised
    Layout permute(const std::vector<int64_t>& dims) const;    // a permutation of 0..rank-1
    Layout slice(int64_t dim, int64_t start, int64_t end, int64_t step) const;  // clamped range
    Layout expand(const Shape& target) const;                  // size-1 or new leading dims
    Layout squeeze(int64_t dim) const;                         // shape[dim] == 1
    Layout unsqueeze(int64_t dim) const;                       // dim in [0, rank]
    // The layout of the same elements with `target` shape without copying, if one exists
    // (for contiguous layouts it always does).
    std::optional<Layout> view(const Shape& target) const;
};

}  // namespace lumen
