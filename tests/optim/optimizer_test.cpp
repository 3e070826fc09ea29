// tests/optim/optimizer_test.cpp: the optimizer framework (optim/optimizer.h): kind names, API
// defaults, validation of every kind's keys (specs/optimizers.md §§3–9: errors name the key, the
// value and the accepted range), construction checks (G5 and parameter checks), missing gradients,
// zero_grad, step counters, mixed-kind groups, state_dict / load_state_dict errors, the report.
#include "tests/optim/optim_testing.h"

#include <array>
#include <cstring>
#include <functional>

#ifdef LUMEN_WITH_CUDA
#include "cuda/multi_tensor.h"
#endif

using namespace lumen;
using namespace lumen::optim_test;
using optim::Hyper;
using optim::Kind;

TEST_CASE("optimizer: kind names round-trip") {
    for (Kind k : {Kind::adamw, Kind::lion, Kind::adamw8bit, Kind::adafactor, Kind::sophia, Kind::muon, Kind::sgd})
        CHECK(optim::kind_from_name(optim::kind_name(k)) == k);
    CHECK(optim::kind_name(Kind::adamw8bit) == "adamw8bit");
    CHECK(!optim::kind_from_name("adam").has_value());
}

TEST_CASE("optimizer: API defaults are the reference constructors' (spec tables)") {
    const Hyper a = optim::api_defaults(Kind::adamw);
    CHECK((a.lr == 1e-3 && a.beta1 == 0.9 && a.beta2 == 0.999 && a.eps == 1e-8 && a.weight_decay == 0.01));
    const Hyper l = optim::api_defaults(Kind::lion);
    CHECK((l.lr == 1e-4 && l.beta1 == 0.9 && l.beta2 == 0.99 && l.weight_decay == 0.0));
    const Hyper q = optim::api_defaults(Kind::adamw8bit);
    CHECK((q.lr == 1e-3 && q.beta1 == 0.9 && q.beta2 == 0.999 && q.eps == 1e-8 && q.weight_decay == 1e-2 &&
           q.min_8bit_size == 4096 && !q.embed_fp32_state));
    const Hyper f = optim::api_defaults(Kind::adafactor);
    CHECK((std::isnan(f.lr) && f.relative_step && f.scale_parameter && !f.warmup_init && f.eps1 == 1e-30 &&
           f.eps2 == 1e-3 && f.clip_threshold == 1.0 && f.decay_rate == -0.8 && !f.use_beta1 && f.weight_decay == 0.0));
    const Hyper s = optim::api_defaults(Kind::sophia);
    CHECK((s.lr == 1e-4 && s.beta1 == 0.965 && s.beta2 == 0.99 && s.rho == 0.04 && s.weight_decay == 0.1 &&
           s.hess_interval == 10 && s.tokens_per_step == 5120));
    const Hyper m = optim::api_defaults(Kind::muon);
    CHECK((m.lr == 0.02 && m.weight_decay == 0.0 && m.momentum == 0.95 && m.nesterov && m.ns_steps == 5 &&
           m.muon_scale == optim::MuonScale::original));
    const Hyper x = optim::muon_aux_adamw_api_defaults();
    CHECK((x.lr == 3e-4 && x.beta1 == 0.9 && x.beta2 == 0.95 && x.eps == 1e-10 && x.weight_decay == 0.0));
    const Hyper g = optim::api_defaults(Kind::sgd);
    CHECK((g.lr == 1e-3 && g.momentum == 0.0 && g.dampening == 0.0 && g.weight_decay == 0.0 && !g.nesterov));
    for (Kind k : {Kind::adamw, Kind::lion, Kind::adamw8bit, Kind::adafactor, Kind::sophia, Kind::muon, Kind::sgd})
        CHECK_NOTHROW(optim::validate(k, optim::api_defaults(k)));
    CHECK_NOTHROW(optim::validate(Kind::adamw, x));
}

namespace {

struct BadKey {
    Kind kind;
    std::function<void(Hyper&)> set;
    std::string key_and_value;  // "beta1 = 1"
    std::string accepted;       // a piece of the accepted range
};

}  // namespace

