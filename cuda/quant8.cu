// cuda/quant8.cu: block-wise 8-bit quantize and dequantize (optim/quant8.h; reference
// optim/quant8.cpp). Quantize runs one 256-thread block per quantization block: the block's absmax
// (a max, order-free), then each thread's code from the shared map with optim/quant8.h's
// quantizer, the same function the CPU calls. Dequantize is element-wise.
#include "cuda/common.cuh"
#include "optim/quant8.h"

namespace lumen::cuda {
namespace {

constexpr int kThreads = int(optim::quant_block);

__global__ void __launch_bounds__(kThreads)
quantize_blockwise_kernel(uint8_t* codes, float* absmax, const float* x, const float* map, int64_t n,
                          bool is_signed) {
    __shared__ float c[256];
    __shared__ float warp_max[kThreads / 32];
    c[threadIdx.x] = map[threadIdx.x];
    const int64_t e = int64_t(blockIdx.x) * kThreads + threadIdx.x;
    const float value = e < n ? x[e] : 0.0f;
    float m = fabsf(value);
    for (int offset = 16; offset > 0; offset >>= 1) m = fmaxf(m, __shfl_xor_sync(0xffffffffu, m, offset));
    if (threadIdx.x % 32 == 0) warp_max[threadIdx.x / 32] = m;
    __syncthreads();
    float amax = warp_max[0];
#pragma unroll
    for (int w = 1; w < kThreads / 32; ++w) amax = fmaxf(amax, warp_max[w]);
    if (e < n) {
        const uint8_t zero = is_signed ? optim::signed_zero_code : optim::unsigned_zero_code;
        codes[e] = amax == 0.0f ? zero : optim::quantize_code(c, value / amax, is_signed);
    }
    if (threadIdx.x == 0) absmax[blockIdx.x] = amax;
}

__global__ void dequantize_blockwise_kernel(float* out, const uint8_t* codes, const float* absmax,
                                            const float* map, int64_t n) {
    for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x)
        out[i] = __fmul_rn(map[codes[i]], absmax[i / optim::quant_block]);
}

}  // namespace

void quantize_blockwise8(Tensor& codes, Tensor& absmax, const Tensor& x, const Tensor& map, bool is_signed) {
    const int64_t n = x.numel();
    if (n == 0) return;
    const int device = x.device().index;
    set_device(device);
    quantize_blockwise_kernel<<<unsigned(optim::quant_blocks(n)), kThreads, 0, compute_stream(device)>>>(
        data_ptr<uint8_t>(codes), data_ptr<float>(absmax), data_ptr<float>(x), data_ptr<float>(map), n, is_signed);
    check_launch("quantize_blockwise_kernel", {{"x", x}});
}

void dequantize_blockwise8(Tensor& out, const Tensor& codes, const Tensor& absmax, const Tensor& map) {
    const int64_t n = codes.numel();
    if (n == 0) return;
    const int device = codes.device().index;
    set_device(device);
    dequantize_blockwise_kernel<<<unsigned(blocks_for(n, 256, 65536)), 256, 0, compute_stream(device)>>>(
        data_ptr<float>(out), data_ptr<uint8_t>(codes), data_ptr<float>(absmax), data_ptr<float>(map), n);
    check_launch("dequantize_blockwise_kernel", {{"codes", codes}});
}

}  // namespace lumen::cuda
