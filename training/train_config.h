// training/train_config.h: ./train's keys (specs/wiggle.md §6, specs/optimizers.md §§3–9) and the typed
// TrainConfig built from them. training/config.h is the engine; this file says which keys exist, their
// sections, defaults and ranges, and the rules between keys.
//
//   TrainConfig c = load_train_config("configs/tiny.cfg", {"--max_iters=50", "--model.n_layer=2"});
//   for (const std::string& w : c.warnings) fmt::print("warning: {}\n", w);
//   fmt::print("{}", resolved_ini(c));     // printed at start and saved in out_dir
//
// Sections: [io] [eval] [data] [model] [schedule] [optim] [system] [lora] [dist] [optical*]. Optimizer hyper-parameters default
// to the optimizer's config defaults (specs/optimizers.md), so `optimizer = lion` alone is a sensible
// run: schedule.learning_rate is 6e-4 for adamw but 1e-4 for lion, and an sgd config must set it.
// Keys the chosen optimizer (or model) does not read are errors when set (`rho` under adamw, `rope_theta`
// with pos = learned), except stable_iters without wsd, which is a warning (the spec's rule).
// Legacy WiggleGPT/nanoGPT keys (use_bio_mlp, use_rope, compile, wandb_*, ...) are errors naming the
// lumen equivalent. The [optical*] sections are parsed by training/optical_config.h.
#pragma once

#include "core/dtype.h"
#include "data/loader.h"
#include "nn/config.h"
#include "nn/lora.h"
#include "optim/groups.h"
#include "optim/optimizer.h"
#include "training/config.h"
#include "training/optical_config.h"
#include "training/schedule.h"

#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace lumen::training {

enum class InitFrom { scratch, resume, path, hf };

struct IoConfig {
    std::string out_dir = "out";
    int64_t log_interval = 1;
    bool always_save_checkpoint = true;  // checkpoint at every eval (the best one is always kept)
    InitFrom init_from = InitFrom::scratch;
    std::string init_path;     // init_from = path: the checkpoint directory; hf: the Hugging Face dir
    int64_t keep_last = 3;     // checkpoints kept besides the best
    int64_t max_bad_steps = 20;  // stop after this many non-finite steps in a row
    std::string export_hf;       // "" = none; else a Hugging Face folder written at the end of the run
    bool merge_lora = false;     // export_hf of a LoRA run: merge the adapters into the weights
};

// LoRA fine-tuning (nn/lora.h): r = 0 is off.
struct LoraConfig {
    int64_t r = 0;
    double alpha = 32;
    double dropout = 0;
    std::string targets = nn::kLoraDefaultTargets;  // every Linear in the blocks
    bool enabled() const { return r > 0; }
};

struct EvalConfig {
    int64_t eval_interval = 2000;
    int64_t eval_iters = 200;  // batches per split
    bool eval_only = false;
};

struct DataConfig {
    std::string dataset = "data/default";  // a dataset directory (data/dataset.h)
    int64_t batch_size = 12;                 // sequences per micro-batch per rank
    int64_t gradient_accumulation_steps = 40;  // global: each of W ranks runs GA/W micro-steps
    data::SampleMode loader = data::SampleMode::sequential;
};

struct OptimConfig {
    // kind; main = the main group's Hyper (main.lr = schedule.learning_rate, NaN for Adafactor's
    // relative step); aux_adamw = Muon's auxiliary AdamW (muon only); decay_embeddings.
    // Sophia's main.tokens_per_step is set to batch_size·block_size·GA.
    optim::GroupConfig groups;
    double grad_clip = 1.0;  // global-norm clip; 0 = none
    optim::Kind kind() const { return groups.kind; }
};

struct SystemConfig {
    DType dtype = DType::bf16;    // bf16 | f16 (dynamic loss scaling) | f32
    std::string device = "auto";  // "auto" | "cpu" | "cuda" | "cuda:N" (validated; resolving auto is the trainer's)
    uint64_t seed = 1337;
    double peak_tflops = 0;       // 0 = auto: the device's dense peak for the dtype
};

// Data parallelism (dist/), read when the run is started by mpirun or ./train --nproc N.
struct DistConfig {
    DType grad_dtype = DType::f32;  // f32 | bf16 on the wire
    double bucket_mb = 25;          // gradient bucket size (f32 bytes)
    bool zero1 = false;             // optimizer state sharded across ranks
    double timeout_s = 300;         // a collective not done after this aborts the job; 0 = never
};

struct TrainConfig {
    IoConfig io;
    EvalConfig eval;
    DataConfig data;
    nn::ModelConfig model;     // model.vocab_size = 0 means `auto`: the dataset's vocab_size (dataset.json)
    ScheduleConfig schedule;   // with Adafactor's relative step: learning_rate = min_lr = 1 (unused)
    OptimConfig optim;
    SystemConfig system;
    OpticalConfig optical;     // [optical*] (training/optical_config.h)
    LoraConfig lora;
    DistConfig dist;

    std::vector<std::string> warnings;           // print them at start
    std::map<std::string, std::string> origins;  // keys set explicitly: full name -> "file:line" / "command line '...'"

    // batch_size · block_size · gradient_accumulation_steps (global tokens per optimizer step).
    int64_t tokens_per_step() const { return data.batch_size * model.block_size * data.gradient_accumulation_steps; }
};

// The registry of ./train's keys (built once).
const Schema& train_schema();
// `./train --help`: usage plus every key with its default and meaning, by section.
std::string train_help();

// Reads `path` ("" = no file), applies `overrides` ("--key=value", "--section.key=value") in order, and
// builds and validates the TrainConfig. Throws lumen::Error naming the key, where it was set (file and
// line, or the command-line argument) and, for unknown keys, the closest valid key.
TrainConfig load_train_config(const std::string& path, const std::vector<std::string>& overrides = {});
// The same from a Config already read (tests, tools).
TrainConfig train_config_from(const Config& config);

// Every key of `c` as INI text (sections; keys the config does not read as comments): reading it back
// with load_train_config gives the same TrainConfig. Reflects edits made to `c` after loading (e.g. a
// vocab_size resolved from the dataset).
std::string resolved_ini(const TrainConfig& c);

// The optimizer's config defaults (specs/optimizers.md §§3–9 "config" columns): groups.main with
// lr = the default schedule.learning_rate (NaN for sgd: required), groups.aux_adamw for muon, and
// grad_clip (1.0; 0 for adafactor, whose update clipping replaces it).
OptimConfig optim_config_defaults(optim::Kind kind);

}  // namespace lumen::training
