// tests/training/trainer_test.cpp: the training loop on the CPU: the loss falls; resume is bit-exact;
// k micro-batches equal one batch k times larger; a NaN loss is skipped and counted; a corrupt
// checkpoint is refused naming the previous one; MFU and the logged loss follow the spec (§11 rows 8, 9).
#include "data/checkpoint_dir.h"
#include "data/dataset.h"
#include "data/shard.h"
#include "tests/data/data_test_util.h"
#include "tests/harness.h"
#include "training/log_format.h"
#include "training/trainer.h"
#include "tests/training/trainer_test_util.h"

#include <cmath>
#include <csignal>
#include <filesystem>
#include <limits>

using namespace lumen;
using lumen::test::ScratchDir;
using namespace lumen::test::trainer;


TEST_CASE("trainer: the loss falls, evals and checkpoints land where the spec says") {
    ScratchDir dir("trainer_basic");
    make_dataset(dir.str());
    training::Trainer t(config(tiny_overrides(dir.str(), dir.file("out")), {"--max_iters=8"}));
    t.run();
    auto iters = of_type(t.metrics(), "iter"), evals = of_type(t.metrics(), "eval");
    REQUIRE(iters.size() == 8);                       // exactly max_iters updates
    REQUIRE(evals.size() == 3);                       // steps 0, 4, 8
    CHECK(evals[0].at("iter") == 0);
    CHECK(evals[2].at("iter") == 8);
    CHECK(evals[2].at("val_loss").get<double>() < evals[0].at("val_loss").get<double>() - 0.3);
    CHECK(iters[0].at("sparsity").get<double>() > 0.99);  // bio gates active at init
    const std::string ck = dir.file("out") + "/checkpoints";
    CHECK(std::filesystem::exists(ck + "/step_00000004/model.safetensors"));
    CHECK(std::filesystem::exists(ck + "/step_00000008/trainer_state.json"));
    CHECK(std::filesystem::exists(dir.file("out") + "/loss.gp"));  // the loss curve (loss.svg with gnuplot)
    CHECK(std::filesystem::exists(dir.file("out") + "/loss_eval.dat"));
    CHECK(data::read_checkpoint_pointer(ck, "latest") == "step_00000008");
    CHECK(std::filesystem::exists(dir.file("out") + "/metrics.jsonl"));
    CHECK(std::filesystem::exists(dir.file("out") + "/config.cfg"));
}

TEST_CASE("trainer: resume continues bit for bit (losses, gate activity, eval)") {
    ScratchDir dir("trainer_resume");
    make_dataset(dir.str());
    auto base = tiny_overrides(dir.str(), dir.file("straight"));
    training::Trainer straight(config(base, {"--max_iters=8"}));
    straight.run();

    auto half = tiny_overrides(dir.str(), dir.file("split"));
    training::Trainer first(config(half, {"--max_iters=4"}));
    first.run();
    training::Trainer second(config(half, {"--max_iters=8", "--init_from=resume"}));
    CHECK(second.iteration() == 4);
    second.run();

    auto a = of_type(straight.metrics(), "iter"), b = of_type(second.metrics(), "iter");
    REQUIRE(b.size() == 4);
    for (size_t i = 0; i < 4; ++i) {
        INFO("iteration " << b[i].at("iter"));
        CHECK(b[i].at("iter") == a[i + 4].at("iter"));
        CHECK(b[i].at("loss").get<double>() == a[i + 4].at("loss").get<double>());
        CHECK(b[i].at("gnorm").get<double>() == a[i + 4].at("gnorm").get<double>());
        CHECK(b[i].at("sparsity").get<double>() == a[i + 4].at("sparsity").get<double>());
    }
    auto ea = of_type(straight.metrics(), "eval"), eb = of_type(second.metrics(), "eval");
    CHECK(eb.back().at("val_loss").get<double>() == ea.back().at("val_loss").get<double>());

    // A resumed run keeps its model: an explicit conflicting model key is an error naming it.
    CHECK_THROWS_CONTAINING(training::Trainer(config(half, {"--max_iters=8", "--init_from=resume", "--n_embd=64"})),
                            "model.n_embd = 64 conflicts with the checkpoint's value 32");
}

TEST_CASE("trainer: a truncated checkpoint is refused, naming the older valid one") {
    ScratchDir dir("trainer_corrupt");
    make_dataset(dir.str());
    auto o = tiny_overrides(dir.str(), dir.file("out"));
    training::Trainer(config(o, {"--max_iters=8"})).run();
    const std::string newest = dir.file("out") + "/checkpoints/step_00000008/model.safetensors";
    std::filesystem::resize_file(newest, std::filesystem::file_size(newest) - 10);
    CHECK_THROWS_CONTAINING(training::Trainer(config(o, {"--max_iters=12", "--init_from=resume"})), "step_00000004");
    // The older one still resumes.
    data::set_checkpoint_pointer(dir.file("out") + "/checkpoints", "latest", "step_00000004");
    training::Trainer again(config(o, {"--max_iters=12", "--init_from=resume"}));
    CHECK(again.iteration() == 4);
}

