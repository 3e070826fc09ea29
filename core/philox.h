// core/philox.h: the Philox4x32-10 counter-based RNG and lumen's mapping of random tensors onto it.
//
// philox4x32_10(counter, key) is Salmon et al.'s Philox4x32 with 10 rounds (Random123); its
// known-answer vectors are checked in tests/core/philox_test.cpp. It is written for both host and
// device (the CUDA kernels include this header) so the two produce the same bits.
//
// A draw of n elements from RNG state (seed, stream, offset) is fixed as follows. Element i uses
// block b = offset + i / 4, word w = i % 4 of
//     philox4x32_10(counter = {lo32(b), hi32(b), lo32(stream), hi32(stream)},
//                   key     = {lo32(seed), hi32(seed)}).
//   uniform [0, 1):  (word >> 8) · 2^-24                       (24 random bits, exact in f32)
//   normal (0, 1):   words 2p and 2p+1 of the block (p = w / 2) give u1 = ((word_2p >> 8) + 1) · 2^-24
//                    in (0, 1] and u2 = (word_2p+1 >> 8) · 2^-24; r = sqrt(-2 ln u1);
//                    even w gets r·cos(2π·u2), odd w gets r·sin(2π·u2), all in f32.
// A draw consumes ceil(n / 4) blocks: the Generator's offset advances by that much (W times that
// under a data-parallel slice, see Generator).
#pragma once

#include <cmath>
#include <cstdint>

#include "core/host_device.h"

namespace lumen {

struct Philox4 {
    uint32_t v[4];
};

LUMEN_HOST_DEVICE Philox4 philox4x32_10(Philox4 counter, uint32_t key0, uint32_t key1) {
    constexpr uint32_t M0 = 0xD2511F53u, M1 = 0xCD9E8D57u;
    constexpr uint32_t W0 = 0x9E3779B9u, W1 = 0xBB67AE85u;
    Philox4 c = counter;
    for (int round = 0; round < 10; ++round) {
        const uint64_t p0 = uint64_t(M0) * c.v[0];
        const uint64_t p1 = uint64_t(M1) * c.v[2];
        c = Philox4{{uint32_t(p1 >> 32) ^ c.v[1] ^ key0, uint32_t(p1),
                     uint32_t(p0 >> 32) ^ c.v[3] ^ key1, uint32_t(p0)}};
        key0 += W0;
        key1 += W1;
    }
    return c;
}

// The state a draw starts from: (seed, stream) select the sequence, offset counts 128-bit blocks.
struct RngState {
    uint64_t seed = 0;
    uint64_t stream = 0;
    uint64_t offset = 0;
};

// The four words of block `b` of the sequence (seed, stream).
LUMEN_HOST_DEVICE Philox4 philox_block(const RngState& s, uint64_t b) {
    const uint64_t block = s.offset + b;
    return philox4x32_10(Philox4{{uint32_t(block), uint32_t(block >> 32), uint32_t(s.stream),
                                  uint32_t(s.stream >> 32)}},
                         uint32_t(s.seed), uint32_t(s.seed >> 32));
}

LUMEN_HOST_DEVICE float philox_uniform_from_word(uint32_t word) {
    return float(word >> 8) * 5.9604644775390625e-8f;  // 2^-24
}

// Element i of a uniform [0, 1) draw.
LUMEN_HOST_DEVICE float philox_uniform(const RngState& s, uint64_t i) {
    return philox_uniform_from_word(philox_block(s, i / 4).v[i % 4]);
}

// Element i of a standard normal draw (Box-Muller on the block's word pair, f32 math).
LUMEN_HOST_DEVICE float philox_normal(const RngState& s, uint64_t i) {
    const Philox4 block = philox_block(s, i / 4);
    const unsigned w = unsigned(i % 4), p = w / 2;
    const float u1 = float((block.v[2 * p] >> 8) + 1u) * 5.9604644775390625e-8f;
    const float u2 = float(block.v[2 * p + 1] >> 8) * 5.9604644775390625e-8f;
    const float r = sqrtf(-2.0f * logf(u1));
    const float angle = 6.2831853071795864769f * u2;
    return (w % 2 == 0) ? r * cosf(angle) : r * sinf(angle);
}

// A stream of random draws: each draw takes the current state and advances the offset.
// Its (seed, stream, offset) is what a checkpoint saves.
//
// Data-parallel slice (rank, world), default (0, 1): rank r of W ranks, each drawing n elements
// where one process with W× the batch would draw W·n (the tensor's leading dim is the batch), takes
// the global draw's slice r and every rank advances past the whole global draw:
//     take(n) = state at offset + r·⌈n/4⌉;   offset += W·⌈n/4⌉        (blocks of 4 elements)
// With n % 4 == 0 rank r's elements are exactly elements [r·n, (r+1)·n) of the single process's
// draw of W·n, and the offset after equals the single process's. With n % 4 != 0 the slices stay
// distinct and deterministic (rank r: blocks [r·⌈n/4⌉, (r+1)·⌈n/4⌉)), but they differ from the
// single process's elements (a draw cannot start inside a block) and the offset advances by
// W·⌈n/4⌉ ≥ ⌈W·n/4⌉. The slice is not part of the state: state() is the offset every rank shares
// (identical on all ranks, what a checkpoint saves), and set_state keeps the slice.
class Generator {
public:
    explicit Generator(uint64_t seed = 0, uint64_t stream = 0) : state_{seed, stream, 0} {}
    // The state for a draw of n elements (this rank's slice of the global draw); advances past
    // the whole global draw.
    RngState take(int64_t n) {
        const uint64_t blocks = uint64_t((n + 3) / 4);
        RngState s = state_;
        s.offset += rank_ * blocks;
        state_.offset += world_ * blocks;
        return s;
    }
    const RngState& state() const { return state_; }
    void set_state(const RngState& s) { state_ = s; }
    // The data-parallel slice; requires 0 <= rank < world (checked by the callers that take it
    // from a configuration: nn::GPT::set_data_parallel).
    void set_slice(uint64_t rank, uint64_t world) {
        rank_ = rank;
        world_ = world;
    }
    uint64_t slice_rank() const { return rank_; }
    uint64_t slice_world() const { return world_; }

private:
    RngState state_;
    uint64_t rank_ = 0, world_ = 1;
};

}  // namespace lumen
