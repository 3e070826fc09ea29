// tests/nn/hf_import_test.cpp: reading Hugging Face model folders (specs/formats.md §8): config.json
// for GPT-2 and Llama (every key read, every refusal checked by its message); hand-built GPT-2 and
// Llama folders (HF names, distinct known values) land element by element where §8.1/§8.2 say, with
// and without the `transformer.` prefix, single-file and sharded, in F32/BF16/F16, with wpe cropped to
// a smaller block_size; and the import errors (missing, unexpected, mis-shaped tensors, no
// safetensors, a tied head that differs from wte).
#include "data/safetensors.h"
#include "nn/hf_model.h"
#include "tests/data/data_test_util.h"
#include "tests/harness.h"
#include "tests/nn/hf_testing.h"

#include <nlohmann/json.hpp>

#include <string>
#include <vector>

using namespace lumen;
using namespace lumen::hf_test;
using lumen::test::ScratchDir;
using lumen::test::write_bytes;
using nlohmann::json;

namespace {

using Named = std::vector<std::pair<std::string, Tensor>>;

// A (rows, cols) or (n,) f32 tensor whose element at flat index k is id·1000 + k: every value in a
// folder is distinct and says where it came from.
Tensor known(int id, const Shape& shape) {
    std::vector<float> v(size_t(numel_of(shape)));
    for (size_t k = 0; k < v.size(); ++k) v[k] = float(id * 1000 + int(k));
    return Tensor::from(v, shape);
}

void write_config(const std::string& dir, const json& j) { write_bytes(dir + "/config.json", j.dump(2)); }

// ---- GPT-2: 2 layers, 2 heads, C = 8, 16 positions, vocabulary 13, n_inner null (4C = 32).

json gpt2_config() {
    return json{{"model_type", "gpt2"}, {"architectures", {"GPT2LMHeadModel"}}, {"n_layer", 2}, {"n_head", 2},
                {"n_embd", 8}, {"n_positions", 16}, {"n_ctx", 16}, {"vocab_size", 13}, {"n_inner", nullptr},
                {"activation_function", "gelu_new"}, {"layer_norm_epsilon", 1e-5}, {"resid_pdrop", 0.1},
                {"embd_pdrop", 0.1}, {"attn_pdrop", 0.1}, {"bos_token_id", 50256}, {"eos_token_id", 50256}};
}

// HF GPT-2 tensors with known values; Conv1D weights are (in, out).
Named gpt2_tensors(const std::string& prefix) {
    const int64_t C = 8, H = 32;
    Named t;
    int id = 1;
    auto add = [&](const std::string& name, const Shape& s) { t.emplace_back(prefix + name, known(id++, s)); };
    add("wte.weight", {13, C});
    add("wpe.weight", {16, C});
    for (int i = 0; i < 2; ++i) {
        const std::string h = "h." + std::to_string(i) + ".";
        add(h + "ln_1.weight", {C});
        add(h + "ln_1.bias", {C});
        add(h + "attn.c_attn.weight", {C, 3 * C});
        add(h + "attn.c_attn.bias", {3 * C});
        add(h + "attn.c_proj.weight", {C, C});
        add(h + "attn.c_proj.bias", {C});
        add(h + "ln_2.weight", {C});
        add(h + "ln_2.bias", {C});
        add(h + "mlp.c_fc.weight", {C, H});
        add(h + "mlp.c_fc.bias", {H});
        add(h + "mlp.c_proj.weight", {H, C});
        add(h + "mlp.c_proj.bias", {C});
        t.emplace_back(prefix + h + "attn.bias", Tensor::ones({1, 1, 16, 16}));  // the causal-mask buffer
        t.emplace_back(prefix + h + "attn.masked_bias", Tensor::scalar(-1e4));
    }
    add("ln_f.weight", {C});
    add("ln_f.bias", {C});
    return t;
}

// The lumen name of each HF GPT-2 tensor and whether it is a transposed Conv1D weight (§8.1 table).
std::pair<std::string, bool> gpt2_lumen_name(std::string hf) {
    if (hf.rfind("transformer.", 0) == 0) hf = hf.substr(12);
    const bool conv = hf.find(".attn.c_") != std::string::npos || hf.find(".mlp.c_") != std::string::npos;
    const bool weight = hf.size() > 7 && hf.compare(hf.size() - 7, 7, ".weight") == 0;
    if (hf.rfind("h.", 0) == 0) hf = "blocks." + hf.substr(2);
    return {hf, conv && weight};
}

Tensor find(const Named& t, const std::string& name) {
    for (auto& [n, v] : t)
        if (n == name) return v;
    FAIL("no tensor " << name);
    return {};
}

// Every HF tensor (but the mask buffers) is where §8.1 says in `m`: (i, j) -> (j, i) for Conv1D.
void check_gpt2_placement(const nn::GPT& m, const Named& hf) {
    auto s = state_of(m);
    for (auto& [name, t] : hf) {
        if (name.find("attn.bias") != std::string::npos || name.find("masked_bias") != std::string::npos) continue;
        auto [lumen, transposed] = gpt2_lumen_name(name);
        INFO(name << " -> " << lumen);
        REQUIRE(s.count(lumen));
        const Tensor& got = s.at(lumen);
        if (t.dim() == 1) {
            REQUIRE(got.shape() == t.shape());
            for (int64_t i = 0; i < t.size(0); ++i) CHECK(at(got, i) == at(t, i));
        } else if (transposed) {
            REQUIRE(got.shape() == Shape{t.size(1), t.size(0)});
            for (int64_t i = 0; i < t.size(0); ++i)
                for (int64_t j = 0; j < t.size(1); ++j) CHECK(at(got, j, i) == at(t, i, j));
        } else {
            REQUIRE(got.size(1) == t.size(1));
            for (int64_t i = 0; i < got.size(0); ++i)  // wpe may be cropped to the model's block_size
                for (int64_t j = 0; j < t.size(1); ++j) CHECK(at(got, i, j) == at(t, i, j));
        }
    }
}

// ---- Llama: 2 layers, H = 16, 4 heads of 4, 2 key/value heads (GQA), I = 24, vocabulary 11.

json llama_config() {
    return json{{"model_type", "llama"}, {"architectures", {"LlamaForCausalLM"}}, {"hidden_size", 16},
                {"intermediate_size", 24}, {"num_hidden_layers", 2}, {"num_attention_heads", 4},
                {"num_key_value_heads", 2}, {"rms_norm_eps", 1e-5}, {"max_position_embeddings", 32},
                {"vocab_size", 11}, {"tie_word_embeddings", false}, {"hidden_act", "silu"},
                {"attention_bias", false}, {"mlp_bias", false}, {"rope_theta", 500000.0},
                {"rope_scaling", nullptr}, {"bos_token_id", 1}, {"eos_token_id", {2, 3}}, {"torch_dtype", "float32"}};
}

Named llama_tensors() {
    const int64_t H = 16, I = 24, kv = 8;
    Named t;
    int id = 1;
    auto add = [&](const std::string& name, const Shape& s) { t.emplace_back(name, known(id++, s)); };
    add("model.embed_tokens.weight", {11, H});
    for (int i = 0; i < 2; ++i) {
        const std::string l = "model.layers." + std::to_string(i) + ".";
        add(l + "input_layernorm.weight", {H});
        add(l + "self_attn.q_proj.weight", {H, H});
        add(l + "self_attn.k_proj.weight", {kv, H});
        add(l + "self_attn.v_proj.weight", {kv, H});
        add(l + "self_attn.o_proj.weight", {H, H});
        add(l + "post_attention_layernorm.weight", {H});
        add(l + "mlp.gate_proj.weight", {I, H});
        add(l + "mlp.up_proj.weight", {I, H});
        add(l + "mlp.down_proj.weight", {H, I});
    }
    add("model.norm.weight", {H});
    add("lm_head.weight", {11, H});
    return t;
}


void check_llama_placement(const nn::GPT& m, const Named& hf) {
    auto s = state_of(m);
    CHECK(s.size() == 1 + 2 * 7 + 1 + 1);  // wte, 7 per layer, ln_f, lm_head: nothing else
    check_same(s.at("wte.weight"), find(hf, "model.embed_tokens.weight"));
    check_same(s.at("ln_f.weight"), find(hf, "model.norm.weight"));
    check_same(s.at("lm_head.weight"), find(hf, "lm_head.weight"));
    for (int i = 0; i < 2; ++i) {
        const std::string b = "blocks." + std::to_string(i) + ".", l = "model.layers." + std::to_string(i) + ".";
        INFO(b);
        const Tensor qkv = s.at(b + "attn.c_attn.weight");
        REQUIRE(qkv.shape() == Shape{16 + 8 + 8, 16});
        const Tensor q = find(hf, l + "self_attn.q_proj.weight"), k = find(hf, l + "self_attn.k_proj.weight"),
                     v = find(hf, l + "self_attn.v_proj.weight");
        for (int64_t r = 0; r < 32; ++r)
            for (int64_t j = 0; j < 16; ++j) {
                const double want = r < 16 ? at(q, r, j) : r < 24 ? at(k, r - 16, j) : at(v, r - 24, j);
                CHECK(at(qkv, r, j) == want);
            }
        check_same(s.at(b + "attn.c_proj.weight"), find(hf, l + "self_attn.o_proj.weight"));
        check_same(s.at(b + "ln_1.weight"), find(hf, l + "input_layernorm.weight"));
        check_same(s.at(b + "ln_2.weight"), find(hf, l + "post_attention_layernorm.weight"));
        check_same(s.at(b + "mlp.c_gate.weight"), find(hf, l + "mlp.gate_proj.weight"));
        check_same(s.at(b + "mlp.c_fc.weight"), find(hf, l + "mlp.up_proj.weight"));
        check_same(s.at(b + "mlp.c_proj.weight"), find(hf, l + "mlp.down_proj.weight"));
    }
}

}  // namespace

