// nn/gpt.h: the pre-norm transformer block and the GPT model: token embedding, optional learned
// positions, blocks, final norm, lm_head (tied to the embedding by default).
//
//   nn::GPT model(config);                    // initialised on the CPU from config.init_seed
//   model.to(Device::cuda(0));
//   model.set_compute_dtype(DType::bf16);     // f32 master weights, bf16 activations
//   Tensor loss = model.loss(idx, targets);   // idx, targets (B, T) integer
//
// Initialisation (specs/wiggle.md §§1, 3): N(0, 0.02) for linears and embeddings, the residual
// projections (attn.c_proj, mlp.c_proj) N(0, (0.02/√(2·n_layer))²), oscillation parameters as
// OscillatingActivation says, norms at 1, biases at 0; all drawn in construction order from
// Philox(init_seed, stream 0) on the CPU, so CPU and GPU models of a seed are identical.
#pragma once

#include "core/philox.h"
#include "nn/attention.h"
#include "nn/config.h"
#include "nn/layers.h"
#include "nn/mlp.h"

#include <functional>
#include <vector>

namespace lumen::nn {

class Block : public Module {
public:
    Block(const ModelConfig& c, Generator& gen, Generator* dropout_gen);
    // x (B, T, C) -> (B, T, C): x + attn(ln_1(x)), then + mlp(ln_2(x)).
    Tensor forward(const Tensor& x, KVCache* cache = nullptr, int64_t pos0 = 0);

private:
    Child<Norm> ln_1_, ln_2_;
    Child<CausalSelfAttention> attn_;
    Child<Mlp> mlp_;
};

// The bio MLPs' gate activity ("sparsity", specs/wiggle.md §2.1): active/total per layer.
struct SparsityReading {
    std::vector<double> per_layer;  // active_ℓ / total_ℓ (0 for a layer with no calls)
    double mean = 0.0;              // the unweighted mean over bio layers
    int64_t calls_total = 0;        // Σ total_ℓ
};

class GPT : public Module {
public:
    explicit GPT(const ModelConfig& config);

    const ModelConfig& config() const { return config_; }
    void set_compute_dtype(DType dt) { compute_dtype_ = dt; }
    DType compute_dtype() const { return compute_dtype_; }
    // The dropout generator (its state belongs in checkpoints).
    Generator& dropout_generator() { return dropout_gen_; }

    // Data parallelism: this process is rank `rank` of `world`, each with its own micro-batch whose
    // leading dim is the batch. Sets the dropout generator's slice (core/philox.h Generator) and every
    // optical layer's rank (OpticalLinear and optical attention dither indices, specs/optical.md §5),
    // so rank r draws the masks and dither of rows [r·b, (r+1)·b) of one process with batch W·b
    // (exactly when each draw's numel is a multiple of 4; see Generator). Stored on the model:
    // layers made optical later (nn::apply_optical_transform) inherit it. Default (0, 1) = one
    // process. Checks 0 <= rank < world.
    void set_data_parallel(int rank, int world);
    int data_parallel_rank() const { return dp_rank_; }
    int data_parallel_world() const { return dp_world_; }

    // idx (B, T) -> hidden states after the final norm (B, T, C). With caches (one per layer),
    // tokens sit at positions pos0 + t and keys/values are appended to the caches.
    Tensor hidden(const Tensor& idx, std::vector<KVCache>* caches = nullptr, int64_t pos0 = 0);
    // h (..., C) -> logits (..., V)
    Tensor head(const Tensor& h);
    Tensor forward(const Tensor& idx) { return head(hidden(idx)); }   // (B, T, V)
    // Mean cross-entropy of forward(idx) against targets (B, T); f32 scalar.
    Tensor loss(const Tensor& idx, const Tensor& targets);

    // The reported parameter count: every parameter minus wpe (nanoGPT get_num_params);
    // the tied wte/lm_head counts once.
    int64_t num_parameters_reported() const;

    // Gate statistics of the bio MLPs: counting on/off (the trainer turns it on for train and
    // eval forwards, never for sampling), and one device read of every counter of a mode.
    bool has_gate_stats();
    void set_gate_counting(bool on);
    bool gate_counting() const { return gate_counting_; }
    // `reduce`, when given, is applied to the raw counters (gate_counters' layout) after the device
    // read and before the reading is computed: under data parallelism the trainer passes a sum over
    // ranks (specs/wiggle.md §8 item 3), so every rank gets the reading of all ranks' calls. reset
    // zeroes this rank's own counters only.
    using CounterReducer = std::function<void(std::vector<int64_t>&)>;
    SparsityReading read_sparsity(bool training_mode, bool reset, const CounterReducer& reduce = {});
    // The raw counters, (2·L_bio,) i64 [active, total, ...], for checkpoints; and back.
    std::vector<int64_t> gate_counters(bool training_mode);
    void set_gate_counters(bool training_mode, const std::vector<int64_t>& values);

private:
    std::vector<SparseGate*> gates();

    ModelConfig config_;
    DType compute_dtype_ = DType::f32;
    bool gate_counting_ = false;
    int dp_rank_ = 0, dp_world_ = 1;
    Generator dropout_gen_;
    Child<Embedding> wte_, wpe_;
    Child<Dropout> drop_;
    std::vector<Child<Block>> blocks_;  // registered under "blocks" as "blocks.0", ...
    Child<Norm> ln_f_;
    Child<Linear> lm_head_;  // empty when tied
};

}  // namespace lumen::nn
