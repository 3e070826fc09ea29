// training/checkpointing.cpp: saving and loading a run's model, optimizer and trainer state.
#include "training/checkpointing.h"

#include "autograd/ops/ops.h"
#include "core/error.h"
#include "data/safetensors.h"
#include "nn/optical_settings.h"

#include <fmt/format.h>

#include <fstream>
#include <set>

namespace lumen::training {

namespace {

// Σ (t · 0) over floating tensors: finite exactly when every element is (NaN and ±Inf give NaN).
bool all_finite(const std::vector<Tensor>& tensors) {
    Tensor acc;
    for (const Tensor& t : tensors) {
        if (!t.defined() || !is_floating(t.dtype()) || t.numel() == 0) continue;
        Tensor s = ops::sum(ops::mul(t.detach().to(DType::f32), ops::scalar_like(0.0, t.detach().to(DType::f32))));
        acc = acc.defined() ? ops::add(acc, s.to(acc.device())) : s;
    }
    return !acc.defined() || std::isfinite(acc.item());
}

void write_text(const std::string& path, const std::string& text) {
    std::ofstream f(path, std::ios::binary);
    check(bool(f), "checkpoint", fmt::format("cannot write {}", path));
    f << text;
    f.flush();
    check(bool(f), "checkpoint", fmt::format("writing {} failed", path));
}

}  // namespace

bool state_is_finite(const nn::GPT& model, const optim::Optimizer& optimizer) {
    return state_is_finite(model, optimizer.state_dict());
}

bool state_is_finite(const nn::GPT& model, const optim::StateDict& optimizer_state) {
    std::vector<Tensor> tensors;
    // Optical ranges are left out: an uncalibrated one is [+inf, -inf] by definition (a bypassed layer
    // never calibrates), and the statistics never take in a non-finite value.
    for (auto& [name, t] : model.state_dict())
        if (!nn::is_optical_range_name(name)) tensors.push_back(t);
    for (auto& [name, t] : optimizer_state.tensors) tensors.push_back(t);
    return all_finite(tensors);
}

data::CheckpointWriteResult save_checkpoint(const std::string& checkpoints_dir, int64_t step,
                                            const nn::GPT& model, const optim::Optimizer& optimizer,
                                            const nlohmann::json& state, const std::string& config_ini,
                                            const data::CheckpointWriteOptions& options) {
    return save_checkpoint(checkpoints_dir, step, model, optimizer.state_dict(), optimizer.name(), state, config_ini,
                           options);
}

data::CheckpointWriteResult save_checkpoint(const std::string& checkpoints_dir, int64_t step, const nn::GPT& model,
                                            const optim::StateDict& opt, const std::string& optimizer_name,
                                            const nlohmann::json& state, const std::string& config_ini,
                                            const data::CheckpointWriteOptions& options) {
    return data::write_checkpoint_dir(checkpoints_dir, step, [&](const std::string& tmp) {
        data::write_safetensors(tmp + "/model.safetensors", model.state_dict(), {{"lumen_step", std::to_string(step)}});
        data::write_safetensors(tmp + "/optimizer.safetensors", opt.tensors,
                                {{"lumen_optimizer", optimizer_name},
                                 {"step", std::to_string(step)},
                                 {"lumen_meta", opt.meta.dump()}});
        write_text(tmp + "/config.cfg", config_ini);
        data::write_trainer_state(tmp, state, {"model.safetensors", "optimizer.safetensors", "config.cfg"});
    }, options);
}

void load_model_weights(const std::string& checkpoint_dir, nn::GPT& model, bool slice_positions) {
    const std::string path = checkpoint_dir + "/model.safetensors";
    data::SafetensorsFile file = data::open_safetensors(path);
    std::set<std::string> in_file;
    for (const auto& e : file.entries()) in_file.insert(e.name);
    std::vector<std::string> missing;
    std::map<std::string, Tensor> state;
    for (auto& [name, t] : model.state_dict()) {
        if (!in_file.count(name)) {
            missing.push_back(name);
            continue;
        }
        in_file.erase(name);
        Tensor src = file.load(name);
        if (slice_positions && name == "wpe.weight" && src.dim() == 2 && t.dim() == 2 && src.size(0) > t.size(0))
            src = src.narrow(0, 0, t.size(0)).contiguous();
        state[name] = src;
    }
    if (slice_positions)  // weights only: an optical checkpoint's range statistics and counters stay behind
        for (auto it = in_file.begin(); it != in_file.end();)
            it = nn::is_optical_state_name(*it) ? in_file.erase(it) : std::next(it);
    if (slice_positions)
        for (const std::string& name : in_file)
            check(!name.ends_with(".lora_A") && !name.ends_with(".lora_B"), "checkpoint",
                  fmt::format("{} holds LoRA adapters ({}): a weights-only start (init_from = PATH) takes plain weights; "
                              "export the run with merged adapters (--export_hf DIR --merge_lora) and start from hf:DIR, "
                              "or continue it with init_from = resume",
                              path, name));
    check(missing.empty() && in_file.empty(), "checkpoint",
          fmt::format("{} does not match the model: {} missing{}{}; {} unexpected{}{}", path, missing.size(),
                      missing.empty() ? "" : " (first: ", missing.empty() ? "" : missing.front() + ")",
                      in_file.size(), in_file.empty() ? "" : " (first: ",
                      in_file.empty() ? "" : *in_file.begin() + ")"));
    model.load_state_dict(state);
}

void load_optimizer_state(const std::string& checkpoint_dir, optim::Optimizer& optimizer) {
    optimizer.load_state_dict(read_optimizer_state(checkpoint_dir, optimizer.device()));
}

optim::StateDict read_optimizer_state(const std::string& checkpoint_dir, Device device) {
    const std::string path = checkpoint_dir + "/optimizer.safetensors";
    data::SafetensorsFile file = data::open_safetensors(path);
    optim::StateDict sd;
    for (const auto& e : file.entries()) sd.tensors.emplace_back(e.name, file.load(e.name, device));
    auto meta = file.metadata().find("lumen_meta");
    check(meta != file.metadata().end(), "checkpoint", fmt::format("{}: no lumen_meta metadata", path));
    sd.meta = nlohmann::json::parse(meta->second);
    return sd;
}

}  // namespace lumen::training
