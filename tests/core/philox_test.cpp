// tests/core/philox_test.cpp: Philox4x32-10 against Random123's known-answer vectors, and the
// documented mapping of random tensors onto it (core/philox.h) against a recomputation written
// here from the description: block/word per element, counter and key packing, the uniform and
// Box-Muller formulas, how far a draw advances the generator, and the draws' statistics.
#include "tests/harness.h"

#include <fmt/format.h>

#include <cmath>

using namespace lumen;

namespace {

// Philox4x32 with 10 rounds, written from Salmon et al. (SC'11) / Random123's philox.h.
std::array<uint32_t, 4> ref_philox(std::array<uint32_t, 4> ctr, std::array<uint32_t, 2> key) {
    for (int round = 0; round < 10; ++round) {
        if (round > 0) {  // the key is bumped between rounds
            key[0] += 0x9E3779B9u;
            key[1] += 0xBB67AE85u;
        }
        const uint64_t prod0 = uint64_t(0xD2511F53u) * ctr[0];
        const uint64_t prod1 = uint64_t(0xCD9E8D57u) * ctr[2];
        ctr = {uint32_t(prod1 >> 32) ^ ctr[1] ^ key[0], uint32_t(prod1),
               uint32_t(prod0 >> 32) ^ ctr[3] ^ key[1], uint32_t(prod0)};
    }
    return ctr;
}

// The 32-bit word behind element i of a draw from (seed, stream, offset), per core/philox.h.
uint32_t ref_word(uint64_t seed, uint64_t stream, uint64_t offset, uint64_t i, unsigned word) {
    const uint64_t block = offset + i / 4;
    const auto out = ref_philox({uint32_t(block & 0xffffffffu), uint32_t(block >> 32),
                                 uint32_t(stream & 0xffffffffu), uint32_t(stream >> 32)},
                                {uint32_t(seed & 0xffffffffu), uint32_t(seed >> 32)});
    return out[word];
}

double ref_uniform(const RngState& s, uint64_t i) {
    return std::ldexp(double(ref_word(s.seed, s.stream, s.offset, i, unsigned(i % 4)) >> 8), -24);
}

// Box-Muller on the word pair (2p, 2p+1) of element i's block, in double.
double ref_normal(const RngState& s, uint64_t i) {
    const unsigned w = unsigned(i % 4), p = w / 2;
    const double u1 = std::ldexp(double((ref_word(s.seed, s.stream, s.offset, i, 2 * p) >> 8) + 1), -24);
    const double u2 = std::ldexp(double(ref_word(s.seed, s.stream, s.offset, i, 2 * p + 1) >> 8), -24);
    const double r = std::sqrt(-2 * std::log(u1)), angle = 2 * M_PI * u2;
    return w % 2 == 0 ? r * std::cos(angle) : r * std::sin(angle);
}

const RngState states[] = {
    {0, 0, 0},
    {42, 0, 0},
    {0x0123456789abcdefull, 7, 3},
    {1, 0xfedcba9876543210ull, 0},
    {99, 1, 0xfffffffeull},  // the block index crosses into its high word within a draw
    {~0ull, ~0ull, 0x7fffffffffffull},
};

}  // namespace

