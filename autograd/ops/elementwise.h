// autograd/ops/elementwise.h: elementwise ops: unary math, binary arithmetic with broadcasting,
// comparisons, where; and the operators on Tensor.
//
// Binary operands must share dtype and device (no silent promotion: cast with .to()). A plain
// number operand (x * 2.0) becomes a scalar of the tensor's dtype. Comparisons return boolean
// tensors and record no gradient.
#pragma once

#include "core/tensor.h"

namespace lumen::ops {

Tensor neg(const Tensor& x);
Tensor abs(const Tensor& x);
Tensor sign(const Tensor& x);  // gradient 0
Tensor exp(const Tensor& x);
Tensor log(const Tensor& x);
Tensor sqrt(const Tensor& x);
Tensor rsqrt(const Tensor& x);
Tensor sin(const Tensor& x);
Tensor cos(const Tensor& x);
Tensor tanh(const Tensor& x);
Tensor sigmoid(const Tensor& x);
Tensor relu(const Tensor& x);
Tensor silu(const Tensor& x);
Tensor gelu(const Tensor& x);  // tanh form: 0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³)))
Tensor gelu_exact(const Tensor& x);  // erf form: 0.5·x·(1 + erf(x/√2)) (PyTorch's nn.GELU())

Tensor add(const Tensor& a, const Tensor& b);
Tensor sub(const Tensor& a, const Tensor& b);
Tensor mul(const Tensor& a, const Tensor& b);
Tensor div(const Tensor& a, const Tensor& b);
Tensor pow(const Tensor& a, const Tensor& b);
Tensor pow(const Tensor& a, double exponent);
Tensor maximum(const Tensor& a, const Tensor& b);  // ties send half the gradient to each
Tensor minimum(const Tensor& a, const Tensor& b);

Tensor eq(const Tensor& a, const Tensor& b);
Tensor ne(const Tensor& a, const Tensor& b);
Tensor lt(const Tensor& a, const Tensor& b);
Tensor le(const Tensor& a, const Tensor& b);
Tensor gt(const Tensor& a, const Tensor& b);
Tensor ge(const Tensor& a, const Tensor& b);

// cond (boolean) ? a : b, all three broadcast together; gradients flow to a and b.
Tensor where(const Tensor& cond, const Tensor& a, const Tensor& b);

// A scalar tensor of `like`'s dtype and device.
Tensor scalar_like(double value, const Tensor& like);

}  // namespace lumen::ops

namespace lumen {

Tensor operator-(const Tensor& x);
Tensor operator+(const Tensor& a, const Tensor& b);
Tensor operator-(const Tensor& a, const Tensor& b);
Tensor operator*(const Tensor& a, const Tensor& b);
Tensor operator/(const Tensor& a, const Tensor& b);
Tensor operator+(const Tensor& a, double b);
Tensor operator-(const Tensor& a, double b);
Tensor operator*(const Tensor& a, double b);
Tensor operator/(const Tensor& a, double b);
Tensor operator+(double a, const Tensor& b);
Tensor operator-(double a, const Tensor& b);
Tensor operator*(double a, const Tensor& b);
Tensor operator/(double a, const Tensor& b);
// Comparisons with a number give boolean masks: (x > 0.0).
Tensor operator<(const Tensor& a, double b);
Tensor operator<=(const Tensor& a, double b);
Tensor operator>(const Tensor& a, double b);
Tensor operator>=(const Tensor& a, double b);

}  // namespace lumen