// ---------------------------------------------------------------- GPT-2 import

TEST_CASE("hf: a GPT-2 folder loads each element where §8.1 says, with and without `transformer.`") {
    for (std::string prefix : {"", "transformer."}) {
        INFO("prefix '" << prefix << "'");
        ScratchDir dir("hf_gpt2");
        write_config(dir.str(), gpt2_config());
        const Named hf = gpt2_tensors(prefix);
        data::write_safetensors(dir.file("model.safetensors"), hf);

        const nn::HfModel cfg = nn::read_hf_config(dir.str());
        CHECK(cfg.arch == nn::HfArch::gpt2);
        CHECK(cfg.config.n_layer == 2);
        CHECK(cfg.config.n_head == 2);
        CHECK(cfg.config.kv_heads() == 2);
        CHECK(cfg.config.n_embd == 8);
        CHECK(cfg.config.block_size == 16);
        CHECK(cfg.config.vocab_size == 13);  // the file's, unpadded
        CHECK(cfg.config.hidden() == 32);
        CHECK(cfg.config.bias);
        CHECK(cfg.config.tie_embeddings);
        CHECK(cfg.config.mlp == nn::MlpKind::gelu_tanh);
        CHECK(cfg.config.norm == nn::NormKind::layernorm);
        CHECK(cfg.config.pos == nn::PosKind::learned);
        CHECK(cfg.config.eps() == 1e-5);
        CHECK(cfg.config.dropout == 0.0);

        auto m = nn::load_hf_model(dir.str());
        check_gpt2_placement(*m, hf);
        CHECK(state_of(*m).size() == 2 + 2 * 12 + 2);  // no lm_head (tied), no mask buffers
    }
}

