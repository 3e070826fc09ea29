// data/sampling.cpp: Philox-driven permutations and random positions (see data/sampling.h).
#include "data/sampling.h"

#include "core/philox.h"

#include <algorithm>
#include <numeric>
#include <utility>

namespace lumen::data {
namespace {

std::vector<int64_t> permutation(int64_t n, uint64_t seed, uint32_t c1, uint32_t c2, uint32_t tag,
                                 Shuffle shuffle) {
    if (shuffle == Shuffle::yes) return philox_permutation(n, seed, c1, c2, tag);
    std::vector<int64_t> p(static_cast<size_t>(n));
    std::iota(p.begin(), p.end(), int64_t(0));
    return p;
}

}  // namespace

std::vector<int64_t> philox_permutation(int64_t n, uint64_t seed, uint32_t c1, uint32_t c2, uint32_t tag) {
    std::vector<int64_t> p(static_cast<size_t>(n));
    std::iota(p.begin(), p.end(), int64_t(0));
    for (int64_t i = n - 1; i > 0; --i) {
        const uint64_t j = below(philox_bits(seed, uint32_t(i), c1, c2, tag), uint64_t(i) + 1);
        std::swap(p[size_t(i)], p[size_t(j)]);
    }
    return p;
}

uint64_t philox_bits(uint64_t seed, uint32_t c0, uint32_t c1, uint32_t c2, uint32_t tag) {
    const Philox4 r = philox4x32_10(Philox4{{c0, c1, c2, tag}}, uint32_t(seed), uint32_t(seed >> 32));
    return (uint64_t(r.v[1]) << 32) | r.v[0];
}

std::vector<int64_t> shard_order(int64_t num_shards, uint64_t seed, int64_t epoch, Shuffle shuffle) {
    return permutation(num_shards, seed, uint32_t(epoch), 0, tag_shards, shuffle);
}

std::vector<int64_t> sample_order(int64_t num_samples, uint64_t seed, int64_t epoch, int64_t shard,
                                  Shuffle shuffle) {
    return permutation(num_samples, seed, uint32_t(epoch), uint32_t(shard), tag_samples, shuffle);
}

Position random_position(uint64_t seed, int64_t batch, int64_t row,
                         const std::vector<int64_t>& position_ends) {
    const uint64_t bits = philox_bits(seed, uint32_t(uint64_t(batch)), uint32_t(uint64_t(batch) >> 32),
                                      uint32_t(row), tag_offsets);
    const int64_t u = int64_t(below(bits, uint64_t(position_ends.back())));
    const auto it = std::upper_bound(position_ends.begin(), position_ends.end(), u);
    const int64_t k = it - position_ends.begin();
    const int64_t start = k == 0 ? 0 : position_ends[size_t(k - 1)];
    return {k, u - start};
}

}  // namespace lumen::data
