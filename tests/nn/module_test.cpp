// tests/nn/module_test.cpp: the module tree: names, modes, state dicts, moves, replacement, config
// validation.
#include "nn/gpt.h"
#include "tests/harness.h"

using namespace lumen;

namespace {

nn::ModelConfig tiny(nn::MlpKind mlp = nn::MlpKind::gelu) {
    nn::ModelConfig c;
    c.n_layer = 2;
    c.n_head = 2;
    c.n_embd = 8;
    c.block_size = 16;
    c.vocab_size = 11;
    c.mlp = mlp;
    return c;
}

bool has_name(const std::vector<nn::Parameter>& ps, const std::string& name) {
    for (const auto& p : ps)
        if (p.name == name) return true;
    return false;
}

}  // namespace

TEST_CASE("module: dotted names, roles and row parts") {
    nn::GPT model(tiny(nn::MlpKind::bio));
    auto ps = model.parameters();
    CHECK(has_name(ps, "wte.weight"));
    CHECK(has_name(ps, "wpe.weight"));
    CHECK(has_name(ps, "blocks.0.attn.c_attn.weight"));
    CHECK(has_name(ps, "blocks.1.mlp.sparse_gate.gate.weight"));
    CHECK(has_name(ps, "blocks.1.mlp.sparse_gate.activation.omega"));
    CHECK(has_name(ps, "blocks.0.mlp.oscillating.phi"));
    CHECK(has_name(ps, "ln_f.weight"));
    CHECK_FALSE(has_name(ps, "lm_head.weight"));  // tied
    for (const auto& p : ps) {
        INFO(p.name);
        if (p.name == "blocks.0.attn.c_attn.weight") {
            CHECK(p.role == nn::Role::matrix);
            CHECK(p.row_parts == std::vector<int64_t>{8, 8, 8});
        }
        if (p.name.ends_with("omega")) CHECK(p.role == nn::Role::osc);
        if (p.name.find("ln_") != std::string::npos) CHECK(p.role == nn::Role::norm);
        if (p.name == "wte.weight") CHECK(p.role == nn::Role::embedding);
        CHECK(p.tensor.requires_grad());
    }
    // Untied: lm_head appears with role head; GQA changes the partition.
    auto c = tiny();
    c.tie_embeddings = false;
    c.n_kv_head = 1;
    nn::GPT untied(c);
    for (const auto& p : untied.parameters()) {
        if (p.name == "lm_head.weight") CHECK(p.role == nn::Role::head);
        if (p.name == "blocks.0.attn.c_attn.weight") CHECK(p.row_parts == std::vector<int64_t>{8, 4, 4});
    }
    CHECK(has_name(untied.parameters(), "lm_head.weight"));
}

TEST_CASE("module: train/eval reaches every submodule; modules() lists names") {
    nn::GPT model(tiny());
    model.eval();
    for (auto& [name, m] : model.modules()) {
        INFO(name);
        CHECK_FALSE(m->training());
    }
    model.train();
    for (auto& [name, m] : model.modules()) CHECK(m->training());
    bool found = false;
    for (auto& [name, m] : model.modules()) found |= name == "blocks.1.attn.c_proj";
    CHECK(found);
}

TEST_CASE("module: state_dict round trip, and clear errors for missing, unexpected, mis-shaped") {
    nn::GPT a(tiny());
    auto c = tiny();
    c.init_seed = 99;
    nn::GPT b(c);
    std::map<std::string, Tensor> state;
    for (auto& [name, t] : a.state_dict()) state[name] = t;
    b.load_state_dict(state);
    for (auto& p : b.parameters()) {
        INFO(p.name);
        CHECK(test::same_bits(p.tensor, state.at(p.name)));
    }
    auto missing = state;
    missing.erase("ln_f.weight");
    CHECK_THROWS_CONTAINING(b.load_state_dict(missing), "missing 1 [ln_f.weight]");
    auto extra = state;
    extra["blocks.9.attn.c_attn.weight"] = Tensor::zeros({2});
    CHECK_THROWS_CONTAINING(b.load_state_dict(extra), "unexpected 1 [blocks.9.attn.c_attn.weight]");
    auto wrong = state;
    wrong["wte.weight"] = Tensor::zeros({3, 8});
    CHECK_THROWS_CONTAINING(b.load_state_dict(wrong), "wte.weight (expected (11, 8), got (3, 8))");
}

TEST_CASE("module: to(dtype) keeps identities; frozen parameters") {
    nn::GPT model(tiny());
    Tensor w = model.parameters().front().tensor;
    model.to(DType::f64);
    CHECK(w.dtype() == DType::f64);                       // the same handle sees the move
    CHECK(model.parameters().front().tensor.same(w));
    CHECK(w.requires_grad());
    model.set_requires_grad(false);
    for (auto& p : model.parameters()) CHECK_FALSE(p.tensor.requires_grad());
}

TEST_CASE("module: replace_module swaps a layer under its holder, and checks the type") {
    nn::GPT model(tiny());
    model.eval();
    Tensor idx = Tensor::from(std::vector<int64_t>{1, 2, 3, 4}, {1, 4});
    Tensor before = model.forward(idx);
    Generator gen(5);
    model.replace_module("blocks.0.attn.c_proj", std::make_shared<nn::Linear>(8, 8, false, gen, 0.0));
    Tensor after = model.forward(idx);
    CHECK_FALSE(test::same_bits(before, after));          // the zero projection is in use
    CHECK_THROWS_CONTAINING(model.replace_module("blocks.0.attn.c_proj", std::make_shared<nn::RMSNorm>(8, 1e-6)),
                            "not the kind of module");
    CHECK_THROWS_CONTAINING(model.replace_module("blocks.7.attn", std::make_shared<nn::RMSNorm>(8, 1e-6)),
                            "no submodule named");
}

TEST_CASE("config: validation names the key") {
    auto c = tiny();
    c.n_head = 3;
    CHECK_THROWS_CONTAINING(nn::validate(c), "model.n_head: n_embd (8) must be divisible by n_head (3)");
    c = tiny();
    c.n_kv_head = 3;
    CHECK_THROWS_CONTAINING(nn::validate(c), "model.n_kv_head");
    c = tiny();
    c.n_embd = 6;
    c.n_head = 2;
    c.pos = nn::PosKind::rope;
    CHECK_THROWS_CONTAINING(nn::validate(c), "rope needs an even head size");
    c = tiny();
    c.dropout = 1.0;
    CHECK_THROWS_CONTAINING(nn::validate(c), "model.dropout");
    c = tiny(nn::MlpKind::bio);
    c.bio_threshold = 1.5;
    CHECK_THROWS_CONTAINING(nn::validate(c), "model.bio_threshold");
    CHECK(nn::parse_mlp("swiglu") == nn::MlpKind::swiglu);
    CHECK_FALSE(nn::parse_mlp("relu").has_value());
}
