// nn/config.h: the one model configuration struct (DESIGN.md §6) and its validation.
//
// Defaults are nanoGPT's GPT-2 124M (12/12/768, LayerNorm, learned positions, GELU, tied head,
// no bias). validate() throws an error that names the offending key as the config file spells it
// (`model.n_head`).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace lumen::nn {

enum class NormKind { layernorm, rmsnorm };
enum class PosKind { learned, rope, none };
enum class MlpKind { gelu, gelu_tanh, swiglu, osc, bio };  // gelu: exact (erf); gelu_tanh: GPT-2's gelu_new
enum class RopePairingKind { half, interleaved };

std::string_view norm_name(NormKind k);
std::string_view pos_name(PosKind k);
std::string_view mlp_name(MlpKind k);
std::string_view rope_pairing_name(RopePairingKind k);
// Parse the names above; nullopt when unknown.
std::optional<NormKind> parse_norm(std::string_view s);
std::optional<PosKind> parse_pos(std::string_view s);
std::optional<MlpKind> parse_mlp(std::string_view s);
std::optional<RopePairingKind> parse_rope_pairing(std::string_view s);

struct ModelConfig {
    int64_t n_layer = 12;
    int64_t n_head = 12;
    int64_t n_kv_head = 0;  // 0 = n_head (multi-head); fewer = grouped-query attention
    int64_t n_embd = 768;
    int64_t block_size = 1024;
    int64_t vocab_size = 50304;
    bool bias = false;
    double dropout = 0.0;
    NormKind norm = NormKind::layernorm;
    double norm_eps = 0.0;  // 0 = the norm's default: 1e-5 (layernorm), 1e-6 (rmsnorm)
    PosKind pos = PosKind::learned;
    double rope_theta = 10000.0;
    RopePairingKind rope_pairing = RopePairingKind::half;
    MlpKind mlp = MlpKind::gelu;
    double mlp_ratio = 4.0;
    int64_t mlp_hidden = 0;  // 0 = mlp_ratio · n_embd (Llama checkpoints give it explicitly)
    double bio_threshold = 0.25;
    bool tie_embeddings = true;
    bool gradient_checkpointing = false;
    uint64_t init_seed = 1337;

    int64_t kv_heads() const { return n_kv_head > 0 ? n_kv_head : n_head; }
    int64_t head_size() const { return n_embd / n_head; }
    int64_t hidden() const;
    double eps() const;
};

// Throws naming the key (e.g. "model.n_head: n_embd (384) must be divisible by n_head (5)").
void validate(const ModelConfig& c);

// The published WiggleGPT shapes (specs/wiggle.md §5) and nanoGPT's GPT-2 124M.
ModelConfig wiggle_v2_config();    // 4/6/384, bio, layernorm, learned, vocab 50304
ModelConfig wiggle_v3_config();    // 12/12/768, osc, rmsnorm, rope (pos none reproduces the run)
ModelConfig gpt2_124m_config();    // 12/12/768, gelu, layernorm, learned

}  // namespace lumen::nn
