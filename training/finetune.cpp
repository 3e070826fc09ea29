// training/finetune.cpp: Hugging Face starts, LoRA adapters and Hugging Face export for ./train
// (training/finetune.h).
#include "training/finetune.h"

#include "core/error.h"
#include "nn/lora.h"

#include <nlohmann/json.hpp>

#include <fmt/format.h>

#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>

namespace lumen::training {

std::map<std::string, std::string> model_keys(const TrainConfig& c) {
    std::map<std::string, std::string> out;
    std::istringstream in(resolved_ini(c));
    std::string line, section;
    while (std::getline(in, line)) {
        if (line.starts_with("[")) section = line.substr(1, line.find(']') - 1);
        const size_t eq = line.find(" = ");
        if (section != "model" || line.starts_with("#") || eq == std::string::npos) continue;
        out[line.substr(0, eq)] = line.substr(eq + 3);
    }
    return out;
}

nn::HfModel adopt_hf_architecture(TrainConfig& cfg) {
    nn::HfModel hf = nn::read_hf_config(cfg.io.init_path);
    TrainConfig theirs = cfg;
    theirs.model = hf.config;
    const auto mine = model_keys(cfg), file = model_keys(theirs);
    const std::set<std::string> the_runs = {"dropout", "gradient_checkpointing", "init_seed", "block_size"};
    std::vector<std::string> conflicts;
    for (const auto& [key, value] : mine) {
        if (the_runs.count(key) || !cfg.origins.count("model." + key) || value == "auto") continue;  // auto: the file's
        auto it = file.find(key);
        if (it == file.end() || it->second != value)
            conflicts.push_back(fmt::format("model.{} = {} ({}) but {}/config.json gives {}", key, value,
                                            cfg.origins.at("model." + key), hf.dir, it == file.end() ? "(not read)" : it->second));
    }
    check(conflicts.empty(), "train",
          fmt::format("io.init_from = hf:{}: the model comes from the checkpoint; remove or fix these keys:\n  {}", hf.dir,
                      fmt::join(conflicts, "\n  ")));
    nn::ModelConfig m = hf.config;
    if (cfg.origins.count("model.block_size")) {
        check(cfg.model.block_size <= m.block_size, "train",
              fmt::format("model.block_size = {} ({}) exceeds the checkpoint's context {} ({}/config.json)",
                          cfg.model.block_size, cfg.origins.at("model.block_size"), m.block_size, hf.dir));
        if (cfg.model.block_size < m.block_size && !cfg.io.export_hf.empty() && hf.arch == nn::HfArch::gpt2)
            fmt::print("note: io.export_hf will record n_positions = {}: GPT-2's position rows from {} on (of {}) are "
                       "cropped with model.block_size\n", cfg.model.block_size, cfg.model.block_size, m.block_size);
        m.block_size = cfg.model.block_size;
    }
    m.dropout = cfg.model.dropout;
    m.gradient_checkpointing = cfg.model.gradient_checkpointing;
    m.init_seed = cfg.model.init_seed;
    nn::validate(m);
    cfg.model = m;
    return hf;
}

std::vector<std::string> apply_run_lora(const TrainConfig& cfg, nn::GPT& model) {
    nn::LoraSettings s;
    s.r = cfg.lora.r;
    s.alpha = cfg.lora.alpha;
    s.dropout = cfg.lora.dropout;
    s.targets = cfg.lora.targets;
    s.seed = cfg.model.init_seed;
    return nn::apply_lora(model, s).modules;
}

std::vector<std::string> lora_report(const nn::GPT& model, const optim::Optimizer& optimizer,
                                     const std::vector<std::string>& modules) {
    int64_t trainable = 0, frozen = 0;
    for (const nn::Parameter& p : model.parameters()) (p.tensor.requires_grad() ? trainable : frozen) += p.tensor.numel();
    const double state_per_param = trainable > 0 ? double(optimizer.state_bytes()) / double(trainable) : 0.0;
    const double saved = double(frozen) * (4.0 + state_per_param);  // an f32 gradient + the optimizer's state
    return {fmt::format("lora: {} modules adapted ({}{}), trainable {} parameters ({:.3f}% of {})", modules.size(),
                        modules.empty() ? "" : modules.front(), modules.size() > 1 ? ", ..." : "",
                        fmt::group_digits(trainable), 100.0 * double(trainable) / double(trainable + frozen),
                        fmt::group_digits(trainable + frozen)),
            fmt::format("lora: {} frozen parameters have no gradient and no optimizer state: {:.1f} MiB saved "
                        "(4 B gradient + {:.2f} B state per parameter)",
                        fmt::group_digits(frozen), saved / double(1 << 20), state_per_param)};
}

void check_exportable(const TrainConfig& cfg) {
    if (cfg.io.export_hf.empty()) return;
    try {
        (void)nn::hf_arch_for(cfg.model);
    } catch (const Error& e) {
        throw Error(fmt::format("io.export_hf = {}: {}", cfg.io.export_hf, e.what()));
    }
}

namespace {

// What a Hugging Face folder carries besides the weights: the source's tokenizer and generation files
// (copied when the export lacks them) and its special-token ids and, for Llama (RoPE has no table),
// its context length, written into the exported config.json.
void carry_hf_side_files(const nn::HfModel& source, const std::string& dir) {
    namespace fs = std::filesystem;
    for (const char* name : {"tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "vocab.json",
                             "merges.txt", "generation_config.json"}) {
        const fs::path from = fs::path(source.dir) / name, to = fs::path(dir) / name;
        if (fs::exists(from) && !fs::exists(to)) fs::copy_file(from, to);
    }
    std::ifstream src_in(fs::path(source.dir) / "config.json"), dst_in(fs::path(dir) / "config.json");
    nlohmann::json src = nlohmann::json::parse(src_in), dst = nlohmann::json::parse(dst_in);
    for (const char* key : {"bos_token_id", "eos_token_id", "pad_token_id"})
        if (src.contains(key)) dst[key] = src[key];
    if (source.arch == nn::HfArch::llama && src.contains("max_position_embeddings"))
        dst["max_position_embeddings"] = src["max_position_embeddings"];
    const fs::path tmp = fs::path(dir) / "config.json.tmp";
    std::ofstream(tmp) << dst.dump(2) << "\n";
    fs::rename(tmp, fs::path(dir) / "config.json");
}

}  // namespace

int64_t frozen_matmul_parameters(const nn::GPT& model) {
    int64_t n = 0;
    for (const nn::Parameter& p : model.parameters()) {
        const bool excluded = p.name == "wpe.weight" || (p.name == "wte.weight" && !model.config().tie_embeddings);
        if (!p.tensor.requires_grad() && !excluded) n += p.tensor.numel();
    }
    return n;
}

void export_run(const TrainConfig& cfg, const nn::GPT& model, const nn::HfModel* source, int64_t data_vocab) {
    std::vector<nn::NamedTensor> state = cfg.lora.enabled() ? nn::merged_state_dict(model) : model.state_dict();
    nn::ModelConfig c = cfg.model;
    const bool unpad = !source && data_vocab > 0 && data_vocab < c.vocab_size;
    if (unpad) {  // the padded rows were never a token
        for (auto& [name, t] : state)
            if (name == "wte.weight" || name == "lm_head.weight") t = t.narrow(0, 0, data_vocab).contiguous();  // (V, C)
        c.vocab_size = data_vocab;
    }
    nn::export_hf(c, state, cfg.io.export_hf);
    if (unpad) fmt::print("export: vocabulary written unpadded, {} of the model's {} rows\n", data_vocab, cfg.model.vocab_size);
    if (source) carry_hf_side_files(*source, cfg.io.export_hf);
    fmt::print("exported a Hugging Face {} folder to {}{}{}\n", nn::hf_arch_name(nn::hf_arch_for(cfg.model)),
               cfg.io.export_hf, cfg.lora.enabled() ? " (LoRA adapters merged)" : "",
               source ? fmt::format("; tokenizer files and special-token ids from {}", source->dir) : "");
}

}  // namespace lumen::training
