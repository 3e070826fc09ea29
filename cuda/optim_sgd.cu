// cuda/optim_sgd.cu: the fused SGD step (optim/sgd.h): one launch per group, one block per chunk of
// the multi-tensor table {param, grad, momentum_buffer} ({param, grad} without momentum). γ, the
// bad flag and t (the first step copies g into the buffer) come from device memory; a bad step
// writes nothing. Reference: optim/sgd.cpp.
#include "cuda/common.cuh"
#include "cuda/multi_tensor.cuh"
#include "optim/sgd.h"

namespace lumen::cuda {
namespace {

constexpr int kThreads = 256;

template <bool MOMENTUM>
__global__ void __launch_bounds__(kThreads)
sgd_kernel(const TensorSlot* slots, const TensorChunk* chunks, optim::SgdArgs args, const float* flags,
           const int64_t* t_before) {
    if (flags[1] != 0.0f) return;
    const optim::SgdUpdate update = optim::sgd_update(args, *t_before + 1, flags[0]);
    const TensorChunk c = chunks[blockIdx.x];
    if constexpr (MOMENTUM)
        for_each_chunk_element<3, 0b101>(slots[c.slot], c.begin, c.end,
                                         [&](float (&x)[3]) { update(x[0], x[1], x[2]); });
    else
        for_each_chunk_element<2, 0b01>(slots[c.slot], c.begin, c.end, [&](float (&x)[2]) { update(x[0], x[1]); });
}

}  // namespace

void sgd_step(const MultiTensorTable& table, const optim::SgdArgs& args, const float* flags,
              const int64_t* t_before, int device) {
    if (table.num_chunks() == 0) return;
    set_device(device);
    const unsigned grid = unsigned(table.num_chunks());
    if (args.momentum != 0)
        sgd_kernel<true><<<grid, kThreads, 0, compute_stream(device)>>>(table.slots(), table.chunks(), args, flags, t_before);
    else
        sgd_kernel<false><<<grid, kThreads, 0, compute_stream(device)>>>(table.slots(), table.chunks(), args, flags, t_before);
    check_launch("sgd_kernel");
}

}  // namespace lumen::cuda
