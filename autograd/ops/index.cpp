// autograd/ops/index.cpp: index_select and gather (PyTorch semantics), forward and backward.
// Kernels: core/kernels/index.h (CPU reference in core/cpu/index.cpp).
//
// Every index is read on the host and checked against [0, x.size(dim)) before the output is
// allocated, so a bad index is an error naming the op and the value, never a wild read. The
// backward adds dy into zeros of x's shape in index order (deterministic), so repeated indices
// accumulate; indices get no gradient. x and indices may be non-contiguous (the kernels take
// any strides).
#include "autograd/ops/join.h"

#include "autograd/node.h"
#include "autograd/registry.h"
#include "core/kernels/index.h"

namespace lumen::ops {

static const bool registered = autograd::register_differentiable({"index_select", "gather"});

namespace {

// Checks that every index lies in [0, n), n = x.size(dim); the first one outside is named.
void check_indices_in_range(const char* op, const Tensor& x, int64_t dim, const Tensor& indices) {
    const int64_t n = x.shape()[size_t(dim)];
    const std::vector<int64_t> values = indices.to_vector<int64_t>();
    for (size_t i = 0; i < values.size(); ++i)
        check(values[i] >= 0 && values[i] < n, op,
              fmt::format("index {} (element {} of indices) is out of range [0, {}) for dim {} of size {}",
                          values[i], i, n, dim, n),
              {{"x", x}, {"indices", indices}});
}

void check_common(const char* op, const Tensor& x, const Tensor& indices) {
    check(x.dim() >= 1, op, "x must have at least one dim", {{"x", x}, {"indices", indices}});
    check(indices.dtype() == DType::i32 || indices.dtype() == DType::i64, op,
          "indices must be i32 or i64", {{"x", x}, {"indices", indices}});
    check(x.device() == indices.device(), op, "tensors on different devices",
          {{"x", x}, {"indices", indices}});
}

}  // namespace

Tensor index_select(const Tensor& x, int64_t dim, const Tensor& indices) {  // x (..., n, ...), indices (m,)
    check_common("index_select", x, indices);
    dim = normalize_dim(dim, x.dim(), "index_select");
    check(indices.dim() == 1, "index_select", "indices must be one-dimensional (m,)",
          {{"x", x}, {"indices", indices}});
    check_indices_in_range("index_select", x, dim, indices);
    Shape shape = x.shape();
    shape[size_t(dim)] = indices.numel();
    Tensor y = Tensor::empty(shape, x.dtype(), x.device());       // (..., m, ...)
    kernels::index_select(y, x, dim, indices);
    if (is_floating(x.dtype()))
        autograd::record("index_select", y, {x}, [shape = x.shape(), dim, indices = indices.detach()](const Tensor& dy) {
            Tensor dx = Tensor::empty(shape, dy.dtype(), dy.device());  // (..., n, ...)
            kernels::index_select_backward(dx, dy, dim, indices);
            return autograd::Grads{dx};
        });
    return y;
}

Tensor gather(const Tensor& x, int64_t dim, const Tensor& indices) {
    check_common("gather", x, indices);
    dim = normalize_dim(dim, x.dim(), "gather");
    check(indices.dim() == x.dim(), "gather",
          fmt::format("indices must have x's rank ({}), got rank {}", x.dim(), indices.dim()),
          {{"x", x}, {"indices", indices}});
    for (int64_t d = 0; d < x.dim(); ++d)
        check(d == dim || indices.shape()[size_t(d)] <= x.shape()[size_t(d)], "gather",
              fmt::format("indices has size {} in dim {}, larger than x's {} (only dim {} may be larger)",
                          indices.shape()[size_t(d)], d, x.shape()[size_t(d)], dim),
              {{"x", x}, {"indices", indices}});
    check_indices_in_range("gather", x, dim, indices);
    Tensor y = Tensor::empty(indices.shape(), x.dtype(), x.device());  // indices' shape
    kernels::gather(y, x, dim, indices);
    if (is_floating(x.dtype()))
        autograd::record("gather", y, {x}, [shape = x.shape(), dim, indices = indices.detach()](const Tensor& dy) {
            Tensor dx = Tensor::empty(shape, dy.dtype(), dy.device());  // x's shape
            kernels::gather_backward(dx, dy, dim, indices);
            return autograd::Grads{dx};
        });
    return y;
}

}  // namespace lumen::ops
