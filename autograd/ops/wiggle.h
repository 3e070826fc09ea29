// autograd/ops/wiggle.h: WiggleGPT's element-wise ops: the oscillating activation and the bio
// MLP's soft gate (spec: shared/specs/wiggle.md §1, §2, §2.1).
//
// Both compute in f32 (f64 for f64 inputs) and save only their inputs; backward recomputes the
// rest. Parameter gradients are row sums taken in a fixed order: the same bits on every run.
#pragma once

#include "core/tensor.h"

namespace lumen::ops {

// x (..., H); omega, phi, baseline (H,) in x's dtype and on x's device. Returns (..., H):
//   y = sin(omega·x + phi)·tanh(x) + baseline   (per channel j of the last dim)
Tensor oscillate(const Tensor& x, const Tensor& omega, const Tensor& phi, const Tensor& baseline);

// a, z of one shape (the gate input a and its pre-activation z = a·W_gᵀ), same float dtype and
// device. Returns m = a ⊙ s with v = σ(z), s = σ(5·(v − threshold)). The gradient reaching a is
// only the direct path dm ⊙ s (the path through z is z's producer's).
// counts: optional (2,) i64 tensor on a's device, [active, total]. When given, and not during a
// checkpoint's recompute, the forward adds count(v > threshold) and numel to it on the device,
// without a host synchronisation. Backward never counts.
Tensor bio_gate(const Tensor& a, const Tensor& z, double threshold, Tensor* counts = nullptr);

}  // namespace lumen::ops
