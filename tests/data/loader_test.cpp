// tests/data/loader_test.cpp: the batch loader: sequential epochs cover every (sample, rank slice)
// once, shuffles and random draws are seed-deterministic, resume is exact (also under another W
// with the same W·B·T), errors from the prefetch thread reach next(), and the state JSON.
//
// Token i of test shard k has the value k·10000 + i, so every row says where it came from.
#include "data/loader.h"
#include "tests/data/data_test_util.h"
#include "tests/harness.h"

#include <nlohmann/json.hpp>

#include <atomic>
#include <map>
#include <set>

using namespace lumen;
using namespace lumen::data;
using lumen::test::ScratchDir;

namespace {

struct Fixture {
    ScratchDir dir{"loader"};
    std::vector<std::string> paths;
    explicit Fixture(std::vector<int64_t> sizes) {
        for (size_t k = 0; k < sizes.size(); ++k) {
            std::vector<uint32_t> t;
            for (int64_t i = 0; i < sizes[k]; ++i) t.push_back(uint32_t(k * 10000 + size_t(i)));
            paths.push_back(dir.file(fmt::format("train_{:06d}.bin", k)));
            write_shard(paths.back(), t, TokenFormat::llmc_u16);
        }
    }
    std::vector<Shard> shards() const {
        std::vector<Shard> s;
        for (const auto& p : paths) s.emplace_back(p, TokenFormat::llmc_u16);
        return s;
    }
};

LoaderConfig config(SampleMode mode, int64_t B, int64_t T, int64_t rank = 0, int64_t world = 1) {
    LoaderConfig c;
    c.mode = mode;
    c.B = B;
    c.T = T;
    c.rank = rank;
    c.world = world;
    c.seed = 42;
    c.vocab_size = 65536;
    return c;
}

std::vector<int64_t> values(const Batch& b) {
    auto v = b.inputs.to_vector<int64_t>();
    const auto t = b.targets.to_vector<int64_t>();
    v.insert(v.end(), t.begin(), t.end());
    return v;
}

std::vector<std::vector<int64_t>> take(DataLoader& l, int n) {
    std::vector<std::vector<int64_t>> out;
    for (int i = 0; i < n; ++i) out.push_back(values(l.next()));
    return out;
}

// Each row is T consecutive tokens, and targets are inputs shifted by one token.
void check_rows(const Batch& b) {
    const auto [B, T] = b.inputs.dims<2>();
    const auto in = b.inputs.to_vector<int64_t>(), out = b.targets.to_vector<int64_t>();
    for (int64_t i = 0; i < B * T; ++i) CHECK(out[size_t(i)] == in[size_t(i)] + 1);
    for (int64_t r = 0; r < B; ++r)
        for (int64_t t = 1; t < T; ++t) CHECK(in[size_t(r * T + t)] == in[size_t(r * T)] + t);
}

std::atomic<int64_t> allocations{0}, releases{0};
void* counting_allocate(size_t bytes) { ++allocations; return cpu_allocate(bytes); }
void counting_release(void* p, Device d) { ++releases; cpu_release(p, d); }

}  // namespace

TEST_CASE("loader: a sequential epoch reads every sample slice of every rank exactly once") {
    Fixture f({49, 33, 20});  // G = 2·2·4 = 16: 3 + 2 + 1 samples, tails dropped
    std::map<int64_t, int> seen;  // first token of each row -> times read
    std::vector<std::vector<int64_t>> firsts(2);
    for (int64_t rank : {0, 1}) {
        DataLoader l(f.shards(), config(SampleMode::sequential, 2, 4, rank, 2));
        CHECK(l.samples_per_epoch() == 6);
        for (int step = 0; step < 6; ++step) {
            const Batch b = l.next();
            CHECK(b.inputs.shape() == Shape{2, 4});
            CHECK(b.inputs.dtype() == DType::i32);
            CHECK(b.targets.storage() == b.inputs.storage());  // one host buffer per batch
            check_rows(b);
            const auto in = b.inputs.to_vector<int64_t>();
            ++seen[in[0]];
            ++seen[in[4]];
            firsts[size_t(rank)].push_back(in[0]);
        }
        CHECK(l.state().epoch == 1);
        CHECK(l.state().shard_pos == 0);
        CHECK(l.state().sample_pos == 0);
    }
    std::map<int64_t, int> want;
    for (auto [k, samples] : {std::pair{0, 3}, {1, 2}, {2, 1}})
        for (int s = 0; s < samples; ++s)
            for (int r = 0; r < 2; ++r)
                for (int i = 0; i < 2; ++i) want[k * 10000 + s * 16 + r * 8 + i * 4] = 1;
    CHECK(seen == want);
    for (size_t s = 0; s < 6; ++s) CHECK(firsts[1][s] == firsts[0][s] + 8);  // one order, rank slices
}

