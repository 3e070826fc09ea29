// autograd/ops/shape.h: views and copies: reshape, transpose, permute, slice, expand, squeeze,
// unsqueeze, contiguous, cast, device transfer. Views share storage; each records a node whose
// backward maps the gradient back to the input's shape. Tensor's member functions of the same
// names call these.
#pragma once

#include "core/tensor.h"

namespace lumen::ops {

Tensor reshape(const Tensor& x, const Shape& shape);  // a view when possible, else a copy
Tensor view(const Tensor& x, const Shape& shape);     // a view, or an error naming the layout
Tensor transpose(const Tensor& x, int64_t d0, int64_t d1);
Tensor permute(const Tensor& x, const std::vector<int64_t>& dims);
// Elements start, start+step, ... < end along dim; start/end clamp to [0, size] (negatives count
// from the end, as in Python); step ≥ 1.
Tensor slice(const Tensor& x, int64_t dim, int64_t start, int64_t end, int64_t step = 1);
Tensor expand(const Tensor& x, const Shape& shape);
Tensor squeeze(const Tensor& x, int64_t dim);
Tensor unsqueeze(const Tensor& x, int64_t dim);
Tensor contiguous(const Tensor& x);
Tensor cast(const Tensor& x, DType dtype);     // gradient cast back to x's dtype
Tensor to_device(const Tensor& x, Device device);

}  // namespace lumen::ops
