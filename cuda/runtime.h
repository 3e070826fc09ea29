// cuda/runtime.h: the CUDA runtime lumen's kernels share: checked calls, launch checks, the debug
// synchronisation switch, per-device streams and handles, and device properties.
//
// Every CUDA and cuBLAS call goes through LUMEN_CUDA_CHECK / LUMEN_CUBLAS_CHECK, and every launch is
// followed by check_launch("kernel_name", operands), whose error names the kernel and the shapes.
// CUDA errors can surface one op late; set_debug_sync(true) synchronises after every launch so the
// error lands on the op that caused it. Work runs on one compute stream per device; transfers use
// a separate copy stream.
#pragma once

#include "core/error.h"
#include "core/tensor.h"

#include <cublasLt.h>
#include <cublas_v2.h>
#include <cuda_runtime.h>

#include <string>

namespace lumen::cuda {

[[noreturn]] void fail_cuda(cudaError_t status, const char* call, const char* file, int line);
[[noreturn]] void fail_cublas(cublasStatus_t status, const char* call, const char* file, int line);

#define LUMEN_CUDA_CHECK(call)                                                          \
    do {                                                                                \
        cudaError_t lumen_status_ = (call);                                             \
        if (lumen_status_ != cudaSuccess) ::lumen::cuda::fail_cuda(lumen_status_, #call, __FILE__, __LINE__); \
    } while (0)
#define LUMEN_CUBLAS_CHECK(call)                                                        \
    do {                                                                                \
        cublasStatus_t lumen_status_ = (call);                                          \
        if (lumen_status_ != CUBLAS_STATUS_SUCCESS) ::lumen::cuda::fail_cublas(lumen_status_, #call, __FILE__, __LINE__); \
    } while (0)

// After a launch: raises the launch error (or, with debug sync on, the execution error) naming the
// kernel and its operands.
void check_launch(const char* kernel, std::initializer_list<Operand> operands = {});

void set_debug_sync(bool on);
bool debug_sync();

int device_count();
// Makes `device` current for this thread (a no-op when it already is).
void set_device(int device);
cudaStream_t compute_stream(int device);
cudaStream_t copy_stream(int device);
cublasLtHandle_t cublaslt_handle(int device);
// A device workspace for cuBLASLt (grown on demand, kept for the process).
void* cublaslt_workspace(int device, size_t* bytes);
// Waits for all work on the device's streams.
void synchronize(int device);

struct DeviceProperties {
    std::string name;
    int sm_count = 0;
    int compute_capability = 0;  // 90 for sm_90
    size_t memory_bytes = 0;
    size_t l2_bytes = 0;
    double memory_bandwidth_bytes_per_s = 0;  // from the memory clock and bus width
    // Dense bf16 tensor-core peak from the SM count and clock (2048 FLOP/clock/SM on sm_80, 4096 on
    // sm_90); 0 for other architectures. The trainer's MFU divides by it unless a peak is configured.
    double peak_bf16_flops_per_s = 0;
};
const DeviceProperties& properties(int device);

}  // namespace lumen::cuda
