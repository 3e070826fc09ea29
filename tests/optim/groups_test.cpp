// tests/optim/groups_test.cpp: parameter routing (specs/optimizers.md §2) on synthetic parameter
// lists shaped like a small GPT (tied wte, learned wpe, fused c_attn with a Q/K/V row partition,
// biases, norms, oscillation parameters, an untied head): G1 decay, decay_embeddings = false, G2
// Muon routing with the auxiliary AdamW, row_parts kept, frozen parameters, empty groups dropped,
// and the "every parameter in exactly one group" errors.
#include "tests/optim/optim_testing.h"

#include "optim/groups.h"

#include <set>

using namespace lumen;
using namespace lumen::optim_test;
using nn::Role;

namespace {

constexpr int64_t V = 50, T = 16, C = 8, kv = 4, H = 32;

nn::Parameter p(const std::string& name, const Shape& shape, Role role, std::vector<int64_t> row_parts = {}) {
    nn::Parameter out = param(name, shape, std::hash<std::string>{}(name), Device::cpu(), role);
    out.row_parts = std::move(row_parts);
    return out;
}

// Two blocks with GQA attention (Q C rows, K and V kv rows each), an MLP, a 2-D oscillation
// parameter and 1-D ones, biases, norms; tied wte; optionally an untied head.
std::vector<nn::Parameter> tiny_gpt(bool head) {
    std::vector<nn::Parameter> ps = {p("wte.weight", {V, C}, Role::embedding), p("wpe.weight", {T, C}, Role::embedding)};
    for (int b = 0; b < 2; ++b) {
        const std::string pre = "blocks." + std::to_string(b) + ".";
        ps.push_back(p(pre + "ln_1.weight", {C}, Role::norm));
        ps.push_back(p(pre + "ln_1.bias", {C}, Role::norm));
        ps.push_back(p(pre + "attn.c_attn.weight", {C + 2 * kv, C}, Role::matrix, {C, kv, kv}));
        ps.push_back(p(pre + "attn.c_attn.bias", {C + 2 * kv}, Role::bias));
        ps.push_back(p(pre + "attn.c_proj.weight", {C, C}, Role::matrix));
        ps.push_back(p(pre + "ln_2.weight", {C}, Role::norm));
        ps.push_back(p(pre + "mlp.c_fc.weight", {H, C}, Role::matrix));
        ps.push_back(p(pre + "mlp.osc.omega", {H}, Role::osc));
        ps.push_back(p(pre + "mlp.osc.phase", {2, H}, Role::osc));
        ps.push_back(p(pre + "mlp.c_proj.weight", {C, H}, Role::matrix));
        ps.push_back(p(pre + "mlp.c_proj.bias", {C}, Role::bias));
    }
    ps.push_back(p("ln_f.weight", {C}, Role::norm));
    ps.push_back(p("scale", {1}, Role::other));
    if (head) ps.push_back(p("lm_head.weight", {V, C}, Role::head));
    return ps;
}

std::set<std::string> names(const optim::Group& g) {
    std::set<std::string> out;
    for (const nn::Parameter& q : g.params) out.insert(q.name);
    return out;
}

std::set<std::string> names_where(const std::vector<nn::Parameter>& ps, const std::function<bool(const nn::Parameter&)>& f) {
    std::set<std::string> out;
    for (const nn::Parameter& q : ps)
        if (f(q)) out.insert(q.name);
    return out;
}

optim::GroupConfig config(optim::Kind kind) {
    optim::GroupConfig cfg;
    cfg.kind = kind;
    cfg.main = optim::api_defaults(kind);
    cfg.main.weight_decay = kind == optim::Kind::muon ? 0.01 : 0.1;
    cfg.aux_adamw = optim::muon_aux_adamw_api_defaults();
    cfg.aux_adamw.weight_decay = 0.02;
    return cfg;
}

}  // namespace

TEST_CASE("groups: G1 decays dim >= 2 except norm and osc; embeddings and the head included") {
    const std::vector<nn::Parameter> ps = tiny_gpt(true);
    for (optim::Kind kind : {optim::Kind::adamw, optim::Kind::lion, optim::Kind::sgd, optim::Kind::adamw8bit}) {
        INFO(optim::kind_name(kind));
        const std::vector<optim::Group> gs = optim::make_groups(ps, config(kind));
        REQUIRE(gs.size() == 2);
        CHECK(gs[0].label == "decay");
        CHECK(gs[1].label == "no_decay");
        CHECK((gs[0].kind == kind && gs[1].kind == kind));
        CHECK(gs[0].hyper.weight_decay == 0.1);
        CHECK(gs[1].hyper.weight_decay == 0.0);
        CHECK(gs[1].hyper.lr == gs[0].hyper.lr);
        const std::set<std::string> decayed = {"wte.weight", "wpe.weight", "lm_head.weight",
                                               "blocks.0.attn.c_attn.weight", "blocks.0.attn.c_proj.weight",
                                               "blocks.0.mlp.c_fc.weight", "blocks.0.mlp.c_proj.weight",
                                               "blocks.1.attn.c_attn.weight", "blocks.1.attn.c_proj.weight",
                                               "blocks.1.mlp.c_fc.weight", "blocks.1.mlp.c_proj.weight"};
        CHECK(names(gs[0]) == decayed);
        CHECK(names(gs[1]) == names_where(ps, [&](const nn::Parameter& q) { return !decayed.count(q.name); }));
        CHECK(gs[0].params.size() + gs[1].params.size() == ps.size());
        CHECK_NOTHROW(optim::Optimizer{gs});
    }
}

