// core/tensor.cpp: Tensor construction, host transfers, in-place helpers and printing.
// Views and autograd-aware copies live in autograd/ops/shape.cpp; backward in autograd/engine.cpp.
#include "core/tensor.h"

#include "core/kernels/elementwise.h"

#include <fmt/format.h>

namespace lumen {

TensorImpl& Tensor::impl() const {
    if (!impl_) throw Error("tensor: use of an undefined tensor");
    return *impl_;
}

Tensor Tensor::over(std::shared_ptr<Storage> storage, Layout layout, DType dtype) {
    auto impl = std::make_shared<TensorImpl>();
    impl->storage = std::move(storage);
    impl->layout = std::move(layout);
    impl->dtype = dtype;
    return Tensor(std::move(impl));
}

Tensor Tensor::empty(const Shape& shape, DType dtype, Device device) {
    for (int64_t s : shape)
        if (s < 0) throw Error(fmt::format("empty: negative size in shape {}", shape_str(shape)));
    const size_t bytes = size_t(numel_of(shape)) * dtype_size(dtype);
    return over(Storage::allocate(bytes, device), Layout::contiguous(shape), dtype);
}

Tensor Tensor::full(const Shape& shape, double value, DType dtype, Device device) {
    Tensor t = empty(shape, dtype, device);
    t.fill_(value);
    return t;
}
Tensor Tensor::zeros(const Shape& shape, DType dtype, Device device) { return full(shape, 0.0, dtype, device); }
Tensor Tensor::ones(const Shape& shape, DType dtype, Device device) { return full(shape, 1.0, dtype, device); }
Tensor Tensor::scalar(double value, DType dtype, Device device) { return full({}, value, dtype, device); }

int64_t Tensor::size(int64_t d) const {
    check(dim() > 0, "size", "a scalar has no dims", {{"x", *this}});
    return shape()[size_t(normalize_dim(d, dim(), "size"))];
}

void* Tensor::data_ptr() const {
    return static_cast<char*>(storage()->data()) + offset() * int64_t(dtype_size(dtype()));
}

Tensor tensor_from_host(const void* src, DType src_dtype, const Shape& shape, DType dtype, Device device) {
    Tensor host = Tensor::over(std::make_shared<Storage>(const_cast<void*>(src),
                                                         size_t(numel_of(shape)) * dtype_size(src_dtype),
                                                         Device::cpu(), nullptr),
                               Layout::contiguous(shape), src_dtype);
    Tensor out = Tensor::empty(shape, dtype, device);
    kernels::copy(out, host);
    return out;
}

void tensor_to_host(const Tensor& t, void* dst, DType dtype) {
    Tensor host = Tensor::over(std::make_shared<Storage>(dst, size_t(t.numel()) * dtype_size(dtype),
                                                         Device::cpu(), nullptr),
                               Layout::contiguous(t.shape()), dtype);
    Tensor src = t;
    if (!t.device().is_cpu()) src = t.to(Device::cpu());
    kernels::copy(host, src);
}

double Tensor::item() const {
    check(numel() == 1, "item", "expected a tensor with one element", {{"x", *this}});
    return to_vector<double>()[0];
}

Tensor& Tensor::fill_(double value) {
    kernels::fill(*this, value);
    return *this;
}

Tensor& Tensor::copy_(const Tensor& src) {
    const Shape shape = broadcast_shapes(src.shape(), this->shape(), "copy_");
    check(shape == this->shape(), "copy_", "source does not broadcast to the destination",
          {{"dst", *this}, {"src", src}});
    Tensor s = Tensor::over(src.storage(), src.layout().expand(shape), src.dtype());
    kernels::copy(*this, s);
    return *this;
}

Tensor& Tensor::add_(const Tensor& other, double alpha) {
    check(other.dtype() == dtype() && other.device() == device(), "add_",
          "operands must share dtype and device", {{"self", *this}, {"other", other}});
    const Shape shape = broadcast_shapes(other.shape(), this->shape(), "add_");
    check(shape == this->shape(), "add_", "other does not broadcast to self", {{"self", *this}, {"other", other}});
    Tensor o = Tensor::over(other.storage(), other.layout().expand(shape), other.dtype());
    if (alpha != 1.0) {
        Tensor scaled = Tensor::empty(shape, dtype(), device());
        Tensor a = Tensor::scalar(alpha, dtype(), device());
        kernels::binary(BinaryOp::mul, scaled, o, Tensor::over(a.storage(), a.layout().expand(shape), dtype()));
        o = scaled;
    }
    kernels::binary(BinaryOp::add, *this, *this, o);
    return *this;
}

Tensor& Tensor::set_requires_grad(bool on) {
    check(!on || is_floating(dtype()), "requires_grad", "only floating tensors can require grad", {{"x", *this}});
    check(is_leaf(), "requires_grad", "only leaf tensors can be marked; detach() first", {{"x", *this}});
    impl().requires_grad = on;
    return *this;
}

Tensor Tensor::requires_grad_(bool on) const {
    Tensor t = *this;
    t.set_requires_grad(on);
    return t;
}

void Tensor::set_grad(const Tensor& grad) const {
    if (grad.defined())
        check(grad.shape() == shape(), "set_grad", "gradient shape differs", {{"x", *this}, {"grad", grad}});
    impl().grad = grad.defined() ? grad.impl_ptr() : nullptr;
}

void Tensor::zero_grad() const { impl().grad = nullptr; }

Tensor Tensor::detach() const { return over(storage(), layout(), dtype()); }

}  // namespace lumen

