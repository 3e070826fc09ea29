// tests/nn/data_parallel_slices_test.cpp: data-parallel slices of the random draws (issue 11):
// a Generator slice (rank, world) draws the global draw's slice and advances past it (exact when
// n % 4 == 0; distinct deterministic slices otherwise); a GPT with dropout at (r, 2) on half the batch
// gives the full batch's rows at (0, 1), forward and backward, with and without activation
// checkpointing; the gate counter reducer of read_sparsity.
#include "autograd/checkpoint.h"
#include "nn/gpt.h"
#include "tests/harness.h"

#include <cmath>

using namespace lumen;

namespace {

std::vector<float> uniforms(Generator& gen, int64_t n) { return ops::rand({n}, gen).to_vector<float>(); }

std::vector<float> slice(const std::vector<float>& v, size_t from, size_t n) {
    return std::vector<float>(v.begin() + ptrdiff_t(from), v.begin() + ptrdiff_t(from + n));
}

Tensor tokens(const Shape& shape, uint64_t seed, int64_t vocab, Device device) {
    Generator gen(seed);
    Tensor u = ops::rand(shape, gen, 0.0, double(vocab), DType::f64);
    std::vector<int64_t> ids;
    for (double x : u.to_vector<double>()) ids.push_back(int64_t(x));
    return Tensor::from(ids, shape, device);
}

// ‖a − b‖ / ‖b‖ in f64.
double relative_error(const Tensor& a, const Tensor& b) {
    const std::vector<double> x = a.to_vector<double>(), y = b.to_vector<double>();
    double num = 0, den = 0;
    for (size_t i = 0; i < x.size(); ++i) {
        num += (x[i] - y[i]) * (x[i] - y[i]);
        den += y[i] * y[i];
    }
    return std::sqrt(num / std::max(den, 1e-300));
}

// Rows [r·b, (r+1)·b) of `full` against `part`: bit for bit on the CPU (its kernels are row-
// independent), within f32 rounding on CUDA (GEMM algorithms may depend on the row count). A wrong
// dropout mask gives a relative error of order 0.1.
void check_rows(const Tensor& full, const Tensor& part, int64_t r, Device device) {
    const int64_t b = part.size(0);
    const Tensor rows = full.narrow(0, r * b, b).contiguous();
    if (device.is_cuda())
        CHECK(relative_error(part, rows) < 1e-4);
    else
        CHECK(test::same_bits(part, rows));
}

nn::ModelConfig dropout_config(nn::MlpKind mlp, bool checkpointing) {
    nn::ModelConfig c;
    c.n_layer = 2;
    c.n_head = 2;
    c.n_embd = 16;
    c.block_size = 16;
    c.vocab_size = 13;
    c.mlp = mlp;
    c.dropout = 0.25;
    c.gradient_checkpointing = checkpointing;
    return c;
}

}  // namespace

TEST_CASE("data parallel: Generator slices of world 2 and 3 concatenate to the world-1 draw (n % 4 == 0)") {
    for (int64_t world : {2, 3}) {
        for (int64_t n : {4, 8, 12, 64, 100}) {
            INFO("world " << world << " n " << n);
            Generator single(0x5eed, 3);
            uniforms(single, 10);  // a non-zero starting offset
            std::vector<Generator> ranks(size_t(world), Generator(0x5eed, 3));
            for (int64_t r = 0; r < world; ++r) {
                uniforms(ranks[size_t(r)], 10);
                ranks[size_t(r)].set_slice(uint64_t(r), uint64_t(world));
            }
            for (int draw = 0; draw < 2; ++draw) {  // two successive draws: the offsets stay in step
                const std::vector<float> global = uniforms(single, world * n);
                for (int64_t r = 0; r < world; ++r) {
                    CHECK(uniforms(ranks[size_t(r)], n) == slice(global, size_t(r * n), size_t(n)));
                    CHECK(ranks[size_t(r)].state().offset == single.state().offset);
                    CHECK(ranks[size_t(r)].state().seed == single.state().seed);
                    CHECK(ranks[size_t(r)].state().stream == single.state().stream);
                }
            }
        }
    }
}

