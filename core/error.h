// core/error.h: lumen's exception and the one helper that formats every op error alike.
//
//   check(ok, "matmul", "inner dimensions differ (768 vs 3072)", {{"a", a}, {"b", b}});
//   -> "matmul: inner dimensions differ (768 vs 3072): a (8, 1024, 768) bf16 [cpu], b (3072, 768) bf16 [cpu]"
//
// Checks run in the public op, before any allocation or launch; kernels trust their inputs.
#pragma once

#ifndef __CUDACC__
#include <fmt/format.h>  // NOTE: kept out of CUDA translation units: nvcc rejects fmt's constexpr code
#endif

#include <initializer_list>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace lumen {

class Tensor;

struct Error : std::runtime_error {
    using std::runtime_error::runtime_error;
};

// One operand of an error message: a name and the tensor it refers to.
struct Operand {
    std::string_view name;
    const Tensor& tensor;
};

// "name (shape) dtype [device]" for each operand, comma separated.
std::string describe_operands(std::initializer_list<Operand> operands);

[[noreturn]] void fail(std::string_view op, std::string_view what,
                       std::initializer_list<Operand> operands = {});
// "a, b, c and 4 more": the first `shown` names of a list in an error message ("" when empty).
std::string list_names(const std::vector<std::string>& names, size_t shown);
// Concatenates plain pieces into a message (for headers that CUDA files include, which have no fmt).
std::string concat_message(std::initializer_list<std::string_view> pieces);

inline void check(bool ok, std::string_view op, std::string_view what,
                  std::initializer_list<Operand> operands = {}) {
    if (!ok) [[unlikely]] fail(op, what, operands);
}

}  // namespace lumen
