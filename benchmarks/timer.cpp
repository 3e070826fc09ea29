// benchmarks/timer.cpp: see benchmarks/timer.h.
#include "benchmarks/timer.h"

#include <algorithm>
#include <chrono>
#include <vector>

#ifdef LUMEN_WITH_CUDA
#include "cuda/runtime.h"
#endif

namespace lumen::bench {

void synchronize(Device device) {
#ifdef LUMEN_WITH_CUDA
    if (device.is_cuda()) cuda::synchronize(device.index);
#else
    (void)device;
#endif
}

double median_ms(Device device, const std::function<void()>& fn, int warmup, int iters) {
    for (int i = 0; i < warmup; ++i) fn();
    synchronize(device);
    std::vector<double> times;
    for (int i = 0; i < iters; ++i) {
#ifdef LUMEN_WITH_CUDA
        if (device.is_cuda()) {
            cudaStream_t stream = cuda::compute_stream(device.index);
            cudaEvent_t start, stop;
            LUMEN_CUDA_CHECK(cudaEventCreate(&start));
            LUMEN_CUDA_CHECK(cudaEventCreate(&stop));
            LUMEN_CUDA_CHECK(cudaEventRecord(start, stream));
            fn();
            LUMEN_CUDA_CHECK(cudaEventRecord(stop, stream));
            LUMEN_CUDA_CHECK(cudaEventSynchronize(stop));
            float ms = 0;
            LUMEN_CUDA_CHECK(cudaEventElapsedTime(&ms, start, stop));
            cudaEventDestroy(start);
            cudaEventDestroy(stop);
            times.push_back(ms);
            continue;
        }
#endif
        const auto t0 = std::chrono::steady_clock::now();
        fn();
        const auto t1 = std::chrono::steady_clock::now();
        times.push_back(std::chrono::duration<double, std::milli>(t1 - t0).count());
    }
    std::sort(times.begin(), times.end());
    return times[times.size() / 2];
}

}  // namespace lumen::bench
