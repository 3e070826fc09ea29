// cuda/allocator.cu: the caching device allocator (see cuda/allocator.h).
#include "cuda/allocator.h"
#include "cuda/runtime.h"

#include <map>
#include <mutex>
#include <unordered_map>
#include <vector>

namespace lumen::cuda {

namespace {

constexpr size_t small_limit = 1u << 20;  // 1 MiB
constexpr size_t small_step = 512;
constexpr size_t large_step = 2u << 20;   // 2 MiB

size_t round_size(size_t bytes) {
    const size_t step = bytes < small_limit ? small_step : large_step;
    return (bytes + step - 1) / step * step;
}

struct DevicePool {
    std::multimap<size_t, void*> free_blocks;     // size -> block
    std::unordered_map<void*, size_t> live;       // block -> size, handed out
    AllocatorStats stats;
};

// NOTE: leaked on purpose: tensors freed during static destruction still find the pools.
std::mutex& mutex = *new std::mutex;
std::vector<DevicePool>& pools = *new std::vector<DevicePool>(64);

void free_cached(DevicePool& pool, int device) {
    if (pool.free_blocks.empty()) return;
    set_device(device);
    LUMEN_CUDA_CHECK(cudaDeviceSynchronize());
    for (auto& [size, ptr] : pool.free_blocks) {
        LUMEN_CUDA_CHECK(cudaFree(ptr));
        pool.stats.reserved_bytes -= size;
        ++pool.stats.driver_frees;
    }
    pool.free_blocks.clear();
}

std::string mib(size_t bytes) { return fmt::format("{:.1f} MiB", double(bytes) / (1 << 20)); }

}  // namespace

void* device_allocate(size_t bytes, int device) {
    if (bytes == 0) return nullptr;
    if (device < 0 || device >= device_count())
        throw Error(fmt::format("cuda: cannot allocate on cuda:{}: {} CUDA devices present", device, device_count()));
    const size_t size = round_size(bytes);
    std::lock_guard lock(mutex);
    DevicePool& pool = pools.at(size_t(device));
    void* ptr = nullptr;
    // Best fit among cached blocks, but never more than twice the size (keeps waste bounded).
    auto it = pool.free_blocks.lower_bound(size);
    if (it != pool.free_blocks.end() && it->first <= 2 * size) {
        ptr = it->second;
        const size_t block = it->first;
        pool.free_blocks.erase(it);
        pool.live[ptr] = block;
        pool.stats.allocated_bytes += block;
    } else {
        set_device(device);
        cudaError_t status = cudaMalloc(&ptr, size);
        if (status != cudaSuccess) {
            cudaGetLastError();
            free_cached(pool, device);
            status = cudaMalloc(&ptr, size);
        }
        if (status != cudaSuccess) {
            cudaGetLastError();
            size_t free_bytes = 0, total_bytes = 0;
            cudaMemGetInfo(&free_bytes, &total_bytes);
            throw Error(fmt::format(
                "cuda: out of memory on cuda:{}: asked for {} ({} bytes); {} in use by tensors, {} "
                "reserved by lumen, {} free of {} on the device. Try a smaller batch_size (with more "
                "gradient_accumulation_steps), a shorter block_size, or gradient_checkpointing = true",
                device, mib(bytes), bytes, mib(pool.stats.allocated_bytes), mib(pool.stats.reserved_bytes),
                mib(free_bytes), mib(total_bytes)));
        }
        ++pool.stats.driver_allocs;
        pool.stats.reserved_bytes += size;
        pool.live[ptr] = size;
        pool.stats.allocated_bytes += size;
    }
    ++pool.stats.allocs;
    pool.stats.peak_allocated_bytes = std::max(pool.stats.peak_allocated_bytes, pool.stats.allocated_bytes);
    return ptr;
}

void device_release(void* ptr, Device device) {
    if (!ptr) return;
    std::lock_guard lock(mutex);
    DevicePool& pool = pools.at(size_t(device.index));
    auto it = pool.live.find(ptr);
    if (it == pool.live.end()) return;  // NOTE: not ours (cannot happen through Storage)
    pool.stats.allocated_bytes -= it->second;
    pool.free_blocks.emplace(it->second, ptr);
    pool.live.erase(it);
}

AllocatorStats allocator_stats(int device) {
    std::lock_guard lock(mutex);
    return pools.at(size_t(device)).stats;
}

void reset_peak_stats(int device) {
    std::lock_guard lock(mutex);
    DevicePool& pool = pools.at(size_t(device));
    pool.stats.peak_allocated_bytes = pool.stats.allocated_bytes;
}

void release_cache(int device) {
    std::lock_guard lock(mutex);
    free_cached(pools.at(size_t(device)), device);
}

void* pinned_allocate(size_t bytes) {
    void* ptr = nullptr;
    LUMEN_CUDA_CHECK(cudaMallocHost(&ptr, std::max<size_t>(bytes, 1)));
    return ptr;
}

void pinned_release(void* ptr) {
    if (ptr) cudaFreeHost(ptr);
}

void pinned_release_storage(void* ptr, Device) { pinned_release(ptr); }

}  // namespace lumen::cuda
