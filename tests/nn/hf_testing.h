// tests/nn/hf_testing.h: what the Hugging Face import and export tests (hf_import_test.cpp,
// hf_export_test.cpp) share: element access, a model's state by name, exact comparisons of tensors
// and of whole models, the message of an expected error, and the tiny GPT-2 and Llama configurations.
#pragma once

#include "nn/hf_model.h"
#include "tests/harness.h"

#include <cstdint>
#include <exception>
#include <map>
#include <string>

namespace lumen::hf_test {

inline double at(const Tensor& t, int64_t i, int64_t j) { return t.select(0, i).select(0, j).item(); }
inline double at(const Tensor& t, int64_t i) { return t.select(0, i).item(); }

inline std::map<std::string, Tensor> state_of(const nn::GPT& m) {
    std::map<std::string, Tensor> out;
    for (auto& [name, t] : m.state_dict()) out.emplace(name, t);
    return out;
}

inline void check_same(const Tensor& got, const Tensor& want) {
    REQUIRE(got.shape() == want.shape());
    CHECK(got.to(DType::f32).to_vector<float>() == want.to(DType::f32).to_vector<float>());
}

// The message of the error `f` throws ("" and a failed check when it throws none).
template <typename F>
inline std::string error_of(F&& f) {
    try {
        f();
    } catch (const std::exception& e) {
        return e.what();
    }
    FAIL_CHECK("expected an error");
    return "";
}

inline bool has(const std::string& text, const std::string& part) { return text.find(part) != std::string::npos; }

inline nn::ModelConfig tiny_gpt2() {
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

inline nn::ModelConfig tiny_llama() {
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
inline void check_same_state(const nn::GPT& a, const nn::GPT& b) {
    auto sa = state_of(a), sb = state_of(b);
    CHECK(sa.size() == sb.size());
    for (auto& [name, t] : sb) {
        INFO(name);
        REQUIRE(sa.count(name));
        CHECK(test::same_bits(sa.at(name), t));
    }
}

}  // namespace lumen::hf_test
