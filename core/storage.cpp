// core/storage.cpp: Storage and the CPU allocator; CUDA memory comes from cuda/ when built.
#include "core/storage.h"

#include "core/error.h"

#include <cstdlib>
#include <new>

namespace lumen {

#ifdef LUMEN_WITH_CUDA
namespace cuda {
void* device_allocate(size_t bytes, int device);
void device_release(void* ptr, Device device);
}  // namespace cuda
#endif

void* cpu_allocate(size_t bytes) {
    if (bytes == 0) return nullptr;
    const size_t rounded = (bytes + 63) / 64 * 64;
    void* p = std::aligned_alloc(64, rounded);
    if (!p)
        throw Error(fmt::format("cpu allocator: out of host memory allocating {} bytes", bytes));
    return p;
}

void cpu_release(void* ptr, Device) { std::free(ptr); }

std::shared_ptr<Storage> Storage::allocate(size_t bytes, Device device) {
    if (device.is_cpu()) return std::make_shared<Storage>(cpu_allocate(bytes), bytes, device, cpu_release);
#ifdef LUMEN_WITH_CUDA
    return std::make_shared<Storage>(cuda::device_allocate(bytes, device.index), bytes, device,
                                     cuda::device_release);
#else
    throw Error(fmt::format("storage: cannot allocate {} bytes on {}: this build has no CUDA support "
                            "(rebuild with LUMEN_CUDA=ON on a machine with nvcc)", bytes, device.str()));
#endif
}

Storage::Storage(void* data, size_t bytes, Device device, void (*release)(void*, Device))
    : data_(data), bytes_(bytes), device_(device), release_(release) {}

Storage::~Storage() {
    if (data_ && release_) release_(data_, device_);
}

}  // namespace lumen
