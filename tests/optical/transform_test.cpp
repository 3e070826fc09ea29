// tests/optical/transform_test.cpp: the transform pass (specs/optical.md §7.1, §7.4, §10 T1): rule
// matching (first full match, default, none, errors), which modules become optical, that the
// parameters stay the same tensors, the buffers it adds, the dry run, and the histogram.
#include "nn/optical_linear.h"
#include "nn/optical_transform.h"
#include "tests/harness.h"

#include <cmath>
#include <map>

using namespace lumen;
using nn::OpticalUnitKind;

namespace {

nn::ModelConfig tiny(int64_t layers, bool tied = false, nn::MlpKind mlp = nn::MlpKind::gelu) {
    nn::ModelConfig c;
    c.n_layer = layers;
    c.n_head = 2;
    c.n_kv_head = 1;
    c.n_embd = 8;
    c.block_size = 16;
    c.vocab_size = 13;
    c.mlp = mlp;
    c.tie_embeddings = tied;
    return c;
}

nn::OpticalPlan plan_with(std::vector<nn::OpticalRule> rules, std::vector<std::string> extra_sets = {}) {
    nn::OpticalPlan plan;
    for (std::string name : {"attention", "fc"}) plan.settings[name].name = name;
    for (const auto& name : extra_sets) plan.settings[name].name = name;
    plan.rules = std::move(rules);
    return plan;
}

bool is_optical_linear(nn::Module* m) { return dynamic_cast<nn::OpticalLinear*>(m) != nullptr; }

bool is_optical_attention(nn::Module* m) {
    auto* a = dynamic_cast<nn::CausalSelfAttention*>(m);
    return a && a->is_optical();
}

// name -> module of the model as it is now.
std::map<std::string, nn::Module*> module_map(nn::GPT& model) {
    std::map<std::string, nn::Module*> out;
    for (auto& [name, m] : model.modules()) out[name] = m;
    return out;
}

int64_t count_optical(nn::GPT& model) {
    int64_t n = 0;
    for (auto& [name, m] : model.modules()) n += is_optical_linear(m) || is_optical_attention(m);
    return n;
}

}  // namespace

TEST_CASE("optical transform: the first full match wins, then default; attn alone matches nothing") {
    const nn::OpticalRuleMatcher m(plan_with({{"blocks\\.1\\..*", "", "r:1"},
                                              {"blocks\\.[0-9]+\\.attn", "attention", "r:2"},
                                              {"attn", "fc", "r:3"},
                                              {"default", "fc", "r:4"}}));
    CHECK(m.match("blocks.1.attn", OpticalUnitKind::attention) == 0);
    CHECK(m.match("blocks.1.mlp.c_fc", OpticalUnitKind::linear) == 0);
    CHECK(m.match("blocks.10.attn", OpticalUnitKind::attention) == 1);   // blocks\.1\..* is a full match
    CHECK(m.match("blocks.10.mlp.c_fc", OpticalUnitKind::linear) == 3);  // default
    CHECK(m.match("blocks.0.attn.c_attn", OpticalUnitKind::linear) == 3);  // the attn rule is not a prefix match
    CHECK(m.settings(0) == nullptr);                                     // none
    REQUIRE(m.settings(1) != nullptr);
    CHECK(m.settings(1)->name == "attention");
    CHECK(m.settings(3)->name == "fc");
    CHECK_FALSE(m.implied());

    // default is the fallback wherever it is written
    const nn::OpticalRuleMatcher d(plan_with({{"default", "fc", ""}, {".*\\.c_fc", "", ""}}));
    CHECK(d.match("blocks.0.mlp.c_fc", OpticalUnitKind::linear) == 1);
    CHECK(d.match("blocks.0.mlp.c_proj", OpticalUnitKind::linear) == 0);
    // a pattern named default only by its text is the fallback, never a regex matching "default"
    CHECK(d.match("default", OpticalUnitKind::linear) == 0);
}

TEST_CASE("optical transform: implied rules, with the built-in attention and fc sets") {
    nn::OpticalPlan plan;  // no settings sets at all: both built-ins take the defaults
    const nn::OpticalRuleMatcher m(plan);
    CHECK(m.implied());
    REQUIRE(m.rules().size() == 2);
    CHECK(m.match("blocks.0.attn", OpticalUnitKind::attention) == 0);
    CHECK(m.match("blocks.0.attn.c_attn", OpticalUnitKind::linear) == 1);
    CHECK(m.settings(0)->name == "attention");
    CHECK(m.settings(1)->name == "fc");
    CHECK(m.settings(1)->q_levels == 256);
    CHECK(*m.settings(1)->q_lut_min == 0.020040);

    plan.settings["fc"].q_levels = 16;  // the plan's set wins over the built-in
    plan.settings["fc"].name = "something else";
    const nn::OpticalRuleMatcher m2(plan);
    CHECK(m2.settings(1)->q_levels == 16);
    CHECK(m2.settings(1)->name == "fc");  // named by its key
}