TEST_CASE("optimizer: validation rejects every out-of-range key, naming key, value and range") {
    const double nan = std::numeric_limits<double>::quiet_NaN(), inf = std::numeric_limits<double>::infinity();
    const std::vector<BadKey> cases = {
        // AdamW §3
        {Kind::adamw, [](Hyper& h) { h.lr = -1; }, "learning_rate = -1", "finite, >= 0"},
        {Kind::adamw, [&](Hyper& h) { h.lr = inf; }, "learning_rate = inf", "finite, >= 0"},
        {Kind::adamw, [](Hyper& h) { h.beta1 = 1; }, "beta1 = 1", "[0, 1)"},
        {Kind::adamw, [](Hyper& h) { h.beta1 = -0.1; }, "beta1 = -0.1", "[0, 1)"},
        {Kind::adamw, [](Hyper& h) { h.beta2 = 1.5; }, "beta2 = 1.5", "[0, 1)"},
        {Kind::adamw, [](Hyper& h) { h.eps = 0; }, "eps = 0", "> 0"},
        {Kind::adamw, [](Hyper& h) { h.weight_decay = -0.1; }, "weight_decay = -0.1", ">= 0"},
        {Kind::adamw, [](Hyper& h) { h.lr = 0.1, h.weight_decay = 20; }, "weight_decay = 20",
         "learning_rate·weight_decay < 1"},
        // Lion §4
        {Kind::lion, [](Hyper& h) { h.lr = -1e-4; }, "learning_rate = -0.0001", ">= 0"},
        {Kind::lion, [](Hyper& h) { h.beta1 = 1; }, "beta1 = 1", "[0, 1)"},
        {Kind::lion, [](Hyper& h) { h.beta2 = -1; }, "beta2 = -1", "[0, 1)"},
        {Kind::lion, [](Hyper& h) { h.weight_decay = -1; }, "weight_decay = -1", ">= 0"},
        {Kind::lion, [](Hyper& h) { h.weight_decay = 1e5; }, "weight_decay = 100000", "learning_rate·weight_decay < 1"},
        // 8-bit AdamW §5.4
        {Kind::adamw8bit, [&](Hyper& h) { h.lr = nan; }, "learning_rate = nan", ">= 0"},
        {Kind::adamw8bit, [](Hyper& h) { h.beta2 = 1; }, "beta2 = 1", "[0, 1)"},
        {Kind::adamw8bit, [](Hyper& h) { h.eps = -1e-8; }, "eps = -1e-08", "> 0"},
        {Kind::adamw8bit, [](Hyper& h) { h.weight_decay = -1; }, "weight_decay = -1", ">= 0"},
        {Kind::adamw8bit, [](Hyper& h) { h.min_8bit_size = -1; }, "min_8bit_size = -1", "integer >= 0"},
        // Adafactor §6
        {Kind::adafactor, [](Hyper& h) { h.lr = 1e-3; }, "learning_rate = 0.001", "unset when relative_step = true"},
        {Kind::adafactor, [&](Hyper& h) { h.relative_step = false, h.scale_parameter = false, h.lr = nan; },
         "learning_rate = unset", "required when relative_step = false"},
        {Kind::adafactor, [](Hyper& h) { h.relative_step = false, h.lr = -1; }, "learning_rate = -1", ">= 0"},
        {Kind::adafactor, [](Hyper& h) { h.relative_step = false, h.lr = 1e-3, h.warmup_init = true; },
         "warmup_init = true", "relative_step = true"},
        {Kind::adafactor, [](Hyper& h) { h.eps1 = 0; }, "eps1 = 0", "> 0"},
        {Kind::adafactor, [](Hyper& h) { h.eps2 = -1; }, "eps2 = -1", ">= 0"},
        {Kind::adafactor, [](Hyper& h) { h.clip_threshold = 0; }, "clip_threshold = 0", "> 0"},
        {Kind::adafactor, [](Hyper& h) { h.decay_rate = 0; }, "decay_rate = 0", "[-1, 0)"},
        {Kind::adafactor, [](Hyper& h) { h.decay_rate = -1.5; }, "decay_rate = -1.5", "[-1, 0)"},
        {Kind::adafactor, [](Hyper& h) { h.use_beta1 = true, h.beta1 = 1; }, "beta1 = 1", "[0, 1)"},
        {Kind::adafactor, [](Hyper& h) { h.weight_decay = -0.1; }, "weight_decay = -0.1", ">= 0"},
        // SophiaG §7.3
        {Kind::sophia, [](Hyper& h) { h.lr = -1; }, "learning_rate = -1", ">= 0"},
        {Kind::sophia, [](Hyper& h) { h.beta1 = 1; }, "beta1 = 1", "[0, 1)"},
        {Kind::sophia, [](Hyper& h) { h.beta2 = 1; }, "beta2 = 1", "[0, 1)"},
        {Kind::sophia, [](Hyper& h) { h.rho = 0; }, "rho = 0", "> 0"},
        {Kind::sophia, [](Hyper& h) { h.weight_decay = -0.2; }, "weight_decay = -0.2", ">= 0"},
        {Kind::sophia, [](Hyper& h) { h.hess_interval = 0; }, "hess_interval = 0", "integer >= 1"},
        {Kind::sophia, [](Hyper& h) { h.tokens_per_step = 0; }, "tokens_per_step = 0", "> 0"},
        // Muon §8
        {Kind::muon, [](Hyper& h) { h.lr = -0.02; }, "learning_rate = -0.02", ">= 0"},
        {Kind::muon, [](Hyper& h) { h.weight_decay = -0.01; }, "weight_decay = -0.01", ">= 0"},
        {Kind::muon, [](Hyper& h) { h.weight_decay = 60; }, "weight_decay = 60", "learning_rate·weight_decay < 1"},
        {Kind::muon, [](Hyper& h) { h.momentum = 1; }, "momentum = 1", "[0, 1)"},
        {Kind::muon, [](Hyper& h) { h.ns_steps = 0; }, "ns_steps = 0", "[1, 20]"},
        {Kind::muon, [](Hyper& h) { h.ns_steps = 21; }, "ns_steps = 21", "[1, 20]"},
        // SGD §9
        {Kind::sgd, [](Hyper& h) { h.lr = -0.1; }, "learning_rate = -0.1", ">= 0"},
        {Kind::sgd, [](Hyper& h) { h.momentum = 1; }, "momentum = 1", "[0, 1)"},
        {Kind::sgd, [](Hyper& h) { h.momentum = -0.5; }, "momentum = -0.5", "[0, 1)"},
        {Kind::sgd, [](Hyper& h) { h.dampening = 1.5; }, "dampening = 1.5", "[0, 1]"},
        {Kind::sgd, [](Hyper& h) { h.weight_decay = -1; }, "weight_decay = -1", ">= 0"},
        {Kind::sgd, [](Hyper& h) { h.nesterov = true; }, "nesterov = true", "momentum > 0 and dampening = 0"},
        {Kind::sgd, [](Hyper& h) { h.nesterov = true, h.momentum = 0.9, h.dampening = 0.1; }, "nesterov = true",
         "momentum > 0 and dampening = 0"},
    };
    for (const BadKey& c : cases) {
        Hyper h = optim::api_defaults(c.kind);
        c.set(h);
        INFO(optim::kind_name(c.kind) << ": " << c.key_and_value);
        CHECK_THROWS_CONTAINING(optim::validate(c.kind, h), std::string("optimizer ") + std::string(optim::kind_name(c.kind)));
        CHECK_THROWS_CONTAINING(optim::validate(c.kind, h), c.key_and_value);
        CHECK_THROWS_CONTAINING(optim::validate(c.kind, h), c.accepted);
    }
    // Keys a kind does not read are not checked (Adafactor's beta1 without use_beta1, Lion's eps).
    Hyper f = optim::api_defaults(Kind::adafactor);
    f.beta1 = 5;
    CHECK_NOTHROW(optim::validate(Kind::adafactor, f));
    Hyper l = optim::api_defaults(Kind::lion);
    l.eps = -1;
    CHECK_NOTHROW(optim::validate(Kind::lion, l));
    // The optimizer validates each group and names it.
    Hyper bad = optim::api_defaults(Kind::adamw);
    bad.beta1 = 1;
    CHECK_THROWS_CONTAINING(one_group(Kind::adamw, bad, {param("w", {3}, 1)}), "group 0 (all)");
}

