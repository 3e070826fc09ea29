// training/bench_main.cpp: ./bench, lumen's benchmark binary.
//
//   ./bench kernels [--device cuda|cuda:N|cpu] [--quick] [--json FILE]
//   ./bench optim   [--device ...] [--quick] [--json FILE] [--kind adamw ...] [--iters N] [--shapes FILE]
//   ./bench optical [--device ...] [--quick] [--json FILE] [--iters N]   optical vs digital layers
//   ./bench energy  CONFIG [--key=value ...]   the optical energy report of a config, without training
//
// Prints a table (and, with --json, one JSON object per result) of kernel timings or optimizer
// steps. Compare the figures with the PyTorch peers run on the same GPU in the same session
// (shared/perf/, benchmarks/peer_optim.py) and record both in benchmarks/RESULTS.md.
#include "benchmarks/kernels.h"
#include "benchmarks/optical_bench.h"
#include "benchmarks/optim_bench.h"
#include "core/error.h"
#include "data/dataset.h"
#include "nn/layers.h"
#include "training/finetune.h"
#include "training/optical_phase.h"
#include "training/train_config.h"

#include <CLI/CLI.hpp>
#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <cstdio>
#include <fstream>

using namespace lumen;

int main(int argc, char** argv) {
    CLI::App app{"lumen benchmarks"};
    app.require_subcommand(1);
    std::string device_name = cuda_device_count() > 0 ? "cuda" : "cpu";
    bool quick = false;
    std::string json_path;
    CLI::App* kernels = app.add_subcommand("kernels", "GEMM, copy, elementwise and reduction kernels");
    kernels->add_option("--device", device_name, "cpu, cuda or cuda:N (default: cuda when present)");
    kernels->add_flag("--quick", quick, "small sizes (a smoke run)");
    kernels->add_option("--json", json_path, "also write the results as JSON lines to this file");
    bench::OptimOptions optim_options;
    CLI::App* optim = app.add_subcommand("optim", "the optimizer step of every kind on GPT-2 124M's parameters");
    optim->add_option("--device", device_name, "cpu, cuda or cuda:N (default: cuda when present)");
    optim->add_flag("--quick", quick, "a tiny model (a smoke run)");
    optim->add_option("--json", json_path, "also write the results as JSON lines to this file");
    optim->add_option("--kind", optim_options.kinds, "only these kinds (default: every kind)");
    optim->add_option("--iters", optim_options.iters, "timed steps (median; default 20)")->check(CLI::Range(1, 100000));
    optim->add_option("--shapes", optim_options.shapes_path, "write the parameter shapes (JSON) for peer_optim.py");
    bench::OpticalBenchOptions optical_options;
    CLI::App* optical = app.add_subcommand("optical", "optical linear and attention against their digital twins");
    optical->add_option("--device", device_name, "cpu, cuda or cuda:N (default: cuda when present)");
    optical->add_flag("--quick", quick, "small shapes (a smoke run)");
    optical->add_option("--json", json_path, "also write the results as JSON lines to this file");
    optical->add_option("--iters", optical_options.iters, "timed runs (median; default 20)")->check(CLI::Range(1, 100000));
    std::string energy_config;
    std::vector<std::string> energy_overrides;
    CLI::App* energy = app.add_subcommand("energy", "the optical energy report of a ./train config (specs/optical.md §8)");
    energy->add_option("config", energy_config, "the ./train config file")->required();
    energy->add_option("overrides", energy_overrides, "--key=value overrides, as ./train takes them");
    energy->allow_extras();
    CLI11_PARSE(app, argc, argv);

    try {
        if (energy->parsed()) {
            for (const std::string& extra : energy->remaining()) energy_overrides.push_back(extra);
            training::TrainConfig c = training::load_train_config(energy_config, energy_overrides);
            if (c.io.init_from == training::InitFrom::hf) training::adopt_hf_architecture(c);  // the folder's model
            if (c.model.vocab_size == 0) {  // auto: as ./train resolves it (padded to a multiple of 64)
                const int64_t v = data::read_dataset_info(c.data.dataset).vocab_size;
                check(v > 0, "bench energy", fmt::format("model.vocab_size = auto, but {} records no vocab_size", c.data.dataset));
                c.model.vocab_size = (v + 63) / 64 * 64;
            }
            nn::NoInitGuard no_init;
            const nn::GPT model(c.model);
            fmt::print("{}", training::optical_plan_text(model, c));
            return 0;
        }
        if (optical->parsed()) {
            optical_options.device = device_from_name(device_name);
            optical_options.quick = quick;
            const auto results = bench::run_optical_benchmarks(optical_options);
            fmt::print("{:<48} {:>11} {:>11} {:>7} {:>11} {:>11}\n", "fwd+bwd", "digital ms", "optical ms", "ratio",
                       "dig fwd ms", "opt fwd ms");
            for (const auto& r : results)
                fmt::print("{:<48} {:>11.4f} {:>11.4f} {:>7.3f} {:>11.4f} {:>11.4f}\n", r.what, r.digital_ms,
                           r.optical_ms, r.ratio(), r.digital_forward_ms, r.optical_forward_ms);
            if (!json_path.empty()) {
                std::ofstream out(json_path);
                if (!out) throw Error(fmt::format("bench: cannot write {}", json_path));
                for (const auto& r : results)
                    out << nlohmann::json{{"what", r.what}, {"digital_ms", r.digital_ms}, {"optical_ms", r.optical_ms},
                                          {"ratio", r.ratio()}, {"digital_forward_ms", r.digital_forward_ms},
                                          {"optical_forward_ms", r.optical_forward_ms},
                                          {"device", optical_options.device.str()}}
                               .dump()
                        << "\n";
            }
            return 0;
        }
        if (optim->parsed()) {
            optim_options.device = device_from_name(device_name);
            optim_options.quick = quick;
            const auto results = bench::run_optim_benchmarks(optim_options);
            fmt::print("{:<10} {:>10} {:>13} {:>14} {:>8}\n", "optimizer", "step ms", "clip+step ms", "state MB",
                       "B/param");
            for (const auto& r : results)
                fmt::print("{:<10} {:>10.4f} {:>13.4f} {:>14.2f} {:>8.3f}\n", r.kind, r.step_ms, r.clip_step_ms,
                           double(r.state_bytes) / 1e6, double(r.state_bytes) / double(r.num_params));
            for (const auto& r : results)
                for (const auto& line : r.report) fmt::print("  {}\n", line);
            if (!json_path.empty()) {
                std::ofstream out(json_path);
                if (!out) throw Error(fmt::format("bench: cannot write {}", json_path));
                for (const auto& r : results)
                    out << nlohmann::json{{"what", "optim_step_" + r.kind}, {"kind", r.kind}, {"ms", r.step_ms},
                                          {"clip_step_ms", r.clip_step_ms}, {"state_bytes", r.state_bytes},
                                          {"num_params", r.num_params}, {"num_tensors", r.num_tensors},
                                          {"iters", optim_options.iters}, {"device", optim_options.device.str()}}
                               .dump()
                        << "\n";
            }
            return 0;
        }
        bench::KernelOptions options{device_from_name(device_name), quick};
        const auto results = bench::run_kernel_benchmarks(options);
        fmt::print("{:<26} {:>10} {:>12}  {}\n", "kernel", "ms", "rate", "compare with");
        for (const auto& r : results)
            fmt::print("{:<26} {:>10.4f} {:>8.3f} {:<7} {}\n", r.what, r.ms, r.rate, r.unit, r.note);
        if (!json_path.empty()) {
            std::ofstream out(json_path);
            if (!out) throw Error(fmt::format("bench: cannot write {}", json_path));
            for (const auto& r : results)
                out << nlohmann::json{{"what", r.what}, {"ms", r.ms}, {"rate", r.rate}, {"unit", r.unit},
                                      {"device", options.device.str()}}.dump() << "\n";
        }
    } catch (const std::exception& e) {
        std::fprintf(stderr, "error: %s\n", e.what());
        return 1;
    }
    return 0;
}
