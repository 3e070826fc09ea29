// nn/hf_config.cpp: Hugging Face config.json <-> lumen ModelConfig (specs/formats.md §8.1, §8.2):
// read_hf_config (GPT-2 and Llama keys, with transformers' defaults for absent keys and a refusal
// naming the key for every setting lumen cannot run exactly), hf_arch_for, and the config.json that
// export_hf writes (hf_config_json, declared in nn/hf_model.h).
#include "nn/hf_model.h"

#include "core/error.h"
#include "data/file_io.h"
#include "data/safetensors.h"

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <cmath>
#include <filesystem>

namespace lumen::nn {

namespace {

using nlohmann::json;

// Typed reads of config.json keys: an absent key or a JSON null gives the default (as transformers'
// config classes do); a value of another type is an error naming the file and the key.
class ConfigReader {
public:
    ConfigReader(const json& j, std::string path) : j_(j), path_(std::move(path)) {}

    const std::string& path() const { return path_; }
    bool has(const std::string& key) const { return j_.contains(key) && !j_.at(key).is_null(); }
    const json& at(const std::string& key) const { return j_.at(key); }

    [[noreturn]] void fail_key(const std::string& key, const std::string& what) const {
        throw Error(fmt::format("{}: {}: {}", path_, key, what));
    }