TEST_CASE("optimizer: construction asserts G5 and checks the parameters, naming them") {
    const Hyper h = optim::api_defaults(Kind::adamw);
    nn::Parameter w = param("w", {4, 4}, 1), b = param("b", {4}, 2);
    auto groups = [&](std::vector<nn::Parameter> first, std::vector<nn::Parameter> second) {
        std::vector<optim::Group> gs(2);
        gs[0] = {"decay", Kind::adamw, h, std::move(first)};
        gs[1] = {"no_decay", Kind::adamw, h, std::move(second)};
        return gs;
    };
    CHECK_THROWS_CONTAINING(optim::Optimizer(groups({w, b}, {w})), "parameter w is in more than one group");
    CHECK_THROWS_CONTAINING(optim::Optimizer(groups({w, b, b}, {})), "parameter b is in more than one group");
    nn::Parameter same_name = param("w", {2}, 3);
    CHECK_THROWS_CONTAINING(optim::Optimizer(groups({w}, {same_name})), "two parameters are named w");
    nn::Parameter frozen{"frozen", Tensor::zeros({3}), nn::Role::other, {}};
    CHECK_THROWS_CONTAINING(optim::Optimizer(groups({w}, {frozen})), "parameter frozen is frozen");
    Tensor f64 = Tensor::zeros({3}, DType::f64);
    f64.set_requires_grad(true);
    CHECK_THROWS_CONTAINING(optim::Optimizer(groups({w}, {{"d", f64, nn::Role::other, {}}})),
                            "parameter d must be a contiguous f32 tensor");
    Tensor transposed = Tensor::zeros({3, 5}).transpose(0, 1);
    transposed.set_requires_grad(true);
    CHECK_THROWS_CONTAINING(optim::Optimizer(groups({w}, {{"t", transposed, nn::Role::other, {}}})),
                            "parameter t must be a contiguous f32 tensor");
    CHECK_THROWS_CONTAINING(optim::Optimizer(std::vector<optim::Group>{}), "no parameter groups");
    CHECK_THROWS_CONTAINING(optim::Optimizer(groups({}, {})), "hold no parameters");
    // An empty group beside a full one is fine.
    CHECK_NOTHROW(optim::Optimizer(groups({w, b}, {})));
}

