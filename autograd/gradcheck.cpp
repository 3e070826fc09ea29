// autograd/gradcheck.cpp: central-difference gradient checks (see autograd/gradcheck.h).
#include "autograd/gradcheck.h"

#include "autograd/node.h"
#include "autograd/ops/ops.h"

#include <cmath>

namespace lumen::autograd {

GradcheckResult gradcheck(const GradcheckFn& f, const std::vector<Tensor>& inputs, GradcheckOptions options) {
    for (const Tensor& x : inputs)
        if (x.defined() && x.requires_grad())
            check(x.dtype() == DType::f64 && x.device().is_cpu() && x.is_leaf(), "gradcheck",
                  "inputs that require grad must be f64 CPU leaves", {{"input", x}});

    // A fixed projection r turns the output into a scalar that weighs every element differently.
    Tensor probe;
    {
        NoGradGuard no_grad;
        Tensor y = f(inputs);
        Generator gen(0x5eed, 7);
        probe = ops::rand(y.shape(), gen, 0.5, 1.5, DType::f64);
    }
    auto objective = [&]() {
        NoGradGuard no_grad;
        Tensor y = f(inputs);
        return ops::sum(ops::mul(y.to(DType::f64), probe)).item();
    };

    for (const Tensor& x : inputs)
        if (x.defined()) x.zero_grad();
    Tensor y = f(inputs);
    check(y.requires_grad(), "gradcheck", "the output does not depend on any input that requires grad", {{"y", y}});
    ops::sum(ops::mul(y.to(DType::f64), probe)).backward();

    for (size_t k = 0; k < inputs.size(); ++k) {
        const Tensor& x = inputs[k];
        if (!x.defined() || !x.requires_grad()) continue;
        const int64_t n = x.numel();
        std::vector<double> analytic = x.grad().defined() ? x.grad().to_vector<double>()
                                                          : std::vector<double>(size_t(n), 0.0);
        // Perturb the leaf's storage in place, element by element. (To check an op on a
        // non-contiguous view, make the view inside f.)
        check(x.is_contiguous(), "gradcheck", "inputs that require grad must be contiguous", {{"input", x}});
        std::vector<double> numeric(static_cast<size_t>(n));
        double* data = x.data<double>();
        for (int64_t i = 0; i < n; ++i) {
            const double saved = data[i];
            data[i] = saved + options.eps;
            const double plus = objective();
            data[i] = saved - options.eps;
            const double minus = objective();
            data[i] = saved;
            numeric[size_t(i)] = (plus - minus) / (2 * options.eps);
        }
        for (int64_t i = 0; i < n; ++i) {
            const double a = analytic[size_t(i)], m = numeric[size_t(i)];
            if (!(std::abs(a - m) <= options.atol + options.rtol * std::abs(m))) {
                return {false, fmt::format("gradcheck: input {} {} element {}: analytic {:.10g} vs "
                                           "numeric {:.10g}", k, describe(x), i, a, m)};
            }
        }
    }
    return {};
}

}  // namespace lumen::autograd