// ---- printing ----
namespace {

template <typename T>
void format_values(fmt::memory_buffer& buf, const std::vector<T>& values, const lumen::Shape& shape,
                   size_t dim, size_t& index, int indent) {
    constexpr int64_t edge = 3;  // NOTE: long dims print their first and last 3 entries
    if (shape.empty()) {
        fmt::format_to(std::back_inserter(buf), "{:.6g}", double(values[index++]));
        return;
    }
    const int64_t n = shape[dim];
    const size_t inner = size_t(lumen::numel_of(lumen::Shape(shape.begin() + dim + 1, shape.end())));
    buf.push_back('[');
    for (int64_t i = 0; i < n; ++i) {
        if (n > 2 * edge && i == edge) {
            fmt::format_to(std::back_inserter(buf), "...");
            index += size_t(n - 2 * edge) * inner;
            i = n - edge - 1;
            if (dim + 1 == shape.size()) buf.append(std::string_view(", "));
            else fmt::format_to(std::back_inserter(buf), ",\n{:{}}", "", indent + 1);
            continue;
        }
        if (dim + 1 == shape.size()) fmt::format_to(std::back_inserter(buf), "{:.6g}", double(values[index++]));
        else format_values(buf, values, shape, dim + 1, index, indent + 1);
        if (i + 1 < n) {
            if (dim + 1 == shape.size()) buf.append(std::string_view(", "));
            else fmt::format_to(std::back_inserter(buf), ",\n{:{}}", "", indent + 1);
        }
    }
    buf.push_back(']');
}

}  // namespace

fmt::format_context::iterator fmt::formatter<lumen::Tensor>::format(const lumen::Tensor& t,
                                                                   format_context& ctx) const {
    if (!t.defined()) return fmt::format_to(ctx.out(), "tensor(undefined)");
    fmt::memory_buffer buf;
    const std::vector<double> values = t.to_vector<double>();
    size_t index = 0;
    format_values(buf, values, t.shape(), 0, index, 7);
    return fmt::format_to(ctx.out(), "tensor({}, shape={}, dtype={}, device={})",
                          std::string_view(buf.data(), buf.size()), lumen::shape_str(t.shape()),
                          lumen::dtype_name(t.dtype()), t.device().str());
}
