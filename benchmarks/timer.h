// benchmarks/timer.h: timing device work for ./bench: CUDA events on the compute stream for CUDA
// tensors, the host clock for the CPU. median_ms runs a function warm-up times, then times each of
// `iters` runs separately and returns the median, as METHOD.md and the peer scripts do.
#pragma once

#include "core/device.h"

#include <functional>

namespace lumen::bench {

double median_ms(Device device, const std::function<void()>& fn, int warmup = 3, int iters = 20);
// Waits for all work queued on the device.
void synchronize(Device device);

}  // namespace lumen::bench
