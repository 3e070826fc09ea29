// optim/param_state.h: the per-parameter f32 state tensors of an element-wise rule (AdamW's m and
// v, Lion's m, SGD's momentum buffer), named "<parameter>.<state>" (specs/optimizers.md §11),
// allocated as zeros of the parameter's shape on its device.
#pragma once

#include "core/tensor.h"
#include "nn/parameter.h"

#include <map>
#include <string>
#include <utility>
#include <vector>

namespace lumen::optim {

class ParamStates {
public:
    ParamStates() = default;
    ParamStates(const std::vector<nn::Parameter>& params, std::vector<std::string> state_names);

    // State `state` (index into state_names) of parameter `param`.
    const Tensor& at(size_t param, size_t state) const { return tensors_[param][state]; }
    size_t num_params() const { return tensors_.size(); }
    // ("<parameter>.<state>", tensor) for every parameter, states in state_names order.
    std::vector<std::pair<std::string, Tensor>> named() const;
    // Copies each named tensor in (optim::load_state_tensor: errors name the tensor).
    void load(const std::map<std::string, Tensor>& tensors);
    int64_t bytes() const;  // 4 B per element

private:
    std::vector<std::string> param_names_, state_names_;
    std::vector<std::vector<Tensor>> tensors_;  // [param][state]
};

}  // namespace lumen::optim
