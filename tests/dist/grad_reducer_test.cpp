// tests/dist/grad_reducer_test.cpp: the gradient reducer (dist/grad_reducer.h) on in-process ranks
// (tests/dist/thread_group.h): W ranks each on its share of the batch, each micro loss scaled by
// 1/GA_global, give the single-process full-batch gradient (f32 wire: to f32 rounding; bf16 wire:
// to bf16 rounding); with gradient accumulation and checkpointing; buckets launch inside backward;
// the errors for a parameter reported final twice or after its bucket launched.
#include "dist/grad_reducer.h"
#include "nn/gpt.h"
#include "tests/dist/thread_group.h"
#include "tests/dist/tiny_gpt.h"
#include "tests/harness.h"

#include <algorithm>
#include <cmath>

using namespace lumen;

namespace {

nn::ModelConfig tiny() { return test::tiny_dp_gpt(); }

Tensor tokens(const Shape& shape, uint64_t seed, int64_t vocab) {
    Generator gen(seed);
    Tensor u = ops::rand(shape, gen, 0.0, double(vocab), DType::f64);
    std::vector<int64_t> ids;
    for (double x : u.to_vector<double>()) ids.push_back(int64_t(x));
    return Tensor::from(ids, shape);
}

std::vector<nn::Parameter> trainable(const nn::GPT& m) {
    std::vector<nn::Parameter> out;
    for (auto& p : m.parameters())
        if (p.tensor.requires_grad()) out.push_back(p);
    return out;
}

constexpr int64_t kT = 6;  // sequence length
constexpr int64_t kB = 2;  // rows per rank per micro-step

// The single-process gradient of the mean loss over the whole global batch (rows = world·micro·kB).
std::vector<Tensor> full_batch_grads(const Tensor& idx, const Tensor& tgt) {
    nn::GPT m(tiny());
    m.loss(idx, tgt).backward();
    std::vector<Tensor> out;
    for (auto& p : trainable(m)) out.push_back(p.tensor.grad().clone());
    return out;
}

struct DpSetup {
    int world = 2;
    int micro = 1;  // micro-steps per rank; GA_global = world · micro
    test::AsyncMode mode = test::AsyncMode::eager;
    DType wire = DType::f32;
    double bucket_mb = 0.001;  // ~1 KB: several buckets for the tiny model
    bool checkpointing = false;
};

struct DpResult {
    std::vector<std::vector<Tensor>> grads;  // [rank][param]
    size_t buckets = 0, launched_in_backward = 0;
    std::vector<std::string> report;
    bool grads_are_bucket_views = true;
};

// Rank r's rows of micro-step m: the global batch is laid out [micro][rank][kB rows].
DpResult run_dp(const DpSetup& s, const Tensor& idx, const Tensor& tgt) {
    DpResult result;
    result.grads.resize(s.world);
    std::vector<size_t> buckets(s.world), launched(s.world);
    test::ThreadGroup group(s.world, s.mode);
    group.run([&](dist::Communicator& comm) {
        const int r = comm.rank();
        nn::ModelConfig c = tiny();
        c.gradient_checkpointing = s.checkpointing;
        nn::GPT m(c);
        auto params = trainable(m);
        dist::GradReducer reducer(comm, params, {.wire = s.wire, .bucket_mb = s.bucket_mb});
        const double scale = 1.0 / double(s.world * s.micro);
        for (int mi = 0; mi < s.micro; ++mi) {
            const int64_t row = (int64_t(mi) * s.world + r) * kB;
            Tensor x = idx.narrow(0, row, kB).contiguous(), y = tgt.narrow(0, row, kB).contiguous();
            if (mi == s.micro - 1) reducer.arm();
            (m.loss(x, y) * scale).backward();
        }
        reducer.finish();
        for (auto& p : params) result.grads[r].push_back(p.tensor.grad().clone());
        buckets[r] = reducer.num_buckets();
        launched[r] = reducer.launched_in_backward();
        if (r == 0) {
            result.report = reducer.report();
            // Gradient as bucket view: the parameters of one bucket share one buffer.
            for (size_t b = 0; b < reducer.num_buckets(); ++b) {
                auto names = reducer.bucket_names(b);
                std::shared_ptr<Storage> first;
                for (auto& p : params)
                    if (std::find(names.begin(), names.end(), p.name) != names.end()) {
                        if (!first) first = p.tensor.grad().storage();
                        else if (p.tensor.grad().storage() != first) result.grads_are_bucket_views = false;
                    }
            }
        }
    });
    CHECK(buckets[0] == buckets[1]);
    CHECK(launched[0] == launched[1]);
    result.buckets = buckets[0];
    result.launched_in_backward = launched[0];
    return result;
}

// Checks every rank's gradients against the full-batch reference, and the ranks against each other.
void check_equal_to_full_batch(const DpSetup& s) {
    const int64_t rows = int64_t(s.world) * s.micro * kB;
    const int64_t vocab = tiny().vocab_size;
    Tensor idx = tokens({rows, kT}, 21, vocab), tgt = tokens({rows, kT}, 22, vocab);
    const std::vector<Tensor> ref = full_batch_grads(idx, tgt);
    const DpResult dp = run_dp(s, idx, tgt);
    const auto names = trainable(nn::GPT(tiny()));
    REQUIRE(dp.grads[0].size() == ref.size());
    CHECK(dp.buckets >= 4);                            // the tiny bucket size really splits them
    CHECK(dp.launched_in_backward == dp.buckets);      // every gradient is used: all launch during backward
    CHECK(dp.grads_are_bucket_views);
    for (size_t i = 0; i < ref.size(); ++i) {
        INFO("parameter " << names[i].name);
        CHECK(test::same_bits(dp.grads[0][i], dp.grads[1][i]));  // every rank holds the same sum
        if (s.wire == DType::f32) {
            CHECK_CLOSE(dp.grads[0][i], ref[i], test::tolerance(DType::f32));
        } else {
            // bf16 on the wire: each rank's share and the sum round to bf16 (8 significant bits).
            double max_abs = 0;
            for (double v : ref[i].to_vector<double>()) max_abs = std::max(max_abs, std::abs(v));
            CHECK_CLOSE(dp.grads[0][i], ref[i], test::Tolerance{1e-2 * max_abs, 1.6e-2});
            CHECK(test::same_bits(dp.grads[0][i].to(DType::bf16).to(DType::f32), dp.grads[0][i]));
        }
    }
    REQUIRE(dp.report.size() == 1);
    CHECK(dp.report[0] == fmt::format("gradient buckets: {} ({:g} MB), {} on the wire", dp.buckets, s.bucket_mb,
                                      s.wire == DType::f32 ? "f32" : "bf16"));
}

}  // namespace

