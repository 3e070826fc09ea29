// cuda/allocator.h: the caching device allocator and its statistics, and pinned host memory.
//
// Sizes are rounded to classes (512 B steps below 1 MiB, 2 MiB steps above) and freed blocks stay
// cached per device for reuse, so a steady-state training step makes no driver calls. All kernels
// run on the device's one compute stream, so a block freed there can be handed out again at once
// (stream order keeps the old and the new user apart); transfers on the copy stream complete
// before their buffers are released. Out of memory: the cache is released and the allocation
// retried once; then the error says how much was asked for, what is in use and what to try.
#pragma once

#include "core/device.h"

#include <cstddef>
#include <cstdint>

namespace lumen::cuda {

struct AllocatorStats {
    size_t allocated_bytes = 0;       // handed out now (rounded sizes)
    size_t peak_allocated_bytes = 0;  // the most handed out at once since the last reset
    size_t reserved_bytes = 0;        // obtained from the driver (in use + cached)
    int64_t driver_allocs = 0;        // cudaMalloc calls
    int64_t driver_frees = 0;         // cudaFree calls
    int64_t allocs = 0;               // requests served
};

void* device_allocate(size_t bytes, int device);
void device_release(void* ptr, Device device);

AllocatorStats allocator_stats(int device);
void reset_peak_stats(int device);
// Returns every cached (free) block of the device to the driver.
void release_cache(int device);

// Page-locked host memory for transfers (cudaMallocHost), released with pinned_release.
void* pinned_allocate(size_t bytes);
void pinned_release(void* ptr);
// The same release with the signature of a Storage deleter, so pinned memory can back CPU tensors
// (the data loader's batches: data::LoaderConfig::allocator = {pinned_allocate, pinned_release_storage}).
void pinned_release_storage(void* ptr, Device device);

}  // namespace lumen::cuda
