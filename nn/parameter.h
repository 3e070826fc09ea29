// nn/parameter.h: a named trainable tensor and the role it plays in the model.
//
// The module tree hands out Parameters; the optimizer routes them into groups by role and shape,
// never by name patterns (specs/optimizers.md §2):
//   embedding  wte, wpe                         head   an untied lm_head
//   matrix     every 2-D weight inside a block   norm   LayerNorm / RMSNorm weights and biases
//   osc        oscillation ω, φ, baseline        bias   Linear biases
//   other      anything else
#pragma once

#include "core/tensor.h"

#include <string>
#include <string_view>
#include <vector>

namespace lumen::nn {

enum class Role { embedding, head, matrix, norm, osc, bias, other };

inline std::string_view role_name(Role r) {
    switch (r) {
        case Role::embedding: return "embedding";
        case Role::head: return "head";
        case Role::matrix: return "matrix";
        case Role::norm: return "norm";
        case Role::osc: return "osc";
        case Role::bias: return "bias";
        case Role::other: return "other";
    }
    return "?";
}

struct Parameter {
    std::string name;  // dotted: "blocks.0.attn.c_attn.weight"
    Tensor tensor;     // the leaf (requires grad unless frozen)
    Role role = Role::other;
    // Row partition of a fused matrix, as part sizes summing to size(0): c_attn registers
    // {C, kv, kv} so that Muon orthogonalises Q, K and V separately. Empty = one part.
    std::vector<int64_t> row_parts;
};

}  // namespace lumen::nn