TEST_CASE("data parallel: Generator slices with n % 4 != 0 are distinct and deterministic (documented)") {
    for (int64_t n : {1, 3, 5, 10}) {
        INFO("n " << n);
        const uint64_t blocks = uint64_t((n + 3) / 4);
        Generator single(7, 1), r0(7, 1), r1(7, 1), again(7, 1);
        r0.set_slice(0, 2);
        r1.set_slice(1, 2);
        again.set_slice(1, 2);
        const std::vector<float> global = uniforms(single, 2 * n);
        const RngState s0 = r0.take(n), s1 = r1.take(n);
        CHECK(s0.offset == 0);
        CHECK(s1.offset == blocks);          // rank 1 starts after rank 0's whole blocks: no overlap
        CHECK(r0.state().offset == 2 * blocks);
        CHECK(r1.state().offset == 2 * blocks);
        CHECK(r1.state().offset >= single.state().offset);  // ≥ ⌈2n/4⌉: the next draw cannot overlap
        Generator g0(7, 1), g1(7, 1);
        g0.set_slice(0, 2);
        g1.set_slice(1, 2);
        const std::vector<float> v0 = uniforms(g0, n), v1 = uniforms(g1, n);
        CHECK(v0 == slice(global, 0, size_t(n)));        // rank 0 still starts where the single draw does
        CHECK(v1 != slice(global, size_t(n), size_t(n)));  // rank 1 differs from the single process
        CHECK(v1 == uniforms(again, n));                   // but is the same on every run
        CHECK(v0 != v1);
    }
}

TEST_CASE("data parallel: set_state keeps the slice; the saved state is the shared offset") {
    Generator g(11, 2);
    g.set_slice(1, 2);
    const RngState saved = g.state();
    const std::vector<float> first = uniforms(g, 16);
    g.set_state(saved);  // what a checkpoint restore and the activation-checkpoint recompute do
    CHECK(g.slice_rank() == 1);
    CHECK(g.slice_world() == 2);
    CHECK(uniforms(g, 16) == first);
    Generator fresh(11, 2);
    fresh.set_state(g.state());  // a resumed rank 0 continues from the same shared offset
    CHECK(fresh.state().offset == 8);  // 2 ranks × 16 elements / 4
}

LUMEN_DEVICE_TEST("data parallel: GPT with dropout, ranks (0, 2) and (1, 2) on half the batch = the full batch") {
    for (bool checkpointing : {false, true}) {
        for (auto mlp : {nn::MlpKind::gelu, nn::MlpKind::bio}) {
            INFO("checkpointing " << checkpointing << " mlp " << nn::mlp_name(mlp));
            const nn::ModelConfig c = dropout_config(mlp, checkpointing);
            nn::GPT full(c), rank0(c), rank1(c);  // the same init seed: the same weights
            rank0.set_data_parallel(0, 2);
            rank1.set_data_parallel(1, 2);
            CHECK(rank1.data_parallel_rank() == 1);
            CHECK(rank1.data_parallel_world() == 2);
            CHECK(rank1.dropout_generator().slice_rank() == 1);
            nn::GPT* halves[2] = {&rank0, &rank1};
            for (nn::GPT* m : {&full, &rank0, &rank1}) {
                m->to(device);
                m->train();
            }
            for (uint64_t step = 0; step < 2; ++step) {  // the generators stay in step across calls
                INFO("step " << step);
                const Tensor idx = tokens({4, 8}, 10 + step, c.vocab_size, device);
                const Tensor tgt = tokens({4, 8}, 20 + step, c.vocab_size, device);
                for (nn::GPT* m : {&full, &rank0, &rank1})
                    for (auto& p : m->parameters()) p.tensor.zero_grad();
                Tensor logits = full.forward(idx);                                  // (4, 8, V)
                Tensor loss = ops::cross_entropy(logits, tgt);
                loss.backward();
                for (int64_t r = 0; r < 2; ++r) {
                    nn::GPT& m = *halves[r];
                    Tensor part = m.forward(idx.narrow(0, 2 * r, 2));               // (2, 8, V)
                    check_rows(logits, part, r, device);
                    // The full loss is the mean of the two halves' means: backward of half of each.
                    (ops::cross_entropy(part, tgt.narrow(0, 2 * r, 2)) * 0.5).backward();
                    CHECK(m.dropout_generator().state().offset == full.dropout_generator().state().offset);
                }
                const auto pf = full.parameters(), p0 = rank0.parameters(), p1 = rank1.parameters();
                for (size_t i = 0; i < pf.size(); ++i) {
                    INFO(pf[i].name);
                    REQUIRE(pf[i].tensor.grad().defined());
                    const Tensor sum = (p0[i].tensor.grad() + p1[i].tensor.grad()).to(Device::cpu());
                    // f32 sums over the batch in another order: rounding only (CPU and CUDA)
                    CHECK(relative_error(sum, pf[i].tensor.grad().to(Device::cpu())) < (device.is_cuda() ? 1e-4 : 1e-5));
                }
            }
            // Control: without the slice, rank 1 draws rank 0's masks and its rows differ.
            nn::GPT unsliced(c);
            unsliced.to(device);
            unsliced.train();
            unsliced.dropout_generator().set_state(rank1.dropout_generator().state());
            full.dropout_generator().set_state(rank1.dropout_generator().state());
            const Tensor idx = tokens({4, 8}, 99, c.vocab_size, device);
            autograd::NoGradGuard no_grad;
            const Tensor logits = full.forward(idx);
            const Tensor part = unsliced.forward(idx.narrow(0, 2, 2));
            CHECK(relative_error(part, logits.narrow(0, 2, 2).contiguous()) > 1e-3);
        }
    }
}

