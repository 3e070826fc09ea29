// autograd/registry.cpp: the set of differentiable op names (see autograd/registry.h).
#include "autograd/registry.h"

namespace lumen::autograd {

namespace {
std::set<std::string, std::less<>>& names() {
    static std::set<std::string, std::less<>> set;  // NOTE: function-local: static-init order safe
    return set;
}
}  // namespace

bool register_differentiable(std::initializer_list<std::string_view> list) {
    for (std::string_view n : list) names().emplace(n);
    return true;
}

const std::set<std::string, std::less<>>& differentiable_ops() { return names(); }

bool is_differentiable(std::string_view name) { return names().contains(name); }

}  // namespace lumen::autograd