TEST_CASE("grad reducer: 2 ranks on half the batch each equal the full batch (f32 wire, both async modes)") {
    for (auto mode : {test::AsyncMode::eager, test::AsyncMode::at_wait}) {
        INFO("async mode " << std::string(mode == test::AsyncMode::eager ? "eager" : "at_wait"));
        check_equal_to_full_batch({.mode = mode});
    }
}

TEST_CASE("grad reducer: bf16 on the wire is within bf16 rounding of the full batch") {
    check_equal_to_full_batch({.mode = test::AsyncMode::at_wait, .wire = DType::bf16});
    check_equal_to_full_batch({.mode = test::AsyncMode::eager, .wire = DType::bf16});
}

TEST_CASE("grad reducer: gradient accumulation over 2 micro-steps, armed on the last only") {
    check_equal_to_full_batch({.micro = 2, .mode = test::AsyncMode::eager});
    check_equal_to_full_batch({.micro = 2, .mode = test::AsyncMode::at_wait});
}

TEST_CASE("grad reducer: with gradient checkpointing (parameters reported from the recompute)") {
    check_equal_to_full_batch({.micro = 2, .mode = test::AsyncMode::eager, .checkpointing = true});
    check_equal_to_full_batch({.mode = test::AsyncMode::at_wait, .checkpointing = true});
}

TEST_CASE("grad reducer: buckets in reverse registration order, each within bucket_mb unless one tensor") {
    nn::GPT m(tiny());
    auto params = trainable(m);
    test::ThreadGroup group(1);
    group.run([&](dist::Communicator& comm) {
        const double mb = 0.002;  // 2097 bytes = 524 f32
        dist::GradReducer reducer(comm, params, {.bucket_mb = mb});
        std::vector<std::string> order;
        for (size_t b = 0; b < reducer.num_buckets(); ++b) {
            int64_t numel = 0;
            auto names = reducer.bucket_names(b);
            for (auto& n : names) {
                order.push_back(n);
                for (auto& p : params)
                    if (p.name == n) numel += p.tensor.numel();
            }
            if (names.size() > 1 && 4.0 * double(numel) > mb * 1024 * 1024)
                throw Error(fmt::format("bucket {} holds {} f32 in {} tensors", b, numel, names.size()));
        }
        if (order.size() != params.size()) throw Error("not every parameter is in one bucket");
        for (size_t i = 0; i < params.size(); ++i)
            if (order[i] != params[params.size() - 1 - i].name)
                throw Error(fmt::format("bucket order: {} where {} was expected", order[i],
                                        params[params.size() - 1 - i].name));
        dist::GradReducer one(comm, params, {.bucket_mb = 100});
        if (one.num_buckets() != 1) throw Error("a large bucket_mb must give one bucket");
    });
}

