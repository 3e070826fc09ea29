// autograd/ops/creation.cpp: arange, random draws and *_like factories (no gradients).
#include "autograd/ops/creation.h"

#include "core/kernels/elementwise.h"

#include <cmath>

namespace lumen::ops {

Tensor arange(double start, double end, double step, DType dtype, Device device) {
    check(step != 0.0, "arange", "step must be non-zero");
    check(std::isfinite(start) && std::isfinite(end) && std::isfinite(step), "arange",
          fmt::format("start, end and step must be finite, got [{}, {}) step {}", start, end, step));
    const double count = std::ceil((end - start) / step);
    check(count < 0x1p62, "arange", fmt::format("too many elements: [{}, {}) step {}", start, end, step));
    const int64_t n = count > 0 ? int64_t(count) : 0;
    Tensor out = Tensor::empty({n}, dtype, device);
    kernels::arange(out, start, step);
    return out;
}

Tensor rand(const Shape& shape, Generator& gen, double lo, double hi, DType dtype, Device device) {
    check(is_floating(dtype), "rand", fmt::format("expected a floating dtype, got {}", dtype_name(dtype)));
    check(hi >= lo, "rand", fmt::format("empty range [{}, {})", lo, hi));
    Tensor out = Tensor::empty(shape, dtype, device);
    kernels::uniform(out, gen.take(out.numel()), lo, hi);
    return out;
}

Tensor randn(const Shape& shape, Generator& gen, double mean, double std, DType dtype, Device device) {
    check(is_floating(dtype), "randn", fmt::format("expected a floating dtype, got {}", dtype_name(dtype)));
    check(std >= 0, "randn", fmt::format("std must be ≥ 0, got {}", std));
    Tensor out = Tensor::empty(shape, dtype, device);
    kernels::normal(out, gen.take(out.numel()), mean, std);
    return out;
}

Tensor zeros_like(const Tensor& x) { return Tensor::zeros(x.shape(), x.dtype(), x.device()); }
Tensor ones_like(const Tensor& x) { return Tensor::ones(x.shape(), x.dtype(), x.device()); }
Tensor empty_like(const Tensor& x) { return Tensor::empty(x.shape(), x.dtype(), x.device()); }

}  // namespace lumen::ops
