// core/tensor.h: Tensor, a cheap shared handle to storage + layout + dtype (+ autograd metadata).
//
// Copying a Tensor copies the handle, not the data. Views (reshape, transpose, slice, ...) share
// storage and are autograd ops (autograd/ops/shape.cpp). Values are read back with to_vector or
// item, which copy to the host: never inside a training step. An undefined Tensor (default
// constructed) stands for "no tensor" (an absent bias, a gradient that was never produced).
#pragma once

#include "core/device.h"
#include "core/dtype.h"
#include "core/error.h"
#include "core/layout.h"
#include "core/storage.h"

#include <array>
#include <memory>
#include <vector>

namespace lumen {

namespace autograd { struct Node; }

enum class RetainGraph : bool { no, yes };

struct TensorImpl {
    std::shared_ptr<Storage> storage;
    Layout layout;
    DType dtype = DType::f32;
    // Autograd: a leaf that requires grad accumulates into `grad`; a tensor made by a recorded op
    // has `grad_fn`, the node that sends its gradient back to the op's inputs.
    bool requires_grad = false;
    std::shared_ptr<TensorImpl> grad;
    std::shared_ptr<autograd::Node> grad_fn;
};

class Tensor {
public:
    Tensor() = default;
    explicit Tensor(std::shared_ptr<TensorImpl> impl) : impl_(std::move(impl)) {}

    // ---- construction (allocates; contents of empty are unspecified) ----
    static Tensor empty(const Shape& shape, DType dtype = DType::f32, Device device = Device::cpu());
    static Tensor zeros(const Shape& shape, DType dtype = DType::f32, Device device = Device::cpu());
    static Tensor ones(const Shape& shape, DType dtype = DType::f32, Device device = Device::cpu());
    static Tensor full(const Shape& shape, double value, DType dtype = DType::f32,
                       Device device = Device::cpu());
    static Tensor scalar(double value, DType dtype = DType::f32, Device device = Device::cpu());
    // From host values, converted to `dtype` (default: the values' own type).
    template <typename T>
    static Tensor from(const std::vector<T>& values, const Shape& shape, Device device = Device::cpu());
    template <typename T>
    static Tensor from(const std::vector<T>& values) { return from(values, {int64_t(values.size())}); }
    // A tensor over existing storage with the given layout (no copy).
    static Tensor over(std::shared_ptr<Storage> storage, Layout layout, DType dtype);

    // ---- properties ----
    bool defined() const { return bool(impl_); }
    const Shape& shape() const { return impl().layout.shape; }
    const Strides& strides() const { return impl().layout.strides; }
    const Layout& layout() const { return impl().layout; }
    int64_t offset() const { return impl().layout.offset; }
    int64_t dim() const { return impl().layout.rank(); }
    int64_t size(int64_t d) const;  // negative d counts from the end
    int64_t numel() const { return impl().layout.numel(); }
    DType dtype() const { return impl().dtype; }
    Device device() const { return impl().storage->device(); }
    bool is_contiguous() const { return impl().layout.is_contiguous(); }
    const std::shared_ptr<Storage>& storage() const { return impl().storage; }
    // The sizes of a tensor of known rank, for structured bindings: auto [B, T, C] = x.dims<3>().
    template <size_t N> std::array<int64_t, N> dims() const;
    // The address of element 0 (storage + offset); data<T>() checks that T is the dtype.
    void* data_ptr() const;
    template <typename T> T* data() const;

    // ---- views and copies (autograd-aware; defined in autograd/ops/) ----
    Tensor reshape(const Shape& shape) const;   // a view when possible, else a copy; -1 inferred
    Tensor view(const Shape& shape) const;      // a view or an error
    Tensor transpose(int64_t d0, int64_t d1) const;
    Tensor permute(const std::vector<int64_t>& dims) const;
    Tensor slice(int64_t dim, int64_t start, int64_t end, int64_t step = 1) const;
    Tensor narrow(int64_t dim, int64_t start, int64_t length) const;
    Tensor select(int64_t dim, int64_t index) const;  // slice of length 1, dim removed
    Tensor expand(const Shape& shape) const;           // -1 keeps a size
    Tensor squeeze(int64_t dim) const;
    Tensor unsqueeze(int64_t dim) const;
    Tensor flatten() const { return reshape({numel()}); }
    Tensor contiguous() const;  // itself when already contiguous
    Tensor clone() const;       // always a new contiguous copy
    Tensor to(DType dtype) const;
    Tensor to(Device device) const;

