// nn/optical_statistics.cpp: which optical range buffers data-parallel ranks average, and the
// pack / reduce / unpack of one averaging (see nn/optical_statistics.h).
#include "nn/optical_statistics.h"

#include "autograd/node.h"
#include "autograd/ops/ops.h"
#include "core/error.h"
#include "nn/attention.h"
#include "nn/optical_linear.h"

#include <fmt/format.h>

namespace lumen::nn {

namespace {

constexpr const char* kAttentionRanges[] = {"query_min_max", "key_min_max", "value_min_max", "qk_min_max",
                                            "av_min_max"};

}  // namespace

std::vector<Tensor> optical_statistics(Module& model) {
    std::vector<Tensor> out;
    for (auto& [name, m] : model.modules()) {
        if (auto* linear = dynamic_cast<OpticalLinear*>(m)) {
            if (linear->settings().q_bypass) continue;
            out.push_back(linear->x_min_max());
            out.push_back(linear->out_min_max());
        } else if (auto* attn = dynamic_cast<CausalSelfAttention*>(m); attn && attn->is_optical()) {
            if (attn->optical_settings()->q_bypass) continue;
            // The module's own buffers: its children (c_attn, c_proj) are visited on their own.
            const std::vector<NamedTensor> buffers = attn->buffers();
            for (const char* range : kAttentionRanges) {
                bool found = false;
                for (const auto& [buffer, t] : buffers)
                    if (buffer == range) {
                        out.push_back(t);
                        found = true;
                    }
                check(found, "optical_statistics", fmt::format("{}: optical attention has no buffer {}", name, range));
            }
        }
    }
    return out;
}

void average_optical_statistics(Module& model, int world, const std::function<void(Tensor& slab)>& all_reduce_sum) {
    check(world >= 1, "average_optical_statistics", fmt::format("world must be >= 1, got {}", world));
    std::vector<Tensor> stats = optical_statistics(model);
    if (stats.empty()) return;
    autograd::NoGradGuard no_grad;
    std::vector<Tensor> flat;
    for (const Tensor& t : stats) flat.push_back(t.to(DType::f32).reshape({-1}));
    Tensor slab = ops::cat(flat, 0).contiguous();                        // (Σ numel,) f32
    all_reduce_sum(slab);
    slab = slab / double(world);
    int64_t at = 0;
    for (Tensor& t : stats) {
        t.copy_(slab.narrow(0, at, t.numel()).reshape(t.shape()));
        at += t.numel();
    }
}

}  // namespace lumen::nn