TEST_CASE("optical transform: errors name the module or the rule") {
    // unmatched without default: names the module and lists the rules
    const nn::OpticalRuleMatcher m(plan_with({{"blocks\\.0\\..*", "fc", "run.cfg:40"}, {"lm_.*", "", "run.cfg:41"}}));
    CHECK_THROWS_CONTAINING(m.match("blocks.3.mlp.c_fc", OpticalUnitKind::linear), "blocks.3.mlp.c_fc");
    CHECK_THROWS_CONTAINING(m.match("blocks.3.mlp.c_fc", OpticalUnitKind::linear), "blocks\\.0\\..* -> fc");
    CHECK_THROWS_CONTAINING(m.match("blocks.3.mlp.c_fc", OpticalUnitKind::linear), "lm_.* -> none");
    CHECK_THROWS_CONTAINING(m.match("blocks.3.mlp.c_fc", OpticalUnitKind::linear), "no default");

    // a bad regex: the rule, where it was written, and the regex error
    CHECK_THROWS_CONTAINING(nn::OpticalRuleMatcher(plan_with({{"blocks\\.[0-9+", "fc", "run.cfg:7"}})),
                            "blocks\\.[0-9+ -> fc");
    CHECK_THROWS_CONTAINING(nn::OpticalRuleMatcher(plan_with({{"blocks\\.[0-9+", "fc", "run.cfg:7"}})), "run.cfg:7");
    CHECK_THROWS_CONTAINING(nn::OpticalRuleMatcher(plan_with({{"(a", "fc", ""}})), "not a valid regular expression");

    // a settings set that is not defined
    CHECK_THROWS_CONTAINING(nn::OpticalRuleMatcher(plan_with({{"default", "fancy", "run.cfg:9"}})), "'fancy'");
    CHECK_THROWS_CONTAINING(nn::OpticalRuleMatcher(plan_with({{"default", "fancy", "run.cfg:9"}})), "run.cfg:9");
    CHECK_NOTHROW(nn::OpticalRuleMatcher(plan_with({{"default", "fancy", ""}}, {"fancy"})));

    // two defaults
    CHECK_THROWS_CONTAINING(nn::OpticalRuleMatcher(plan_with({{"default", "fc", "a:1"}, {"default", "", "a:2"}})),
                            "second default");

    // on a model: the unmatched module is named, and the model is left digital
    nn::GPT model(tiny(2));
    const auto bad = plan_with({{"blocks\\.0\\..*", "fc", ""}});
    CHECK_THROWS_CONTAINING(nn::apply_optical_transform(model, bad), "blocks.1.attn");
    CHECK(count_optical(model) == 0);

    // quantile ranges on an attention module: refused by the dry run too, naming the rule and module
    auto quantiles = plan_with({{"default", "fc", "run.cfg:3"}});
    quantiles.settings["fc"].q_quantiles = std::make_pair(0.001, 0.999);
    CHECK_THROWS_CONTAINING(nn::plan_optical_transform(model, quantiles), "blocks.0.attn");
    CHECK_THROWS_CONTAINING(nn::apply_optical_transform(model, quantiles), "q_quantiles");
    CHECK(count_optical(model) == 0);
    // settings OpticalLinear refuses (the config parser normally catches them): still nothing changed
    auto levels = plan_with({{"blocks\\.1\\..*", "fc", ""}, {"default", "attention", ""}});
    levels.settings["fc"].q_levels = 1;
    CHECK_THROWS_AS(nn::apply_optical_transform(model, levels), Error);
    CHECK(count_optical(model) == 0);
}