TEST_CASE("grad reducer: parameters without a gradient reduce their zeros in finish()") {
    // Two ranks, parameter a used with rank-dependent data, b never used.
    std::vector<std::vector<double>> a_grad(2), b_grad(2);
    std::vector<size_t> launched(2);
    test::ThreadGroup group(2, test::AsyncMode::at_wait);
    group.run([&](dist::Communicator& comm) {
        Tensor a = Tensor::zeros({3}).set_requires_grad(), b = Tensor::zeros({4}).set_requires_grad();
        dist::GradReducer reducer(comm, {{"a", a}, {"b", b}}, {.bucket_mb = 1e-6});
        Tensor x = Tensor::from(std::vector<float>{1.f, 2.f, 3.f}) * double(comm.rank() + 1);
        reducer.arm();
        ops::sum(a * x).backward();
        reducer.finish();
        a_grad[comm.rank()] = a.grad().to_vector<double>();
        b_grad[comm.rank()] = b.grad().to_vector<double>();
        launched[comm.rank()] = reducer.launched_in_backward();
    });
    for (int r = 0; r < 2; ++r) {
        CHECK(a_grad[r] == std::vector<double>{3, 6, 9});  // x·1 + x·2
        CHECK(b_grad[r] == std::vector<double>{0, 0, 0, 0});
        CHECK(launched[r] == 1);  // a's bucket from backward, b's from finish()
    }
}

TEST_CASE("grad reducer: a parameter reported after its bucket launched, or twice, is an error naming it") {
    std::string after_launch, twice, not_armed;
    test::ThreadGroup group(1);
    group.run([&](dist::Communicator& comm) {
        Tensor a = Tensor::ones({3}).set_requires_grad(), b = Tensor::ones({3}).set_requires_grad();
        Tensor x = Tensor::from(std::vector<float>{1.f, 2.f, 3.f});
        {
            // Own buckets: a's launches as soon as a is final; a second backward reaches it again.
            dist::GradReducer reducer(comm, {{"blocks.0.a", a}, {"blocks.0.b", b}}, {.bucket_mb = 1e-6});
            reducer.arm();
            ops::sum(a * x).backward();
            try {
                ops::sum(a * x).backward();
            } catch (const Error& e) {
                after_launch = e.what();
            }
        }
        {
            // One bucket: b never fires, so a's second report comes before any launch.
            dist::GradReducer reducer(comm, {{"blocks.0.a", a}, {"blocks.0.b", b}}, {.bucket_mb = 1});
            reducer.arm();
            ops::sum(a * x).backward();
            try {
                ops::sum(a * x).backward();
            } catch (const Error& e) {
                twice = e.what();
            }
            try {
                dist::GradReducer other(comm, {{"c", Tensor::ones({1}).set_requires_grad()}});
                other.finish();
            } catch (const Error& e) {
                not_armed = e.what();
            }
        }
    });
    CHECK(after_launch.find("blocks.0.a") != std::string::npos);
    CHECK(after_launch.find("after its bucket 1 was launched") != std::string::npos);
    CHECK(twice.find("blocks.0.a") != std::string::npos);
    CHECK(twice.find("reported final twice") != std::string::npos);
    CHECK(not_armed.find("not armed") != std::string::npos);
}

TEST_CASE("thread group: ranks issuing different collectives fail instead of summing the wrong buffers") {
    test::ThreadGroup group(2);
    CHECK_THROWS_CONTAINING(group.run([&](dist::Communicator& comm) {
        Tensor t = Tensor::ones({2});
        comm.all_reduce_sum_async(t, comm.rank() == 0 ? "bucket 0" : "bucket 1")->wait();
    }), "rank 1 issued all_reduce 'bucket 1'");
    // And a correct sum for every dtype the communicator takes.
    std::vector<std::vector<double>> got(2);
    group.run([&](dist::Communicator& comm) {
        for (DType dt : {DType::f32, DType::bf16, DType::f64, DType::i64}) {
            Tensor t = Tensor::full({2}, double(comm.rank() + 2), dt);
            comm.all_reduce_sum(t);
            for (double v : t.to_vector<double>()) got[comm.rank()].push_back(v);
        }
    });
    CHECK(got[0] == std::vector<double>(8, 5.0));
    CHECK(got[1] == std::vector<double>(8, 5.0));
}
