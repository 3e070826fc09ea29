// nn/hf_model.h: Hugging Face model folders (specs/formats.md §8): GPT-2 (`GPT2LMHeadModel`) and
// Llama (`LlamaForCausalLM`) checkpoints in, and lumen models back out, loadable by transformers.
//
//   nn::HfModel hf = nn::read_hf_config("weights/gpt2");   // config.json -> ModelConfig
//   nn::GPT model(hf.config);                              // (under a NoInitGuard)
//   nn::load_hf_weights(hf, model);                        // model.safetensors or the sharded index
//   nn::export_hf(model.config(), model.state_dict(), "out/hf");
//
// One explicit table maps each Hugging Face name to a lumen name and a transform (GPT-2's Conv1D
// weights are transposed; Llama's q/k/v_proj become the rows [q; k; v] of lumen's fused c_attn,
// gate/up/down_proj become c_gate/c_fc/c_proj). Missing, unexpected or mis-shaped tensors are one
// error listing every mismatch. RoPE: Hugging Face Llama is half-split (rotate_half), so import sets
// rope_pairing = half and never permutes; exporting an interleaved model permutes q/k rows inside
// each head (HF row p·hd/2 + j = lumen row 2j + p) so transformers computes the same scores, and
// loading a folder into a model built interleaved permutes them back.
#pragma once

#include "nn/config.h"
#include "nn/gpt.h"

#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace lumen::nn {

enum class HfArch { gpt2, llama };
std::string_view hf_arch_name(HfArch a);  // "gpt2", "llama"

struct HfModel {
    std::string dir;
    HfArch arch = HfArch::gpt2;
    // The architecture as lumen runs it: vocab_size is the file's (unpadded), block_size is
    // n_positions / max_position_embeddings, dropout 0, init_seed untouched.
    ModelConfig config;
};

// Reads `dir`/config.json. Errors name the file and the key, and list the supported model_types
// (gpt2, llama) or the unsupported setting (rope_scaling, head_dim != hidden/heads, an activation
// lumen lacks, ...).
HfModel read_hf_config(const std::string& dir);

// Copies the folder's tensors (model.safetensors, or model.safetensors.index.json and its shards)
// into `model`, built from hf.config with any dtype/device; model.config().block_size may be smaller
// than the checkpoint's positions (GPT-2's wpe is then cropped to its first rows). F32/BF16/F16 in
// the file convert to each parameter's dtype. Model entries a folder never holds (optical range
// buffers, LoRA adapters) are left alone; with rope_pairing = interleaved, q/k rows are permuted back
// so the model computes what transformers does. Nothing is copied unless every tensor matches; a
// tied lm_head.weight in the file must equal the embedding. A folder holding only pytorch_model.bin
// is refused with a hint to convert it.
void load_hf_weights(const HfModel& hf, GPT& model);

// read_hf_config + build (no random init) + load_hf_weights, on the CPU in f32.
std::unique_ptr<GPT> load_hf_model(const std::string& dir);

// The architecture that represents `c` exactly, or an error naming the model key that has no
// transformers equivalent (mlp = bio/osc, pos = none, ...).
HfArch hf_arch_for(const ModelConfig& c);

// Writes `dir`/config.json and `dir`/model.safetensors (tensors in `dtype`, f32 or bf16) from a
// lumen state dict (names as GPT::state_dict gives them; entries the table does not use, such as
// optical range buffers, are ignored; LoRA adapters are refused: merge them first). GPT-2: the
// `transformer.` names, Conv1D-transposed matrices, zero biases where the lumen model has none,
// lm_head omitted when tied. A new `dir` is written as a temporary directory beside it and renamed
// into place; into an existing `dir` the two files are written each through a temporary name and
// renamed, and its other files (a tokenizer, say) are kept. Errors start with "export_hf:".
void export_hf(const ModelConfig& c, const std::vector<NamedTensor>& state, const std::string& dir,
               DType dtype = DType::f32);

// The config.json text export_hf writes for `c` (tensors in `dtype`): what transformers needs to
// build the model (model_type, architectures, sizes, tie_word_embeddings, torch_dtype and dtype).
std::string hf_config_json(const ModelConfig& c, DType dtype = DType::f32);

}  // namespace lumen::nn
