// autograd/ops/shape.cpp: views (reshape, transpose, permute, slice, expand, squeeze, unsqueeze)
// and copies (contiguous, cast, device transfer), with their backward; and the Tensor member
// functions that call them.
#include "autograd/ops/shape.h"

#include "autograd/node.h"
#include "autograd/ops/creation.h"
#include "autograd/registry.h"
#include "core/kernels/elementwise.h"

#include <algorithm>
#include <numeric>

namespace lumen::ops {

static const bool registered = autograd::register_differentiable(
    {"reshape", "transpose", "permute", "slice", "expand", "squeeze", "unsqueeze", "contiguous",
     "clone", "cast", "to_device"});

namespace {

Tensor view_of(const Tensor& x, Layout layout) { return Tensor::over(x.storage(), std::move(layout), x.dtype()); }

// Resolves one -1 in a requested shape and checks the element count.
Shape infer_shape(const char* op, const Tensor& x, const Shape& requested) {
    Shape shape = requested;
    int64_t known = 1, infer = -1;
    for (size_t i = 0; i < shape.size(); ++i) {
        if (shape[i] == -1) {
            check(infer < 0, op, fmt::format("only one dim can be -1 in {}", shape_str(requested)), {{"x", x}});
            infer = int64_t(i);
        } else {
            check(shape[i] >= 0, op, fmt::format("negative size in {}", shape_str(requested)), {{"x", x}});
            known *= shape[i];
        }
    }
    if (infer >= 0) {
        check(known != 0 && x.numel() % known == 0, op,
              fmt::format("cannot infer -1 in {}", shape_str(requested)), {{"x", x}});
        shape[size_t(infer)] = x.numel() / known;
    }
    check(numel_of(shape) == x.numel(), op,
          fmt::format("shape {} has {} elements, the tensor {}", shape_str(requested), numel_of(shape), x.numel()),
          {{"x", x}});
    return shape;
}

void record_reshape_back(Tensor& y, const Tensor& x) {
    autograd::record("reshape", y, {x}, [shape = x.shape()](const Tensor& dy) {
        return autograd::Grads{reshape(dy, shape)};
    });
}

}  // namespace

Tensor reshape(const Tensor& x, const Shape& requested) {
    const Shape shape = infer_shape("reshape", x, requested);
    std::optional<Layout> layout = x.layout().view(shape);
    Tensor y = layout ? view_of(x, *layout) : view_of(contiguous(x).detach(), Layout::contiguous(shape));
    record_reshape_back(y, x);
    return y;
}

Tensor view(const Tensor& x, const Shape& requested) {
    const Shape shape = infer_shape("view", x, requested);
    std::optional<Layout> layout = x.layout().view(shape);
    check(layout.has_value(), "view",
          fmt::format("the layout (strides {}) cannot be viewed as {} without a copy; use reshape",
                      shape_str(x.strides()), shape_str(shape)), {{"x", x}});
    Tensor y = view_of(x, *layout);
    record_reshape_back(y, x);
    return y;
}

Tensor transpose(const Tensor& x, int64_t d0, int64_t d1) {
    d0 = normalize_dim(d0, x.dim(), "transpose");
    d1 = normalize_dim(d1, x.dim(), "transpose");
    if (x.dim() == 0) return x;
    Tensor y = view_of(x, x.layout().transpose(d0, d1));
    autograd::record("transpose", y, {x}, [d0, d1](const Tensor& dy) {
        return autograd::Grads{transpose(dy, d0, d1)};
    });
    return y;
}

Tensor permute(const Tensor& x, const std::vector<int64_t>& dims) {
    check(int64_t(dims.size()) == x.dim(), "permute",
          fmt::format("{} dims given for a tensor of rank {}", dims.size(), x.dim()), {{"x", x}});
    std::vector<int64_t> perm(dims.size());
    std::vector<bool> seen(dims.size(), false);
    for (size_t i = 0; i < dims.size(); ++i) {
        perm[i] = normalize_dim(dims[i], x.dim(), "permute");
        check(!seen[size_t(perm[i])], "permute", fmt::format("dim {} repeated", perm[i]), {{"x", x}});
        seen[size_t(perm[i])] = true;
    }
    Tensor y = view_of(x, x.layout().permute(perm));
    autograd::record("permute", y, {x}, [perm](const Tensor& dy) {
        std::vector<int64_t> inverse(perm.size());
        for (size_t i = 0; i < perm.size(); ++i) inverse[size_t(perm[i])] = int64_t(i);
        return autograd::Grads{permute(dy, inverse)};
    });
    return y;
}

Tensor slice(const Tensor& x, int64_t dim, int64_t start, int64_t end, int64_t step) {
    dim = normalize_dim(dim, x.dim(), "slice");
    check(x.dim() > 0, "slice", "cannot slice a scalar", {{"x", x}});
    check(step >= 1, "slice", fmt::format("step must be ≥ 1, got {}", step), {{"x", x}});
    const int64_t n = x.shape()[size_t(dim)];
    auto clamp = [n](int64_t i) { return std::clamp<int64_t>(i < 0 ? i + n : i, 0, n); };
    start = clamp(start);
    end = std::max(clamp(end), start);
    Tensor y = view_of(x, x.layout().slice(dim, start, end, step));
    autograd::record("slice", y, {x}, [shape = x.shape(), dim, start, end, step](const Tensor& dy) {
        // The gradient of a slice is dy placed into zeros of the input's shape.
        Tensor dx = Tensor::zeros(shape, dy.dtype(), dy.device());
        Tensor window = view_of(dx, dx.layout().slice(dim, start, end, step));
        kernels::copy(window, dy);
        return autograd::Grads{dx};
    });
    return y;
}

Tensor expand(const Tensor& x, const Shape& requested) {
    check(requested.size() >= x.shape().size(), "expand",
          fmt::format("cannot expand to fewer dims: {}", shape_str(requested)), {{"x", x}});
    Shape shape = requested;
    const size_t lead = shape.size() - x.shape().size();
    for (size_t i = 0; i < shape.size(); ++i) {
        const int64_t have = i < lead ? 1 : x.shape()[i - lead];
        if (shape[i] == -1) {
            check(i >= lead, "expand", "-1 is not allowed for a new leading dim", {{"x", x}});
            shape[i] = have;
        }
        check(shape[i] >= 0 && (have == shape[i] || have == 1), "expand",
              fmt::format("dim {} of size {} cannot expand to {}", i, have, shape[i]), {{"x", x}});
    }
    Tensor y = view_of(x, x.layout().expand(shape));
    autograd::record("expand", y, {x}, [shape = x.shape()](const Tensor& dy) {
        return autograd::Grads{autograd::sum_to(dy, shape)};
    });
    return y;
}

Tensor squeeze(const Tensor& x, int64_t dim) {
    dim = normalize_dim(dim, x.dim(), "squeeze");
    check(x.dim() > 0 && x.shape()[size_t(dim)] == 1, "squeeze",
          fmt::format("dim {} does not have size 1", dim), {{"x", x}});
    Tensor y = view_of(x, x.layout().squeeze(dim));
    autograd::record("squeeze", y, {x}, [dim](const Tensor& dy) {
        return autograd::Grads{unsqueeze(dy, dim)};
    });
    return y;
}

Tensor unsqueeze(const Tensor& x, int64_t dim) {
    dim = normalize_dim(dim, x.dim() + 1, "unsqueeze");
    Tensor y = view_of(x, x.layout().unsqueeze(dim));
    autograd::record("unsqueeze", y, {x}, [dim](const Tensor& dy) {
        return autograd::Grads{squeeze(dy, dim)};
    });
    return y;
}

Tensor contiguous(const Tensor& x) {
    if (x.is_contiguous()) return x;
    Tensor y = Tensor::empty(x.shape(), x.dtype(), x.device());
    kernels::copy(y, x);
    autograd::record("contiguous", y, {x}, [](const Tensor& dy) { return autograd::Grads{dy}; });
    return y;
}

Tensor cast(const Tensor& x, DType dtype) {
    if (x.dtype() == dtype) return x;
    Tensor y = Tensor::empty(x.shape(), dtype, x.device());
    kernels::copy(y, x);
    if (is_floating(dtype))
        autograd::record("cast", y, {x}, [from = x.dtype()](const Tensor& dy) {
            return autograd::Grads{cast(dy, from)};
        });
    return y;
}

Tensor to_device(const Tensor& x, Device device) {
    if (x.device() == device) return x;
    Tensor y = Tensor::empty(x.shape(), x.dtype(), device);
    kernels::copy(y, x);
    autograd::record("to_device", y, {x}, [from = x.device()](const Tensor& dy) {
        return autograd::Grads{to_device(dy, from)};
    });
    return y;
}

}  // namespace lumen::ops

