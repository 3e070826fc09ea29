// autograd/ops/reduce.h: reductions over any set of dims: sum, mean, max, min, argmax, var.
//
// `dims` lists the reduced dims (negative allowed, each once); an empty list reduces all dims.
// KeepDim::yes keeps reduced dims with size 1. Sums accumulate in f64 on the CPU.
// max/min send the gradient to the extreme elements, split evenly among ties; argmax returns i64
// (the first maximal index) and has no gradient. var uses `correction` (1: unbiased, 0: biased).
#pragma once

#include "core/tensor.h"

namespace lumen {
enum class KeepDim : bool { no, yes };
}

namespace lumen::ops {

Tensor sum(const Tensor& x, const std::vector<int64_t>& dims = {}, KeepDim keep = KeepDim::no);
Tensor mean(const Tensor& x, const std::vector<int64_t>& dims = {}, KeepDim keep = KeepDim::no);
Tensor max(const Tensor& x, const std::vector<int64_t>& dims = {}, KeepDim keep = KeepDim::no);
Tensor min(const Tensor& x, const std::vector<int64_t>& dims = {}, KeepDim keep = KeepDim::no);
Tensor argmax(const Tensor& x, int64_t dim, KeepDim keep = KeepDim::no);
Tensor var(const Tensor& x, const std::vector<int64_t>& dims = {}, int64_t correction = 1,
           KeepDim keep = KeepDim::no);

}  // namespace lumen::ops
