// cuda/runtime.cu: the CUDA runtime pieces the core needs: device count and device memory.
//
// Every CUDA call is checked; an error names the call and the CUDA message. Device memory here is
// plain cudaMalloc/cudaFree, which the CUDA backend's caching allocator will take over.
#include "core/device.h"
#include "core/error.h"

#include <cuda_runtime.h>

namespace lumen::cuda {

static void check_cuda(cudaError_t status, const char* call) {
    if (status != cudaSuccess)
        throw Error(fmt::format("cuda: {} failed: {}", call, cudaGetErrorString(status)));
}

int device_count() {
    int count = 0;
    if (cudaGetDeviceCount(&count) != cudaSuccess) {
        cudaGetLastError();  // NOTE: no driver or no GPU is "zero devices", not an error
        return 0;
    }
    return count;
}

void* device_allocate(size_t bytes, int device) {
    if (bytes == 0) return nullptr;
    check_cuda(cudaSetDevice(device), "cudaSetDevice");
    void* p = nullptr;
    cudaError_t status = cudaMalloc(&p, bytes);
    if (status != cudaSuccess) {
        cudaGetLastError();
        throw Error(fmt::format("cuda: out of memory allocating {} bytes on cuda:{} ({}); try a smaller "
                                "batch or activation checkpointing", bytes, device,
                                cudaGetErrorString(status)));
    }
    return p;
}

void device_release(void* ptr, Device) { cudaFree(ptr); }

}  // namespace lumen::cuda