TEST_CASE("philox: Random123 known-answer vectors for philox4x32_10") {
    struct Kat { Philox4 ctr; uint32_t k0, k1; std::array<uint32_t, 4> out; };
    const Kat kats[] = {
        {{{0, 0, 0, 0}}, 0, 0, {0x6627e8d5, 0xe169c58d, 0xbc57ac4c, 0x9b00dbd8}},
        {{{0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff}}, 0xffffffff, 0xffffffff,
         {0x408f276d, 0x41c83b0e, 0xa20bc7c6, 0x6d5451fd}},
        {{{0x243f6a88, 0x85a308d3, 0x13198a2e, 0x03707344}}, 0xa4093822, 0x299f31d0,
         {0xd16cfe09, 0x94fdcceb, 0x5001e420, 0x24126ea1}},
    };
    for (const Kat& k : kats) {
        const Philox4 got = philox4x32_10(k.ctr, k.k0, k.k1);
        INFO(fmt::format("ctr {:08x} key {:08x}", k.ctr.v[0], k.k0));
        for (int w = 0; w < 4; ++w) CHECK(got.v[w] == k.out[size_t(w)]);
        const auto ref = ref_philox({k.ctr.v[0], k.ctr.v[1], k.ctr.v[2], k.ctr.v[3]}, {k.k0, k.k1});
        CHECK(ref == k.out);  // the test's own Philox is right too
    }
    // And the two agree on arbitrary inputs.
    for (uint32_t c = 0; c < 1000; ++c) {
        const Philox4 got = philox4x32_10(Philox4{{c, c * 7919u, ~c, c << 16}}, c * 31u, ~c * 17u);
        const auto ref = ref_philox({c, c * 7919u, ~c, c << 16}, {c * 31u, ~c * 17u});
        REQUIRE(std::array<uint32_t, 4>{got.v[0], got.v[1], got.v[2], got.v[3]} == ref);
    }
}

TEST_CASE("philox: element i maps to block offset + i/4, word i%4, with documented packing") {
    for (const RngState& s : states) {
        INFO(fmt::format("seed {:x} stream {:x} offset {:x}", s.seed, s.stream, s.offset));
        for (uint64_t i = 0; i < 64; ++i) {
            const Philox4 block = philox_block(s, i / 4);
            CHECK(block.v[i % 4] == ref_word(s.seed, s.stream, s.offset, i, unsigned(i % 4)));
            // uniform = (word >> 8) · 2^-24, exactly
            CHECK(double(philox_uniform(s, i)) == ref_uniform(s, i));
            CHECK(std::abs(double(philox_normal(s, i)) - ref_normal(s, i)) < 2e-5);
        }
    }
    CHECK(philox_uniform_from_word(0) == 0.0f);
    CHECK(philox_uniform_from_word(0xff) == 0.0f);  // the low 8 bits are dropped
    CHECK(philox_uniform_from_word(0x100) == 0x1p-24f);
    CHECK(philox_uniform_from_word(0xffffffffu) == 1.0f - 0x1p-24f);  // never 1
}

TEST_CASE("philox: normal pairs share a block's word pairs (Box-Muller)") {
    const RngState s{5, 3, 11};
    for (uint64_t i = 0; i < 400; i += 2) {
        // Elements 2p and 2p+1 of a block are r·cos and r·sin of the same pair: z0² + z1² = r².
        const double z0 = philox_normal(s, i), z1 = philox_normal(s, i + 1);
        const unsigned p = unsigned(i % 4) / 2;
        const double u1 = std::ldexp(double((ref_word(s.seed, s.stream, s.offset, i, 2 * p) >> 8) + 1), -24);
        CHECK(std::abs(z0 * z0 + z1 * z1 + 2 * std::log(u1)) < 1e-4);
    }
}

TEST_CASE("philox: ops::rand and ops::randn equal the documented streams") {
    for (const RngState& s : states) {
        Generator gen;
        gen.set_state(s);
        Tensor u = ops::rand({3, 7, 5}, gen);  // 105 elements, not a multiple of 4
        CHECK(gen.state().offset == s.offset + 27);
        CHECK(gen.state().seed == s.seed);
        CHECK(gen.state().stream == s.stream);
        std::vector<float> uv = u.to_vector<float>();
        for (size_t i = 0; i < uv.size(); ++i) REQUIRE(double(uv[i]) == ref_uniform(s, i));

        gen.set_state(s);
        std::vector<float> sv = ops::rand({50}, gen, -2.0, 3.0).to_vector<float>();
        for (size_t i = 0; i < sv.size(); ++i)  // lo + (hi - lo)·u, in f32
            REQUIRE(sv[i] == -2.0f + 5.0f * float(ref_uniform(s, i)));

        gen.set_state(s);
        std::vector<float> zv = ops::randn({101}, gen).to_vector<float>();
        CHECK(gen.state().offset == s.offset + 26);
        for (size_t i = 0; i < zv.size(); ++i) {
            INFO("element " << i);
            REQUIRE(std::abs(double(zv[i]) - ref_normal(s, i)) < 2e-5);
            REQUIRE(zv[i] == philox_normal(s, i));
        }
        gen.set_state(s);
        std::vector<float> mv = ops::randn({33}, gen, 3.0, 0.5).to_vector<float>();
        for (size_t i = 0; i < mv.size(); ++i) REQUIRE(std::abs(double(mv[i]) - (3.0 + 0.5 * ref_normal(s, i))) < 2e-5);
    }
}

