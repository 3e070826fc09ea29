// autograd/ops/creation.h: tensors made from nothing: arange, random draws, the causal mask.
// Creation records no gradient; mark a result as a leaf with set_requires_grad().
#pragma once

#include "core/philox.h"
#include "core/tensor.h"

namespace lumen::ops {

// [start, end) in steps of `step` (any sign, non-zero; start, end and step finite).
Tensor arange(double start, double end, double step = 1.0, DType dtype = DType::f32,
              Device device = Device::cpu());
// Uniform in [lo, hi) and normal(mean, std) from the generator (see core/philox.h for the exact
// streams; the same on every device).
Tensor rand(const Shape& shape, Generator& gen, double lo = 0.0, double hi = 1.0,
            DType dtype = DType::f32, Device device = Device::cpu());
Tensor randn(const Shape& shape, Generator& gen, double mean = 0.0, double std = 1.0,
             DType dtype = DType::f32, Device device = Device::cpu());
Tensor zeros_like(const Tensor& x);
Tensor ones_like(const Tensor& x);
Tensor empty_like(const Tensor& x);

}  // namespace lumen::ops
