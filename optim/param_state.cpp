// optim/param_state.cpp: ParamStates (see optim/param_state.h).
#include "optim/param_state.h"

#include "optim/optimizer.h"

namespace lumen::optim {

ParamStates::ParamStates(const std::vector<nn::Parameter>& params, std::vector<std::string> state_names)
    : state_names_(std::move(state_names)) {
    for (const nn::Parameter& p : params) {
        param_names_.push_back(p.name);
        std::vector<Tensor> states;
        for (size_t s = 0; s < state_names_.size(); ++s)
            states.push_back(Tensor::zeros(p.tensor.shape(), DType::f32, p.tensor.device()));
        tensors_.push_back(std::move(states));
    }
}

std::vector<std::pair<std::string, Tensor>> ParamStates::named() const {
    std::vector<std::pair<std::string, Tensor>> out;
    for (size_t p = 0; p < tensors_.size(); ++p)
        for (size_t s = 0; s < state_names_.size(); ++s)
            out.emplace_back(param_names_[p] + "." + state_names_[s], tensors_[p][s]);
    return out;
}

void ParamStates::load(const std::map<std::string, Tensor>& tensors) {
    for (size_t p = 0; p < tensors_.size(); ++p)
        for (size_t s = 0; s < state_names_.size(); ++s)
            load_state_tensor(tensors, param_names_[p] + "." + state_names_[s], tensors_[p][s]);
}

int64_t ParamStates::bytes() const {
    int64_t total = 0;
    for (const auto& states : tensors_)
        for (const Tensor& t : states) total += t.numel() * int64_t(dtype_size(t.dtype()));
    return total;
}

}  // namespace lumen::optim
