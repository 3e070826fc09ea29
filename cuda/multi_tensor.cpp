// cuda/multi_tensor.cpp: MultiTensorTable (see cuda/multi_tensor.h): builds the chunk list on the
// host and keeps one device copy of slots + chunks, re-uploaded only when the slots, the chunk
// size or the device change.
#include "cuda/multi_tensor.h"

#include <cstring>
#include <string>

namespace lumen::cuda {

static_assert(sizeof(TensorSlot) % 8 == 0 && sizeof(TensorChunk) % 8 == 0,
              "the table is uploaded as an i64 buffer");

std::vector<TensorChunk> split_into_chunks(const std::vector<TensorSlot>& slots, int64_t chunk_elems) {
    check(chunk_elems > 0, "MultiTensorTable",
          concat_message({"chunk_elems must be positive, got ", std::to_string(chunk_elems)}));
    std::vector<TensorChunk> chunks;
    for (size_t s = 0; s < slots.size(); ++s)
        for (int64_t begin = 0; begin < slots[s].numel; begin += chunk_elems) {
            TensorChunk c{};  // value-initialised: padding bytes are zero, so uploads are deterministic
            c.slot = int32_t(s);
            c.begin = begin;
            c.end = std::min(slots[s].numel, begin + chunk_elems);
            chunks.push_back(c);
        }
    return chunks;
}

void MultiTensorTable::set(const std::vector<TensorSlot>& slots, int64_t chunk_elems, Device device) {
    check(device.is_cuda(), "MultiTensorTable", "the table lives on a CUDA device");
    check(slots.size() < size_t(INT32_MAX), "MultiTensorTable", "too many slots");
    const bool unchanged = buffer_.defined() && device == device_ && chunk_elems == chunk_elems_ &&
                           slots.size() == host_slots_.size() &&
                           (slots.empty() || std::memcmp(slots.data(), host_slots_.data(),
                                                         slots.size() * sizeof(TensorSlot)) == 0);
    if (unchanged) return;
    std::vector<TensorChunk> chunks = split_into_chunks(slots, chunk_elems);
    const size_t slot_bytes = slots.size() * sizeof(TensorSlot);
    const size_t chunk_bytes = chunks.size() * sizeof(TensorChunk);
    std::vector<int64_t> words((slot_bytes + chunk_bytes) / 8 + 1, 0);  // +1: never empty
    if (slot_bytes) std::memcpy(words.data(), slots.data(), slot_bytes);
    if (chunk_bytes) std::memcpy(reinterpret_cast<char*>(words.data()) + slot_bytes, chunks.data(), chunk_bytes);
    buffer_ = Tensor::from(words, {int64_t(words.size())}, device);
    chunks_offset_ = int64_t(slot_bytes);
    host_slots_ = slots;
    host_chunks_ = std::move(chunks);
    chunk_elems_ = chunk_elems;
    device_ = device;
}

const TensorSlot* MultiTensorTable::slots() const {
    return buffer_.defined() ? static_cast<const TensorSlot*>(buffer_.data_ptr()) : nullptr;
}

const TensorChunk* MultiTensorTable::chunks() const {
    if (!buffer_.defined()) return nullptr;
    return reinterpret_cast<const TensorChunk*>(static_cast<const char*>(buffer_.data_ptr()) + chunks_offset_);
}

}  // namespace lumen::cuda
