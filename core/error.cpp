// core/error.cpp: formatting of op errors (see core/error.h).
#include "core/error.h"

#include "core/tensor.h"

namespace lumen {

std::string describe(const Tensor& t) {
    if (!t.defined()) return "(undefined)";
    return fmt::format("{} {} [{}]", shape_str(t.shape()), dtype_name(t.dtype()), t.device().str());
}

std::string describe_operands(std::initializer_list<Operand> operands) {
    std::string s;
    for (const Operand& o : operands) {
        if (!s.empty()) s += ", ";
        s += fmt::format("{} {}", o.name, describe(o.tensor));
    }
    return s;
}

std::string list_names(const std::vector<std::string>& names, size_t shown) {
    std::string s;
    for (size_t i = 0; i < names.size() && i < shown; ++i) s += (i ? ", " : "") + names[i];
    if (names.size() > shown) s += concat_message({" and ", std::to_string(names.size() - shown), " more"});
    return s;
}

std::string concat_message(std::initializer_list<std::string_view> pieces) {
    std::string s;
    for (std::string_view p : pieces) s += p;
    return s;
}

void fail(std::string_view op, std::string_view what, std::initializer_list<Operand> operands) {
    if (operands.size() == 0) throw Error(fmt::format("{}: {}", op, what));
    throw Error(fmt::format("{}: {}: {}", op, what, describe_operands(operands)));
}

}  // namespace lumen