TEST_CASE("optimizer: check_one_group_each against the model's parameter list") {
    const Hyper h = optim::api_defaults(Kind::adamw);
    nn::Parameter w = param("w", {4, 4}, 1), b = param("b", {4}, 2), x = param("x", {2}, 3);
    nn::Parameter frozen{"frozen", Tensor::zeros({3}), nn::Role::other, {}};
    std::vector<optim::Group> gs(1);
    gs[0] = {"decay", Kind::adamw, h, {w}};
    CHECK_THROWS_CONTAINING(optim::check_one_group_each(gs, {w, b}), "parameter b is in no group");
    CHECK_THROWS_CONTAINING(optim::check_one_group_each(gs, {}), "parameter w of group decay is not a parameter");
    gs[0].params.push_back(w);
    CHECK_THROWS_CONTAINING(optim::check_one_group_each(gs, {w}), "parameter w is in two groups");
    gs[0].params = {w, frozen};
    CHECK_THROWS_CONTAINING(optim::check_one_group_each(gs, {w, frozen}), "parameter frozen is frozen");
    gs[0].params = {w, b};
    CHECK_NOTHROW(optim::check_one_group_each(gs, {w, b, frozen}));
    (void)x;
}

LUMEN_DEVICE_TEST("optimizer: missing gradients become zeros; zero_grad keeps the buffers") {
    optim::Optimizer opt = one_group(Kind::adamw, optim::api_defaults(Kind::adamw), generic_params(device));
    for (const nn::Parameter& p : opt.parameters()) CHECK(!p.tensor.grad().defined());
    opt.step();
    std::vector<void*> buffers;
    for (const nn::Parameter& p : opt.parameters()) {
        REQUIRE(p.tensor.grad().defined());
        buffers.push_back(p.tensor.grad().data_ptr());
    }
    const std::vector<nn::Parameter> ps = opt.parameters();
    for (size_t i = 0; i < ps.size(); ++i) ps[i].tensor.grad().copy_(Tensor::from(grad_values(ps[i], 1, i), ps[i].tensor.shape()));
    opt.zero_grad();
    for (size_t i = 0; i < ps.size(); ++i) {
        CHECK(ps[i].tensor.grad().data_ptr() == buffers[i]);
        for (double g : values(ps[i].tensor.grad())) CHECK(g == 0.0);
    }
    CHECK(opt.step_count(0) == 1);
}