TEST_CASE("groups: decay_embeddings = false moves wte and wpe to no_decay (the head stays)") {
    const std::vector<nn::Parameter> ps = tiny_gpt(true);
    optim::GroupConfig cfg = config(optim::Kind::adamw);
    cfg.decay_embeddings = false;
    const std::vector<optim::Group> gs = optim::make_groups(ps, cfg);
    REQUIRE(gs.size() == 2);
    CHECK(!names(gs[0]).count("wte.weight"));
    CHECK(!names(gs[0]).count("wpe.weight"));
    CHECK(names(gs[1]).count("wte.weight"));
    CHECK(names(gs[1]).count("wpe.weight"));
    CHECK(names(gs[0]).count("lm_head.weight"));
    CHECK(gs[0].params.size() == 9);
}

TEST_CASE("groups: G2 Muon takes role matrix; the rest goes to the auxiliary AdamW with G1 decay") {
    const std::vector<nn::Parameter> ps = tiny_gpt(true);
    const optim::GroupConfig cfg = config(optim::Kind::muon);
    const std::vector<optim::Group> gs = optim::make_groups(ps, cfg);
    REQUIRE(gs.size() == 3);
    CHECK((gs[0].label == "muon" && gs[0].kind == optim::Kind::muon));
    CHECK((gs[1].label == "decay" && gs[1].kind == optim::Kind::adamw));
    CHECK((gs[2].label == "no_decay" && gs[2].kind == optim::Kind::adamw));
    CHECK(names(gs[0]) == names_where(ps, [](const nn::Parameter& q) { return q.role == Role::matrix; }));
    CHECK(names(gs[1]) == std::set<std::string>{"wte.weight", "wpe.weight", "lm_head.weight"});
    CHECK(gs[2].params.size() == ps.size() - 8 - 3);
    // Muon's hyper-parameters are cfg.main, the AdamW groups' cfg.aux_adamw (no_decay: wd 0).
    CHECK(gs[0].hyper.lr == 0.02);
    CHECK(gs[0].hyper.weight_decay == 0.01);
    CHECK(gs[1].hyper.lr == 3e-4);
    CHECK(gs[1].hyper.beta2 == 0.95);
    CHECK(gs[1].hyper.weight_decay == 0.02);
    CHECK(gs[2].hyper.weight_decay == 0.0);
    // G3: each c_attn keeps its Q, K, V partition (three NS matrices).
    int c_attn = 0;
    for (const nn::Parameter& q : gs[0].params)
        if (q.name.find("c_attn") != std::string::npos) {
            ++c_attn;
            CHECK(q.row_parts == std::vector<int64_t>{C, kv, kv});
        }
    CHECK(c_attn == 2);
}

TEST_CASE("groups: frozen parameters belong to no group; empty groups are dropped") {
    std::vector<nn::Parameter> ps = tiny_gpt(false);
    ps[0].tensor.set_requires_grad(false);  // wte frozen
    const std::vector<optim::Group> gs = optim::make_groups(ps, config(optim::Kind::adamw));
    for (const optim::Group& g : gs) CHECK(!names(g).count("wte.weight"));
    // Only vectors: one no_decay group.
    const std::vector<nn::Parameter> vectors = {p("a", {3}, Role::bias), p("n", {3}, Role::norm)};
    const std::vector<optim::Group> only = optim::make_groups(vectors, config(optim::Kind::adamw));
    REQUIRE(only.size() == 1);
    CHECK(only[0].label == "no_decay");
    // Muon without matrices: no muon group.
    const std::vector<optim::Group> no_muon = optim::make_groups(vectors, config(optim::Kind::muon));
    REQUIRE(no_muon.size() == 1);
    CHECK(no_muon[0].kind == optim::Kind::adamw);
    // Nothing trainable: no groups.
    CHECK(optim::make_groups({}, config(optim::Kind::adamw)).empty());
}

TEST_CASE("groups: errors name the parameter (a tied weight listed twice, bad Muon matrices)") {
    std::vector<nn::Parameter> ps = tiny_gpt(false);
    ps.push_back({"lm_head.weight", ps[0].tensor, Role::head, {}});  // the tied wte again
    CHECK_THROWS_CONTAINING(optim::make_groups(ps, config(optim::Kind::adamw)),
                            "parameter lm_head.weight is the same tensor as wte.weight");
    CHECK_THROWS_CONTAINING(optim::make_groups({p("m", {3, 4, 5}, Role::matrix)}, config(optim::Kind::muon)),
                            "parameter m has role matrix but is not 2-D");
    CHECK_THROWS_CONTAINING(optim::make_groups({p("qkv", {16, 8}, Role::matrix, {8, 4, 3})}, config(optim::Kind::muon)),
                            "parameter qkv: row_parts must be positive and sum to its 16 rows");
    // Without muon the partition is not read.
    CHECK_NOTHROW(optim::make_groups({p("qkv", {16, 8}, Role::matrix, {8, 4, 3})}, config(optim::Kind::adamw)));
}

TEST_CASE("groups: every parameter in exactly one group, asserted by the optimizer") {
    const std::vector<nn::Parameter> ps = tiny_gpt(true);
    std::vector<optim::Group> gs = optim::make_groups(ps, config(optim::Kind::adamw));
    optim::check_one_group_each(gs, ps);
    gs[1].params.push_back(gs[0].params[0]);  // wte in both groups
    CHECK_THROWS_CONTAINING(optim::Optimizer{gs}, "parameter wte.weight is in more than one group");
    CHECK_THROWS_CONTAINING(optim::check_one_group_each(gs, ps), "parameter wte.weight is in two groups");
    gs[1].params.pop_back();
    gs[0].params.erase(gs[0].params.begin());
    CHECK_THROWS_CONTAINING(optim::check_one_group_each(gs, ps), "parameter wte.weight is in no group");
}