TEST_CASE("philox: Generator::take advances by ceil(n / 4) blocks") {
    Generator gen(7, 2);
    CHECK(gen.state().offset == 0);
    const std::pair<int64_t, uint64_t> steps[] = {{0, 0}, {1, 1}, {3, 1}, {4, 1}, {5, 2}, {8, 2}, {9, 3}, {1001, 251}};
    uint64_t offset = 0;
    for (const auto& [n, blocks] : steps) {
        const RngState s = gen.take(n);
        CHECK(s.offset == offset);  // the draw starts where the last one ended
        CHECK(s.seed == 7);
        CHECK(s.stream == 2);
        offset += blocks;
        CHECK(gen.state().offset == offset);
    }
    // Draws through ops advance the same way; a scalar is one element, an empty tensor none.
    Generator g(1);
    ops::rand({}, g);
    CHECK(g.state().offset == 1);
    ops::rand({0, 5}, g);
    CHECK(g.state().offset == 1);
    ops::randn({2, 3}, g);
    CHECK(g.state().offset == 3);
}

TEST_CASE("philox: consecutive draws continue the stream; a prefix equals a shorter draw") {
    Generator a(123), b(123);
    std::vector<float> whole = ops::rand({40}, a).to_vector<float>();
    std::vector<float> first = ops::rand({8}, b).to_vector<float>();
    std::vector<float> second = ops::rand({32}, b).to_vector<float>();
    CHECK(std::equal(first.begin(), first.end(), whole.begin()));
    CHECK(std::equal(second.begin(), second.end(), whole.begin() + 8));
    // A draw of 5 uses two blocks, so the next draw starts at element 8 of the long stream.
    Generator c(123);
    ops::rand({5}, c);
    std::vector<float> after = ops::rand({4}, c).to_vector<float>();
    CHECK(std::equal(after.begin(), after.end(), whole.begin() + 8));
    for (int64_t n : {1, 2, 3, 17, 39}) {
        Generator fresh(123);
        std::vector<float> prefix = ops::rand({n}, fresh).to_vector<float>();
        CHECK(std::equal(prefix.begin(), prefix.end(), whole.begin()));
        Generator fz(123), fz_long(123);
        std::vector<float> zs = ops::randn({n}, fz).to_vector<float>();
        std::vector<float> zl = ops::randn({40}, fz_long).to_vector<float>();
        CHECK(std::equal(zs.begin(), zs.end(), zl.begin()));
    }
    // The same state gives the same draw.
    Generator d(123);
    CHECK(ops::rand({40}, d).to_vector<float>() == whole);
}

TEST_CASE("philox: different seeds and streams give different draws") {
    Generator base(10, 0), other_stream(10, 1), other_seed(11, 0), high_stream(10, 1ull << 32),
        high_seed(10 + (1ull << 32), 0);
    const std::vector<float> v = ops::rand({64}, base).to_vector<float>();
    for (Generator* g : {&other_stream, &other_seed, &high_stream, &high_seed}) {
        const std::vector<float> w = ops::rand({64}, *g).to_vector<float>();
        int same = 0;
        for (size_t i = 0; i < v.size(); ++i) same += v[i] == w[i];
        CHECK(same < 3);
    }
}

