// cuda/optim_lion.cu: the fused Lion step (optim/lion.h): one launch per group, one block per
// chunk of the multi-tensor table {param, grad, exp_avg}; γ and the bad flag are read from device
// memory, and a bad step writes nothing. Reference: optim/lion.cpp.
#include "cuda/common.cuh"
#include "cuda/multi_tensor.cuh"
#include "optim/lion.h"

namespace lumen::cuda {
namespace {

constexpr int kThreads = 256;

__global__ void __launch_bounds__(kThreads)
lion_kernel(const TensorSlot* slots, const TensorChunk* chunks, optim::LionArgs args, const float* flags) {
    if (flags[1] != 0.0f) return;
    const optim::LionUpdate update = optim::lion_update(args, flags[0]);
    const TensorChunk c = chunks[blockIdx.x];
    for_each_chunk_element<3, 0b101>(slots[c.slot], c.begin, c.end,
                                     [&](float (&x)[3]) { update(x[0], x[1], x[2]); });
}

}  // namespace

void lion_step(const MultiTensorTable& table, const optim::LionArgs& args, const float* flags, int device) {
    if (table.num_chunks() == 0) return;
    set_device(device);
    lion_kernel<<<unsigned(table.num_chunks()), kThreads, 0, compute_stream(device)>>>(table.slots(), table.chunks(),
                                                                                      args, flags);
    check_launch("lion_kernel");
}

}  // namespace lumen::cuda
