// training/bench_main.cpp: ./bench, lumen's benchmark binary.
//
//   ./bench kernels [--device cuda|cuda:N|cpu] [--quick] [--json FILE]
//
// Prints a table (and, with --json, one JSON object per result) of kernel timings. Compare the
// figures with the PyTorch peers run on the same GPU in the same session (shared/perf/) and record
// both in benchmarks/RESULTS.md.
#include "benchmarks/kernels.h"
#include "core/error.h"

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
    CLI11_PARSE(app, argc, argv);

    try {
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