TEST_CASE("loader: shuffles follow the seed and the epoch; Shuffle::no is file order") {
    Fixture f({97, 97, 97, 97});
    const auto run = [&](uint64_t seed, Shuffle shuffle, int n) {
        LoaderConfig c = config(SampleMode::sequential, 1, 8);
        c.seed = seed;
        c.shuffle = shuffle;
        DataLoader l(f.shards(), c);
        std::vector<int64_t> firsts;
        for (int i = 0; i < n; ++i) firsts.push_back(l.next().inputs.to_vector<int64_t>()[0]);
        return firsts;
    };
    const auto a = run(42, Shuffle::yes, 96), b = run(42, Shuffle::yes, 96), c = run(43, Shuffle::yes, 96);
    CHECK(a == b);
    CHECK(a != c);
    CHECK(std::vector(a.begin(), a.begin() + 48) != std::vector(a.begin() + 48, a.end()));  // epochs differ
    CHECK(std::set(a.begin(), a.begin() + 48) == std::set(a.begin() + 48, a.end()));
    const auto plain = run(42, Shuffle::no, 13);
    CHECK(plain[0] == 0);
    CHECK(plain[11] == 88);
    CHECK(plain[12] == 10000);
}

TEST_CASE("loader: resume is exact, through JSON, and under another W with the same W·B·T") {
    Fixture f({101, 77, 64});
    for (SampleMode mode : {SampleMode::sequential, SampleMode::random}) {
        INFO("mode " << mode_name(mode));
        DataLoader a(f.shards(), config(mode, 2, 4, 0, 2));
        take(a, 7);
        const nlohmann::json saved = loader_state_to_json(a.state());
        const auto expected = take(a, 9);
        DataLoader b(f.shards(), config(mode, 2, 4, 0, 2));
        b.restore(loader_state_from_json(saved, "test"));
        CHECK(take(b, 9) == expected);

        // W = 1 with B = 4: each batch is rank 0's rows followed by rank 1's.
        DataLoader r1(f.shards(), config(mode, 2, 4, 1, 2));
        r1.restore(loader_state_from_json(saved, "test"));
        DataLoader w1(f.shards(), config(mode, 4, 4, 0, 1));
        w1.restore(loader_state_from_json(saved, "test"));
        for (int i = 0; i < 9; ++i) {
            const auto one = w1.next(), r = r1.next();
            const auto in = one.inputs.to_vector<int64_t>(), in1 = r.inputs.to_vector<int64_t>();
            std::vector<int64_t> joined(expected[size_t(i)].begin(), expected[size_t(i)].begin() + 8);
            joined.insert(joined.end(), in1.begin(), in1.end());
            CHECK(in == joined);
        }
    }
}

TEST_CASE("loader: random mode draws reproducible, in-range rows from every shard") {
    Fixture f({500, 50, 300});
    LoaderConfig c = config(SampleMode::random, 8, 16);
    c.prefetch = 0;
    c.index_dtype = DType::i64;
    DataLoader a(f.shards(), c), b(f.shards(), c);
    std::set<int64_t> shards_hit;
    for (int i = 0; i < 30; ++i) {
        const Batch x = a.next();
        CHECK(x.inputs.dtype() == DType::i64);
        check_rows(x);
        CHECK(values(x) == values(b.next()));
        const auto in = x.targets.to_vector<int64_t>();
        for (int64_t r = 0; r < 8; ++r) {
            const int64_t last = in[size_t(r * 16 + 15)], k = last / 10000;
            CHECK(last % 10000 < (k == 0 ? 500 : k == 1 ? 50 : 300));
            shards_hit.insert(k);
        }
    }
    CHECK(shards_hit.size() == 3);
    CHECK(a.state().sample_pos == 30);
    // Row j of micro-batch n is the Philox draw at counter (n, j).
    const std::vector<int64_t> ends{500 - 16, 500 - 16 + 50 - 16, 500 - 16 + 50 - 16 + 300 - 16};
    const Position p = random_position(42, 3, 5, ends);
    LoaderConfig one = config(SampleMode::random, 1, 16, 5, 8);
    DataLoader l(f.shards(), one);
    take(l, 3);
    CHECK(l.next().inputs.to_vector<int64_t>()[0] == p.shard * 10000 + p.offset);
}

TEST_CASE("loader: batch buffers come from the configured host allocator") {
    Fixture f({200});
    allocations = 0;
    releases = 0;
    {
        LoaderConfig c = config(SampleMode::sequential, 2, 8);
        c.allocator = HostAllocator{counting_allocate, counting_release};
        DataLoader l(f.shards(), c);
        for (int i = 0; i < 5; ++i) l.next();
    }
    CHECK(allocations.load() >= 5);
    CHECK(releases.load() == allocations.load());
}