TEST_CASE("hf: GPT-2 config keys: activations, n_inner, epsilon, untied head, n_ctx") {
    ScratchDir dir("hf_gpt2_cfg");
    json j = gpt2_config();
    j["activation_function"] = "gelu";
    j["n_inner"] = 20;
    j["layer_norm_epsilon"] = 1e-6;
    j["tie_word_embeddings"] = false;
    j.erase("n_positions");
    j["n_ctx"] = 24;
    write_config(dir.str(), j);
    nn::ModelConfig c = nn::read_hf_config(dir.str()).config;
    CHECK(c.mlp == nn::MlpKind::gelu);
    CHECK(c.hidden() == 20);
    CHECK(c.eps() == 1e-6);
    CHECK(!c.tie_embeddings);
    CHECK(c.block_size == 24);
    j["activation_function"] = "gelu_pytorch_tanh";
    write_config(dir.str(), j);
    CHECK(nn::read_hf_config(dir.str()).config.mlp == nn::MlpKind::gelu_tanh);
}

TEST_CASE("hf: GPT-2 in BF16 and F16 converts into the model's f32; a tied lm_head equal to wte is accepted") {
    for (DType dt : {DType::bf16, DType::f16}) {
        INFO(dtype_name(dt));
        ScratchDir dir("hf_gpt2_dtype");
        write_config(dir.str(), gpt2_config());
        Named hf = gpt2_tensors("transformer.");
        Named stored;
        for (auto& [n, t] : hf) stored.emplace_back(n, t.to(dt));
        stored.emplace_back("lm_head.weight", find(hf, "transformer.wte.weight").to(dt));
        data::write_safetensors(dir.file("model.safetensors"), stored);
        auto m = nn::load_hf_model(dir.str());
        auto s = state_of(*m);
        CHECK(s.at("wte.weight").dtype() == DType::f32);
        check_same(s.at("wte.weight"), find(stored, "transformer.wte.weight"));
        check_same(s.at("blocks.1.attn.c_attn.weight"), find(stored, "transformer.h.1.attn.c_attn.weight").transpose(0, 1));
        CHECK(!s.count("lm_head.weight"));
        // Into a bf16 model: each tensor converts to the parameter's dtype.
        const nn::HfModel cfg = nn::read_hf_config(dir.str());
        nn::GPT b(cfg.config);
        b.to(DType::bf16);
        nn::load_hf_weights(cfg, b);
        const Tensor w = state_of(b).at("blocks.0.mlp.c_proj.weight");
        CHECK(w.dtype() == DType::bf16);
        CHECK(test::same_bits(w, find(stored, "transformer.h.0.mlp.c_proj.weight").transpose(0, 1).to(DType::bf16)));
    }
}

