// cuda/multi_tensor.h: the table a fused multi-tensor kernel walks: one slot per tensor (up to
// kSlotPointers device pointers of the same element count, e.g. param, grad, exp_avg, exp_avg_sq)
// and the split of every slot into chunks of at most chunk_elems elements. A kernel launches one
// block per chunk (grid = num_chunks()) and reads its chunk's slot:
//
//   table.set(slots, 65536, device);          // re-uploads only when the slots changed
//   if (table.num_chunks() > 0)
//       step_kernel<<<table.num_chunks(), 256, 0, stream>>>(table.slots(), table.chunks(), ...);
//
// A chunk never spans two slots; slots with numel 0 get no chunk. The device copy lives in one
// i64 tensor on the caching allocator (uploaded with the ordinary host-to-device copy, which waits
// for the compute stream), so replacing it while a kernel still reads the old one is stream-safe.
// CUDA builds only.
#pragma once

#include "core/device.h"
#include "core/tensor.h"

#include <cstdint>
#include <vector>

namespace lumen::cuda {

constexpr int kSlotPointers = 6;
struct TensorSlot {
    void* ptr[kSlotPointers];
    int64_t numel;
    int64_t aux;  // rule-defined (e.g. an offset into a shared state slab)
};
struct TensorChunk {
    int32_t slot;
    int64_t begin, end;  // [begin, end) of the slot's elements
};

class MultiTensorTable {
public:
    void set(const std::vector<TensorSlot>& slots, int64_t chunk_elems, Device device);
    const TensorSlot* slots() const;  // device pointers (null before the first set)
    const TensorChunk* chunks() const;
    int64_t num_chunks() const { return int64_t(host_chunks_.size()); }
    int64_t num_slots() const { return int64_t(host_slots_.size()); }
    // The host copies of what is on the device (for tests and for launch geometry).
    const std::vector<TensorSlot>& host_slots() const { return host_slots_; }
    const std::vector<TensorChunk>& host_chunks() const { return host_chunks_; }

private:
    std::vector<TensorSlot> host_slots_;
    std::vector<TensorChunk> host_chunks_;
    int64_t chunk_elems_ = 0;
    Device device_;
    Tensor buffer_;             // (n,) i64 on device_: the slots, then the chunks
    int64_t chunks_offset_ = 0; // in bytes from the buffer's start
};

// The chunks of `slots` (no device work): what set() uploads. Exposed for tests.
std::vector<TensorChunk> split_into_chunks(const std::vector<TensorSlot>& slots, int64_t chunk_elems);

}  // namespace lumen::cuda
