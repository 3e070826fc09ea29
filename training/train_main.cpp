// training/train_main.cpp: ./train CONFIG.cfg [--key=value ...]: trains a model as the config says
// (training/trainer.h). `./train --help` lists every key with its default and meaning. Errors print
// "error: " and the message (naming the key, file and line) and exit 1. Ctrl-C (SIGINT) or SIGTERM
// finishes the current step, saves a checkpoint and exits with 130. `--export_hf DIR` and `--merge_lora`
// are flag spellings of io.export_hf = DIR and io.merge_lora = true.
//
// Data parallel: `mpirun -np N ./train CONFIG` runs N ranks (training/data_parallel.h); `--nproc N`
// starts them itself through mpirun on this host. Errors of rank r > 0 say "error: rank r: ...".
#include "core/error.h"
#include "dist/communicator.h"
#include "training/data_parallel.h"
#include "training/train_config.h"
#include "training/trainer.h"

#include <fmt/format.h>

#include <cstring>
#include <exception>
#include <string>
#include <vector>

int main(int argc, char** argv) {
    using namespace lumen::training;
    std::string path;
    std::vector<std::string> overrides;
    int nproc = 0;
    const lumen::dist::Launch launch = lumen::dist::detect_launch();
    for (int i = 1; i < argc; ++i) {
        const std::string arg = argv[i];
        if (arg == "--help" || arg == "-h") {
            fmt::print("{}", train_help());
            return 0;
        }
        if (arg == "--merge_lora") {  // flag spellings of io.merge_lora and io.export_hf
            overrides.push_back("--io.merge_lora=true");
        } else if (arg == "--export_hf" && i + 1 < argc) {
            overrides.push_back(std::string("--io.export_hf=") + argv[++i]);
        } else if (arg == "--nproc" || arg.starts_with("--nproc=")) {
            const std::string value = arg == "--nproc" ? (i + 1 < argc ? argv[++i] : "") : arg.substr(8);
            try {
                nproc = std::stoi(value);
            } catch (const std::exception&) {
                nproc = 0;
            }
            if (nproc < 1) {
                fmt::print(stderr, "error: --nproc '{}': expected a number of ranks ≥ 1\n", value);
                return 1;
            }
        } else if (arg.starts_with("--")) {
            overrides.push_back(arg);
        } else if (path.empty()) {
            path = arg;
        } else {
            fmt::print(stderr, "error: one config file expected, got '{}' and '{}' (see ./train --help)\n", path, arg);
            return 1;
        }
    }
    try {
        if (nproc > 0) {
            lumen::check(!launch.under_mpirun, "train", "--nproc starts the ranks itself: not under mpirun too");
            (void)load_train_config(path, overrides);  // a bad config fails here, once, not in every rank
            exec_mpirun(nproc, argc, argv);
        }
        quiet_other_ranks(launch);
        Trainer trainer(load_train_config(path, overrides));
        trainer.run();
        if (trainer.interrupted()) return 130;  // stopped by a signal, after saving
    } catch (const std::exception& e) {
        if (launch.rank > 0) fmt::print(stderr, "error: rank {}: {}\n", launch.rank, e.what());
        else fmt::print(stderr, "error: {}\n", e.what());
        return 1;
    }
    return 0;
}
