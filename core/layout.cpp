// core/layout.cpp: shape helpers and Layout views (see core/layout.h).
#include "core/layout.h"

#include "core/error.h"

#include <algorithm>

namespace lumen {

int64_t numel_of(const Shape& shape) {
    int64_t n = 1;
    for (int64_t s : shape) n *= s;
    return n;
}

Strides contiguous_strides(const Shape& shape) {
    Strides strides(shape.size());
    int64_t stride = 1;
    for (size_t i = shape.size(); i-- > 0;) {
        strides[i] = stride;
        stride *= std::max<int64_t>(shape[i], 1);
    }
    return strides;
}

std::string shape_str(const Shape& shape) {
    if (shape.size() == 1) return fmt::format("({},)", shape[0]);
    std::string s = "(";
    for (size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
    return s + ")";
}

int64_t normalize_dim(int64_t dim, int64_t rank, const char* op) {
    const int64_t lo = -std::max<int64_t>(rank, 1), hi = std::max<int64_t>(rank, 1);
    if (dim < lo || dim >= hi)
        throw Error(fmt::format("{}: dim {} out of range for a tensor of rank {} (expected {} to {})",
                                op, dim, rank, lo, hi - 1));
    return dim < 0 ? dim + std::max<int64_t>(rank, 1) : dim;
}

Shape broadcast_shapes(const Shape& a, const Shape& b, const char* op) {
    const size_t rank = std::max(a.size(), b.size());
    Shape out(rank);
    for (size_t i = 0; i < rank; ++i) {
        const int64_t da = i < rank - a.size() ? 1 : a[i - (rank - a.size())];
        const int64_t db = i < rank - b.size() ? 1 : b[i - (rank - b.size())];
        if (da != db && da != 1 && db != 1)
            throw Error(fmt::format("{}: shapes do not broadcast: {} and {} (dim {}: {} vs {})", op,
                                    shape_str(a), shape_str(b), i, da, db));
        out[i] = da == 1 ? db : da;
    }
    return out;
}

bool Layout::is_contiguous() const {
    if (numel() == 0) return true;  // no elements, nothing out of place (whatever the strides)
    int64_t expected = 1;
    for (size_t i = shape.size(); i-- > 0;) {
        if (shape[i] == 1) continue;
        if (strides[i] != expected) return false;
        expected *= shape[i];
    }
    return true;
}

Layout Layout::transpose(int64_t d0, int64_t d1) const {
    Layout l = *this;
    std::swap(l.shape[d0], l.shape[d1]);
    std::swap(l.strides[d0], l.strides[d1]);
    return l;
}

Layout Layout::permute(const std::vector<int64_t>& dims) const {
    Layout l{Shape(dims.size()), Strides(dims.size()), offset};
    for (size_t i = 0; i < dims.size(); ++i) {
        l.shape[i] = shape[dims[i]];
        l.strides[i] = strides[dims[i]];
    }
    return l;
}

Layout Layout::slice(int64_t dim, int64_t start, int64_t end, int64_t step) const {
    Layout l = *this;
    const int64_t n = end > start ? (end - start + step - 1) / step : 0;
    if (n > 0) l.offset += start * strides[dim];
    l.shape[dim] = n;
    l.strides[dim] = strides[dim] * step;
    return l;
}

Layout Layout::expand(const Shape& target) const {
    Layout l{target, Strides(target.size(), 0), offset};
    const size_t lead = target.size() - shape.size();
    for (size_t i = 0; i < shape.size(); ++i)
        l.strides[lead + i] = shape[i] == target[lead + i] ? strides[i] : 0;
    return l;
}

Layout Layout::squeeze(int64_t dim) const {
    Layout l = *this;
    l.shape.erase(l.shape.begin() + dim);
    l.strides.erase(l.strides.begin() + dim);
    return l;
}

Layout Layout::unsqueeze(int64_t dim) const {
    Layout l = *this;
    const int64_t stride = dim < rank() ? strides[dim] * shape[dim] : 1;
    l.shape.insert(l.shape.begin() + dim, 1);
    l.strides.insert(l.strides.begin() + dim, stride);
    return l;
}

std::optional<Layout> Layout::view(const Shape& target) const {
    if (is_contiguous()) return Layout{target, contiguous_strides(target), offset};
    if (numel() == 0) return Layout{target, contiguous_strides(target), offset};
    // Walk chunks of old dims that are contiguous among themselves and match them to runs of new
    // dims with the same element count (PyTorch's computeStride).
    Strides out(target.size());
    int64_t view_d = int64_t(target.size()) - 1;
    int64_t chunk_base_stride = strides.back();
    int64_t tensor_numel = 1, view_numel = 1;
    for (int64_t d = rank() - 1; d >= 0; --d) {
        tensor_numel *= shape[d];
        if (d == 0 || (shape[d - 1] != 1 && strides[d - 1] != tensor_numel * chunk_base_stride)) {
            while (view_d >= 0 && (view_numel < tensor_numel || target[view_d] == 1)) {
                out[view_d] = view_numel * chunk_base_stride;
                view_numel *= target[view_d];
                --view_d;
            }
            if (view_numel != tensor_numel) return std::nullopt;
            if (d > 0) {
                chunk_base_stride = strides[d - 1];
                tensor_numel = 1;
                view_numel = 1;
            }
        }
    }
    if (view_d != -1) return std::nullopt;
    return Layout{target, out, offset};
}

}  // namespace lumen
