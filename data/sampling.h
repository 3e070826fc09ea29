// data/sampling.h: which tokens each batch reads (shared/specs/formats.md §4.2), as pure functions
// of the seed and counters, so every rank derives the same global order and a resumed run
// continues exactly. No permutation or RNG state needs saving.
//
// Random bits come from Philox4x32-10 (core/philox.h) with key = the seed and counter
// {c0, c1, c2, tag}; the tag keeps the uses apart:
//   shard order of epoch e:          Fisher-Yates, the partner of i from counter {i, e, 0, tag_shards}
//   sample order of shard k, epoch e: Fisher-Yates, the partner of i from {i, e, k, tag_samples}
//   random mode, global row j of global micro-batch b: counter {lo32(b), hi32(b), j, tag_offsets}
//                                    (b counts every next(): step n, micro-step m give b = n·accum + m)
//   ./prepare's document order:      Fisher-Yates, the partner of i from {i, 0, 0, tag_documents}
// An integer below n is the high 64 bits of (64 random bits) x n (bias below n / 2^64).
#pragma once

#include <cstdint>
#include <vector>

namespace lumen::data {

enum class Shuffle : bool { no, yes };

inline constexpr uint32_t tag_shards = 0x4C554D01u, tag_samples = 0x4C554D02u,
                          tag_offsets = 0x4C554D03u, tag_documents = 0x4C554D04u;

uint64_t philox_bits(uint64_t seed, uint32_t c0, uint32_t c1, uint32_t c2, uint32_t tag);
inline uint64_t below(uint64_t bits, uint64_t n) {
    return uint64_t((static_cast<unsigned __int128>(bits) * n) >> 64);
}

// Fisher-Yates over 0..n-1; the partner of i comes from counter {i, c1, c2, tag}.
std::vector<int64_t> philox_permutation(int64_t n, uint64_t seed, uint32_t c1, uint32_t c2, uint32_t tag);
// The shard order of an epoch and the sample order of one shard (identity when Shuffle::no).
std::vector<int64_t> shard_order(int64_t num_shards, uint64_t seed, int64_t epoch, Shuffle shuffle);
std::vector<int64_t> sample_order(int64_t num_samples, uint64_t seed, int64_t epoch, int64_t shard,
                                  Shuffle shuffle);

// Sequential mode (llm.c's geometry): G = W·B·T tokens per global sample; a shard of n tokens
// holds floor((n - 1) / G) samples (its tail is dropped); rank r reads B·T + 1 tokens from
// token offset s·G + r·B·T of sample s.
inline int64_t samples_in_shard(int64_t num_tokens, int64_t global_sample_tokens) {
    return (num_tokens - 1) / global_sample_tokens;
}
inline int64_t sequential_token_offset(int64_t sample, int64_t global_sample_tokens, int64_t rank,
                                       int64_t B, int64_t T) {
    return sample * global_sample_tokens + rank * B * T;
}

// Random mode: a uniform draw over every valid start position of every shard, which picks a
// shard with probability proportional to its count of positions, n_k - T. `position_ends[k]` is
// the running total of those counts through shard k. The row reads T + 1 tokens from `offset`.
struct Position {
    int64_t shard, offset;
};
Position random_position(uint64_t seed, int64_t batch, int64_t row,
                         const std::vector<int64_t>& position_ends);

}  // namespace lumen::data
