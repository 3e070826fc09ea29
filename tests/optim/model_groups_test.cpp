// tests/optim/model_groups_test.cpp: optimizer groups of real models (specs/optimizers.md §2 table
// and §13.1 item 9), and every optimizer training a tiny GPT on the CPU (§13.1 item 8).
#include "nn/gpt.h"
#include "optim/clip.h"
#include "optim/groups.h"
#include "tests/harness.h"
#include "training/train_config.h"

using namespace lumen;

namespace {

struct Routed {
    int64_t tensors = 0, params = 0, ns_matrices = 0;
};

std::map<std::string, Routed> route(const nn::ModelConfig& c, optim::Kind kind, bool decay_embeddings = true) {
    nn::NoInitGuard no_init;
    nn::GPT model(c);
    optim::GroupConfig cfg = training::optim_config_defaults(kind).groups;
    cfg.decay_embeddings = decay_embeddings;
    std::map<std::string, Routed> out;
    int64_t total = 0;
    for (const optim::Group& g : optim::make_groups(model.parameters(), cfg)) {
        Routed& r = out[g.label];
        for (const auto& p : g.params) {
            ++r.tensors;
            r.params += p.tensor.numel();
            r.ns_matrices += std::max<int64_t>(1, int64_t(p.row_parts.size()));
            total += p.tensor.numel();
        }
    }
    CHECK(total == model.num_parameters());  // every parameter in exactly one group
    return out;
}

nn::ModelConfig gpt2_hf() {
    nn::ModelConfig c = nn::gpt2_124m_config();
    c.vocab_size = 50257;
    c.bias = true;
    return c;
}

}  // namespace

TEST_CASE("groups of real models: the §2 table") {
    auto hf = route(gpt2_hf(), optim::Kind::adamw);
    CHECK(hf["decay"].tensors == 50);
    CHECK(hf["decay"].params == 124'318'464);
    CHECK(hf["no_decay"].tensors == 98);
    CHECK(hf["no_decay"].params == 121'344);
    auto ng = route(nn::gpt2_124m_config(), optim::Kind::adamw);
    CHECK(ng["decay"].tensors == 50);
    CHECK(ng["decay"].params == 124'354'560);
    CHECK(ng["no_decay"].tensors == 25);
    CHECK(ng["no_decay"].params == 19'200);
    auto v2 = route(nn::wiggle_v2_config(), optim::Kind::adamw);
    CHECK(v2["decay"].tensors == 26);
    CHECK(v2["decay"].params == 45'662'208);
    CHECK(v2["no_decay"].tensors == 33);
    CHECK(v2["no_decay"].params == 40'320);
    for (auto [config, tensors, ns, params] : {std::tuple{gpt2_hf(), 48, 72, 84'934'656},
                                               std::tuple{nn::gpt2_124m_config(), 48, 72, 84'934'656},
                                               std::tuple{nn::wiggle_v2_config(), 24, 32, 25'952'256}}) {
        auto m = route(config, optim::Kind::muon);
        CHECK(m["muon"].tensors == tensors);
        CHECK(m["muon"].ns_matrices == ns);  // each c_attn gives three NS matrices
        CHECK(m["muon"].params == params);
    }
    auto old = route(nn::wiggle_v2_config(), optim::Kind::adamw, false);  // minGPT's scheme
    CHECK(old["no_decay"].params == 40'320 + 19'316'736 + 393'216);
}

TEST_CASE("every optimizer trains a tiny GPT on the CPU to below half its initial loss") {
    for (optim::Kind kind : {optim::Kind::adamw, optim::Kind::lion, optim::Kind::adamw8bit, optim::Kind::adafactor,
                             optim::Kind::sophia, optim::Kind::muon, optim::Kind::sgd}) {
        INFO(optim::kind_name(kind));
        nn::ModelConfig c;
        c.n_layer = 2;
        c.n_head = 2;
        c.n_embd = 32;
        c.block_size = 16;
        c.vocab_size = 32;
        c.mlp = nn::MlpKind::osc;
        nn::GPT model(c);
        optim::GroupConfig g = training::optim_config_defaults(kind).groups;
        // Config defaults, with rates scaled up for a tiny model and a fixed batch.
        const double scale = kind == optim::Kind::sgd ? 0.0 : 10.0;
        g.main.lr = kind == optim::Kind::sgd ? 0.5 : g.main.lr * scale;
        if (kind == optim::Kind::muon) g.aux_adamw.lr *= 10.0;
        if (kind == optim::Kind::adamw8bit) g.main.min_8bit_size = 0;  // exercise the 8-bit path
        if (kind == optim::Kind::sophia) g.main.tokens_per_step = 2 * 16;
        if (kind == optim::Kind::adafactor) g.main.lr = 1e-2;
        optim::Optimizer opt(optim::make_groups(model.parameters(), g));
        Generator gen(9);
        auto ids = [&]() {
            std::vector<int64_t> v;
            for (double x : ops::rand({2, 16}, gen, 0.0, 32.0, DType::f64).to_vector<double>()) v.push_back(int64_t(x));
            return Tensor::from(v, {2, 16});
        };
        Tensor x = ids(), y = ids();
        double first = 0, last = 0;
        for (int step = 0; step < 300 && !(step > 0 && last < first / 2); ++step) {
            Tensor loss = model.loss(x, y);
            loss.backward();
            last = loss.item();
            if (step == 0) first = last;
            opt.step(optim::StepInputs{1.0, optim::clip_flags(opt.parameters(), 1.0, loss)});
            opt.zero_grad();
        }
        INFO("first " << first << ", last " << last);
        CHECK(last < first / 2);
    }
}
