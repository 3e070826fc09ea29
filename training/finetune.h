// training/finetune.h: what ./train does around a pretrained model: starting from a Hugging Face
// folder (io.init_from = hf:DIR), LoRA adapters ([lora]) and writing a Hugging Face folder at the
// end (io.export_hf, io.merge_lora).
#pragma once

#include "nn/gpt.h"
#include "nn/hf_model.h"
#include "optim/optimizer.h"
#include "training/train_config.h"

#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace lumen::training {

// key -> value of the [model] section of c's resolved config (what a checkpoint's config.cfg records).
std::map<std::string, std::string> model_keys(const TrainConfig& c);

// init_from = hf:DIR: cfg.model becomes DIR/config.json's architecture. Keys set explicitly in [model]
// must agree with it (an error names each that does not), except dropout, gradient_checkpointing and
// init_seed (the run's), and block_size, which may be smaller than the checkpoint's context (GPT-2's
// position table is then cropped). vocab_size = auto takes the checkpoint's.
nn::HfModel adopt_hf_architecture(TrainConfig& cfg);

// Lines describing the run's LoRA adapters once the optimizer exists: the adapted modules, trainable
// and frozen parameter counts, and the memory the frozen parameters do not take (an f32 gradient
// and this optimizer's state per parameter).
std::vector<std::string> lora_report(const nn::GPT& model, const optim::Optimizer& optimizer,
                                     const std::vector<std::string>& modules);

// Adds cfg.lora's adapters to `model` (freezing every other parameter); returns the adapted modules.
std::vector<std::string> apply_run_lora(const TrainConfig& cfg, nn::GPT& model);

// Refuses, before training, an io.export_hf the model's architecture cannot be written as.
void check_exportable(const TrainConfig& cfg);

// Frozen parameters whose weight gradient a LoRA step skips, as MFU counts them (6N): every frozen
// parameter but the position table and an untied input embedding. The step costs 2 FLOPs per token less
// for each.
int64_t frozen_matmul_parameters(const nn::GPT& model);

// Writes io.export_hf from `model` (merging LoRA adapters when io.merge_lora). With `source` (the
// init_from = hf:DIR folder) the export also gets its tokenizer and generation files (when it lacks
// them), its bos/eos/pad ids and, for Llama, its max_position_embeddings. A model whose vocabulary was
// padded beyond the dataset's (`vocab_size = auto`) is written unpadded: `data_vocab` rows of wte and
// lm_head (formats.md §8.1).
void export_run(const TrainConfig& cfg, const nn::GPT& model, const nn::HfModel* source, int64_t data_vocab);

}  // namespace lumen::training
