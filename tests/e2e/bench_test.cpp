// tests/e2e/bench_test.cpp: smoke test of ./bench: `kernels --device cpu --quick` runs every kernel
// benchmark, prints the table and writes one JSON line per result with a positive time and rate;
// a bad option fails with a non-zero exit. `optim --quick` steps the chosen kinds on a tiny GPT and
// reports each one's state size (AdamW: two f32 states, 8 B/param; Lion: one, 4 B/param).
#include "tests/harness.h"

#include <nlohmann/json.hpp>

#include <cstdlib>
#include <filesystem>
#include <fstream>

TEST_CASE("bench: kernels --quick on the CPU writes a result per kernel") {
    const auto dir = std::filesystem::temp_directory_path() / "lumen_bench_smoke";
    std::filesystem::create_directories(dir);
    const auto json = dir / "kernels.jsonl";
    std::filesystem::remove(json);
    const std::string command = std::string(LUMEN_BENCH_BIN) + " kernels --device cpu --quick --json " +
                                json.string() + " > " + (dir / "stdout.txt").string() + " 2>&1";
    REQUIRE(std::system(command.c_str()) == 0);
    std::ifstream in(json);
    std::vector<std::string> names;
    for (std::string line; std::getline(in, line);) {
        const auto j = nlohmann::json::parse(line);
        INFO(line);
        CHECK(j.at("ms").get<double>() > 0);
        CHECK(j.at("rate").get<double>() > 0);
        CHECK(j.at("device").get<std::string>() == "cpu");
        names.push_back(j.at("what").get<std::string>());
    }
    CHECK(names == std::vector<std::string>{"gemm_bf16_256", "gemm_f32_256", "copy_4MiB", "add_bf16_1M",
                                            "row_sum_f32_256x4096"});
    const std::string bad = std::string(LUMEN_BENCH_BIN) + " kernels --device tpu > /dev/null 2>&1";
    CHECK(std::system(bad.c_str()) != 0);
    std::filesystem::remove_all(dir);
}

TEST_CASE("bench: optim --quick on the CPU writes a result per kind with its state size") {
    const auto dir = std::filesystem::temp_directory_path() / "lumen_bench_optim_smoke";
    std::filesystem::create_directories(dir);
    const auto json = dir / "optim.jsonl", shapes = dir / "shapes.json";
    const std::string command = std::string(LUMEN_BENCH_BIN) +
                                " optim --device cpu --quick --iters 2 --kind adamw --kind lion --json " +
                                json.string() + " --shapes " + shapes.string() + " > " +
                                (dir / "stdout.txt").string() + " 2>&1";
    REQUIRE(std::system(command.c_str()) == 0);
    std::ifstream in(json);
    std::vector<std::string> kinds;
    for (std::string line; std::getline(in, line);) {
        const auto j = nlohmann::json::parse(line);
        INFO(line);
        CHECK(j.at("ms").get<double>() > 0);
        CHECK(j.at("clip_step_ms").get<double>() > 0);
        const int64_t per_param = j.at("kind") == "adamw" ? 8 : 4;
        CHECK(j.at("state_bytes").get<int64_t>() == per_param * j.at("num_params").get<int64_t>());
        kinds.push_back(j.at("kind").get<std::string>());
    }
    CHECK(kinds == std::vector<std::string>{"adamw", "lion"});
    std::ifstream shapes_in(shapes);
    const auto list = nlohmann::json::parse(shapes_in);
    REQUIRE(list.size() > 0);
    CHECK(list.at(0).at("name") == "wte.weight");
    std::filesystem::remove_all(dir);
}