    // ---- host reads (copy; never inside a training step) ----
    template <typename T> std::vector<T> to_vector() const;  // row-major, converted to T
    double item() const;                                     // a one-element tensor's value

    // ---- in place, outside autograd (initialisation, optimizer steps, gradient buffers) ----
    Tensor& fill_(double value);
    Tensor& copy_(const Tensor& src);  // broadcasts src to this shape, converts dtype
    Tensor& add_(const Tensor& other, double alpha = 1.0);  // this += alpha · other (broadcast)
    Tensor& zero_() { return fill_(0.0); }

    // ---- autograd ----
    bool requires_grad() const { return impl().requires_grad; }
    // Marks a leaf as requiring grad; returns *this so it chains after a factory.
    Tensor& set_requires_grad(bool on = true);
    Tensor requires_grad_(bool on = true) const;
    bool is_leaf() const { return !impl().grad_fn; }
    const std::shared_ptr<autograd::Node>& grad_fn() const { return impl().grad_fn; }
    Tensor grad() const { return impl().grad ? Tensor(impl().grad) : Tensor(); }
    void set_grad(const Tensor& grad) const;
    void zero_grad() const;  // drops the gradient (undefined until the next backward)
    // Same storage and layout, no autograd history.
    Tensor detach() const;
    // Runs the backward pass from this tensor. `grad` defaults to ones for a one-element tensor.
    void backward(const Tensor& grad = {}, RetainGraph retain = RetainGraph::no) const;

    TensorImpl& impl() const;
    const std::shared_ptr<TensorImpl>& impl_ptr() const { return impl_; }
    bool same(const Tensor& other) const { return impl_ == other.impl_; }

private:
    std::shared_ptr<TensorImpl> impl_;
};

// "(2, 3) f32 [cpu]"
std::string describe(const Tensor& t);

// ---------------------------------------------------------------- templates

template <size_t N>
std::array<int64_t, N> Tensor::dims() const {
    check(dim() == int64_t(N), "dims", concat_message({"expected a tensor of rank ", std::to_string(N)}), {{"x", *this}});
    std::array<int64_t, N> out;
    for (size_t i = 0; i < N; ++i) out[i] = shape()[i];
    return out;
}

template <typename T>
T* Tensor::data() const {
    check(dtype() == dtype_of<T>(), "data", concat_message({"tensor is not ", dtype_name(dtype_of<T>())}),
          {{"x", *this}});
    return static_cast<T*>(data_ptr());
}

// Copies a host buffer of `count` elements of `src_dtype` into a new contiguous tensor.
Tensor tensor_from_host(const void* src, DType src_dtype, const Shape& shape, DType dtype, Device device);
// Copies a tensor's elements, row-major and converted to `dtype`, into `dst` on the host.
void tensor_to_host(const Tensor& t, void* dst, DType dtype);

template <typename T>
Tensor Tensor::from(const std::vector<T>& values, const Shape& shape, Device device) {
    check(int64_t(values.size()) == numel_of(shape), "from",
          concat_message({std::to_string(values.size()), " values do not fill shape ", shape_str(shape)}));
    if constexpr (std::is_same_v<T, bool>) {
        std::vector<uint8_t> bytes(values.begin(), values.end());
        return tensor_from_host(bytes.data(), DType::boolean, shape, DType::boolean, device);
    } else {
        return tensor_from_host(values.data(), dtype_of<T>(), shape, dtype_of<T>(), device);
    }
}

template <typename T>
std::vector<T> Tensor::to_vector() const {
    if constexpr (std::is_same_v<T, bool>) {
        std::vector<uint8_t> bytes(static_cast<size_t>(numel()));
        tensor_to_host(*this, bytes.data(), DType::boolean);
        return std::vector<bool>(bytes.begin(), bytes.end());
    } else {
        std::vector<T> out(static_cast<size_t>(numel()));
        tensor_to_host(*this, out.data(), dtype_of<T>());
        return out;
    }
}

}  // namespace lumen

#ifndef __CUDACC__
// fmt::format("{}", t) prints the values (long dims elided), shape, dtype and device.
template <> struct fmt::formatter<lumen::Tensor> {
    constexpr auto parse(format_parse_context& ctx) { return ctx.begin(); }
    format_context::iterator format(const lumen::Tensor& t, format_context& ctx) const;
};
#endif
