// nn/gpt.cpp: Block and GPT: construction, forward, loss, parameter counts, gate statistics,
// the data-parallel slice.
#include "nn/gpt.h"

#include "autograd/checkpoint.h"
#include "autograd/node.h"
#include "autograd/ops/ops.h"
#include "core/error.h"
#include "nn/optical_linear.h"

#include <fmt/format.h>

namespace lumen::nn {

namespace {

std::shared_ptr<Norm> make_norm(const ModelConfig& c) {
    if (c.norm == NormKind::rmsnorm) return std::make_shared<RMSNorm>(c.n_embd, c.eps());
    return std::make_shared<LayerNorm>(c.n_embd, c.bias, c.eps());
}

constexpr uint64_t kInitStream = 0, kDropoutStream = 1;

}  // namespace

Block::Block(const ModelConfig& c, Generator& gen, Generator* dropout_gen) {
    ln_1_ = register_module("ln_1", make_norm(c));
    attn_ = register_module("attn", std::make_shared<CausalSelfAttention>(c, gen, dropout_gen));
    ln_2_ = register_module("ln_2", make_norm(c));
    mlp_ = register_module("mlp", make_mlp(c, gen, dropout_gen));
}

Tensor Block::forward(const Tensor& x, KVCache* cache, int64_t pos0) {
    Tensor h = x + attn_->forward(ln_1_->forward(x), cache, pos0);  // (B, T, C)
    return h + mlp_->forward(ln_2_->forward(h));
}

GPT::GPT(const ModelConfig& config) : config_(config), dropout_gen_(config.init_seed, kDropoutStream) {
    validate(config_);
    const ModelConfig& c = config_;
    Generator gen(c.init_seed, kInitStream);
    wte_ = register_module("wte", std::make_shared<Embedding>(c.vocab_size, c.n_embd, gen));
    if (c.pos == PosKind::learned)
        wpe_ = register_module("wpe", std::make_shared<Embedding>(c.block_size, c.n_embd, gen));
    drop_ = register_module("drop", std::make_shared<Dropout>(c.dropout, &dropout_gen_));
    auto list = register_module("blocks", std::make_shared<ModuleList>());
    for (int64_t l = 0; l < c.n_layer; ++l)
        blocks_.push_back(list->append(std::make_shared<Block>(c, gen, &dropout_gen_)));
    ln_f_ = register_module("ln_f", make_norm(c));
    if (!c.tie_embeddings)
        lm_head_ = register_module("lm_head", std::make_shared<Linear>(c.n_embd, c.vocab_size, false, gen,
                                                                       0.02, Role::head));
}

Tensor GPT::hidden(const Tensor& idx, std::vector<KVCache>* caches, int64_t pos0) {
    check(idx.dim() == 2 && !is_floating(idx.dtype()), "GPT", "expected token ids idx (B, T) of an integer dtype",
          {{"idx", idx}});
    const auto [B, T] = idx.dims<2>();
    check(T >= 1 && pos0 + T <= config_.block_size, "GPT",
          fmt::format("sequence of {} tokens at position {} exceeds block_size {}", T, pos0, config_.block_size),
          {{"idx", idx}});
    check(!caches || int64_t(caches->size()) == config_.n_layer, "GPT", "expected one KV cache per layer");
    Tensor x = wte_->forward(idx);                                               // (B, T, C)
    if (wpe_) {
        Tensor pos = ops::arange(double(pos0), double(pos0 + T), 1.0, DType::i64, idx.device());
        x = x + wpe_->forward(pos);                                              // (T, C) broadcast
    }
    x = drop_->forward(cast_to(x, compute_dtype_));
    for (size_t l = 0; l < blocks_.size(); ++l) {
        Block& block = *blocks_[l];
        KVCache* cache = caches ? &(*caches)[l] : nullptr;
        if (config_.gradient_checkpointing && training() && !cache && autograd::grad_enabled()) {
            // NOTE: a checkpoint records only when an input requires grad; with a frozen embedding (LoRA)
            // the first block's input does not, and the trainable parameters inside would get no gradient
            if (!x.requires_grad()) x = x.detach().requires_grad_(true);
            x = autograd::checkpoint([&block](const std::vector<Tensor>& in) { return block.forward(in[0]); },
                                     {x}, {&dropout_gen_});
        } else {
            x = block.forward(x, cache, pos0);
        }
    }
    return ln_f_->forward(x);                                                    // (B, T, C)
}

Tensor GPT::head(const Tensor& h) {
    if (lm_head_) return lm_head_->forward(h);
    const Tensor& w = wte_->weight();                                            // (V, C)
    Shape out = h.shape();
    out.back() = config_.vocab_size;
    return ops::matmul(h.reshape({-1, config_.n_embd}), cast_to(w, h.dtype()).transpose(0, 1)).reshape(out);
}

Tensor GPT::loss(const Tensor& idx, const Tensor& targets) {
    Tensor logits = forward(idx);                                                // (B, T, V)
    return ops::cross_entropy(logits, targets);
}

void GPT::set_data_parallel(int rank, int world) {
    check(world >= 1 && rank >= 0 && rank < world, "GPT::set_data_parallel",
          fmt::format("data-parallel rank {} of world {}: expected 0 <= rank < world", rank, world));
    dp_rank_ = rank;
    dp_world_ = world;
    dropout_gen_.set_slice(uint64_t(rank), uint64_t(world));
    for (auto& [name, m] : modules()) {
        if (auto* optical = dynamic_cast<OpticalLinear*>(m)) optical->set_data_parallel(rank, world);
        if (auto* attn = dynamic_cast<CausalSelfAttention*>(m)) attn->set_data_parallel(rank, world);
    }
}

int64_t GPT::num_parameters_reported() const {
    int64_t n = num_parameters();
    if (wpe_) n -= wpe_->weight().numel();
    return n;
}

std::vector<SparseGate*> GPT::gates() {
    std::vector<SparseGate*> out;
    for (auto& [name, m] : modules())
        if (auto* g = dynamic_cast<SparseGate*>(m)) out.push_back(g);
    return out;
}

bool GPT::has_gate_stats() { return !gates().empty(); }

void GPT::set_gate_counting(bool on) {
    gate_counting_ = on;
    for (SparseGate* g : gates()) g->set_counting(on);
}

std::vector<int64_t> GPT::gate_counters(bool training_mode) {
    std::vector<Tensor> parts;
    for (SparseGate* g : gates()) parts.push_back(g->counts(training_mode));
    if (parts.empty()) return {};
    return ops::cat(parts, 0).to_vector<int64_t>();                              // one device read
}

void GPT::set_gate_counters(bool training_mode, const std::vector<int64_t>& values) {
    auto gs = gates();
    check(values.size() == 2 * gs.size(), "GPT",
          fmt::format("expected {} gate counters (2 per bio layer), got {}", 2 * gs.size(), values.size()));
    for (size_t i = 0; i < gs.size(); ++i) {
        Tensor c = gs[i]->counts(training_mode);
        c.copy_(Tensor::from(std::vector<int64_t>{values[2 * i], values[2 * i + 1]}, {2}, c.device()));
    }
}

SparsityReading GPT::read_sparsity(bool training_mode, bool reset, const CounterReducer& reduce) {
    SparsityReading r;
    std::vector<int64_t> raw = gate_counters(training_mode);
    if (reduce) {
        const size_t n = raw.size();
        reduce(raw);
        check(raw.size() == n, "GPT::read_sparsity",
              fmt::format("the counter reducer changed the number of gate counters from {} to {}", n, raw.size()));
    }
    for (size_t i = 0; i + 1 < raw.size(); i += 2) {
        r.per_layer.push_back(raw[i + 1] > 0 ? double(raw[i]) / double(raw[i + 1]) : 0.0);
        r.calls_total += raw[i + 1];
    }
    for (double f : r.per_layer) r.mean += f / double(r.per_layer.size());
    if (reset)
        for (SparseGate* g : gates()) Tensor(g->counts(training_mode)).zero_();
    return r;
}

}  // namespace lumen::nn
