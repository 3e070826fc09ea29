// benchmarks/kernels.h: `./bench kernels`: the kernel benchmarks of the CUDA backend (or, on the CPU,
// the same measurements at small sizes, as a smoke run). Each result gives the time, the rate
// (TFLOP/s or TB/s counting bytes read plus written) and the figure it is compared with.
#pragma once

#include "core/device.h"

#include <string>
#include <vector>

namespace lumen::bench {

struct KernelResult {
    std::string what;   // "gemm_bf16_8192", "copy_1GiB", ...
    double ms = 0;
    double rate = 0;    // in `unit`
    std::string unit;   // "TFLOP/s" or "TB/s"
    std::string note;   // what the rate is compared with
};

struct KernelOptions {
    Device device = Device::cpu();
    bool quick = false;  // small sizes (seconds on a CPU): for smoke tests
};

std::vector<KernelResult> run_kernel_benchmarks(const KernelOptions& options);

}  // namespace lumen::bench
