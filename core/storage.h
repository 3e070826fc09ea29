// core/storage.h: a reference-counted buffer of bytes on one device.
//
// A Storage owns its memory through the allocator that made it; Tensors share a Storage and
// differ only in Layout and dtype. The CPU allocator returns 64-byte aligned memory, so vector
// loads never straddle an alignment boundary.
#pragma once

#include "core/device.h"

#include <cstddef>
#include <memory>

namespace lumen {

class Storage {
public:
    // Allocates `bytes` on `device` (uninitialised).
    static std::shared_ptr<Storage> allocate(size_t bytes, Device device);

    Storage(void* data, size_t bytes, Device device, void (*release)(void*, Device));
    ~Storage();
    Storage(const Storage&) = delete;
    Storage& operator=(const Storage&) = delete;

    void* data() const { return data_; }
    size_t bytes() const { return bytes_; }
    Device device() const { return device_; }

private:
    void* data_;
    size_t bytes_;
    Device device_;
    void (*release_)(void*, Device);
};

// The CPU allocator: 64-byte aligned; throws naming the size when the host is out of memory.
void* cpu_allocate(size_t bytes);
void cpu_release(void* ptr, Device);

}  // namespace lumen