TEST_CASE("hf: a model with a smaller block_size takes the first rows of wpe") {
    ScratchDir dir("hf_gpt2_crop");
    write_config(dir.str(), gpt2_config());
    const Named hf = gpt2_tensors("");
    data::write_safetensors(dir.file("model.safetensors"), hf);
    nn::HfModel cfg = nn::read_hf_config(dir.str());
    nn::ModelConfig small = cfg.config;
    small.block_size = 5;
    nn::GPT m(small);
    nn::load_hf_weights(cfg, m);
    const Tensor wpe = state_of(m).at("wpe.weight");
    REQUIRE(wpe.shape() == Shape{5, 8});
    check_same(wpe, find(hf, "wpe.weight").narrow(0, 0, 5));
    check_gpt2_placement(m, hf);
    // A larger block_size than the file's positions is refused, naming wpe.
    nn::ModelConfig big = cfg.config;
    big.block_size = 17;
    nn::GPT m2(big);
    const std::string e = error_of([&] { nn::load_hf_weights(cfg, m2); });
    CHECK(has(e, "wpe.weight"));
    CHECK(has(e, "block_size 17"));
}

// ---------------------------------------------------------------- Llama import

TEST_CASE("hf: a Llama folder with GQA: q/k/v rows land in c_attn [q; k; v], gate/up/down in c_gate/c_fc/c_proj") {
    ScratchDir dir("hf_llama");
    write_config(dir.str(), llama_config());
    const Named hf = llama_tensors();
    data::write_safetensors(dir.file("model.safetensors"), hf);

    const nn::HfModel cfg = nn::read_hf_config(dir.str());
    CHECK(cfg.arch == nn::HfArch::llama);
    const nn::ModelConfig& c = cfg.config;
    CHECK(c.n_layer == 2);
    CHECK(c.n_head == 4);
    CHECK(c.kv_heads() == 2);
    CHECK(c.n_embd == 16);
    CHECK(c.hidden() == 24);
    CHECK(c.block_size == 32);
    CHECK(c.vocab_size == 11);
    CHECK(!c.bias);
    CHECK(!c.tie_embeddings);
    CHECK(c.norm == nn::NormKind::rmsnorm);
    CHECK(c.eps() == 1e-5);
    CHECK(c.pos == nn::PosKind::rope);
    CHECK(c.rope_pairing == nn::RopePairingKind::half);
    CHECK(c.rope_theta == 500000.0);
    CHECK(c.mlp == nn::MlpKind::swiglu);

    auto m = nn::load_hf_model(dir.str());
    check_llama_placement(*m, hf);
}

