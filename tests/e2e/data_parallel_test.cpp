// tests/e2e/data_parallel_test.cpp: ./train as `mpirun -np 2` on the CPU (MPI backend) against the one
// process run with twice the micro-batch: the same losses and gradient norms step for step (f32), also
// after a resume, with bf16 gradients on the wire and with ZeRO-1 (through ./train --nproc 2); and the
// errors a data-parallel run gives (a resume under another world size, GA that does not divide).
#include "tests/data/data_test_util.h"
#include "tests/dist/mpirun_testing.h"
#include "tests/harness.h"
#include "tests/training/trainer_test_util.h"

#include <nlohmann/json.hpp>

#include <cmath>
#include <cstdlib>
#include <fstream>
#include <limits>

using lumen::test::ScratchDir;

namespace {

int run(const std::string& command, const std::string& log) {
    const int status = std::system(fmt::format("{} > {} 2>&1", command, log).c_str());
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

std::string mpirun(int np) { return "OMP_NUM_THREADS=1 " + lumen::test::mpirun_command(np); }

std::string overrides(const std::string& data, const std::string& out, int batch, int ga) {
    std::string s;
    for (const std::string& o : lumen::test::trainer::tiny_overrides(data, out))
        if (!o.starts_with("--batch_size") && !o.starts_with("--gradient_accumulation_steps")) s += " " + o;
    return s + fmt::format(" --batch_size={} --gradient_accumulation_steps={} --lr_decay_iters=8 --eval_interval=4",
                           batch, ga);
}

std::vector<nlohmann::json> metrics(const std::string& out, const std::string& type) {
    std::vector<nlohmann::json> records;
    std::ifstream in(out + "/metrics.jsonl");
    for (std::string line; std::getline(in, line);)
        if (!line.empty()) records.push_back(nlohmann::json::parse(line));
    return lumen::test::trainer::of_type(records, type);
}

// Iteration lines (loss, grad_norm) and eval lines (train and val loss) agree within `rel`, for iterations
// in [from, to].
void check_same_run(const std::string& a, const std::string& b, double rel, int64_t from = 0,
                    int64_t to = std::numeric_limits<int64_t>::max()) {
    auto within = [from, to](const nlohmann::json& r) {
        const int64_t it = r.at("iter").get<int64_t>();
        return it >= from && it <= to;
    };
    auto close = [rel](double x, double y) { return std::abs(x - y) <= rel * std::max(1.0, std::abs(y)); };
    const auto ia = metrics(a, "iter"), ib = metrics(b, "iter");
    size_t compared = 0;
    for (const auto& x : ia)
        for (const auto& y : ib)
            if (x.at("iter") == y.at("iter") && within(x)) {
                INFO("iter " << x.at("iter") << ": " << x.dump() << " vs " << y.dump());
                CHECK(close(x.at("loss").get<double>(), y.at("loss").get<double>()));
                CHECK(close(x.at("gnorm").get<double>(), y.at("gnorm").get<double>()));
                ++compared;
            }
    const auto ea = metrics(a, "eval"), eb = metrics(b, "eval");
    for (const auto& x : ea)
        for (const auto& y : eb)
            if (x.at("iter") == y.at("iter") && within(x)) {
                INFO("step " << x.at("iter") << ": " << x.dump() << " vs " << y.dump());
                CHECK(close(x.at("train_loss").get<double>(), y.at("train_loss").get<double>()));
                CHECK(close(x.at("val_loss").get<double>(), y.at("val_loss").get<double>()));
                ++compared;
            }
    CHECK(compared >= 4);
}

}  // namespace

TEST_CASE("data parallel: mpirun -np 2 with batch B equals one process with 2B, step for step, and after resume") {
    ScratchDir dir("e2e_dp");
    const std::string data = dir.file("data");
    std::filesystem::create_directories(data);
    lumen::test::trainer::make_dataset(data);

    // One process: 8 rows a micro-step, 2 micro-steps. Two ranks: 4 rows each, GA 4 global = 2 per rank.
    const std::string single = dir.file("single"), twin = dir.file("twin");
    REQUIRE(run(fmt::format("{}{} --max_iters=8", LUMEN_TRAIN_BIN, overrides(data, single, 8, 2)),
                dir.file("single.log")) == 0);
    const std::string two = fmt::format("{} {}{}", mpirun(2), LUMEN_TRAIN_BIN, overrides(data, twin, 4, 4));
    {
        const int rc = run(two + " --max_iters=8", dir.file("twin.log"));
        INFO(lumen::test::read_bytes(dir.file("twin.log")));
        REQUIRE(rc == 0);
        const std::string log = lumen::test::read_bytes(dir.file("twin.log"));
        CHECK(log.find("data parallel: 2 ranks over mpi") != std::string::npos);
        CHECK(log.find("tokens per iteration will be: 256") != std::string::npos);
    }
    check_same_run(twin, single, 2e-5);
    // Rank 0 alone writes: one line per iteration in the metrics.
    CHECK(metrics(twin, "iter").size() == 8);

    SUBCASE("resume under the same world size continues the same run") {
        const std::string resumed = dir.file("resumed");
        std::filesystem::create_directories(resumed);
        REQUIRE(run(fmt::format("{} {}{} --max_iters=4", mpirun(2), LUMEN_TRAIN_BIN, overrides(data, resumed, 4, 4)),
                    dir.file("first.log")) == 0);
        const int rc = run(fmt::format("{} {}{} --max_iters=8 --init_from=resume", mpirun(2), LUMEN_TRAIN_BIN,
                                       overrides(data, resumed, 4, 4)),
                           dir.file("second.log"));
        INFO(lumen::test::read_bytes(dir.file("second.log")));
        REQUIRE(rc == 0);
        check_same_run(resumed, single, 2e-5, 5);

        // One process cannot continue a two-rank checkpoint: the error names both sizes.
        CHECK(run(fmt::format("{}{} --max_iters=12 --init_from=resume", LUMEN_TRAIN_BIN, overrides(data, resumed, 4, 4)),
                  dir.file("mismatch.log")) == 1);
        const std::string log = lumen::test::read_bytes(dir.file("mismatch.log"));
        INFO(log);
        CHECK(log.find("world_size = 2") != std::string::npos);
        CHECK(log.find("mpirun -np 2") != std::string::npos);
    }
    SUBCASE("bfloat16 on the wire: the same run within bf16 rounding") {
        const std::string bf = dir.file("bf16");
        REQUIRE(run(fmt::format("{} {}{} --max_iters=8 --dist.grad_dtype=bfloat16", mpirun(2), LUMEN_TRAIN_BIN,
                                overrides(data, bf, 4, 4)),
                    dir.file("bf16.log")) == 0);
        check_same_run(bf, single, 2e-2);
    }
    SUBCASE("ZeRO-1 through ./train --nproc 2: the same run, optimizer state sharded") {
        const std::string z = dir.file("zero1");
        const int rc = run(fmt::format("{} {}{} --max_iters=8 --dist.zero1=true --nproc 2",
                                       lumen::test::mpirun_environment(), LUMEN_TRAIN_BIN, overrides(data, z, 4, 4)),
                           dir.file("zero1.log"));
        const std::string log = lumen::test::read_bytes(dir.file("zero1.log"));
        INFO(log);
        REQUIRE(rc == 0);
        CHECK(log.find("zero1: optimizer state over 2 ranks") != std::string::npos);
        check_same_run(z, single, 2e-5);
    }
}

TEST_CASE("data parallel: an optical run averages its range statistics and stays with the one-process run") {
    // The ranks calibrate on their own rows and average the ranges after every step, so the runs differ by
    // the ranges (min/max of 4 rows, averaged, against min/max of 8) and not by more.
    ScratchDir dir("e2e_dp_optical");
    const std::string data = dir.file("data");
    std::filesystem::create_directories(data);
    lumen::test::trainer::make_dataset(data);
    const std::string optical = " --max_iters=8 --optical.enabled=true --optical.start_iter=4 --dropout=0";
    const std::string single = dir.file("single"), twin = dir.file("twin");
    REQUIRE(run(fmt::format("{}{}{}", LUMEN_TRAIN_BIN, overrides(data, single, 8, 2), optical), dir.file("s.log")) == 0);
    const int rc = run(fmt::format("{} {}{}{}", mpirun(2), LUMEN_TRAIN_BIN, overrides(data, twin, 4, 4), optical),
                       dir.file("t.log"));
    const std::string log = lumen::test::read_bytes(dir.file("t.log"));
    INFO(log);
    REQUIRE(rc == 0);
    CHECK(log.find("entering the optical phase") != std::string::npos);
    check_same_run(twin, single, 2e-5, 0, 3);  // the digital phase: iterations 0-3 and the step-0 eval
    const auto a = metrics(twin, "eval"), b = metrics(single, "eval");
    REQUIRE(a.size() == b.size());
    const double va = a.back().at("val_loss").get<double>(), vb = b.back().at("val_loss").get<double>();
    CHECK(std::isfinite(va));
    CHECK(std::abs(va - vb) <= 0.02 * vb);
}

TEST_CASE("data parallel: gradient_accumulation_steps must divide by the ranks") {
    ScratchDir dir("e2e_dp_errors");
    const std::string data = dir.file("data");
    std::filesystem::create_directories(data);
    lumen::test::trainer::make_dataset(data);
    CHECK(run(fmt::format("{} {}{} --max_iters=2", mpirun(2), LUMEN_TRAIN_BIN, overrides(data, dir.file("o"), 4, 3)),
              dir.file("ga.log")) != 0);
    const std::string log = lumen::test::read_bytes(dir.file("ga.log"));
    INFO(log);
    CHECK(log.find("gradient_accumulation_steps = 3 is global and must divide by the 2 ranks") != std::string::npos);
}

LUMEN_CUDA_TEST("data parallel cuda: mpirun -np 1 over NCCL equals the one-process run, f32 and bf16") {
    if (device.index != 0) return;  // mpirun's rank 0 takes GPU 0
    ScratchDir dir("e2e_dp_cuda");
    const std::string data = dir.file("data");
    std::filesystem::create_directories(data);
    lumen::test::trainer::make_dataset(data);
    for (const char* dtype : {"float32", "bfloat16"}) {
        INFO("dtype " << std::string(dtype));
        const std::string single = dir.file(fmt::format("single_{}", dtype)), nccl = dir.file(fmt::format("nccl_{}", dtype));
        const std::string extra = fmt::format(" --max_iters=8 --device=cuda --dtype={}", dtype);
        REQUIRE(run(fmt::format("{}{}{}", LUMEN_TRAIN_BIN, overrides(data, single, 8, 2), extra), dir.file("s.log")) == 0);
        const int rc = run(fmt::format("{} {}{}{}", mpirun(1), LUMEN_TRAIN_BIN, overrides(data, nccl, 8, 2), extra),
                           dir.file("n.log"));
        const std::string log = lumen::test::read_bytes(dir.file("n.log"));
        INFO(log);
        REQUIRE(rc == 0);
        CHECK(log.find("data parallel: 1 ranks over nccl") != std::string::npos);
        // A world of one sums nothing: the same gradients, so the same run to the bit.
        check_same_run(nccl, single, 0.0);
    }
}

LUMEN_CUDA_TEST("data parallel cuda: mpirun -np 2 over NCCL on two GPUs equals one process with twice the batch") {
    if (device.index != 0) return;  // one run for the machine
    if (lumen::cuda_device_count() < 2) {
        MESSAGE("skipped: needs two GPUs, this machine has " << lumen::cuda_device_count());
        return;
    }
    ScratchDir dir("e2e_dp_cuda2");
    const std::string data = dir.file("data");
    std::filesystem::create_directories(data);
    lumen::test::trainer::make_dataset(data);
    const std::string single = dir.file("single"), twin = dir.file("twin");
    const std::string extra = " --max_iters=8 --device=cuda --dtype=float32";
    REQUIRE(run(fmt::format("{}{}{}", LUMEN_TRAIN_BIN, overrides(data, single, 8, 2), extra), dir.file("s.log")) == 0);
    const int rc = run(fmt::format("{} {}{}{}", mpirun(2), LUMEN_TRAIN_BIN, overrides(data, twin, 4, 4), extra),
                       dir.file("t.log"));
    const std::string log = lumen::test::read_bytes(dir.file("t.log"));
    INFO(log);
    REQUIRE(rc == 0);
    CHECK(log.find("data parallel: 2 ranks over nccl") != std::string::npos);
    check_same_run(twin, single, 1e-4);  // GPU reductions over 4 rows instead of 8 round differently
}
