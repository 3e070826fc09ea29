// autograd/gradcheck.h: checks an op's backward against central differences, in f64 on the CPU.
//
// f maps the inputs to one output. Every input that requires grad is perturbed element by
// element (±eps) and the numeric gradient of sum(f(x) · r), for a fixed random r, is compared
// with the one backward computes: |analytic - numeric| ≤ atol + rtol·|numeric| everywhere.
#pragma once

#include "core/tensor.h"

#include <functional>
#include <string>
#include <vector>

namespace lumen::autograd {

struct GradcheckOptions {
    double eps = 1e-6;
    double atol = 1e-6;
    double rtol = 1e-4;
};

struct GradcheckResult {
    bool ok = true;
    std::string message;  // the first mismatch: input, element, analytic and numeric values
};

using GradcheckFn = std::function<Tensor(const std::vector<Tensor>&)>;

GradcheckResult gradcheck(const GradcheckFn& f, const std::vector<Tensor>& inputs,
                          GradcheckOptions options = {});

}  // namespace lumen::autograd
