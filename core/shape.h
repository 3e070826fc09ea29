// core/shape.h: Shape (sizes of each dimension) and the small shape helpers every op uses.
//
// Sizes and strides are int64_t. Dimensions may be given negative (-1 is the last) and are
// normalised by normalize_dim, which names the op and the rank when out of range.
#pragma once

#include <cstdint>
#include <initializer_list>
#include <string>
#include <vector>

namespace lumen {

using Shape = std::vector<int64_t>;
using Strides = std::vector<int64_t>;

int64_t numel_of(const Shape& shape);
Strides contiguous_strides(const Shape& shape);
std::string shape_str(const Shape& shape);  // "(2, 3)"; "()" for a scalar

// Maps dim in [-rank, rank) to [0, rank); throws naming op otherwise.
int64_t normalize_dim(int64_t dim, int64_t rank, const char* op);

// The broadcast of two shapes (numpy rules); throws naming op when they do not broadcast.
Shape broadcast_shapes(const Shape& a, const Shape& b, const char* op);

}  // namespace lumen