TEST_CASE("optical transform: T1 on an 11-layer model: blocks\\.1\\..* leaves blocks.10 alone, lm_head stays digital") {
    nn::GPT model(tiny(11));
    const auto plan = plan_with({{"blocks\\.1\\..*", "", "r:1"},
                                 {"blocks\\.[0-9]+\\.attn", "attention", "r:2"},
                                 {"never\\.matches", "fc", "r:3"},
                                 {"default", "fc", "r:4"}});
    const nn::OpticalReport r = nn::apply_optical_transform(model, plan);
    auto mods = module_map(model);

    // blocks.1.* digital; blocks.10.* optical
    for (const char* name : {"blocks.1.attn.c_attn", "blocks.1.attn.c_proj", "blocks.1.mlp.c_fc", "blocks.1.mlp.c_proj"}) {
        INFO(name);
        CHECK_FALSE(is_optical_linear(mods.at(name)));
    }
    CHECK_FALSE(is_optical_attention(mods.at("blocks.1.attn")));
    for (const char* name : {"blocks.10.attn.c_attn", "blocks.10.attn.c_proj", "blocks.10.mlp.c_fc", "blocks.10.mlp.c_proj",
                             "blocks.0.mlp.c_fc"}) {
        INFO(name);
        CHECK(is_optical_linear(mods.at(name)));
    }
    CHECK(is_optical_attention(mods.at("blocks.10.attn")));
    CHECK(is_optical_attention(mods.at("blocks.0.attn")));
    // lm_head: a plain Linear even under default
    REQUIRE(mods.count("lm_head"));
    CHECK_FALSE(is_optical_linear(mods.at("lm_head")));
    CHECK(dynamic_cast<nn::Linear*>(mods.at("lm_head")) != nullptr);

    // the OpticalLinear carries the settings and its dotted name
    auto* fc = dynamic_cast<nn::OpticalLinear*>(mods.at("blocks.10.mlp.c_fc"));
    CHECK(fc->name() == "blocks.10.mlp.c_fc");
    CHECK(fc->settings().name == "fc");
    CHECK(dynamic_cast<nn::OpticalLinear*>(mods.at("blocks.3.attn.c_attn"))->parts() == 3);
    CHECK(dynamic_cast<nn::CausalSelfAttention*>(mods.at("blocks.10.attn"))->optical_settings()->name == "attention");

    // histogram counts: rule 1 takes blocks.1's attention and its 4 linears; rule 2 the other 10
    // attention modules; rule 3 nothing; default the other 10 · 4 linears
    REQUIRE(r.rules.size() == 4);
    CHECK(r.rules[0].matched == 5);
    CHECK(r.rules[1].matched == 10);
    CHECK(r.rules[2].matched == 0);
    CHECK(r.rules[3].matched == 40);
    int64_t optical_by_rules = 0;
    for (const auto& rule : r.rules)
        if (!rule.settings.empty()) optical_by_rules += rule.matched;
    CHECK(optical_by_rules == count_optical(model));
    CHECK(int64_t(r.selected.size()) == count_optical(model));
    CHECK(r.kept_digital.size() == 5);
    CHECK(r.always_digital == std::vector<std::string>{"lm_head", "wte", "wpe"});
    CHECK(r.norms.size() == 23);  // ln_1, ln_2 per block and ln_f

    // selected entries: shapes and row parts for the energy count
    for (const auto& info : r.selected) {
        if (info.name == "blocks.10.attn.c_attn") {
            CHECK(info.kind == OpticalUnitKind::linear);
            CHECK(info.d_in == 8);
            CHECK(info.d_out == 16);
            CHECK(info.row_parts == std::vector<int64_t>{8, 4, 4});
            CHECK(info.settings == "fc");
            CHECK(info.rule == 3);
        }
        if (info.name == "blocks.10.mlp.c_proj") CHECK(info.row_parts == std::vector<int64_t>{8});
        if (info.name == "blocks.10.attn") {
            CHECK(info.kind == OpticalUnitKind::attention);
            CHECK(info.n_head == 2);
            CHECK(info.n_kv_head == 1);
            CHECK(info.head_size == 4);
            CHECK(info.parameters == 0);
            CHECK(info.settings == "attention");
        }
    }
    // optical parameters: the 40 transformed linears' weights (no bias)
    const int64_t per_block = 8 * 16 + 8 * 8 + 8 * 32 + 32 * 8;
    CHECK(r.optical_parameters == 10 * per_block);
    CHECK(r.total_parameters == model.num_parameters());

    // the histogram: one line per rule, the unused rule with 0
    const std::string h = nn::format_histogram(r);
    INFO(h);
    CHECK(h.find("never\\.matches") != std::string::npos);
    CHECK(h.find("matched    0") != std::string::npos);
    CHECK(h.find("matched   40") != std::string::npos);
    CHECK(h.find("kept digital by none (5): blocks.1.attn, blocks.1.attn.c_attn") != std::string::npos);
    CHECK(h.find("always digital: lm_head, wte, wpe, 23 norms") != std::string::npos);
    CHECK(h.find(fmt::format("optical parameters: {} of", fmt::group_digits(10 * per_block))) != std::string::npos);
}