    int64_t integer(const std::string& key, int64_t fallback) const {
        if (!has(key)) return fallback;
        const json& v = at(key);
        if (v.is_number_integer()) return v.get<int64_t>();
        if (v.is_number_float() && std::floor(v.get<double>()) == v.get<double>()) return int64_t(v.get<double>());
        fail_key(key, fmt::format("expected an integer, found {}", v.dump()));
    }
    double number(const std::string& key, double fallback) const {
        if (!has(key)) return fallback;
        const json& v = at(key);
        if (!v.is_number()) fail_key(key, fmt::format("expected a number, found {}", v.dump()));
        return v.get<double>();
    }
    bool boolean(const std::string& key, bool fallback) const {
        if (!has(key)) return fallback;
        const json& v = at(key);
        if (!v.is_boolean()) fail_key(key, fmt::format("expected true or false, found {}", v.dump()));
        return v.get<bool>();
    }
    std::string string(const std::string& key, const std::string& fallback) const {
        if (!has(key)) return fallback;
        const json& v = at(key);
        if (!v.is_string()) fail_key(key, fmt::format("expected a string, found {}", v.dump()));
        return v.get<std::string>();
    }
    // A positive integer (sizes and counts).
    int64_t positive(const std::string& key, int64_t fallback) const {
        const int64_t v = integer(key, fallback);
        if (v < 1) fail_key(key, fmt::format("must be at least 1, found {}", v));
        return v;
    }

private:
    const json& j_;
    std::string path_;
};

// GPT2Config's defaults (transformers models/gpt2/configuration_gpt2.py).
ModelConfig gpt2_from(const ConfigReader& r) {
    ModelConfig c;
    c.n_layer = r.positive("n_layer", 12);
    c.n_head = r.positive("n_head", 12);
    c.n_kv_head = 0;
    c.n_embd = r.positive("n_embd", 768);
    c.block_size = r.has("n_positions") ? r.positive("n_positions", 1024) : r.positive("n_ctx", 1024);
    c.vocab_size = r.positive("vocab_size", 50257);
    c.bias = true;
    c.dropout = 0.0;
    c.norm = NormKind::layernorm;
    c.norm_eps = r.number("layer_norm_epsilon", 1e-5);
    if (!(c.norm_eps > 0)) r.fail_key("layer_norm_epsilon", fmt::format("must be > 0, found {}", c.norm_eps));
    c.pos = PosKind::learned;
    const std::string act = r.string("activation_function", "gelu_new");
    if (act == "gelu_new" || act == "gelu_pytorch_tanh") {
        c.mlp = MlpKind::gelu_tanh;
    } else if (act == "gelu") {
        c.mlp = MlpKind::gelu;
    } else {
        r.fail_key("activation_function",
                   fmt::format("\"{}\" is not supported (lumen runs \"gelu_new\", \"gelu_pytorch_tanh\" and \"gelu\")", act));
    }
    c.mlp_hidden = r.has("n_inner") ? r.positive("n_inner", 0) : 4 * c.n_embd;
    c.tie_embeddings = r.boolean("tie_word_embeddings", true);
    if (r.boolean("scale_attn_by_inverse_layer_idx", false))
        r.fail_key("scale_attn_by_inverse_layer_idx", "true is not supported (lumen scales scores by 1/sqrt(head size) only)");
    if (!r.boolean("scale_attn_weights", true))
        r.fail_key("scale_attn_weights", "false is not supported (lumen always scales scores by 1/sqrt(head size))");
    if (r.boolean("reorder_and_upcast_attn", false))
        r.fail_key("reorder_and_upcast_attn", "true is not supported");
    if (r.boolean("add_cross_attention", false))
        r.fail_key("add_cross_attention", "true is not supported (lumen models are decoder-only)");
    return c;
}

// The RoPE base of a Llama config, as transformers 5 resolves it: the parameters dict is
// rope_scaling when that is set, else rope_parameters; its rope_theta wins over the top-level
// rope_theta (transformers 4's only place), then 10000. Any rope_type but "default" is refused.
double llama_rope_theta(const ConfigReader& r) {
    auto check_rope_type = [&](const std::string& key) {
        const json& obj = r.at(key);
        if (!obj.is_object()) r.fail_key(key, fmt::format("expected an object or null, found {}", obj.dump()));
        for (const char* field : {"rope_type", "type"}) {
            if (!obj.contains(field) || obj.at(field).is_null()) continue;
            const json& t = obj.at(field);
            if (!t.is_string() || t.get<std::string>() != "default")
                r.fail_key(key, fmt::format("{} {} is not supported (lumen implements plain RoPE, rope_type \"default\")",
                                            field, t.dump()));
        }
    };
    for (const char* key : {"rope_scaling", "rope_parameters"})
        if (r.has(key)) check_rope_type(key);
    double theta = r.number("rope_theta", 10000.0);
    const char* params = r.has("rope_scaling") && !r.at("rope_scaling").empty() ? "rope_scaling"
                         : r.has("rope_parameters")                             ? "rope_parameters"
                                                                                : nullptr;
    if (params && r.at(params).contains("rope_theta") && !r.at(params).at("rope_theta").is_null()) {
        const json& t = r.at(params).at("rope_theta");
        if (!t.is_number()) r.fail_key(std::string(params) + ".rope_theta", fmt::format("expected a number, found {}", t.dump()));
        theta = t.get<double>();
    }
    if (!(theta > 1)) r.fail_key("rope_theta", fmt::format("must be > 1, found {}", theta));
    return theta;
}

// LlamaConfig's defaults (transformers models/llama/configuration_llama.py).
ModelConfig llama_from(const ConfigReader& r) {
    ModelConfig c;
    c.n_embd = r.positive("hidden_size", 4096);
    c.mlp_hidden = r.positive("intermediate_size", 11008);
    c.n_layer = r.positive("num_hidden_layers", 32);
    c.n_head = r.positive("num_attention_heads", 32);
    c.n_kv_head = r.positive("num_key_value_heads", c.n_head);
    if (c.n_embd % c.n_head != 0)
        r.fail_key("num_attention_heads",
                   fmt::format("hidden_size ({}) must be divisible by num_attention_heads ({})", c.n_embd, c.n_head));
    if (c.n_head % c.n_kv_head != 0)
        r.fail_key("num_key_value_heads",
                   fmt::format("num_attention_heads ({}) must be divisible by num_key_value_heads ({})", c.n_head, c.n_kv_head));
    const int64_t head_dim = r.positive("head_dim", c.n_embd / c.n_head);
    if (head_dim != c.n_embd / c.n_head)
        r.fail_key("head_dim", fmt::format("{} is not supported: lumen's attention needs head_dim = hidden_size / "
                                           "num_attention_heads = {}", head_dim, c.n_embd / c.n_head));
    c.norm = NormKind::rmsnorm;
    c.norm_eps = r.number("rms_norm_eps", 1e-6);
    if (!(c.norm_eps > 0)) r.fail_key("rms_norm_eps", fmt::format("must be > 0, found {}", c.norm_eps));
    c.block_size = r.positive("max_position_embeddings", 2048);
    c.vocab_size = r.positive("vocab_size", 32000);
    c.tie_embeddings = r.boolean("tie_word_embeddings", false);
    const std::string act = r.string("hidden_act", "silu");
    if (act != "silu") r.fail_key("hidden_act", fmt::format("\"{}\" is not supported (lumen's swiglu uses \"silu\")", act));
    const bool attention_bias = r.boolean("attention_bias", false), mlp_bias = r.boolean("mlp_bias", false);
    if (attention_bias != mlp_bias)
        r.fail_key(attention_bias ? "attention_bias" : "mlp_bias",
                   fmt::format("attention_bias = {} with mlp_bias = {} is not supported (lumen has one bias flag for "
                               "all linears)", attention_bias, mlp_bias));
    c.bias = attention_bias;
    if (r.has("pretraining_tp") && r.integer("pretraining_tp", 1) != 1)
        r.fail_key("pretraining_tp", fmt::format("must be 1, found {}", r.integer("pretraining_tp", 1)));
    c.pos = PosKind::rope;
    c.rope_theta = llama_rope_theta(r);
    c.rope_pairing = RopePairingKind::half;  // transformers' rotate_half
    c.mlp = MlpKind::swiglu;
    c.dropout = 0.0;
    return c;
}

}  // namespace

std::string_view hf_arch_name(HfArch a) { return a == HfArch::gpt2 ? "gpt2" : "llama"; }

HfModel read_hf_config(const std::string& dir) {
    const std::string path = (std::filesystem::path(dir) / "config.json").string();
    check(std::filesystem::exists(path), "hf", fmt::format("{}: no config.json (expected a Hugging Face model folder)", path));
    const json j = data::parse_json_rejecting_duplicates(data::read_file(path), path);
    check(j.is_object(), "hf", fmt::format("{}: expected a JSON object", path));
    const ConfigReader r(j, path);
    check(r.has("model_type"), "hf", fmt::format("{}: no model_type (supported: gpt2, llama)", path));
    const std::string type = r.string("model_type", "");
    HfModel out;
    out.dir = dir;
    if (type == "gpt2") {
        out.arch = HfArch::gpt2;
        out.config = gpt2_from(r);
    } else if (type == "llama") {
        out.arch = HfArch::llama;
        out.config = llama_from(r);
    } else {
        r.fail_key("model_type", fmt::format("\"{}\" is not supported (supported: gpt2, llama)", type));
    }
    try {
        validate(out.config);
    } catch (const Error& e) {
        throw Error(fmt::format("{}: gives an invalid lumen model: {}", path, e.what()));
    }
    return out;
}

HfArch hf_arch_for(const ModelConfig& c) {
    const std::string shape = fmt::format("norm = {}, pos = {}, mlp = {}", norm_name(c.norm), pos_name(c.pos), mlp_name(c.mlp));
    const std::string known = "transformers has gpt2 (layernorm, learned, gelu | gelu_tanh) and llama (rmsnorm, rope, swiglu)";
    if (c.mlp == MlpKind::bio || c.mlp == MlpKind::osc)
        throw Error(fmt::format("model.mlp = {} has no transformers equivalent ({})", mlp_name(c.mlp), known));
    if (c.pos == PosKind::none)
        throw Error(fmt::format("model.pos = none has no transformers equivalent ({})", known));
    if (c.norm == NormKind::layernorm && c.pos == PosKind::learned) {
        if (c.mlp != MlpKind::gelu && c.mlp != MlpKind::gelu_tanh)
            throw Error(fmt::format("model.mlp = {} with layernorm and learned positions has no "
                                    "transformers equivalent ({})", mlp_name(c.mlp), known));
        if (c.kv_heads() != c.n_head)
            throw Error(fmt::format("model.n_kv_head = {} (grouped-query attention) cannot be written as "
                                    "gpt2, which has one key/value head per query head", c.n_kv_head));
        return HfArch::gpt2;
    }
    if (c.norm == NormKind::rmsnorm && c.pos == PosKind::rope) {
        if (c.mlp != MlpKind::swiglu)
            throw Error(fmt::format("model.mlp = {} with rmsnorm and rope has no transformers "
                                    "equivalent ({})", mlp_name(c.mlp), known));
        return HfArch::llama;
    }
    const char* key = c.norm == NormKind::layernorm ? "model.pos" : "model.norm";
    throw Error(fmt::format("{} ({}) has no transformers equivalent ({})", key, shape, known));
}

std::string hf_config_json(const ModelConfig& c, DType dtype) {
    const HfArch arch = hf_arch_for(c);
    check(dtype == DType::f32 || dtype == DType::bf16, "hf_config_json",
          fmt::format("tensors are written in f32 or bf16, not {}", dtype_name(dtype)));
    const std::string torch_dtype = dtype == DType::bf16 ? "bfloat16" : "float32";
    json j;
    if (arch == HfArch::gpt2) {
        j["architectures"] = {"GPT2LMHeadModel"};
        j["model_type"] = "gpt2";
        j["vocab_size"] = c.vocab_size;
        j["n_positions"] = c.block_size;
        j["n_embd"] = c.n_embd;
        j["n_layer"] = c.n_layer;
        j["n_head"] = c.n_head;
        j["n_inner"] = c.hidden() == 4 * c.n_embd ? json(nullptr) : json(c.hidden());
        j["activation_function"] = c.mlp == MlpKind::gelu ? "gelu" : "gelu_new";
        j["layer_norm_epsilon"] = c.eps();
        j["resid_pdrop"] = c.dropout;
        j["embd_pdrop"] = c.dropout;
        j["attn_pdrop"] = c.dropout;
        j["initializer_range"] = 0.02;
        j["scale_attn_weights"] = true;
        j["scale_attn_by_inverse_layer_idx"] = false;
        j["reorder_and_upcast_attn"] = false;
        j["use_cache"] = true;
        if (c.vocab_size > 50256) {  // GPT-2's <|endoftext|>, only where the vocabulary has it
            j["bos_token_id"] = 50256;
            j["eos_token_id"] = 50256;
        }
    } else {
        j["architectures"] = {"LlamaForCausalLM"};
        j["model_type"] = "llama";
        j["vocab_size"] = c.vocab_size;
        j["hidden_size"] = c.n_embd;
        j["intermediate_size"] = c.hidden();
        j["num_hidden_layers"] = c.n_layer;
        j["num_attention_heads"] = c.n_head;
        j["num_key_value_heads"] = c.kv_heads();
        j["head_dim"] = c.head_size();
        j["hidden_act"] = "silu";
        j["max_position_embeddings"] = c.block_size;
        j["rms_norm_eps"] = c.eps();
        // NOTE: both spellings: transformers 4 reads rope_theta, transformers 5 rope_parameters.
        j["rope_theta"] = c.rope_theta;
        j["rope_parameters"] = {{"rope_type", "default"}, {"rope_theta", c.rope_theta}};
        j["attention_bias"] = c.bias;
        j["mlp_bias"] = c.bias;
        j["attention_dropout"] = c.dropout;
        j["initializer_range"] = 0.02;
        j["use_cache"] = true;
    }
    j["tie_word_embeddings"] = c.tie_embeddings;
    j["torch_dtype"] = torch_dtype;  // transformers < 4.56
    j["dtype"] = torch_dtype;        // transformers ≥ 4.56
    return j.dump(2) + "\n";
}

}  // namespace lumen::nn