LUMEN_DEVICE_TEST("optimizer: step checks its flags and lr_scale; non-contiguous gradients are read right") {
    optim::Optimizer opt = one_group(Kind::sgd, optim::api_defaults(Kind::sgd), {param("w", {3, 2}, 1, device)});
    CHECK_THROWS_CONTAINING(opt.step({1.0, Tensor::zeros({1}, DType::f32, device)}), "flags");
    CHECK_THROWS_CONTAINING(opt.step({1.0, Tensor::zeros({2}, DType::f64, device)}), "flags");
    CHECK_THROWS_CONTAINING(opt.step({1.0, Tensor{}}), "flags");
    CHECK_THROWS_CONTAINING(opt.step(-1.0), "lr_scale");
    // A transposed gradient: the step reads it in the parameter's element order.
    const nn::Parameter w = opt.parameters()[0];
    const std::vector<double> before = values(w.tensor);
    w.tensor.set_grad(Tensor::from(std::vector<float>{1, 2, 3, 4, 5, 6}, {2, 3}, device).transpose(0, 1));
    opt.step({1.0, flags(1.0, 0.0, device)});
    const std::vector<double> after = values(w.tensor);
    const double g[] = {1, 4, 2, 5, 3, 6};  // (3, 2) view of the (2, 3) values
    for (size_t i = 0; i < 6; ++i) CHECK(std::fabs(after[i] - (before[i] - float(1e-3) * float(g[i]))) <= 1e-7);
}

LUMEN_DEVICE_TEST("optimizer: groups of different kinds step independently, each with its own count") {
    const Hyper ha = optim::api_defaults(Kind::adamw), hl = optim::api_defaults(Kind::lion);
    Hyper hs = optim::api_defaults(Kind::sgd);
    hs.momentum = 0.9;
    std::vector<optim::Group> gs = {{"a", Kind::adamw, ha, {param("a", {50}, 1, device)}},
                                    {"l", Kind::lion, hl, {param("l", {60}, 2, device)}},
                                    {"s", Kind::sgd, hs, {param("s", {7, 3}, 3, device)}}};
    optim::Optimizer mixed(gs);
    CHECK(mixed.name() == "adamw+lion+sgd");
    optim::Optimizer oa = one_group(Kind::adamw, ha, {param("a", {50}, 1, device)});
    optim::Optimizer ol = one_group(Kind::lion, hl, {param("l", {60}, 2, device)});
    optim::Optimizer os = one_group(Kind::sgd, hs, {param("s", {7, 3}, 3, device)});
    for (int step = 1; step <= 3; ++step) {
        for (optim::Optimizer* o : {&mixed, &oa, &ol, &os}) {
            const std::vector<nn::Parameter> ps = o->parameters();
            for (const nn::Parameter& p : ps) set_grad(p, grad_values(p, step, p.name[0]));
            o->step();
        }
    }
    const std::vector<nn::Parameter> pm = mixed.parameters();
    CHECK(test::same_bits(pm[0].tensor, oa.parameters()[0].tensor));
    CHECK(test::same_bits(pm[1].tensor, ol.parameters()[0].tensor));
    CHECK(test::same_bits(pm[2].tensor, os.parameters()[0].tensor));
    for (size_t g = 0; g < 3; ++g) CHECK(mixed.step_count(g) == 3);
}

TEST_CASE("optimizer: state_dict names tensors <param>.<state> and carries kinds, steps and hyper-parameters") {
    Hyper h = optim::api_defaults(Kind::adamw);
    Hyper nd = h;
    nd.weight_decay = 0;
    std::vector<optim::Group> gs = {{"decay", Kind::adamw, h, {param("w", {4, 3}, 1)}},
                                    {"no_decay", Kind::adamw, nd, {param("b", {3}, 2)}}};
    optim::Optimizer opt(gs);
    opt.step();
    opt.step();
    const optim::StateDict sd = opt.state_dict();
    std::vector<std::string> names;
    for (const auto& [n, t] : sd.tensors) names.push_back(n);
    CHECK(names == std::vector<std::string>{"w.exp_avg", "w.exp_avg_sq", "b.exp_avg", "b.exp_avg_sq"});
    CHECK(sd.meta["lumen_optimizer"] == "adamw");
    CHECK(sd.meta["step"] == 2);
    CHECK(sd.meta["group_steps"] == nlohmann::json::array({2, 2}));
    CHECK(sd.meta["groups"][1]["kind"] == "adamw");
    CHECK(sd.meta["groups"][1]["label"] == "no_decay");
    CHECK(sd.meta["groups"][0]["hyper"]["weight_decay"] == 0.01);
    CHECK(sd.meta["groups"][1]["hyper"]["weight_decay"] == 0.0);
    // A snapshot: stepping on does not change it.
    const std::vector<double> m = values(sd.tensors[0].second);
    set_grad(opt.parameters()[0], std::vector<float>(12, 1.0f));
    opt.step();
    CHECK(values(sd.tensors[0].second) == m);
}