namespace lumen {

Tensor Tensor::reshape(const Shape& shape) const { return ops::reshape(*this, shape); }
Tensor Tensor::view(const Shape& shape) const { return ops::view(*this, shape); }
Tensor Tensor::transpose(int64_t d0, int64_t d1) const { return ops::transpose(*this, d0, d1); }
Tensor Tensor::permute(const std::vector<int64_t>& dims) const { return ops::permute(*this, dims); }
Tensor Tensor::slice(int64_t dim, int64_t start, int64_t end, int64_t step) const {
    return ops::slice(*this, dim, start, end, step);
}
Tensor Tensor::narrow(int64_t dim, int64_t start, int64_t length) const {
    check(this->dim() > 0, "narrow", "cannot narrow a scalar", {{"x", *this}});
    const int64_t d = normalize_dim(dim, this->dim(), "narrow");
    check(start >= 0 && length >= 0 && start + length <= shape()[size_t(d)], "narrow",
          fmt::format("range [{}, {}) outside dim {} of size {}", start, start + length, d, shape()[size_t(d)]),
          {{"x", *this}});
    return ops::slice(*this, d, start, start + length);
}
Tensor Tensor::select(int64_t dim, int64_t index) const {
    check(this->dim() > 0, "select", "cannot select from a scalar", {{"x", *this}});
    const int64_t d = normalize_dim(dim, this->dim(), "select");
    const int64_t n = shape()[size_t(d)];
    check(index >= -n && index < n, "select", fmt::format("index {} out of range for dim {} of size {}", index, d, n),
          {{"x", *this}});
    if (index < 0) index += n;
    return ops::squeeze(ops::slice(*this, d, index, index + 1), d);
}
Tensor Tensor::expand(const Shape& shape) const { return ops::expand(*this, shape); }
Tensor Tensor::squeeze(int64_t dim) const { return ops::squeeze(*this, dim); }
Tensor Tensor::unsqueeze(int64_t dim) const { return ops::unsqueeze(*this, dim); }
Tensor Tensor::contiguous() const { return ops::contiguous(*this); }
Tensor Tensor::clone() const {
    Tensor y = Tensor::empty(shape(), dtype(), device());
    kernels::copy(y, *this);
    autograd::record("clone", y, {*this}, [](const Tensor& dy) { return autograd::Grads{dy}; });
    return y;
}
Tensor Tensor::to(DType dtype) const { return ops::cast(*this, dtype); }
Tensor Tensor::to(Device device) const { return ops::to_device(*this, device); }

}  // namespace lumen