TEST_CASE("loader: errors name the shard, the offset or the changed setting") {
    Fixture f({40, 30});
    CHECK_THROWS_CONTAINING(DataLoader(f.shards(), config(SampleMode::sequential, 2, 16)),
                            "train_000001.bin: 30 tokens: sequential batches need at least one global "
                            "sample of W·B·T + 1 = 1·2·16 + 1 = 33 tokens");
    CHECK_THROWS_CONTAINING(DataLoader(f.shards(), config(SampleMode::random, 1, 64)), "no shard is that long");
    CHECK_THROWS_CONTAINING(DataLoader(f.shards(), config(SampleMode::random, 1, 4, 2, 2)), "rank 2 is not in [0, world = 2)");
    CHECK_THROWS_CONTAINING(DataLoader({}, config(SampleMode::random, 1, 4)), "no shards");

    // The range check runs in the prefetch thread; its error comes out of next(), and stays.
    LoaderConfig small_vocab = config(SampleMode::sequential, 1, 4);
    small_vocab.vocab_size = 10005;
    small_vocab.shuffle = Shuffle::no;
    DataLoader bad(f.shards(), small_vocab);
    for (int i = 0; i < 9; ++i) bad.next();  // shard 0 holds tokens below 40
    CHECK_THROWS_CONTAINING(bad.next(), "train_000001.bin: byte 1034: token 10005 (index 5) is outside the vocabulary of 10005");
    CHECK_THROWS_CONTAINING(bad.next(), "outside the vocabulary");

    DataLoader l(f.shards(), config(SampleMode::sequential, 1, 4));
    LoaderState s = l.state();
    s.seed = 7;
    CHECK_THROWS_CONTAINING(l.restore(s), "the saved state has seed 7, this loader 42");
    s = l.state();
    s.global_sample_tokens = 8;
    CHECK_THROWS_CONTAINING(l.restore(s), "W·B·T = 8 tokens per global sample, this loader 1·1·4 = 4");
    s = l.state();
    s.shards[1].tokens = 31;
    CHECK_THROWS_CONTAINING(l.restore(s), "shard 1 was train_000001.bin (31 tokens), now train_000001.bin (30 tokens)");
    s = l.state();
    s.shards.pop_back();
    CHECK_THROWS_CONTAINING(l.restore(s), "lists 1 shards, the dataset has 2");
    s = l.state();
    s.mode = SampleMode::random;
    CHECK_THROWS_CONTAINING(l.restore(s), "the saved state is random mode, this loader is sequential");
    s = l.state();
    s.sample_pos = 1000;
    CHECK_THROWS_CONTAINING(l.restore(s), "sample_pos 1000 is outside the dataset");
    CHECK_THROWS_CONTAINING(loader_state_from_json({{"mode", "sequential"}, {"shard_pos", 0}}, "trainer_state.json"),
                            "trainer_state.json: loader state key 'sample_pos': expected a non-negative integer, found nothing");
    CHECK_THROWS_CONTAINING(loader_state_from_json({{"mode", "shuffled"}}, "x"), "key 'mode'");
    // The minimal form (spec §7.3's val_loader) is accepted.
    const LoaderState minimal = loader_state_from_json(
        {{"mode", "sequential"}, {"shard_pos", 1}, {"sample_pos", 2}}, "x");
    CHECK_FALSE(minimal.seed.has_value());
    CHECK(minimal.shards.empty());
}

TEST_CASE("sampling: permutations, bounded draws and 64-bit offsets") {
    const auto p = philox_permutation(1000, 9, 0, 0, tag_samples);
    CHECK(std::set(p.begin(), p.end()).size() == 1000);
    CHECK(p != sample_order(1000, 9, 0, 0, Shuffle::no));
    CHECK(p == philox_permutation(1000, 9, 0, 0, tag_samples));
    CHECK(shard_order(50, 9, 0, Shuffle::yes) != shard_order(50, 9, 1, Shuffle::yes));
    CHECK(below(~uint64_t(0), 10) == 9);
    CHECK(below(0, 10) == 0);
    // Sample 200000 of G = 16384 tokens starts past 2^31 tokens; rank 7's slice further on.
    CHECK(sequential_token_offset(200'000, 16'384, 7, 16, 128) == 3'276'800'000 + 7 * 16 * 128);
    CHECK(samples_in_shard(100'000'000, 16'384) == 6103);
    CHECK(samples_in_shard(16'384, 16'384) == 0);  // needs G + 1 tokens
}