TEST_CASE("optical transform: an attention module and its projections are separate candidates") {
    nn::GPT model(tiny(2));
    const auto r = nn::apply_optical_transform(
        model, plan_with({{"blocks\\.[0-9]+\\.attn", "attention", ""}, {"default", "", ""}}));
    auto mods = module_map(model);
    CHECK(is_optical_attention(mods.at("blocks.0.attn")));
    CHECK_FALSE(is_optical_linear(mods.at("blocks.0.attn.c_attn")));
    CHECK_FALSE(is_optical_linear(mods.at("blocks.0.attn.c_proj")));
    CHECK(r.selected.size() == 2);
    CHECK(r.optical_parameters == 0);

    nn::GPT model2(tiny(2));
    nn::apply_optical_transform(model2, plan_with({{".*\\.c_attn", "fc", ""}, {"default", "", ""}}));
    auto mods2 = module_map(model2);
    CHECK_FALSE(is_optical_attention(mods2.at("blocks.1.attn")));
    CHECK(is_optical_linear(mods2.at("blocks.1.attn.c_attn")));
    CHECK_FALSE(is_optical_linear(mods2.at("blocks.1.attn.c_proj")));
}

TEST_CASE("optical transform: a rule naming lm_head matches nothing: lm_head is never a candidate") {
    nn::GPT model(tiny(1));
    const auto r = nn::apply_optical_transform(model, plan_with({{"lm_head", "fc", ""}, {"default", "", ""}}));
    CHECK(r.rules[0].matched == 0);
    CHECK(r.selected.empty());
    CHECK(r.rules[1].matched == 5);  // attn, c_attn, c_proj, c_fc, c_proj
    CHECK_FALSE(is_optical_linear(module_map(model).at("lm_head")));
}

TEST_CASE("optical transform: implied rules on a tied model; bio MLP linears are candidates") {
    nn::GPT model(tiny(2, /*tied=*/true, nn::MlpKind::bio));
    nn::OpticalPlan plan;
    const auto r = nn::apply_optical_transform(model, plan);
    CHECK(r.implied);
    REQUIRE(r.rules.size() == 2);
    CHECK(r.rules[0].matched == 2);      // attention modules
    CHECK(r.rules[1].matched == 2 * 6);  // c_attn, c_proj, c_fc, sparse_gate.{gate,transform}, c_proj
    auto mods = module_map(model);
    CHECK(is_optical_linear(mods.at("blocks.1.mlp.sparse_gate.transform")));
    CHECK(r.always_digital == std::vector<std::string>{"wte", "wpe"});  // tied: no lm_head module
    const std::string h = nn::format_histogram(r);
    CHECK(h.find("<attention modules> -> attention") != std::string::npos);
    CHECK(h.find("implied rules") != std::string::npos);
}

TEST_CASE("optical transform: the parameters stay the same tensors; the state dict gains the buffers") {
    nn::GPT model(tiny(3));
    struct Seen {
        std::string name;
        const void* impl;
        const void* storage;
        nn::Role role;
        std::vector<int64_t> row_parts;
    };
    auto snapshot = [&] {
        std::vector<Seen> out;
        for (const auto& p : model.parameters())
            out.push_back({p.name, &p.tensor.impl(), p.tensor.storage().get(), p.role, p.row_parts});
        return out;
    };
    const auto before = snapshot();
    std::map<std::string, std::vector<float>> values;
    for (const auto& p : model.parameters()) values[p.name] = p.tensor.to_vector<float>();
    std::vector<std::string> keys_before;
    for (const auto& [name, t] : model.state_dict()) keys_before.push_back(name);

    nn::apply_optical_transform(model, nn::OpticalPlan{});
    const auto after = snapshot();
    REQUIRE(after.size() == before.size());
    for (size_t i = 0; i < before.size(); ++i) {
        INFO(before[i].name);
        CHECK(after[i].name == before[i].name);
        CHECK(after[i].impl == before[i].impl);
        CHECK(after[i].storage == before[i].storage);
        CHECK(after[i].role == before[i].role);
        CHECK(after[i].row_parts == before[i].row_parts);
    }
    for (const auto& p : model.parameters()) CHECK(p.tensor.to_vector<float>() == values.at(p.name));

    std::map<std::string, Tensor> state;
    for (const auto& [name, t] : model.state_dict()) state[name] = t;
    for (const auto& k : keys_before) CHECK(state.count(k));
    // OpticalLinear's buffers (nn/optical_linear.h), and new buffers under the attention module itself
    for (const char* key : {"blocks.2.mlp.c_fc.x_min_max", "blocks.2.mlp.c_fc.w_min_max", "blocks.2.mlp.c_fc.out_min_max",
                            "blocks.2.attn.c_attn.w_min_max"}) {
        INFO(key);
        CHECK(state.count(key));
    }
    CHECK(state.at("blocks.2.attn.c_attn.w_min_max").shape() == Shape{3, 2});
    bool attention_buffer = false;
    for (const auto& [name, t] : state) {
        const std::string prefix = "blocks.2.attn.";
        if (name.rfind(prefix, 0) != 0) continue;
        const std::string rest = name.substr(prefix.size());
        attention_buffer |= rest.rfind("c_attn.", 0) != 0 && rest.rfind("c_proj.", 0) != 0;
    }
    CHECK(attention_buffer);
    CHECK(state.size() > keys_before.size());
}

