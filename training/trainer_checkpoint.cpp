// training/trainer_checkpoint.cpp: the Trainer's checkpoint side: the checkpoint a resumed run continues
// (its model, optical and LoRA settings reconciled with this run's), the trainer state written beside each
// checkpoint and read back, and saving (specs/formats.md §7). training/trainer.cpp holds the rest.
#include "training/trainer.h"

#include "core/error.h"
#include "training/checkpointing.h"
#include "training/data_parallel.h"
#include "training/finetune.h"

#include <fmt/format.h>

#include <algorithm>
#include <filesystem>

namespace lumen::training {

namespace fs = std::filesystem;

std::optional<std::string> Trainer::reconcile_resume() {
    if (cfg_.io.init_from != InitFrom::resume) return std::nullopt;
    auto choice = data::find_resume_checkpoint(checkpoints_dir_);
    check(choice.has_value(), "train", fmt::format("io.init_from = resume, but {} holds no checkpoint", checkpoints_dir_));
    if (!choice->note.empty()) fmt::print("{}\n", choice->note);
    const std::string dir = choice->checkpoint.path;
    data::verify_checkpoint(dir);
    const TrainConfig saved = load_train_config(dir + "/config.cfg");
    const auto mine = model_keys(cfg_), theirs = model_keys(saved);
    for (const auto& [key, value] : mine) {
        auto it = theirs.find(key);
        const bool differs = it == theirs.end() || it->second != value;
        check(!(differs && cfg_.origins.count("model." + key) && key != "dropout"), "train",
              fmt::format("model.{} = {} conflicts with the checkpoint's value {} in {}: a resumed run keeps its "
                          "model", key, value, it == theirs.end() ? "(absent)" : it->second, dir));
    }
    const double dropout = cfg_.model.dropout;
    cfg_.model = saved.model;
    // An optical checkpoint is rebuilt with the rules and settings it was trained with.
    if (saved.optical.enabled) {
        OpticalConfig theirs, mine;  // the plans alone, as INI text
        theirs.plan = saved.optical.plan;
        mine.plan = cfg_.optical.plan;
        if (optical_ini(theirs) != optical_ini(mine))
            fmt::print("note: the resumed run keeps the checkpoint's optical rules and settings ({}/config.cfg)\n", dir);
        cfg_.optical.plan = saved.optical.plan;
    }
    if (cfg_.origins.count("model.dropout")) cfg_.model.dropout = dropout;
    // A run that started from a Hugging Face folder exports with that folder's tokenizer files and ids.
    if (saved.io.init_from == InitFrom::hf && fs::exists(saved.io.init_path + "/config.json"))
        hf_ = std::make_unique<nn::HfModel>(nn::read_hf_config(saved.io.init_path));
    // The adapters are part of the checkpoint's model; lora.dropout alone is the run's.
    const LoraConfig mine_lora = cfg_.lora;
    cfg_.lora = saved.lora;
    const bool same_adapters = mine_lora.r == saved.lora.r && mine_lora.alpha == saved.lora.alpha &&
                               mine_lora.targets == saved.lora.targets;
    for (const char* key : {"lora.r", "lora.alpha", "lora.targets"})
        if (cfg_.origins.count(key) && !same_adapters)
            throw Error(fmt::format("train: {} ({}) conflicts with the checkpoint's LoRA settings in {}/config.cfg: a "
                                    "resumed run keeps its adapters", key, cfg_.origins.at(key), dir));
    if (cfg_.origins.count("lora.dropout")) cfg_.lora.dropout = mine_lora.dropout;
    return dir;
}

nlohmann::json Trainer::trainer_state() {
    const auto rng = model_->dropout_generator().state();
    nlohmann::json j = {
        {"format", std::string(data::trainer_state_format)}, {"version", data::trainer_state_version},
        {"iteration", iteration_}, {"tokens_seen", tokens_seen_},
        {"best_val_loss", best_val_loss_}, {"best_iteration", best_iteration_},
        {"bad_steps_in_a_row", int64_t(bad_run_.item())}, {"bad_steps_total", int64_t(bad_total_.item())},
        {"rng", {{"seed", rng.seed}, {"stream", rng.stream}, {"offset", rng.offset}}},
        {"loader", data::loader_state_to_json(train_loader_->state())},
        {"sparsity_counters", gate_counters()},
        {"loss_scale", loss_scale_.item()}, {"clean_steps", clean_steps_.item()},
        {"world_size", world()}, {"dtype", std::string(dtype_name(cfg_.system.dtype))}, {"optical", optical_active_}};
    if (hessian_loader_) {
        const auto h = hessian_gen_.state();
        j["hessian"] = {{"loader", data::loader_state_to_json(hessian_loader_->state())},
                        {"rng", {{"seed", h.seed}, {"stream", h.stream}, {"offset", h.offset}}}};
    }
    return j;
}

void Trainer::restore_state(const nlohmann::json& st) {
    const int64_t saved_world = st.value("world_size", int64_t(1));
    check(saved_world == world(), "train",
          fmt::format("the checkpoint was written by a run of {} rank(s) (trainer_state.json world_size = {}), this run "
                      "has {}: resume with the same number of ranks ({})", saved_world, saved_world, world(),
                      saved_world == 1 ? "one process, no mpirun" : fmt::format("mpirun -np {}", saved_world)));
    auto rng_of = [](const nlohmann::json& r) {
        return RngState{r.at("seed").get<uint64_t>(), r.at("stream").get<uint64_t>(), r.at("offset").get<uint64_t>()};
    };
    iteration_ = st.at("iteration").get<int64_t>();
    tokens_seen_ = st.at("tokens_seen").get<int64_t>();
    best_val_loss_ = st.at("best_val_loss").get<double>();
    best_iteration_ = st.at("best_iteration").get<int64_t>();
    bad_run_.fill_(double(st.at("bad_steps_in_a_row").get<int64_t>()));
    bad_total_.fill_(double(st.at("bad_steps_total").get<int64_t>()));
    bad_total_seen_ = st.at("bad_steps_total").get<int64_t>();
    model_->dropout_generator().set_state(rng_of(st.at("rng")));
    train_loader_->restore(data::loader_state_from_json(st.at("loader"), "trainer_state.json loader"));
    // The saved counters are the ranks' sum: rank 0 takes them, the others start from zero.
    auto counters = st.at("sparsity_counters").get<std::vector<int64_t>>();
    if (!lead()) std::fill(counters.begin(), counters.end(), 0);
    model_->set_gate_counters(true, counters);
    loss_scale_.fill_(st.at("loss_scale").get<double>());
    clean_steps_.fill_(st.at("clean_steps").get<double>());
    if (hessian_loader_ && st.contains("hessian")) {
        hessian_loader_->restore(data::loader_state_from_json(st["hessian"].at("loader"), "trainer_state.json hessian"));
        hessian_gen_.set_state(rng_of(st["hessian"].at("rng")));
    }
}

void Trainer::save(double val_loss, bool final_step) {
    const bool best = val_loss < best_val_loss_;
    if (best) {
        best_val_loss_ = val_loss;
        best_iteration_ = iteration_;
    }
    if (!(best || cfg_.io.always_save_checkpoint || final_step)) return;
    // Every rank takes part (ZeRO-1 gathers the state); rank 0 writes.
    const optim::StateDict opt = dp_ ? dp_->full_state(*optimizer_) : optimizer_->state_dict();
    const nlohmann::json state = trainer_state();  // reads device scalars, identical on every rank
    if (!lead()) return;
    check(state_is_finite(*model_, opt), "train",
          fmt::format("iteration {}: the model or optimizer state is not finite; no checkpoint was written", iteration_));
    fmt::print("saving checkpoint to {}\n", checkpoints_dir_);
    auto result = save_checkpoint(checkpoints_dir_, iteration_, *model_, opt, optimizer_->name(), state,
                                  resolved_ini(cfg_), {cfg_.io.keep_last, best ? data::MarkBest::yes : data::MarkBest::no});
    for (const std::string& name : result.pruned) fmt::print("removed old checkpoint {}\n", name);
}
}  // namespace lumen::training
