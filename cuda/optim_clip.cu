// cuda/optim_clip.cu: the gradient-norm flags (optim/clip.h) and the step-counter advance, on the
// device without a host synchronisation.
//
// clip_flags: pass 1 runs one block of kClipLanes threads per chunk of the multi-tensor table
// (cuda/multi_tensor.h) and writes the chunk's sum of squares to a partials buffer; pass 2, one
// block, adds the partials and writes [γ, bad, norm]. Both sum in the order optim/clip.h fixes,
// with __fadd_rn/__fmul_rn so that no multiply-add is fused: the CPU path gives the same bits.
#include "cuda/common.cuh"
#include "cuda/multi_tensor.h"
#include "optim/clip.h"

#include <map>
#include <mutex>

namespace lumen::cuda {
namespace {

constexpr int kLanes = optim::kClipLanes;

// Every thread has written s[threadIdx.x]; returns s[0] after the pairwise tree (all threads).
__device__ float block_tree_sum(float* s) {
    for (int stride = kLanes / 2; stride > 0; stride >>= 1) {
        __syncthreads();
        if (int(threadIdx.x) < stride) s[threadIdx.x] = __fadd_rn(s[threadIdx.x], s[threadIdx.x + stride]);
    }
    __syncthreads();
    return s[0];
}

__global__ void __launch_bounds__(kLanes)
clip_partials_kernel(const TensorSlot* slots, const TensorChunk* chunks, float* partials) {
    __shared__ float s[kLanes];
    const TensorChunk c = chunks[blockIdx.x];
    const float* g = static_cast<const float*>(slots[c.slot].ptr[0]);
    float acc = 0.0f;
    for (int64_t i = c.begin + threadIdx.x; i < c.end; i += kLanes) {
        const float x = g[i];
        acc = __fadd_rn(acc, __fmul_rn(x, x));
    }
    s[threadIdx.x] = acc;
    const float total = block_tree_sum(s);
    if (threadIdx.x == 0) partials[blockIdx.x] = total;
}

__global__ void __launch_bounds__(kLanes)
clip_finish_kernel(const float* partials, int64_t n, const float* loss, float grad_clip, float* flags) {
    __shared__ float s[kLanes];
    float acc = 0.0f;
    for (int64_t i = threadIdx.x; i < n; i += kLanes) acc = __fadd_rn(acc, partials[i]);
    s[threadIdx.x] = acc;
    const float sum = block_tree_sum(s);
    if (threadIdx.x == 0) {
        const float norm = __fsqrt_rn(sum);
        const bool bad = !isfinite(norm) || (loss != nullptr && !isfinite(*loss));
        const float gamma = grad_clip > 0.0f ? fminf(1.0f, __fdiv_rn(grad_clip, __fadd_rn(norm, 1e-6f))) : 1.0f;
        flags[0] = gamma;
        flags[1] = bad ? 1.0f : 0.0f;
        flags[2] = norm;
    }
}

__global__ void advance_step_counts_kernel(int64_t* counts, int64_t n, const float* flags) {
    const int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
    if (i < n && flags[1] == 0.0f) counts[i] += 1;
}

// One table per device, kept so that an unchanged set of gradients is not uploaded again.
MultiTensorTable& clip_table(int device) {
    static std::mutex mutex;
    static std::map<int, MultiTensorTable>& tables = *new std::map<int, MultiTensorTable>;  // NOTE: leaked, as the staging buffer
    std::lock_guard lock(mutex);
    return tables[device];
}

}  // namespace

void clip_flags(Tensor& flags, const std::vector<Tensor>& grads, double grad_clip, const Tensor& loss,
                Device device) {
    std::vector<TensorSlot> slots;
    for (const Tensor& g : grads) {
        TensorSlot slot{};
        slot.ptr[0] = g.data_ptr();
        slot.numel = g.numel();
        slots.push_back(slot);
    }
    set_device(device.index);
    MultiTensorTable& table = clip_table(device.index);
    table.set(slots, optim::kClipChunk, device);
    const int64_t n = table.num_chunks();
    Tensor partials = Tensor::empty({std::max<int64_t>(n, 1)}, DType::f32, device);
    cudaStream_t stream = compute_stream(device.index);
    if (n > 0) {
        clip_partials_kernel<<<unsigned(n), kLanes, 0, stream>>>(table.slots(), table.chunks(), partials.data<float>());
        check_launch("clip_partials_kernel", {{"partials", partials}});
    }
    clip_finish_kernel<<<1, kLanes, 0, stream>>>(partials.data<float>(), n,
                                                 loss.defined() ? loss.data<float>() : nullptr,
                                                 float(grad_clip), flags.data<float>());
    check_launch("clip_finish_kernel", {{"flags", flags}});
}

void advance_step_counts(Tensor& counts, const Tensor& flags) {
    const int64_t n = counts.numel();
    if (n == 0) return;
    const int device = counts.device().index;
    set_device(device);
    advance_step_counts_kernel<<<unsigned(blocks_for(n, 256)), 256, 0, compute_stream(device)>>>(
        counts.data<int64_t>(), n, flags.data<float>());
    check_launch("advance_step_counts_kernel", {{"counts", counts}, {"flags", flags}});
}

}  // namespace lumen::cuda