TEST_CASE("optical transform: the dry run changes nothing; a second transform is refused") {
    nn::GPT model(tiny(3));
    model.eval();
    const auto plan = plan_with({{"blocks\\.0\\..*", "", ""}, {"default", "fc", ""}});
    const size_t keys = model.state_dict().size();
    const auto dry = nn::plan_optical_transform(model, plan);
    CHECK(count_optical(model) == 0);
    CHECK(model.state_dict().size() == keys);

    const auto applied = nn::apply_optical_transform(model, plan);
    REQUIRE(dry.selected.size() == applied.selected.size());
    for (size_t i = 0; i < dry.selected.size(); ++i) {
        CHECK(dry.selected[i].name == applied.selected[i].name);
        CHECK(dry.selected[i].settings == applied.selected[i].settings);
    }
    CHECK(nn::format_histogram(dry) == nn::format_histogram(applied));
    // new modules take the model's mode
    for (auto& [name, m] : model.modules()) {
        INFO(name);
        CHECK_FALSE(m->training());
    }

    CHECK_THROWS_CONTAINING(nn::apply_optical_transform(model, plan), "already optical");
    CHECK_THROWS_CONTAINING(nn::plan_optical_transform(model, plan), "already optical");
    CHECK(int64_t(applied.selected.size()) == count_optical(model));
}

TEST_CASE("optical transform: bypassed settings are transformed and counted as bypassed") {
    nn::GPT model(tiny(2));
    auto plan = plan_with({{".*\\.mlp\\..*", "off", ""}, {"default", "fc", ""}}, {"off"});
    plan.settings["off"].q_bypass = true;
    const auto r = nn::apply_optical_transform(model, plan);
    CHECK(r.rules[0].matched == 4);
    CHECK(r.rules[0].bypassed == 4);
    CHECK(r.rules[1].bypassed == 0);
    auto mods = module_map(model);
    CHECK(is_optical_linear(mods.at("blocks.0.mlp.c_fc")));
    CHECK(dynamic_cast<nn::OpticalLinear*>(mods.at("blocks.0.mlp.c_fc"))->settings().q_bypass);
    CHECK(r.bypassed_parameters == 2 * (8 * 32 + 32 * 8));
    CHECK(r.optical_parameters == 2 * (8 * 16 + 8 * 8));
    CHECK(nn::format_histogram(r).find("bypassed 4") != std::string::npos);
}

LUMEN_DEVICE_TEST("optical transform: on a model already on its device, new buffers live there and it runs") {
    nn::GPT model(tiny(2));
    model.to(device);
    nn::apply_optical_transform(model, nn::OpticalPlan{});
    for (const auto& [name, b] : model.buffers(true)) {
        INFO(name);
        CHECK(b.device() == device);
    }
    for (const auto& p : model.parameters()) CHECK(p.tensor.device() == device);
    std::vector<int64_t> ids = {1, 2, 3, 4, 5, 6, 7, 8};
    Tensor idx = Tensor::from(ids, {2, 4}, device);
    Tensor loss = model.loss(idx, idx);
    const double v = loss.to_vector<double>()[0];
    CHECK(std::isfinite(v));
}
