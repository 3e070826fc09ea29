// tests/nn/hf_model_test.cpp: Hugging Face model folders (specs/formats.md §8): hand-built GPT-2 and
// Llama folders (HF names, distinct known values) land element by element where §8.1/§8.2 say, with
// and without the `transformer.` prefix, single-file and sharded; export -> import round trips;
// RoPE pairing across export (interleaved lumen -> half-split HF) with a negative control; and every
// refusal the importer and exporter promise, checked by its message.
#include "data/safetensors.h"
#include "nn/hf_model.h"
#include "tests/data/data_test_util.h"
#include "tests/harness.h"

#include <nlohmann/json.hpp>

#include <filesystem>
#include <map>
#include <set>

using namespace lumen;
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

double at(const Tensor& t, int64_t i, int64_t j) { return t.select(0, i).select(0, j).item(); }
double at(const Tensor& t, int64_t i) { return t.select(0, i).item(); }

std::map<std::string, Tensor> state_of(const nn::GPT& m) {
    std::map<std::string, Tensor> out;
    for (auto& [name, t] : m.state_dict()) out.emplace(name, t);
    return out;
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

void check_same(const Tensor& got, const Tensor& want) {
    REQUIRE(got.shape() == want.shape());
    CHECK(got.to(DType::f32).to_vector<float>() == want.to(DType::f32).to_vector<float>());
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

// The message of the error `f` throws ("" and a failed check when it throws none).
template <typename F>
std::string error_of(F&& f) {
    try {
        f();
    } catch (const std::exception& e) {
        return e.what();
    }
    FAIL_CHECK("expected an error");
    return "";
}

bool has(const std::string& text, const std::string& part) { return text.find(part) != std::string::npos; }

Tensor token_ids(int64_t T, int64_t vocab) {
    std::vector<int64_t> ids;
    for (int64_t t = 0; t < T; ++t) ids.push_back((t * 7 + 3) % vocab);
    return Tensor::from(ids, {1, T});
}

Tensor logits_of(nn::GPT& m, const Tensor& idx) {
    autograd::NoGradGuard no_grad;
    m.eval();
    return m.forward(idx);
}

nn::ModelConfig tiny_gpt2() {
    nn::ModelConfig c;
    c.n_layer = 2;
    c.n_head = 2;
    c.n_embd = 8;
    c.block_size = 16;
    c.vocab_size = 13;
    c.bias = true;
    c.mlp = nn::MlpKind::gelu_tanh;
    c.init_seed = 7;
    return c;
}

nn::ModelConfig tiny_llama() {
    nn::ModelConfig c;
    c.n_layer = 2;
    c.n_head = 4;
    c.n_kv_head = 2;
    c.n_embd = 16;
    c.block_size = 32;
    c.vocab_size = 11;
    c.norm = nn::NormKind::rmsnorm;
    c.pos = nn::PosKind::rope;
    c.mlp = nn::MlpKind::swiglu;
    c.mlp_hidden = 24;
    c.rope_theta = 10000.0;
    c.tie_embeddings = false;
    c.init_seed = 11;
    return c;
}

// Every entry of `b` has the same name, shape and bytes in `a`, and the two have the same names.
void check_same_state(const nn::GPT& a, const nn::GPT& b) {
    auto sa = state_of(a), sb = state_of(b);
    CHECK(sa.size() == sb.size());
    for (auto& [name, t] : sb) {
        INFO(name);
        REQUIRE(sa.count(name));
        CHECK(test::same_bits(sa.at(name), t));
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

// ---------------------------------------------------------------- export -> import

TEST_CASE("hf: export -> import round trips: gpt2 tied, gpt2 without biases, llama untied and tied") {
    SUBCASE("gpt2, tied, biases") {
        ScratchDir dir("hf_rt_gpt2");
        nn::GPT m(tiny_gpt2());
        nn::export_hf(m.config(), m.state_dict(), dir.file("out"));
        // The folder as transformers expects it: names, Conv1D layout, no lm_head, config keys.
        const auto f = data::open_safetensors(dir.file("out/model.safetensors"));
        CHECK(f.contains("transformer.wte.weight"));
        CHECK(!f.contains("lm_head.weight"));
        CHECK(f.entry("transformer.h.1.attn.c_attn.weight").shape == Shape{8, 24});
        CHECK(f.entry("transformer.h.0.mlp.c_proj.weight").shape == Shape{32, 8});
        CHECK(f.metadata().at("format") == "pt");
        check_same(f.load("transformer.h.0.mlp.c_fc.weight"), state_of(m).at("blocks.0.mlp.c_fc.weight").transpose(0, 1));
        const json j = json::parse(test::read_bytes(dir.file("out/config.json")));
        CHECK(j.at("model_type") == "gpt2");
        CHECK(j.at("architectures") == json{"GPT2LMHeadModel"});
        CHECK(j.at("activation_function") == "gelu_new");
        CHECK(j.at("n_positions") == 16);
        CHECK(j.at("vocab_size") == 13);
        CHECK(j.at("tie_word_embeddings") == true);
        CHECK(j.at("torch_dtype") == "float32");
        CHECK(!j.contains("bos_token_id"));  // vocabulary 13 has no token 50256
        auto back = nn::load_hf_model(dir.file("out"));
        check_same_state(*back, m);
        CHECK(back->config().mlp == nn::MlpKind::gelu_tanh);
        // Export into an existing folder rewrites the weights and config, keeps other files, and leaves
        // no temporary file or directory behind.
        write_bytes(dir.file("out/tokenizer.json"), "{}");
        nn::ModelConfig c2 = tiny_gpt2();
        c2.init_seed = 8;
        nn::GPT m2(c2);
        nn::export_hf(c2, m2.state_dict(), dir.file("out"));
        check_same_state(*nn::load_hf_model(dir.file("out")), m2);
        std::set<std::string> names;
        for (auto& e : std::filesystem::directory_iterator(dir.str())) names.insert(e.path().filename().string());
        CHECK(names == std::set<std::string>{"out"});
        names.clear();
        for (auto& e : std::filesystem::directory_iterator(dir.file("out"))) names.insert(e.path().filename().string());
        CHECK(names == std::set<std::string>{"config.json", "model.safetensors", "tokenizer.json"});
    }
    SUBCASE("gpt2 without biases, untied, exact gelu, eps 1e-6: zero biases written") {
        ScratchDir dir("hf_rt_gpt2_nobias");
        nn::ModelConfig c = tiny_gpt2();
        c.bias = false;
        c.tie_embeddings = false;
        c.mlp = nn::MlpKind::gelu;
        c.norm_eps = 1e-6;
        nn::GPT m(c);
        nn::export_hf(c, m.state_dict(), dir.str() + "/out");
        const json j = json::parse(test::read_bytes(dir.file("out/config.json")));
        CHECK(j.at("activation_function") == "gelu");
        CHECK(j.at("layer_norm_epsilon") == 1e-6);
        auto back = nn::load_hf_model(dir.file("out"));
        CHECK(back->config().bias);
        CHECK(!back->config().tie_embeddings);
        CHECK(back->config().eps() == 1e-6);
        auto sb = state_of(*back), sm = state_of(m);
        int biases = 0;
        for (auto& [name, t] : sb) {
            INFO(name);
            if (sm.count(name)) {
                CHECK(test::same_bits(t, sm.at(name)));
            } else {
                REQUIRE(name.size() > 5);
                CHECK(name.substr(name.size() - 5) == ".bias");
                for (float x : t.to_vector<float>()) CHECK(x == 0.0f);
                biases += 1;
            }
        }
        CHECK(biases == 2 * 6 + 1);
        const Tensor idx = token_ids(9, 13);
        CHECK(test::compare(logits_of(*back, idx), logits_of(m, idx), {1e-6, 1e-6}) == "");
    }
    SUBCASE("llama, untied") {
        ScratchDir dir("hf_rt_llama");
        nn::GPT m(tiny_llama());
        nn::export_hf(m.config(), m.state_dict(), dir.file("out"));
        const auto f = data::open_safetensors(dir.file("out/model.safetensors"));
        CHECK(f.entry("model.layers.0.self_attn.k_proj.weight").shape == Shape{8, 16});
        CHECK(f.contains("lm_head.weight"));
        const json j = json::parse(test::read_bytes(dir.file("out/config.json")));
        CHECK(j.at("model_type") == "llama");
        CHECK(j.at("architectures") == json{"LlamaForCausalLM"});
        CHECK(j.at("num_key_value_heads") == 2);
        CHECK(j.at("head_dim") == 4);
        CHECK(j.at("intermediate_size") == 24);
        CHECK(j.at("tie_word_embeddings") == false);
        auto back = nn::load_hf_model(dir.file("out"));
        check_same_state(*back, m);
        CHECK(back->config().kv_heads() == 2);
        CHECK(back->config().rope_theta == 10000.0);
    }
    SUBCASE("llama, tied, biases, bf16") {
        ScratchDir dir("hf_rt_llama_tied");
        nn::ModelConfig c = tiny_llama();
        c.tie_embeddings = true;
        c.bias = true;
        c.rope_theta = 50000.0;
        nn::GPT m(c);
        nn::export_hf(c, m.state_dict(), dir.file("out"));
        auto back = nn::load_hf_model(dir.file("out"));
        check_same_state(*back, m);
        CHECK(back->config().rope_theta == 50000.0);
        CHECK(back->config().bias);
        nn::export_hf(c, m.state_dict(), dir.file("bf16"), DType::bf16);
        const auto f = data::open_safetensors(dir.file("bf16/model.safetensors"));
        CHECK(f.entry("model.embed_tokens.weight").dtype == "BF16");
        CHECK(!f.contains("lm_head.weight"));
        CHECK(json::parse(test::read_bytes(dir.file("bf16/config.json"))).at("torch_dtype") == "bfloat16");
        auto back16 = nn::load_hf_model(dir.file("bf16"));
        auto sb = state_of(*back16);
        for (auto& [name, t] : state_of(m)) {
            INFO(name);
            check_same(sb.at(name), t.to(DType::bf16));
        }
    }
}

TEST_CASE("hf: export ignores optical buffers") {
    ScratchDir dir("hf_optical");
    nn::GPT m(tiny_gpt2());
    auto state = m.state_dict();
    state.emplace_back("blocks.0.attn.c_attn.x_min_max", Tensor::zeros({2}));
    state.emplace_back("blocks.0.mlp.c_fc.dither_calls", Tensor::zeros({1}, DType::i64));
    nn::export_hf(m.config(), state, dir.file("out"));
    const auto f = data::open_safetensors(dir.file("out/model.safetensors"));
    for (auto& e : f.entries()) CHECK(e.name.find("min_max") == std::string::npos);
    check_same_state(*nn::load_hf_model(dir.file("out")), m);
}

// ---------------------------------------------------------------- RoPE pairing

TEST_CASE("hf: an interleaved-RoPE lumen model exported and re-imported (half-split) gives the same logits") {
    ScratchDir dir("hf_rope");
    nn::ModelConfig c = tiny_llama();
    c.rope_pairing = nn::RopePairingKind::interleaved;
    nn::GPT m(c);
    // Weights of order 1 (not the N(0, 0.02) init), so attention is far from uniform and positions matter.
    std::map<std::string, Tensor> sd;
    uint64_t seed = 100;
    for (auto& [name, t] : m.state_dict()) sd.emplace(name, test::random(t.shape(), seed++, DType::f32, Device::cpu(), -0.8, 0.8));
    m.load_state_dict(sd);
    nn::export_hf(c, m.state_dict(), dir.file("out"));
    auto back = nn::load_hf_model(dir.file("out"));
    CHECK(back->config().rope_pairing == nn::RopePairingKind::half);
    const Tensor idx = token_ids(12, c.vocab_size);
    const Tensor want = logits_of(m, idx);
    CHECK(test::compare(logits_of(*back, idx), want, {1e-5, 1e-5}) == "");

    // The permutation itself (§8.3): HF q/k row h·hd + p·hd/2 + j = lumen row h·hd + 2j + p; v is not permuted.
    const auto f = data::open_safetensors(dir.file("out/model.safetensors"));
    const Tensor qkv = state_of(m).at("blocks.1.attn.c_attn.weight");
    const Tensor q = f.load("model.layers.1.self_attn.q_proj.weight"), k = f.load("model.layers.1.self_attn.k_proj.weight"),
                 v = f.load("model.layers.1.self_attn.v_proj.weight");
    const int64_t hd = 4;
    for (int64_t h = 0; h < 4; ++h)
        for (int64_t p = 0; p < 2; ++p)
            for (int64_t j = 0; j < hd / 2; ++j)
                for (int64_t col = 0; col < 16; col += 5) {
                    CHECK(at(q, h * hd + p * hd / 2 + j, col) == at(qkv, h * hd + 2 * j + p, col));
                    if (h < 2) CHECK(at(k, h * hd + p * hd / 2 + j, col) == at(qkv, 16 + h * hd + 2 * j + p, col));
                }
    check_same(v, qkv.narrow(0, 24, 8));

    // Negative control: the same weights run half-split without the permutation give other logits.
    nn::ModelConfig half = c;
    half.rope_pairing = nn::RopePairingKind::half;
    nn::GPT unpermuted(half);
    unpermuted.load_state_dict(sd);
    const Tensor wrong = logits_of(unpermuted, idx);
    CHECK(test::compare(wrong, want, {1e-2, 1e-2}) != "");
    // ... at the first position alone they agree (RoPE at p = 0 is the identity): the difference is RoPE's.
    CHECK(test::compare(wrong.narrow(1, 0, 1), want.narrow(1, 0, 1), {1e-5, 1e-5}) == "");

    // Loading a half-split folder into an interleaved model permutes back: the same logits again.
    nn::HfModel cfg = nn::read_hf_config(dir.file("out"));
    nn::GPT inter(c);
    nn::load_hf_weights(cfg, inter);
    check_same_state(inter, m);
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

TEST_CASE("hf: export refusals: bio and osc MLPs, pos none, GQA gpt2, LoRA adapters, missing tensors") {
    ScratchDir dir("hf_export_bad");
    auto refused = [&](const nn::ModelConfig& c, const std::vector<std::string>& parts) {
        nn::NoInitGuard no_init;
        nn::GPT m(c);
        const std::string e = error_of([&] { nn::export_hf(c, m.state_dict(), dir.file("out")); });
        for (auto& p : parts) CHECK_MESSAGE(has(e, p), e);
        CHECK(!std::filesystem::exists(dir.file("out")));
    };
    nn::ModelConfig c = tiny_gpt2();
    c.mlp = nn::MlpKind::bio;
    refused(c, {"model.mlp", "bio"});
    c.mlp = nn::MlpKind::osc;
    refused(c, {"model.mlp", "osc"});
    c = tiny_gpt2();
    c.pos = nn::PosKind::none;
    refused(c, {"model.pos", "none"});
    c = tiny_gpt2();
    c.n_head = 4;
    c.n_kv_head = 2;
    refused(c, {"model.n_kv_head"});
    c = tiny_llama();
    c.norm = nn::NormKind::layernorm;
    refused(c, {"model.pos"});
    c = tiny_llama();
    c.mlp = nn::MlpKind::gelu;
    refused(c, {"model.mlp", "gelu"});

    nn::GPT m(tiny_llama());
    auto state = m.state_dict();
    state.emplace_back("blocks.0.attn.c_attn.lora_A", Tensor::zeros({4, 16}));
    const std::string e = error_of([&] { nn::export_hf(m.config(), state, dir.file("out")); });
    CHECK(has(e, "merge the LoRA adapters first (--merge_lora)"));
    CHECK(has(e, "blocks.0.attn.c_attn.lora_A"));

    state = m.state_dict();
    const std::string missing = state[3].first;
    state.erase(state.begin() + 3);
    const std::string e2 = error_of([&] { nn::export_hf(m.config(), state, dir.file("out")); });
    CHECK(has(e2, "missing 1 [" + missing + "]"));
    CHECK(!std::filesystem::exists(dir.file("out")));
}