TEST_CASE("data parallel: set_data_parallel refuses a rank outside the world") {
    nn::GPT m(dropout_config(nn::MlpKind::gelu, false));
    CHECK_THROWS_CONTAINING(m.set_data_parallel(2, 2), "rank 2 of world 2");
    CHECK_THROWS_CONTAINING(m.set_data_parallel(0, 0), "expected 0 <= rank < world");
    CHECK(m.data_parallel_world() == 1);
}

TEST_CASE("data parallel: read_sparsity's reducer sums the raw counters before the reading") {
    nn::ModelConfig c = dropout_config(nn::MlpKind::bio, false);
    c.dropout = 0.0;
    c.bio_threshold = 0.6;  // some units off, so active < total
    nn::GPT m(c);
    m.set_gate_counting(true);
    m.forward(tokens({2, 5}, 3, c.vocab_size, Device::cpu()));
    const std::vector<int64_t> local = m.gate_counters(true);
    REQUIRE(local.size() == 4);  // [active, total] × 2 bio layers
    // A fake second rank whose every unit was active on the same number of calls.
    std::vector<int64_t> seen;
    const auto reduce = [&](std::vector<int64_t>& raw) {
        seen = raw;
        for (size_t i = 0; i + 1 < raw.size(); i += 2) {
            const int64_t total = raw[i + 1];
            raw[i] += total;
            raw[i + 1] += total;
        }
    };
    const nn::SparsityReading r = m.read_sparsity(true, true, reduce);
    CHECK(seen == local);  // the reducer got the device read
    REQUIRE(r.per_layer.size() == 2);
    for (size_t l = 0; l < 2; ++l) {
        const double a = double(local[2 * l]), t = double(local[2 * l + 1]);
        CHECK(a < t);
        CHECK(r.per_layer[l] == doctest::Approx((a + t) / (2 * t)).epsilon(1e-12));
    }
    CHECK(r.mean == doctest::Approx((r.per_layer[0] + r.per_layer[1]) / 2).epsilon(1e-12));
    CHECK(r.calls_total == 2 * (local[1] + local[3]));
    CHECK(m.read_sparsity(true, false).calls_total == 0);  // reset zeroed the local counters
    // Without a reducer: this rank's reading, as before.
    m.forward(tokens({2, 5}, 3, c.vocab_size, Device::cpu()));
    const nn::SparsityReading plain = m.read_sparsity(true, false);
    CHECK(plain.per_layer[0] == doctest::Approx(double(local[0]) / double(local[1])).epsilon(1e-12));
    CHECK(plain.calls_total == local[1] + local[3]);
    CHECK_THROWS_CONTAINING(m.read_sparsity(true, false, [](std::vector<int64_t>& raw) { raw.pop_back(); }),
                            "changed the number of gate counters");
}
