// tests/nn/hf_export_test.cpp: writing Hugging Face model folders (specs/formats.md §8): export ->
// import round trips (GPT-2 tied and without biases, Llama untied and tied, F32 and BF16) with the
// folder checked as transformers expects it; optical buffers left out; RoPE pairing across export
// (interleaved lumen -> half-split HF, the §8.3 permutation itself) with a negative control; and
// every refusal the exporter promises, checked by its message.
#include "data/safetensors.h"
#include "nn/hf_model.h"
#include "tests/data/data_test_util.h"
#include "tests/harness.h"
#include "tests/nn/hf_testing.h"

#include <nlohmann/json.hpp>

#include <filesystem>
#include <map>
#include <set>

using namespace lumen;
using namespace lumen::hf_test;
using lumen::test::ScratchDir;
using lumen::test::write_bytes;
using nlohmann::json;

namespace {

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

}  // namespace

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
