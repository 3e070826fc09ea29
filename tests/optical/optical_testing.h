// tests/optical/optical_testing.h: what the OpticalLinear tests share: a digital Linear and its
// optical twin on a device, range setting through load_state_dict, and error norms.
#pragma once

#include "tests/harness.h"

#include "nn/optical_linear.h"

#include <cmath>
#include <map>
#include <memory>
#include <string>

namespace lumen::test {

struct OpticalPair {
    std::shared_ptr<nn::Linear> digital;
    std::shared_ptr<nn::OpticalLinear> optical;  // wraps digital's weight and bias tensors
};

// Linear(in, out) with W ~ N(0, init_std²) from `seed` (bias ~ U[-1, 1) when asked), moved to
// `device`, and an OpticalLinear over the same tensors.
inline OpticalPair optical_pair(int64_t in, int64_t out, bool bias, Device device, const nn::OpticalSettings& s = {},
                                const std::string& name = "blocks.0.mlp.c_fc", uint64_t seed = 1,
                                std::vector<int64_t> row_parts = {}, double init_std = 0.02) {
    Generator gen(seed);
    auto digital = std::make_shared<nn::Linear>(in, out, bias, gen, init_std, nn::Role::matrix, std::move(row_parts));
    if (bias) {
        Tensor b = digital->bias();
        b.copy_(random({out}, seed + 100));
    }
    digital->to(device);
    return {digital, std::make_shared<nn::OpticalLinear>(*digital, s, name)};
}

// Sets a layer's buffers (ranges as [lo, hi] rows; counters unchanged) through load_state_dict,
// so its host state follows them.
inline void set_ranges(nn::OpticalLinear& layer, std::vector<float> x, std::vector<float> w, std::vector<float> out) {
    std::map<std::string, Tensor> state;
    for (const auto& [name, t] : layer.state_dict()) state[name] = t;
    state["x_min_max"] = Tensor::from(x, {2});
    state["w_min_max"] = Tensor::from(w, {int64_t(w.size()) / 2, 2});
    state["out_min_max"] = Tensor::from(out, {int64_t(out.size()) / 2, 2});
    layer.load_state_dict(state);
}

// ‖a - b‖ / ‖b‖ over all elements, in f64.
inline double relative_error(const Tensor& a, const Tensor& b) {
    const std::vector<double> x = a.to_vector<double>(), y = b.to_vector<double>();
    double num = 0, den = 0;
    for (size_t i = 0; i < x.size(); ++i) {
        num += (x[i] - y[i]) * (x[i] - y[i]);
        den += y[i] * y[i];
    }
    return std::sqrt(num / den);
}

// x (..., K) · Wᵀ (+ b) in f32 on x's device, outside autograd: the float reference.
inline Tensor float_linear(const Tensor& x, const Tensor& w, const Tensor& b = {}) {
    autograd::NoGradGuard no_grad;
    Tensor y = ops::matmul(x.to(DType::f32).reshape({-1, x.size(-1)}), w.to(DType::f32).transpose(0, 1));
    if (b.defined()) y = y + b.to(DType::f32);
    Shape shape = x.shape();
    shape.back() = w.size(0);
    return y.reshape(shape);
}

inline bool all_finite(const Tensor& t) {
    for (double v : t.to_vector<double>())
        if (!std::isfinite(v)) return false;
    return true;
}

}  // namespace lumen::test
