// benchmarks/optical_bench.h: `./bench optical`: the optical linear layer's forward + backward against
// the plain linear layer of the same shape (bf16 activations, f32 master weights, as training runs
// them), at GPT-2 and WiggleGPT shapes, and the optical attention against the digital attention at
// WiggleGPT v2's (16, 6, 1024, 64). The target: optical linear ≤ 1.3× the plain one.
#pragma once

#include "core/device.h"

#include <string>
#include <vector>

namespace lumen::bench {

struct OpticalResult {
    std::string what;         // "linear 16384x384->1536", "attention 16x6x1024x64"
    double digital_ms = 0;    // forward + backward, median
    double optical_ms = 0;    // the same through the optical layer (training mode: statistics, dither)
    double optical_forward_ms = 0, digital_forward_ms = 0;
    double ratio() const { return optical_ms / digital_ms; }
};

struct OpticalBenchOptions {
    Device device = Device::cpu();
    bool quick = false;  // small shapes (a smoke run)
    int iters = 20;
};

std::vector<OpticalResult> run_optical_benchmarks(const OpticalBenchOptions& options);

}  // namespace lumen::bench
