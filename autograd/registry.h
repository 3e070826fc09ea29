// autograd/registry.h: the names of the differentiable ops (those that record a node).
//
// Each op file registers its names at static initialisation:
//   static const bool registered = autograd::register_differentiable({"exp", "log"});
// record() refuses a name that is not registered, and tests/autograd/coverage_test.cpp fails when
// a registered op has no gradcheck case, so no central list of ops exists anywhere.
#pragma once

#include <initializer_list>
#include <set>
#include <string>
#include <string_view>

namespace lumen::autograd {

bool register_differentiable(std::initializer_list<std::string_view> names);
const std::set<std::string, std::less<>>& differentiable_ops();
bool is_differentiable(std::string_view name);

}  // namespace lumen::autograd