TEST_CASE("optimizer: load_state_dict rejects a mismatched state, naming the tensor, and changes nothing") {
    const Hyper h = optim::api_defaults(Kind::adamw);
    auto make = [&] { return one_group(Kind::adamw, h, {param("w", {4, 3}, 1), param("b", {3}, 2)}); };
    optim::Optimizer src = make();
    for (int i = 0; i < 3; ++i) src.step();
    const optim::StateDict good = src.state_dict();

    optim::Optimizer dst = make();
    const Snapshot fresh = snapshot(dst);
    auto edited = [&](const std::function<void(optim::StateDict&)>& edit) {
        optim::StateDict s = good;
        s.tensors.clear();
        for (const auto& [n, t] : good.tensors) s.tensors.emplace_back(n, t.clone());
        edit(s);
        return s;
    };
    CHECK_THROWS_CONTAINING(dst.load_state_dict(edited([](optim::StateDict& s) {
                                s.tensors[1].second = Tensor::zeros({3, 4});
                            })),
                            "tensor w.exp_avg_sq has the wrong shape or dtype");
    CHECK_THROWS_CONTAINING(dst.load_state_dict(edited([](optim::StateDict& s) {
                                s.tensors[2].second = Tensor::zeros({3}, DType::f64);
                            })),
                            "tensor b.exp_avg has the wrong shape or dtype");
    CHECK_THROWS_CONTAINING(dst.load_state_dict(edited([](optim::StateDict& s) {
                                s.tensors[3].second = Tensor::from(std::vector<float>{0, NAN, 0}, {3});
                            })),
                            "tensor b.exp_avg_sq holds a non-finite value");
    CHECK_THROWS_CONTAINING(dst.load_state_dict(edited([](optim::StateDict& s) { s.tensors.pop_back(); })),
                            "the state has no tensor b.exp_avg_sq");
    CHECK_THROWS_CONTAINING(dst.load_state_dict(edited([](optim::StateDict& s) {
                                s.tensors.emplace_back("c.exp_avg", Tensor::zeros({1}));
                            })),
                            "unexpected tensor c.exp_avg");
    CHECK_THROWS_CONTAINING(dst.load_state_dict(edited([](optim::StateDict& s) { s.meta["lumen_optimizer"] = "lion"; })),
                            "the state is for optimizer lion");
    CHECK_THROWS_CONTAINING(dst.load_state_dict(edited([](optim::StateDict& s) {
                                s.meta["group_steps"] = nlohmann::json::array({1, 1});
                            })),
                            "groups");
    CHECK_THROWS_CONTAINING(dst.load_state_dict(edited([](optim::StateDict& s) { s.meta["groups"][0]["kind"] = "sgd"; })),
                            "group 0 (all) is sgd in the state but adamw here");
    check_same(snapshot(dst), fresh);  // every failed load left the optimizer as it was

    dst.load_state_dict(good);
    CHECK(dst.step_count(0) == 3);
    const auto loaded = dst.state_dict().tensors;
    for (size_t i = 0; i < loaded.size(); ++i) CHECK(test::same_bits(loaded[i].second, good.tensors[i].second));
    // A state from another kind of optimizer.
    optim::Optimizer lion = one_group(Kind::lion, optim::api_defaults(Kind::lion), {param("w", {4, 3}, 1), param("b", {3}, 2)});
    CHECK_THROWS_CONTAINING(lion.load_state_dict(good), "the state is for optimizer adamw, this optimizer is lion");
}

