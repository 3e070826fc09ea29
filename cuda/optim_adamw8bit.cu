// cuda/optim_adamw8bit.cu: the fused block-wise 8-bit AdamW step (optim/adamw8bit.h; reference
// cpu::adamw8bit_step in optim/adamw8bit.cpp). One launch per group; one 256-thread block per
// quantization block (a chunk of the multi-tensor table of exactly 256 elements, so chunk k of a
// tensor is its block k). Thread j owns element j: it dequantizes its old m, v, computes the new
// ones, the block takes the max of |m| and v over its valid elements (max is order-free, so any
// reduction order gives the same bits), then each thread updates its parameter and writes its
// codes. The element formulas are optim/adamw8bit.h's, with IEEE f32 operations that nvcc does not
// fuse: the CPU reference gives the same bits. A bad step returns before writing anything.
#include "cuda/common.cuh"
#include "cuda/multi_tensor.h"
#include "optim/adamw8bit.h"

namespace lumen::cuda {
namespace {

constexpr int kThreads = int(optim::quant_block);
constexpr int kWarps = kThreads / 32;

// The maximum of every thread's x (all threads get it); x ≥ 0.
__device__ float block_max(float x, float* shared) {
    for (int offset = 16; offset > 0; offset >>= 1) x = fmaxf(x, __shfl_xor_sync(0xffffffffu, x, offset));
    if (threadIdx.x % 32 == 0) shared[threadIdx.x / 32] = x;
    __syncthreads();
    float m = shared[0];
#pragma unroll
    for (int w = 1; w < kWarps; ++w) m = fmaxf(m, shared[w]);
    return m;
}

__global__ void __launch_bounds__(kThreads)
adamw8bit_kernel(const TensorSlot* slots, const TensorChunk* chunks, const float* qmap1, const float* qmap2,
                 optim::AdamW8bitArgs args, const float* flags, const int64_t* t_before) {
    if (flags[1] != 0.0f) return;
    __shared__ float cs[256], cu[256];
    __shared__ float max1[kWarps], max2[kWarps];
    __shared__ optim::AdamW8bitUpdate update;
    cs[threadIdx.x] = qmap1[threadIdx.x];
    cu[threadIdx.x] = qmap2[threadIdx.x];
    if (threadIdx.x == 0) update = optim::adamw8bit_update(args, *t_before + 1, flags[0]);
    __syncthreads();

    const TensorChunk c = chunks[blockIdx.x];
    const TensorSlot& s = slots[c.slot];
    float* p = static_cast<float*>(s.ptr[0]);
    const float* g = static_cast<const float*>(s.ptr[1]);
    uint8_t* q1 = static_cast<uint8_t*>(s.ptr[2]);
    uint8_t* q2 = static_cast<uint8_t*>(s.ptr[3]);
    float* a1 = static_cast<float*>(s.ptr[4]);
    float* a2 = static_cast<float*>(s.ptr[5]);
    const int64_t block = c.begin / optim::quant_block;
    const int64_t e = c.begin + threadIdx.x;
    const bool valid = e < c.end;

    float m = 0.0f, v = 0.0f;
    if (valid) {
        const float old_a1 = a1[block], old_a2 = a2[block];
        update.moments(g[e], optim::f32::mul(cs[q1[e]], old_a1), optim::f32::mul(cu[q2[e]], old_a2), m, v);
    }
    // Padding threads add 0, which changes no max of values ≥ 0.
    const float amax1 = block_max(fabsf(m), max1);
    const float amax2 = block_max(v, max2);
    if (valid) {
        p[e] = update.param(p[e], m, v);
        q1[e] = optim::quantize_state1(cs, m, amax1);
        q2[e] = optim::quantize_state2(cu, v, amax2);
    }
    if (threadIdx.x == 0) {  // every thread has read the old absmax before block_max's barrier
        a1[block] = amax1;
        a2[block] = amax2;
    }
}

}  // namespace

void adamw8bit_step(const MultiTensorTable& table, const float* qmap1, const float* qmap2,
                    const optim::AdamW8bitArgs& args, const float* flags, const int64_t* t_before, int device) {
    if (table.num_chunks() == 0) return;
    set_device(device);
    adamw8bit_kernel<<<unsigned(table.num_chunks()), kThreads, 0, compute_stream(device)>>>(
        table.slots(), table.chunks(), qmap1, qmap2, args, flags, t_before);
    check_launch("adamw8bit_kernel");
}

}  // namespace lumen::cuda