TEST_CASE("hf: Llama config variants: rope_parameters (transformers 5), defaults, tied head, both biases") {
    ScratchDir dir("hf_llama_cfg");
    json j = llama_config();
    j.erase("rope_theta");
    j.erase("rope_scaling");
    j.erase("num_key_value_heads");
    j.erase("tie_word_embeddings");
    j.erase("torch_dtype");
    j["dtype"] = "bfloat16";
    j["rope_parameters"] = {{"rope_type", "default"}, {"rope_theta", 1234.0}};
    j["head_dim"] = 4;
    j["pretraining_tp"] = 1;
    write_config(dir.str(), j);
    nn::ModelConfig c = nn::read_hf_config(dir.str()).config;
    CHECK(c.rope_theta == 1234.0);
    CHECK(c.kv_heads() == 4);          // absent -> num_attention_heads
    CHECK(!c.tie_embeddings);          // Llama's default
    j["tie_word_embeddings"] = true;
    j["attention_bias"] = true;
    j["mlp_bias"] = true;
    j["rope_scaling"] = {{"rope_type", "default"}};
    write_config(dir.str(), j);
    c = nn::read_hf_config(dir.str()).config;
    CHECK(c.tie_embeddings);
    CHECK(c.bias);
    j.erase("rope_parameters");
    write_config(dir.str(), j);
    CHECK(nn::read_hf_config(dir.str()).config.rope_theta == 10000.0);  // LlamaConfig's default
    // transformers 5: rope_parameters.rope_theta wins over a top-level rope_theta.
    j.erase("rope_scaling");
    j["rope_theta"] = 777.0;
    write_config(dir.str(), j);
    CHECK(nn::read_hf_config(dir.str()).config.rope_theta == 777.0);
    j["rope_parameters"] = {{"rope_type", "default"}, {"rope_theta", 4321.0}};
    write_config(dir.str(), j);
    CHECK(nn::read_hf_config(dir.str()).config.rope_theta == 4321.0);
}

TEST_CASE("hf: a sharded Llama folder (2 files + index) loads the same as one file") {
    ScratchDir one("hf_llama_one"), two("hf_llama_sharded");
    const Named hf = llama_tensors();
    write_config(one.str(), llama_config());
    write_config(two.str(), llama_config());
    data::write_safetensors(one.file("model.safetensors"), hf);
    Named a, b;
    json weight_map = json::object();
    for (size_t i = 0; i < hf.size(); ++i) {
        const bool first = i < hf.size() / 2;
        (first ? a : b).push_back(hf[i]);
        weight_map[hf[i].first] = first ? "model-00001-of-00002.safetensors" : "model-00002-of-00002.safetensors";
    }
    data::write_safetensors(two.file("model-00001-of-00002.safetensors"), a);
    data::write_safetensors(two.file("model-00002-of-00002.safetensors"), b);
    write_bytes(two.file("model.safetensors.index.json"),
                json{{"metadata", {{"total_size", 1}}}, {"weight_map", weight_map}}.dump());
    auto m1 = nn::load_hf_model(one.str());
    auto m2 = nn::load_hf_model(two.str());
    check_llama_placement(*m2, hf);
    check_same_state(*m1, *m2);
}

// ---------------------------------------------------------------- errors

TEST_CASE("hf: missing, unexpected and mis-shaped tensors are one error naming the file") {
    ScratchDir dir("hf_bad");
    write_config(dir.str(), gpt2_config());
    Named hf;
    for (auto& [n, t] : gpt2_tensors(""))
        if (n != "h.1.ln_2.weight") hf.emplace_back(n, n == "wte.weight" ? known(1, {14, 8}) : t);
    hf.emplace_back("h.0.attn.rotary", Tensor::zeros({3}));
    data::write_safetensors(dir.file("model.safetensors"), hf);
    const std::string e = error_of([&] { nn::load_hf_model(dir.str()); });
    CHECK(has(e, dir.file("model.safetensors")));
    CHECK(has(e, "missing 1 [h.1.ln_2.weight]"));
    // Nothing was copied into a model the folder does not match.
    const nn::HfModel cfg = nn::read_hf_config(dir.str());
    nn::GPT m(cfg.config), fresh(cfg.config);
    CHECK_THROWS(nn::load_hf_weights(cfg, m));
    check_same_state(m, fresh);
    // A model of another architecture than the folder's is refused, naming what it lacks.
    nn::GPT llama(tiny_llama());
    const std::string e2 = error_of([&] { nn::load_hf_weights(cfg, llama); });
    CHECK(has(e2, "wpe.weight"));
    CHECK(has(e2, "build the model from read_hf_config"));
    CHECK(has(e, "unexpected 1 [h.0.attn.rotary]"));
    CHECK(has(e, "wte.weight (expected (13, 8), found (14, 8))"));
}