TEST_CASE("philox: uniform and normal statistics on 1e5 samples") {
    Generator gen(2024, 5);
    const int64_t n = 100000;
    std::vector<double> u = ops::rand({n}, gen, 0.0, 1.0, DType::f64).to_vector<double>();
    double sum = 0, sq = 0, lo = 1, hi = 0;
    int64_t low_decile = 0;
    for (double x : u) {
        sum += x;
        sq += x * x;
        lo = std::min(lo, x);
        hi = std::max(hi, x);
        low_decile += x < 0.1;
    }
    const double mean = sum / n, var = sq / n - mean * mean;
    CHECK(lo >= 0.0);
    CHECK(hi < 1.0);
    CHECK(lo < 1e-3);
    CHECK(hi > 1 - 1e-3);
    CHECK(std::abs(mean - 0.5) < 0.01);             // σ/√n ≈ 0.0009
    CHECK(std::abs(var - 1.0 / 12) < 0.003);
    CHECK(std::abs(double(low_decile) / n - 0.1) < 0.01);

    std::vector<double> r = ops::rand({n}, gen, -3.0, 5.0).to_vector<double>();
    CHECK(*std::min_element(r.begin(), r.end()) >= -3.0);
    CHECK(*std::max_element(r.begin(), r.end()) < 5.0);

    for (auto [m, s] : {std::pair{0.0, 1.0}, std::pair{3.0, 2.0}}) {
        std::vector<double> z = ops::randn({n}, gen, m, s).to_vector<double>();
        double zs = 0, zq = 0;
        int64_t within = 0, finite = 0;
        for (double x : z) {
            zs += x;
            zq += x * x;
            within += std::abs(x - m) < s;
            finite += std::isfinite(x);
        }
        const double zm = zs / n, zsd = std::sqrt(zq / n - zm * zm);
        INFO("mean " << m << " std " << s);
        CHECK(finite == n);
        CHECK(std::abs(zm - m) < 0.02 * s);
        CHECK(std::abs(zsd - s) < 0.02 * s);
        CHECK(std::abs(double(within) / n - 0.6827) < 0.01);
    }
}

TEST_CASE("philox: f64, bf16 and f16 draws equal the f32 draw converted") {
    for (DType dt : {DType::f64, DType::bf16, DType::f16}) {
        INFO(dtype_name(dt));
        Generator a(77, 1), b(77, 1);
        Tensor x = ops::rand({9, 11}, a, -1.0, 2.0, dt);
        Tensor ref = ops::rand({9, 11}, b, -1.0, 2.0, DType::f32).to(dt);
        CHECK(x.dtype() == dt);
        CHECK_CLOSE(x, ref, test::Tolerance{0, 0});
        Tensor z = ops::randn({9, 11}, a, 0.5, 3.0, dt);
        Tensor zref = ops::randn({9, 11}, b, 0.5, 3.0, DType::f32).to(dt);
        CHECK_CLOSE(z, zref, test::Tolerance{0, 0});
        CHECK(a.state().offset == b.state().offset);
    }
}

LUMEN_DEVICE_TEST("philox: draws are the same on every device") {
    Generator a(3, 9), b(3, 9);
    Tensor x = ops::rand({5, 13}, a, 0.0, 1.0, DType::f32, device);
    CHECK(x.device() == device);
    CHECK(x.to(Device::cpu()).to_vector<float>() == ops::rand({5, 13}, b).to_vector<float>());
    // Normal draws go through logf/sqrtf/cosf, whose last bit may differ between the host's libm
    // and the GPU's: equal to f32 rounding (a few ulp), as core/philox.h promises.
    Tensor z = ops::randn({37}, a, 0.0, 1.0, DType::f32, device);
    CHECK_CLOSE(z.to(Device::cpu()), ops::randn({37}, b), test::Tolerance{2e-6, 2e-6});
}