TEST_CASE("trainer: a NaN loss is skipped and counted; the run goes on") {
    ScratchDir dir("trainer_nan");
    make_dataset(dir.str());
    training::Trainer t(config(tiny_overrides(dir.str(), dir.file("out")), {"--max_iters=6", "--eval_interval=100"}));
    t.loss_hook = [](const Tensor& loss, int64_t it) {
        return it == 2 ? loss * std::numeric_limits<double>::quiet_NaN() : loss;
    };
    t.run();
    auto iters = of_type(t.metrics(), "iter");
    REQUIRE(iters.size() == 6);
    CHECK(iters[2].at("bad_steps") == 1);
    CHECK(iters[3].at("bad_steps") == 0);
    CHECK(std::isfinite(iters[5].at("loss").get<double>()));
    for (auto& p : t.model().parameters())
        for (double v : p.tensor.to_vector<double>()) REQUIRE(std::isfinite(v));
    // max_bad_steps stops the run with a message.
    training::Trainer stop(config(tiny_overrides(dir.str(), dir.file("out2")),
                                  {"--max_iters=6", "--eval_interval=100", "--max_bad_steps=2"}));
    stop.loss_hook = [](const Tensor& loss, int64_t) { return loss * std::numeric_limits<double>::quiet_NaN(); };
    CHECK_THROWS_CONTAINING(stop.run(), "2 non-finite steps in a row");
}

TEST_CASE("trainer: k micro-batches give the gradient of one batch k times larger (f32)") {
    nn::ModelConfig c;
    c.n_layer = 2;
    c.n_head = 2;
    c.n_embd = 16;
    c.block_size = 8;
    c.vocab_size = 32;
    c.mlp = nn::MlpKind::bio;
    nn::GPT a(c), b(c);
    Generator gen(3);
    auto ids = [&](int64_t rows) {
        auto u = ops::rand({rows, 8}, gen, 0.0, 32.0, DType::f64).to_vector<double>();
        std::vector<int64_t> v;
        for (double x : u) v.push_back(int64_t(x));
        return Tensor::from(v, {rows, 8});
    };
    Tensor x = ids(6), y = ids(6);
    for (int64_t k = 0; k < 3; ++k)  // three micro-batches of 2, each loss / 3
        (a.loss(x.narrow(0, 2 * k, 2), y.narrow(0, 2 * k, 2)) * (1.0 / 3.0)).backward();
    b.loss(x, y).backward();
    auto pa = a.parameters(), pb = b.parameters();
    for (size_t i = 0; i < pa.size(); ++i) {
        INFO(pa[i].name);
        CHECK_CLOSE(pa[i].tensor.grad(), pb[i].tensor.grad(), test::Tolerance{1e-6, 1e-5});
    }
}

TEST_CASE("log format: MFU and tokens of the v2 run (spec §11 row 8); the logged loss is the mean") {
    auto v2 = nn::wiggle_v2_config();
    const double fpt = training::flops_per_token(v2, 45'309'312);
    CHECK(fpt == 290'730'240.0);
    auto v3 = nn::wiggle_v3_config();
    CHECK(training::flops_per_token(v3, 123'697'920) == 855'433'728.0);
    CHECK(std::abs(*training::mfu(fpt, 2 * 1024 * 16, 0.69845, 312e12) - 0.0437170) < 1e-6);
    CHECK_FALSE(training::mfu(fpt, 100, 1.0, 0).has_value());
    training::IterLine l;
    l.iteration = 10;
    l.loss = (4.0 + 3.0 + 2.0 + 1.0) / 4;  // the trainer logs loss_sum / GA
    l.time_ms = 698.45;
    l.sparsity = 0.1577;
    CHECK(training::format_iter_line(l).starts_with("iter 10: loss 2.5000, time 698.45ms, mfu -, sparsity 15.77%"));
    training::EvalLine e{2000, 3.7473, 3.7661, 0.12, {}};
    CHECK(training::format_eval_line(e) == "step 2000: train loss 3.7473, val loss 3.7661, sparsity 12.00%");
}

TEST_CASE("trainer: SophiaG's Hessian hook runs every k steps, is logged, and resumes exactly") {
    ScratchDir dir("trainer_sophia");
    make_dataset(dir.str());
    auto o = tiny_overrides(dir.str(), dir.file("a"));
    training::Trainer straight(config(o, {"--max_iters=8", "--optimizer=sophia", "--hess_interval=2"}));
    straight.run();
    auto iters = of_type(straight.metrics(), "iter");
    REQUIRE(iters.size() == 8);
    CHECK(iters[0].at("hess_ms").get<double>() == 0.0);  // iteration 0: no hook yet (it runs at 1, 3, ...)
    CHECK(iters[1].at("hess_ms").get<double>() > 0.0);
    auto h = tiny_overrides(dir.str(), dir.file("b"));
    training::Trainer(config(h, {"--max_iters=4", "--optimizer=sophia", "--hess_interval=2"})).run();
    training::Trainer resumed(config(h, {"--max_iters=8", "--optimizer=sophia", "--hess_interval=2", "--init_from=resume"}));
    resumed.run();
    auto b = of_type(resumed.metrics(), "iter");
    REQUIRE(b.size() == 4);
    for (size_t i = 0; i < 4; ++i) CHECK(b[i].at("loss").get<double>() == iters[i + 4].at("loss").get<double>());
}

TEST_CASE("trainer: SIGINT finishes the step, saves a checkpoint and stops; the run resumes from it") {
    ScratchDir dir("trainer_signal");
    make_dataset(dir.str());
    auto o = tiny_overrides(dir.str(), dir.file("out"));
    training::Trainer t(config(o, {"--max_iters=8", "--eval_interval=100"}));
    t.loss_hook = [](const Tensor& loss, int64_t it) {
        if (it == 2) std::raise(SIGINT);
        return loss;
    };
    t.run();
    CHECK(t.interrupted());
    CHECK(t.iteration() == 3);
    CHECK(data::read_checkpoint_pointer(dir.file("out") + "/checkpoints", "latest") == "step_00000003");
    training::Trainer resumed(config(o, {"--max_iters=8", "--eval_interval=100", "--init_from=resume"}));
    CHECK(resumed.iteration() == 3);
    resumed.run();
    CHECK_FALSE(resumed.interrupted());
    CHECK(resumed.iteration() == 8);
}