TEST_CASE("hf: config refusals name the file and the key") {
    ScratchDir dir("hf_cfg_bad");
    auto refused = [&](json j, const std::vector<std::string>& parts) {
        write_config(dir.str(), j);
        const std::string e = error_of([&] { nn::read_hf_config(dir.str()); });
        CHECK(has(e, dir.file("config.json")));
        for (auto& p : parts) CHECK_MESSAGE(has(e, p), e);
    };
    json g = gpt2_config();
    g["model_type"] = "mistral";
    refused(g, {"mistral", "gpt2, llama"});
    g.erase("model_type");
    refused(g, {"model_type", "gpt2, llama"});
    g = gpt2_config();
    g["activation_function"] = "relu";
    refused(g, {"activation_function", "relu"});
    g = gpt2_config();
    g["scale_attn_by_inverse_layer_idx"] = true;
    refused(g, {"scale_attn_by_inverse_layer_idx"});
    g = gpt2_config();
    g["scale_attn_weights"] = false;
    refused(g, {"scale_attn_weights"});
    g = gpt2_config();
    g["reorder_and_upcast_attn"] = true;
    refused(g, {"reorder_and_upcast_attn"});
    g = gpt2_config();
    g["n_layer"] = "two";
    refused(g, {"n_layer", "integer"});

    json l = llama_config();
    l["rope_scaling"] = {{"rope_type", "linear"}, {"factor", 2.0}};
    refused(l, {"rope_scaling", "linear"});
    l = llama_config();
    l["rope_scaling"] = {{"type", "dynamic"}, {"factor", 2.0}};
    refused(l, {"rope_scaling", "dynamic"});
    l = llama_config();
    l["rope_parameters"] = {{"rope_type", "llama3"}, {"rope_theta", 500000.0}, {"factor", 8.0}};
    refused(l, {"rope_parameters", "llama3"});
    l = llama_config();
    l["pretraining_tp"] = 2;
    refused(l, {"pretraining_tp"});
    l = llama_config();
    l["hidden_act"] = "gelu";
    refused(l, {"hidden_act", "gelu"});
    l = llama_config();
    l["head_dim"] = 8;
    refused(l, {"head_dim", "8"});
    l = llama_config();
    l["attention_bias"] = true;
    refused(l, {"attention_bias", "mlp_bias"});
    l = llama_config();
    l["num_key_value_heads"] = 3;
    refused(l, {"num_key_value_heads"});

    const std::string none = error_of([&] { nn::read_hf_config(dir.file("nowhere")); });
    CHECK(has(none, "config.json"));
}

TEST_CASE("hf: a folder with only pytorch_model.bin is refused with a hint; so is one with no weights") {
    ScratchDir dir("hf_bin");
    write_config(dir.str(), gpt2_config());
    const std::string e0 = error_of([&] { nn::load_hf_model(dir.str()); });
    CHECK(has(e0, "model.safetensors"));
    write_bytes(dir.file("pytorch_model.bin"), "not a pickle");
    const std::string e = error_of([&] { nn::load_hf_model(dir.str()); });
    CHECK(has(e, "pytorch_model.bin"));
    CHECK(has(e, "save_pretrained"));
    CHECK(has(e, dir.str()));
}

TEST_CASE("hf: a tied GPT-2 whose lm_head differs from wte is refused") {
    ScratchDir dir("hf_tied_bad");
    write_config(dir.str(), gpt2_config());
    Named hf = gpt2_tensors("transformer.");
    Tensor head = find(hf, "transformer.wte.weight").clone();
    head.select(0, 3).select(0, 2).fill_(0.5);
    hf.emplace_back("lm_head.weight", head);
    data::write_safetensors(dir.file("model.safetensors"), hf);
    const std::string e = error_of([&] { nn::load_hf_model(dir.str()); });
    CHECK(has(e, "lm_head.weight"));
    CHECK(has(e, "tie_word_embeddings"));
    // Untied in config.json, the same folder loads with its own head.
    json j = gpt2_config();
    j["tie_word_embeddings"] = false;
    write_config(dir.str(), j);
    auto m = nn::load_hf_model(dir.str());
    check_same(state_of(*m).at("lm_head.weight"), head);
}
