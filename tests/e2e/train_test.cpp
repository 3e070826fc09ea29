// tests/e2e/train_test.cpp: ./train and ./sample as a user runs them: configs/tiny.cfg on a freshly
// prepared small corpus, then sampling from its checkpoint; and the errors both print.
#include "tests/data/data_test_util.h"
#include "tests/harness.h"

#include <cstdlib>

using lumen::test::ScratchDir;

namespace {

int run(const std::string& command, const std::string& log) {
    const int status = std::system(fmt::format("{} > {} 2>&1", command, log).c_str());
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

// A small corpus -> a dataset with a 512-token vocabulary.
std::string prepare(const ScratchDir& dir) {
    std::filesystem::create_directories(dir.file("corpus"));
    std::string text;
    for (int i = 0; i < 400; ++i)
        text += fmt::format("Line {}: the quick brown fox jumps over the lazy dog, and the dog sleeps.\n", i % 37);
    lumen::test::write_bytes(dir.file("corpus/a.txt"), text);
    const std::string cmd = fmt::format("{} --input {} --out {} --vocab_size 512 --val_fraction 0.1", LUMEN_PREPARE_BIN,
                                        dir.file("corpus"), dir.file("data"));
    REQUIRE(run(cmd, dir.file("prepare.log")) == 0);
    return dir.file("data");
}

}  // namespace

TEST_CASE("train, sample: configs/tiny.cfg trains and samples end to end") {
    ScratchDir dir("e2e_train");
    const std::string data = prepare(dir), out = dir.file("out");
    const std::string train = fmt::format("{} {}/configs/tiny.cfg --dataset={} --out_dir={} --max_iters=10 "
                                          "--eval_interval=5 --log_interval=5 --block_size=32 --warmup_iters=2 --device=cpu",
                                          LUMEN_TRAIN_BIN, LUMEN_SOURCE_DIR, data, out);
    REQUIRE(run(train, dir.file("train.log")) == 0);
    const std::string log = lumen::test::read_bytes(dir.file("train.log"));
    INFO(log);
    CHECK(log.find("tokens per iteration will be: 512") != std::string::npos);
    CHECK(log.find("step 10: train loss") != std::string::npos);
    CHECK(log.find("iter 5: loss") != std::string::npos);
    CHECK(log.find("sparsity") != std::string::npos);
    CHECK(std::filesystem::exists(out + "/checkpoints/step_00000010/model.safetensors"));

    const std::string sample = fmt::format("{} --ckpt {} --prompt 'the quick' --max_new_tokens 12 --device cpu",
                                           LUMEN_SAMPLE_BIN, out);
    REQUIRE(run(sample, dir.file("sample.log")) == 0);
    const std::string s = lumen::test::read_bytes(dir.file("sample.log"));
    INFO(s);
    CHECK(s.find("the quick") != std::string::npos);
    CHECK(s.find("tokens/s") != std::string::npos);
}

TEST_CASE("train, sample: bad input gets a clear error and exit 1") {
    ScratchDir dir("e2e_train_errors");
    lumen::test::write_bytes(dir.file("bad.cfg"), "[schedule]\nlerning_rate = 1e-3\n");
    CHECK(run(fmt::format("{} {}", LUMEN_TRAIN_BIN, dir.file("bad.cfg")), dir.file("a.log")) == 1);
    CHECK(lumen::test::read_bytes(dir.file("a.log")).find("did you mean 'learning_rate'") != std::string::npos);
    CHECK(run(fmt::format("{} --help", LUMEN_TRAIN_BIN), dir.file("b.log")) == 0);
    CHECK(lumen::test::read_bytes(dir.file("b.log")).find("gradient_checkpointing") != std::string::npos);
    CHECK(run(fmt::format("{} --ckpt {}", LUMEN_SAMPLE_BIN, dir.file("nothing")), dir.file("c.log")) == 1);
    CHECK(lumen::test::read_bytes(dir.file("c.log")).find("no such file or directory") != std::string::npos);
    CHECK(run(fmt::format("{} {} --dataset={}", LUMEN_TRAIN_BIN, dir.file("missing.cfg"), dir.str()), dir.file("d.log")) == 1);
}

TEST_CASE("train, sample, bench energy: configs/wiggle_optical.cfg goes digital -> optical end to end") {
    ScratchDir dir("e2e_optical");
    const std::string data = prepare(dir), out = dir.file("out");
    const std::string train = fmt::format(
        "{} {}/configs/wiggle_optical.cfg --dataset={} --out_dir={} --device=cpu --dtype=float32 --n_layer=1 "
        "--n_head=2 --n_embd=32 --block_size=32 --batch_size=4 --max_iters=12 --lr_decay_iters=12 --warmup_iters=2 "
        "--optical.start_iter=6 --optical.warmup_iters=2 --eval_interval=6 --eval_iters=2 --log_interval=3",
        LUMEN_TRAIN_BIN, LUMEN_SOURCE_DIR, data, out);
    REQUIRE(run(train, dir.file("train.log")) == 0);
    const std::string log = lumen::test::read_bytes(dir.file("train.log"));
    INFO(log);
    CHECK(log.find("iter 6: entering the optical phase") != std::string::npos);
    CHECK(log.find("optical transform (implied rules): 7 optical modules (1 attention, 6 linear") != std::string::npos);
    CHECK(log.find("optical energy per token") != std::string::npos);
    CHECK(log.find("step 12: train loss") != std::string::npos);
    CHECK(std::filesystem::exists(out + "/loss.gp"));

    const std::string sample = fmt::format("{} --ckpt {} --prompt 'the quick' --max_new_tokens 8 --device cpu",
                                           LUMEN_SAMPLE_BIN, out);
    REQUIRE(run(sample, dir.file("sample.log")) == 0);
    const std::string s = lumen::test::read_bytes(dir.file("sample.log"));
    INFO(s);
    CHECK(s.find("optical model: 7 modules simulated optically") != std::string::npos);
    CHECK(s.find("tokens/s") != std::string::npos);

    const std::string energy = fmt::format("{} energy {}/configs/wiggle_optical.cfg --dataset={}", LUMEN_BENCH_BIN,
                                           LUMEN_SOURCE_DIR, data);
    REQUIRE(run(energy, dir.file("energy.log")) == 0);
    const std::string e = lumen::test::read_bytes(dir.file("energy.log"));
    INFO(e);
    // WiggleGPT v2's optical linear MACs per token: 4 · (384·1152 + 384·384 + 384·1536 + 2·1536² + 1536·384).
    CHECK(e.find("optical MACs          27,526,656") != std::string::npos);
    CHECK(e.find("linear 25,952,256 in 24 units") != std::string::npos);
}
