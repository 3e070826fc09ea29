// training/train_main.cpp: ./train CONFIG.cfg [--key=value ...]: trains a model as the config says
// (training/trainer.h). `./train --help` lists every key with its default and meaning. Errors print
// "error: " and the message (naming the key, file and line) and exit 1. Ctrl-C (SIGINT) or SIGTERM
// finishes the current step, saves a checkpoint and exits with 130. `--export_hf DIR` and `--merge_lora`
// are flag spellings of io.export_hf = DIR and io.merge_lora = true.
#include "core/error.h"
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
        Trainer trainer(load_train_config(path, overrides));
        trainer.run();
        if (trainer.interrupted()) return 130;  // stopped by a signal, after saving
    } catch (const std::exception& e) {
        fmt::print(stderr, "error: {}\n", e.what());
        return 1;
    }
    return 0;
}
