// training/checkpointing.h: a training run's state on disk (specs/formats.md §7): model and
// optimizer tensors as safetensors, the trainer state as JSON, the resolved config, written
// atomically through data/checkpoint_dir.h; and the way back.
#pragma once

#include "data/checkpoint_dir.h"
#include "nn/gpt.h"
#include "optim/optimizer.h"

#include <nlohmann/json.hpp>

#include <string>

namespace lumen::training {

// True when every floating tensor of the model and the optimizer state is finite (one device
// reduction per tensor, one host read in all).
bool state_is_finite(const nn::GPT& model, const optim::Optimizer& optimizer);
bool state_is_finite(const nn::GPT& model, const optim::StateDict& optimizer_state);

// Writes checkpoints/step_<step>/ with model.safetensors, optimizer.safetensors, config.cfg and
// trainer_state.json (`state` plus the files' sizes and CRC32C).
data::CheckpointWriteResult save_checkpoint(const std::string& checkpoints_dir, int64_t step,
                                            const nn::GPT& model, const optim::Optimizer& optimizer,
                                            const nlohmann::json& state, const std::string& config_ini,
                                            const data::CheckpointWriteOptions& options);
// The same from an optimizer state already in hand (a data-parallel run's, gathered across ranks under
// ZeRO-1); `optimizer_name` is Optimizer::name().
data::CheckpointWriteResult save_checkpoint(const std::string& checkpoints_dir, int64_t step, const nn::GPT& model,
                                            const optim::StateDict& optimizer_state, const std::string& optimizer_name,
                                            const nlohmann::json& state, const std::string& config_ini,
                                            const data::CheckpointWriteOptions& options);

// Copies model.safetensors of `checkpoint_dir` into the model's tensors (converting dtype, keeping
// device). Names must match both ways; with `slice_positions` (init_from = PATH: weights only), a wpe
// with more rows than the model's is cut to the model's block_size (continuing under a smaller
// context) and an optical checkpoint's range statistics and call counters are left out.
void load_model_weights(const std::string& checkpoint_dir, nn::GPT& model, bool slice_positions = false);
// The optimizer state of a checkpoint (after load_model_weights), exactly.
void load_optimizer_state(const std::string& checkpoint_dir, optim::Optimizer& optimizer);
// The optimizer state of a checkpoint as saved, its tensors on `device`.
optim::StateDict read_optimizer_state(const std::string& checkpoint_dir, Device device);

}  // namespace lumen::training
