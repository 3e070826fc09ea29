// cuda/optim_sophia.cu: SophiaG's fused multi-tensor kernels (optim/sophia_kernels.h; reference
// optim/sophia.cpp): one launch per group over a MultiTensorTable, one block per chunk.
//
// Step slots: ptr = {param, grad (null = zero), exp_avg, hessian}. Each block counts its unclipped
// elements (|m| < ρ·bs·h) and adds the count to stats[pending] with one integer atomic (exact in
// any order); a one-thread finish publishes it as stats[wins] when the step was good and clears
// the pending count. Hessian slots: ptr = {grad, hessian}; block 0 counts hess_bad on a bad call.
// The element formulas are optim/sophia_kernels.h's, shared with the CPU reference.
#include "cuda/common.cuh"
#include "optim/sophia_kernels.h"

namespace lumen::cuda {

namespace {

constexpr int threads = 256;
constexpr int64_t chunk_elems = 65536;

__global__ void __launch_bounds__(threads)
sophia_step_kernel(const TensorSlot* slots, const TensorChunk* chunks, const float* flags, int64_t* stats,
                   optim::SophiaStepArgs args) {
    if (flags[1] != 0.f) return;
    const optim::SophiaUpdate update = optim::sophia_update(args, flags[0]);
    const TensorChunk chunk = chunks[blockIdx.x];
    const TensorSlot& slot = slots[chunk.slot];
    float* p = static_cast<float*>(slot.ptr[0]);
    const float* g = static_cast<const float*>(slot.ptr[1]);
    float* m = static_cast<float*>(slot.ptr[2]);
    const float* h = static_cast<const float*>(slot.ptr[3]);
    int wins = 0;
    for (int64_t e = chunk.begin + threadIdx.x; e < chunk.end; e += threads)
        wins += update(p[e], g ? g[e] : 0.f, m[e], h[e]) ? 1 : 0;
    __shared__ int partial[threads / 32];
#pragma unroll
    for (int offset = 16; offset > 0; offset /= 2) wins += __shfl_down_sync(0xffffffffu, wins, offset);
    if (threadIdx.x % 32 == 0) partial[threadIdx.x / 32] = wins;
    __syncthreads();
    if (threadIdx.x == 0) {
        unsigned long long total = 0;
        for (int w = 0; w < threads / 32; ++w) total += unsigned(partial[w]);
        if (total) atomicAdd(reinterpret_cast<unsigned long long*>(stats), total);
    }
}

__global__ void sophia_finish_kernel(const float* flags, int64_t* stats) {
    if (flags[1] == 0.f) stats[1] = stats[0];
    stats[0] = 0;
}

__global__ void __launch_bounds__(threads)
sophia_hessian_kernel(const TensorSlot* slots, const TensorChunk* chunks, int64_t num_chunks, const float* flags,
                      int64_t* stats, optim::SophiaHessianUpdate update) {
    if (flags[1] != 0.f) {
        if (blockIdx.x == 0 && threadIdx.x == 0) stats[2] += 1;
        return;
    }
    if (blockIdx.x >= num_chunks) return;
    update.gamma = flags[0];
    const TensorChunk chunk = chunks[blockIdx.x];
    const TensorSlot& slot = slots[chunk.slot];
    const float* g = static_cast<const float*>(slot.ptr[0]);
    float* h = static_cast<float*>(slot.ptr[1]);
    for (int64_t e = chunk.begin + threadIdx.x; e < chunk.end; e += threads) update(h[e], g ? g[e] : 0.f);
}

TensorSlot make_slot(std::initializer_list<const Tensor*> tensors, int64_t numel) {
    TensorSlot s{};  // value-initialised: unused pointers are null, padding is zero
    int k = 0;
    for (const Tensor* t : tensors) s.ptr[k++] = t->defined() ? t->data_ptr() : nullptr;
    s.numel = numel;
    return s;
}

}  // namespace

void sophia_step(MultiTensorTable& table, const std::vector<optim::SophiaTensors>& tensors, const Tensor& flags,
                 Tensor& stats, const optim::SophiaStepArgs& args) {
    const int device = stats.device().index;
    set_device(device);
    cudaStream_t stream = compute_stream(device);
    std::vector<TensorSlot> slots;
    for (const optim::SophiaTensors& t : tensors)
        slots.push_back(make_slot({&t.param, &t.grad, &t.exp_avg, &t.hessian}, t.param.numel()));
    table.set(slots, chunk_elems, stats.device());
    if (table.num_chunks() > 0) {
        sophia_step_kernel<<<unsigned(table.num_chunks()), threads, 0, stream>>>(
            table.slots(), table.chunks(), data_ptr<float>(flags), data_ptr<int64_t>(stats), args);
        check_launch("sophia_step_kernel", {{"flags", flags}});
    }
    sophia_finish_kernel<<<1, 1, 0, stream>>>(data_ptr<float>(flags), data_ptr<int64_t>(stats));
    check_launch("sophia_finish_kernel", {{"stats", stats}});
}

void sophia_hessian(MultiTensorTable& table, const std::vector<optim::SophiaTensors>& tensors,
                    const Tensor& flags, Tensor& stats, double beta2) {
    const int device = stats.device().index;
    set_device(device);
    std::vector<TensorSlot> slots;
    for (const optim::SophiaTensors& t : tensors)
        slots.push_back(make_slot({&t.grad, &t.hessian}, t.hessian.numel()));
    table.set(slots, chunk_elems, stats.device());
    const int64_t blocks = std::max<int64_t>(1, table.num_chunks());
    sophia_hessian_kernel<<<unsigned(blocks), threads, 0, compute_stream(device)>>>(
        table.slots(), table.chunks(), table.num_chunks(), data_ptr<float>(flags), data_ptr<int64_t>(stats),
        optim::SophiaHessianUpdate{1.f, float(beta2), float(1.0 - beta2)});
    check_launch("sophia_hessian_kernel", {{"flags", flags}});
}

}  // namespace lumen::cuda
