// cuda/optim_adamw.cu: the fused AdamW step (optim/adamw.h): one launch per group, one block per
// chunk of the multi-tensor table {param, grad, exp_avg, exp_avg_sq}. Every block reads the bad
// flag, γ and t from device memory (no host wait), derives the step's scalars from t, and updates
// its chunk in place; a bad step returns before writing anything. Reference: optim/adamw.cpp.
#include "cuda/common.cuh"
#include "cuda/multi_tensor.cuh"
#include "optim/adamw.h"

namespace lumen::cuda {
namespace {

constexpr int kThreads = 256;

__global__ void __launch_bounds__(kThreads)
adamw_kernel(const TensorSlot* slots, const TensorChunk* chunks, optim::AdamWArgs args, const float* flags,
             const int64_t* t_before) {
    if (flags[1] != 0.0f) return;
    const optim::AdamWUpdate update = optim::adamw_update(args, *t_before + 1, flags[0]);
    const TensorChunk c = chunks[blockIdx.x];
    for_each_chunk_element<4, 0b1101>(slots[c.slot], c.begin, c.end,
                                      [&](float (&x)[4]) { update(x[0], x[1], x[2], x[3]); });
}

}  // namespace

void adamw_step(const MultiTensorTable& table, const optim::AdamWArgs& args, const float* flags,
                const int64_t* t_before, int device) {
    if (table.num_chunks() == 0) return;
    set_device(device);
    adamw_kernel<<<unsigned(table.num_chunks()), kThreads, 0, compute_stream(device)>>>(
        table.slots(), table.chunks(), args, flags, t_before);
    check_launch("adamw_kernel");
}

}  // namespace lumen::cuda