TEST_CASE("optimizer: state bytes and the report (§11 format)") {
    Hyper h = optim::api_defaults(Kind::adamw);
    Hyper nd = h;
    nd.weight_decay = 0;
    std::vector<optim::Group> gs = {{"decay", Kind::adamw, h, {param("w", {1000, 1000}, 1)}},
                                    {"no_decay", Kind::adamw, nd, {param("b", {1000}, 2), param("c", {1000}, 3)}}};
    optim::Optimizer opt(gs);
    CHECK(opt.state_bytes() == 8 * 1002000);
    CHECK(opt.num_params() == 1002000);
    const std::vector<std::string> lines = opt.report();
    REQUIRE(lines.size() == 3);
    CHECK(lines[0] == "optimizer adamw: 2 groups, 3 tensors, state 8.02 MB = 8.000 B/param");
    CHECK(lines[1] == "  group decay adamw: 1 tensors, 1000000 params, lr 0.001, weight_decay 0.01, state 8.00 MB = 8.000 B/param");
    CHECK(lines[2] == "  group no_decay adamw: 2 tensors, 2000 params, lr 0.001, weight_decay 0, state 0.02 MB = 8.000 B/param");
    Hyper l = optim::api_defaults(Kind::lion);
    CHECK(one_group(Kind::lion, l, {param("w", {10}, 1)}).report()[0] ==
          "optimizer lion: 1 group, 1 tensors, state 0.00 MB = 4.000 B/param");
}

#ifdef LUMEN_WITH_CUDA
TEST_CASE("multi-tensor table: chunks never span slots, empty slots get none") {
    std::vector<cuda::TensorSlot> slots(4);
    const int64_t sizes[] = {10, 0, 25, 8};
    for (size_t i = 0; i < 4; ++i) slots[i] = cuda::TensorSlot{{}, sizes[i], int64_t(i)};
    const std::vector<cuda::TensorChunk> chunks = cuda::split_into_chunks(slots, 8);
    const std::vector<std::array<int64_t, 3>> expected = {{0, 0, 8}, {0, 8, 10}, {2, 0, 8}, {2, 8, 16},
                                                          {2, 16, 24}, {2, 24, 25}, {3, 0, 8}};
    REQUIRE(chunks.size() == expected.size());
    for (size_t i = 0; i < chunks.size(); ++i)
        CHECK(std::array<int64_t, 3>{chunks[i].slot, chunks[i].begin, chunks[i].end} == expected[i]);
    CHECK_THROWS_CONTAINING(cuda::split_into_chunks(slots, 0), "chunk_elems");
}

LUMEN_CUDA_TEST("multi-tensor table: uploads slots and chunks, again only when they change") {
    cuda::MultiTensorTable table;
    Tensor a = Tensor::zeros({100}, DType::f32, device), b = Tensor::zeros({3}, DType::f32, device);
    std::vector<cuda::TensorSlot> slots(2);
    slots[0].ptr[0] = a.data_ptr(), slots[0].numel = 100;
    slots[1].ptr[0] = b.data_ptr(), slots[1].numel = 3, slots[1].aux = 7;
    table.set(slots, 64, device);
    CHECK(table.num_chunks() == 3);
    const cuda::TensorSlot* first = table.slots();
    table.set(slots, 64, device);
    CHECK(table.slots() == first);  // unchanged: no new upload
    // The device copy holds what was set (read back through a u8 view of the table's bytes).
    const size_t slot_bytes = 2 * sizeof(cuda::TensorSlot), chunk_bytes = 3 * sizeof(cuda::TensorChunk);
    auto storage = std::make_shared<Storage>(const_cast<cuda::TensorSlot*>(table.slots()), slot_bytes + chunk_bytes,
                                             device, nullptr);
    const std::vector<uint8_t> bytes =
        Tensor::over(storage, Layout::contiguous({int64_t(slot_bytes + chunk_bytes)}), DType::u8).to_vector<uint8_t>();
    CHECK(std::memcmp(bytes.data(), slots.data(), slot_bytes) == 0);
    CHECK(std::memcmp(bytes.data() + slot_bytes, table.host_chunks().data(), chunk_bytes) == 0);
    slots[1].numel = 2;
    table.set(slots, 64, device);
    CHECK(table.host_chunks().back().end == 2);
}
#endif
