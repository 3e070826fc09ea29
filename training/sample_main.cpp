// training/sample_main.cpp: ./sample: loads a checkpoint (a step_* directory, or a run's out_dir,
// whose latest checkpoint is taken) and its dataset's tokenizer, and streams generated text to
// stdout (nn/generate.h: KV cache, temperature, top-k, top-p, repetition penalty). tokens/s goes to
// stderr at the end. Errors print "error: " and the message and exit 1.
#include "core/error.h"
#include "data/checkpoint_dir.h"
#include "data/dataset.h"
#include "data/tokenizer_io.h"
#include "nn/generate.h"
#include "nn/optical_transform.h"
#include "training/checkpointing.h"
#include "training/finetune.h"
#include "training/train_config.h"
#include "training/trainer.h"

#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <sstream>

namespace {

using namespace lumen;

// A checkpoint directory from --ckpt: itself, or the latest checkpoint of a run's out_dir.
std::string checkpoint_of(const std::string& path) {
    namespace fs = std::filesystem;
    check(fs::exists(path), "sample", fmt::format("--ckpt {}: no such file or directory", path));
    if (fs::exists(path + "/model.safetensors")) return path;
    const std::string dir = fs::exists(path + "/checkpoints") ? path + "/checkpoints" : path;
    auto choice = data::find_resume_checkpoint(dir);
    check(choice.has_value(), "sample", fmt::format("--ckpt {}: no checkpoint found there", path));
    return choice->checkpoint.path;
}

data::Tokenizer tokenizer_of(const data::DatasetInfo& info) {
    check(!info.tokenizer.empty() && info.tokenizer != "gpt2", "sample",
          fmt::format("the dataset {} names tokenizer '{}', which lumen cannot load here (it needs a tokenizer file)",
                      info.dir, info.tokenizer));
    return data::load_tokenizer(info.dir + "/" + info.tokenizer);
}

}  // namespace

int main(int argc, char** argv) {
    CLI::App app{"./sample: generate text from a lumen checkpoint"};
    std::string ckpt, prompt, prompt_file, device_name = "auto";
    int64_t num_samples = 1;
    bool no_cache = false;
    nn::SamplingOptions o;
    app.add_option("--ckpt", ckpt, "checkpoint directory (step_*) or a run's out_dir")->required();
    app.add_option("--prompt", prompt, "prompt text (default: start from the end-of-text token)");
    app.add_option("--prompt_file", prompt_file, "read the prompt from this file");
    app.add_option("--num_samples", num_samples, "samples to draw")->capture_default_str();
    app.add_option("--max_new_tokens", o.max_new_tokens, "tokens per sample")->capture_default_str();
    app.add_option("--temperature", o.temperature, "0 = greedy")->capture_default_str();
    app.add_option("--top_k", o.top_k, "keep the k most likely tokens (0 = all)")->capture_default_str();
    app.add_option("--top_p", o.top_p, "nucleus mass")->capture_default_str();
    app.add_option("--repetition_penalty", o.repetition_penalty, "CTRL rule; 1 = off")->capture_default_str();
    app.add_option("--seed", o.seed, "sampling seed (sample i uses seed + i)")->capture_default_str();
    app.add_option("--device", device_name, "auto | cpu | cuda[:N]")->capture_default_str();
    app.add_flag("--no_cache", no_cache, "recompute the whole context every token (for checking)");
    CLI11_PARSE(app, argc, argv);
    try {
        const std::string dir = checkpoint_of(ckpt);
        const training::TrainConfig cfg = training::load_train_config(dir + "/config.cfg");
        const data::DatasetInfo info = data::read_dataset_info(cfg.data.dataset);
        const data::Tokenizer tok = tokenizer_of(info);
        if (!prompt_file.empty()) {
            std::ifstream f(prompt_file);
            check(bool(f), "sample", fmt::format("--prompt_file {}: cannot read it", prompt_file));
            std::stringstream ss;
            ss << f.rdbuf();
            prompt = ss.str();
        }
        std::vector<int64_t> ids;
        for (int32_t id : tok.encode(prompt)) ids.push_back(id);
        if (ids.empty()) {
            check(tok.eot_id() >= 0, "sample", "the prompt is empty and the tokenizer has no end-of-text token to start from");
            ids.push_back(tok.eot_id());
        }
        check(int64_t(ids.size()) <= cfg.model.block_size, "sample",
              fmt::format("the prompt is {} tokens, longer than the model's context (block_size {})", ids.size(),
                          cfg.model.block_size));
        std::unique_ptr<nn::GPT> model;
        {
            nn::NoInitGuard no_init;
            model = std::make_unique<nn::GPT>(cfg.model);
        }
        if (cfg.lora.enabled()) training::apply_run_lora(cfg, *model);  // the adapters are in the checkpoint
        model->to(training::resolve_device(device_name));
        if (data::verify_checkpoint(dir).value("optical", false)) {  // sample as the optical model it is
            const nn::OpticalReport r = nn::apply_optical_transform(*model, cfg.optical.plan);
            fmt::print(stderr, "optical model: {} modules simulated optically\n", r.selected.size());
        }
        training::load_model_weights(dir, *model);
        o.use_cache = !no_cache;
        o.vocab_limit = tok.vocab_size() < cfg.model.vocab_size ? tok.vocab_size() : 0;
        o.stop_token = tok.eot_id();
        int64_t generated = 0;
        const auto start = std::chrono::steady_clock::now();
        for (int64_t s = 0; s < num_samples; ++s) {
            nn::SamplingOptions so = o;
            so.seed = o.seed + uint64_t(s);
            so.on_token = [&](int64_t id) {
                ++generated;
                if (id == o.stop_token) return;
                const int32_t one = int32_t(id);
                fmt::print("{}", tok.decode({&one, 1}));
                std::fflush(stdout);
            };
            fmt::print("{}", prompt);
            nn::generate(*model, ids, so);
            fmt::print("\n---------------\n");
        }
        const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
        fmt::print(stderr, "{} tokens in {:.2f}s: {:.1f} tokens/s\n", generated, secs, double(generated) / secs);
    } catch (const std::exception& e) {
        fmt::print(stderr, "error: {}\n", e.what());
        return 1;
    }
    return 0;
}
