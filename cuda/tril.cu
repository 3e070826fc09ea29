// cuda/tril.cu: CUDA tril (see core/kernels/tril.h); reference core/cpu/tril.cpp.
//
// A map over the elements of the contiguous (..., R, K) x: element i sits at column k = i % K of
// row r = (i / K) % R of its matrix and is kept when k - r <= diagonal, else zero. The diagonal is
// first clamped to [-R, K] as on the CPU (same result, no overflow). Index arithmetic is 32-bit
// when the tensor allows it (64-bit division is the slow part of this kernel).
#include "core/kernels/tril.h"
#include "cuda/common.cuh"

#include <algorithm>

namespace lumen::cuda {

namespace {

template <typename DT, typename I>
__global__ void tril_kernel(I n, I K, I R, int64_t diagonal, DT* out, const DT* x) {
    for (I i = I(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += I(gridDim.x) * blockDim.x) {
        const I row = i / K;
        const I k = i - row * K, r = row % R;
        out[i] = int64_t(k) - int64_t(r) <= diagonal ? x[i] : store_from<DT>(0);
    }
}

}  // namespace

void tril(Tensor& out, const Tensor& x, int64_t diagonal) {
    const int64_t n = x.numel();
    if (n == 0) return;
    const int64_t R = x.size(-2), K = x.size(-1);
    const int64_t d = std::clamp<int64_t>(diagonal, -R, K);
    const int device = out.device().index;
    set_device(device);
    const int64_t blocks =
        std::min<int64_t>(blocks_for(n, 256), int64_t(properties(device).sm_count) * 16);
    dispatch_all(x.dtype(), "tril", [&]<typename T>() {
        using DT = device_t<T>;
        // NOTE: 32-bit indices need i + the grid's stride to stay below 2^32.
        if (n < (int64_t(1) << 31))
            tril_kernel<DT, uint32_t><<<unsigned(blocks), 256, 0, compute_stream(device)>>>(
                uint32_t(n), uint32_t(K), uint32_t(R), d, data_ptr<T>(out), data_ptr<T>(x));
        else
            tril_kernel<DT, int64_t><<<unsigned(blocks), 256, 0, compute_stream(device)>>>(
                n, K, R, d, data_ptr<T>(out), data_ptr<T>(x));
    });
    check_launch("tril_kernel", {{"out", out}, {"x", x}});
}

}  // namespace lumen::cuda
