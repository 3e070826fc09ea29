// nn/config.cpp: names of the model's enum keys, validation, and the published shapes.
#include "nn/config.h"

#include "core/error.h"

#include <fmt/format.h>

#include <cmath>

namespace lumen::nn {

namespace {

template <typename E, size_t N>
std::optional<E> parse_from(std::string_view s, const std::pair<std::string_view, E> (&table)[N]) {
    for (const auto& [name, value] : table)
        if (name == s) return value;
    return std::nullopt;
}
template <typename E, size_t N>
std::string_view name_from(E e, const std::pair<std::string_view, E> (&table)[N]) {
    for (const auto& [name, value] : table)
        if (value == e) return name;
    return "?";
}

constexpr std::pair<std::string_view, NormKind> norms[] = {{"layernorm", NormKind::layernorm},
                                                           {"rmsnorm", NormKind::rmsnorm}};
constexpr std::pair<std::string_view, PosKind> positions[] = {
    {"learned", PosKind::learned}, {"rope", PosKind::rope}, {"none", PosKind::none}};
constexpr std::pair<std::string_view, MlpKind> mlps[] = {
    {"gelu", MlpKind::gelu}, {"gelu_tanh", MlpKind::gelu_tanh}, {"swiglu", MlpKind::swiglu}, {"osc", MlpKind::osc}, {"bio", MlpKind::bio}};
constexpr std::pair<std::string_view, RopePairingKind> pairings[] = {
    {"half", RopePairingKind::half}, {"interleaved", RopePairingKind::interleaved}};

void require(bool ok, std::string_view key, const std::string& what) {
    check(ok, "model config", fmt::format("model.{}: {}", key, what));
}

}  // namespace

std::string_view norm_name(NormKind k) { return name_from(k, norms); }
std::string_view pos_name(PosKind k) { return name_from(k, positions); }
std::string_view mlp_name(MlpKind k) { return name_from(k, mlps); }
std::string_view rope_pairing_name(RopePairingKind k) { return name_from(k, pairings); }
std::optional<NormKind> parse_norm(std::string_view s) { return parse_from(s, norms); }
std::optional<PosKind> parse_pos(std::string_view s) { return parse_from(s, positions); }
std::optional<MlpKind> parse_mlp(std::string_view s) { return parse_from(s, mlps); }
std::optional<RopePairingKind> parse_rope_pairing(std::string_view s) { return parse_from(s, pairings); }

int64_t ModelConfig::hidden() const {
    return mlp_hidden > 0 ? mlp_hidden : int64_t(std::llround(mlp_ratio * double(n_embd)));
}

double ModelConfig::eps() const {
    if (norm_eps > 0) return norm_eps;
    return norm == NormKind::layernorm ? 1e-5 : 1e-6;
}

void validate(const ModelConfig& c) {
    require(c.n_layer >= 1, "n_layer", fmt::format("must be at least 1 (got {})", c.n_layer));
    require(c.n_head >= 1, "n_head", fmt::format("must be at least 1 (got {})", c.n_head));
    require(c.n_embd >= 1, "n_embd", fmt::format("must be at least 1 (got {})", c.n_embd));
    require(c.n_embd % c.n_head == 0, "n_head",
            fmt::format("n_embd ({}) must be divisible by n_head ({})", c.n_embd, c.n_head));
    require(c.n_kv_head >= 0, "n_kv_head", fmt::format("must be ≥ 0 (0 = n_head; got {})", c.n_kv_head));
    require(c.n_head % c.kv_heads() == 0, "n_kv_head",
            fmt::format("n_head ({}) must be divisible by n_kv_head ({})", c.n_head, c.kv_heads()));
    require(c.block_size >= 1, "block_size", fmt::format("must be at least 1 (got {})", c.block_size));
    require(c.vocab_size >= 1, "vocab_size", fmt::format("must be at least 1 (got {})", c.vocab_size));
    require(std::isfinite(c.dropout) && c.dropout >= 0 && c.dropout < 1, "dropout",
            fmt::format("must be in [0, 1) (got {})", c.dropout));
    require(std::isfinite(c.norm_eps) && c.norm_eps >= 0, "norm_eps",
            fmt::format("must be > 0, or 0 for the norm's default (got {})", c.norm_eps));
    if (c.pos == PosKind::rope) {
        require(c.head_size() % 2 == 0, "pos",
                fmt::format("rope needs an even head size (n_embd / n_head = {})", c.head_size()));
        require(std::isfinite(c.rope_theta) && c.rope_theta > 1, "rope_theta",
                fmt::format("must be > 1 (got {})", c.rope_theta));
    }
    require(std::isfinite(c.mlp_ratio) && c.mlp_ratio > 0, "mlp_ratio",
            fmt::format("must be > 0 (got {})", c.mlp_ratio));
    require(c.mlp_hidden >= 0, "mlp_hidden", fmt::format("must be ≥ 0 (got {})", c.mlp_hidden));
    require(c.hidden() >= 1, "mlp_ratio", fmt::format("gives an empty MLP (hidden = {})", c.hidden()));
    if (c.mlp == MlpKind::bio)
        require(std::isfinite(c.bio_threshold) && c.bio_threshold > 0 && c.bio_threshold < 1, "bio_threshold",
                fmt::format("must be in (0, 1) (got {})", c.bio_threshold));
}

ModelConfig wiggle_v2_config() {
    ModelConfig c;
    c.n_layer = 4;
    c.n_head = 6;
    c.n_embd = 384;
    c.mlp = MlpKind::bio;
    return c;
}

ModelConfig wiggle_v3_config() {
    ModelConfig c;
    c.mlp = MlpKind::osc;
    c.norm = NormKind::rmsnorm;
    c.pos = PosKind::rope;
    return c;
}

ModelConfig gpt2_124m_config() { return ModelConfig{}; }

}  // namespace lumen::nn
