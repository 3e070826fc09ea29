// tests/nn/lora_test.cpp: LoRA adapters (nn/lora.h): the model is unchanged at step 0, only the
// adapters train (no gradients, no optimizer state for the frozen base), the draw of A, gradcheck of
// the LoRA linear, the merged export against the unmerged model, LoRA under the optical transform
// (the quantizer sees the merged weight; A and B get straight-through gradients), and config errors.
#include "nn/gpt.h"
#include "nn/lora.h"
#include "nn/optical_linear.h"
#include "nn/optical_transform.h"
#include "optim/groups.h"
#include "optim/optimizer.h"
#include "tests/harness.h"

#include <cmath>
#include <map>
#include <set>

using namespace lumen;

namespace {

nn::ModelConfig tiny(bool bias = true) {
    nn::ModelConfig c;
    c.n_layer = 2;
    c.n_head = 2;
    c.n_kv_head = 1;  // fused c_attn with row parts {C, kv, kv}
    c.n_embd = 16;
    c.block_size = 8;
    c.vocab_size = 13;
    c.bias = bias;
    c.tie_embeddings = false;  // an lm_head Linear, which the default targets leave alone
    return c;
}

Tensor tokens(const Shape& shape, uint64_t seed, int64_t vocab) {
    Generator gen(seed);
    std::vector<int64_t> ids;
    for (double x : ops::rand(shape, gen, 0.0, double(vocab), DType::f64).to_vector<double>())
        ids.push_back(int64_t(x));
    return Tensor::from(ids, shape);
}

nn::LoraSettings settings(int64_t r = 4, double alpha = 8, uint64_t seed = 7) {
    nn::LoraSettings s;
    s.r = r;
    s.alpha = alpha;
    s.seed = seed;
    return s;
}

std::map<std::string, Tensor> snapshot(const nn::Module& m) {
    std::map<std::string, Tensor> out;
    for (const auto& p : m.parameters()) out[p.name] = p.tensor.clone();
    return out;
}

bool is_adapter(const std::string& name) {
    return name.size() > 7 && (name.ends_with(".lora_A") || name.ends_with(".lora_B"));
}

Tensor logits(nn::GPT& model, const Tensor& idx) {
    autograd::NoGradGuard no_grad;
    return model.forward(idx);
}

// A few AdamW steps on one batch, so that every B becomes non-zero.
void train_adapters(nn::GPT& model, int steps) {
    optim::GroupConfig g;
    g.kind = optim::Kind::adamw;
    g.main.lr = 1e-2;
    optim::Optimizer opt(optim::make_groups(model.parameters(), g));
    const Tensor x = tokens({2, 8}, 11, 13), y = tokens({2, 8}, 12, 13);
    for (int i = 0; i < steps; ++i) {
        model.loss(x, y).backward();
        opt.step();
        opt.zero_grad();
    }
}

// W + scale·B·A on the host in f64: an independent reference for merged weights.
std::vector<double> merged_reference(const Tensor& w, const Tensor& a, const Tensor& b, double scale) {
    const int64_t out = w.size(0), in = w.size(1), r = a.size(0);
    const auto W = w.to_vector<double>(), A = a.to_vector<double>(), B = b.to_vector<double>();
    std::vector<double> m(W);
    for (int64_t o = 0; o < out; ++o)
        for (int64_t i = 0; i < in; ++i) {
            double s = 0;
            for (int64_t k = 0; k < r; ++k) s += B[size_t(o * r + k)] * A[size_t(k * in + i)];
            m[size_t(o * in + i)] += scale * s;
        }
    return m;
}

}  // namespace

TEST_CASE("lora: logits are bitwise unchanged at step 0; the report counts what was frozen and added") {
    nn::GPT model(tiny());
    model.eval();
    const Tensor idx = tokens({2, 8}, 3, 13);
    const Tensor before = logits(model, idx);
    const int64_t base_params = model.num_parameters();
    const size_t base_tensors = model.parameters().size();

    const nn::LoraReport r = nn::apply_lora(model, settings());
    CHECK(test::same_bits(logits(model, idx), before));

    // Default targets: every Linear in the blocks, not lm_head.
    const std::vector<std::string> expected = {"blocks.0.attn.c_attn", "blocks.0.attn.c_proj", "blocks.0.mlp.c_fc",
                                               "blocks.0.mlp.c_proj",  "blocks.1.attn.c_attn", "blocks.1.attn.c_proj",
                                               "blocks.1.mlp.c_fc",    "blocks.1.mlp.c_proj"};
    CHECK(r.modules == expected);
    // C = 16, kv = 8, hidden = 64: r·(in + out) per layer, r = 4.
    const int64_t per_block = 4 * ((16 + 32) + (16 + 16) + (16 + 64) + (64 + 16));
    CHECK(r.adapter_parameters == 2 * per_block);
    CHECK(r.frozen_parameters == base_params);
    CHECK(r.frozen_tensors == int64_t(base_tensors));
    CHECK(r.grad_bytes_saved() == 4 * base_params);
    CHECK(r.optimizer_bytes_saved(8) == 8 * base_params);
    CHECK(model.num_parameters() == base_params + r.adapter_parameters);

    int64_t adapters = 0;
    for (const auto& p : model.parameters()) {
        INFO(p.name);
        CHECK(p.tensor.requires_grad() == is_adapter(p.name));
        if (!is_adapter(p.name)) continue;
        ++adapters;
        CHECK(p.role == nn::Role::matrix);
        if (p.name.ends_with(".lora_B"))
            CHECK(p.tensor.to_vector<float>() == std::vector<float>(size_t(p.tensor.numel()), 0.f));
    }
    CHECK(adapters == 16);
    CHECK(model.child("lm_head") != nullptr);
    CHECK(dynamic_cast<nn::LoraLinear*>(model.child("lm_head")) == nullptr);
    // The names of the base parameters are unchanged: a base checkpoint still loads.
    std::set<std::string> names;
    for (const auto& p : model.parameters()) names.insert(p.name);
    CHECK(names.count("blocks.0.attn.c_attn.weight") == 1);
    CHECK(names.count("blocks.0.attn.c_attn.lora_A") == 1);
}

TEST_CASE("lora: A ~ U(-1/sqrt(in), 1/sqrt(in)) keyed by seed and module name, B = 0") {
    nn::GPT all(tiny()), one(tiny()), other_seed(tiny());
    nn::apply_lora(all, settings(4, 8, 7));
    nn::LoraSettings only = settings(4, 8, 7);
    only.targets = R"(blocks\.1\.mlp\.c_fc)";
    CHECK(nn::apply_lora(one, only).modules == std::vector<std::string>{"blocks.1.mlp.c_fc"});
    nn::apply_lora(other_seed, settings(4, 8, 8));
    const auto adapter = [](nn::GPT& m, const std::string& name) {  // "1.c_fc" -> blocks.1.mlp.c_fc
        nn::Module* mlp = m.child("blocks")->child(name.substr(0, 1))->child("mlp");
        auto* lora = dynamic_cast<nn::LoraLinear*>(mlp->child(name.substr(2)));
        REQUIRE(lora != nullptr);
        return lora;
    };
    auto* a = adapter(all, "1.c_fc");
    // The same seed and name give the same draw, whatever else matched.
    CHECK(test::same_bits(a->lora_A(), adapter(one, "1.c_fc")->lora_A()));
    CHECK_FALSE(test::same_bits(a->lora_A(), adapter(other_seed, "1.c_fc")->lora_A()));
    CHECK_FALSE(test::same_bits(a->lora_A(), adapter(all, "0.c_fc")->lora_A()));  // same shape, other name
    CHECK(a->lora_A().shape() == Shape{4, 16});
    CHECK(a->lora_B().shape() == Shape{64, 4});
    CHECK(a->scale() == 2.0);
    CHECK(a->rank() == 4);
    // Uniform over the whole bound: |a| < 1/4 = 1/sqrt(16), and the draw reaches near both ends.
    double lo = 1, hi = -1;
    for (double v : a->lora_A().to_vector<double>()) {
        lo = std::min(lo, v);
        hi = std::max(hi, v);
    }
    CHECK(lo >= -0.25);
    CHECK(hi < 0.25);
    CHECK(lo < -0.2);
    CHECK(hi > 0.2);
}

TEST_CASE("lora: AdamW steps change only the adapters; the base gets no gradient and no optimizer state") {
    nn::GPT model(tiny());
    const nn::LoraReport r = nn::apply_lora(model, settings());
    optim::GroupConfig g;
    g.kind = optim::Kind::adamw;
    g.main.lr = 1e-2;
    g.main.weight_decay = 0.0;  // so A moves only by its gradient
    std::vector<optim::Group> groups = optim::make_groups(model.parameters(), g);
    int64_t grouped = 0;
    for (const auto& group : groups)
        for (const auto& p : group.params) {
            INFO(p.name);
            CHECK(is_adapter(p.name));
            grouped += p.tensor.numel();
        }
    CHECK(grouped == r.adapter_parameters);
    optim::check_one_group_each(groups, model.parameters());
    optim::Optimizer opt(std::move(groups));
    CHECK(opt.state_bytes() == 8 * r.adapter_parameters);  // AdamW's f32 m and v, for the adapters only

    const auto before = snapshot(model);
    const Tensor x = tokens({2, 8}, 11, 13), y = tokens({2, 8}, 12, 13);
    for (int step = 0; step < 2; ++step) {
        model.loss(x, y).backward();
        for (const auto& p : model.parameters()) {
            INFO(p.name);
            CHECK(p.tensor.grad().defined() == is_adapter(p.name));
        }
        opt.step();
        opt.zero_grad();
    }
    for (const auto& p : model.parameters()) {
        INFO(p.name);
        if (is_adapter(p.name)) {
            // B moves on step 1 (its gradient is x·A-shaped), A on step 2 (once B is non-zero).
            CHECK_FALSE(test::same_bits(p.tensor, before.at(p.name)));
        } else {
            CHECK(test::same_bits(p.tensor, before.at(p.name)));
            CHECK_FALSE(p.tensor.grad().defined());
        }
    }
}

TEST_CASE("lora: gradcheck of the LoRA linear with respect to x, A, B and W (f64)") {
    Generator gen(5);
    nn::Linear base(6, 5, true, gen, 0.3);
    nn::LoraLinear lora(base, settings(3, 4.5), "blocks.0.mlp.c_fc", nullptr);
    lora.to(DType::f64);
    {
        Tensor b = lora.lora_B();
        b.copy_(test::random({5, 3}, 21, DType::f64));  // non-zero, so that A's gradient is too
    }
    const Tensor x = test::leaf({2, 3, 6}, 22);
    CHECK_GRADCHECK([&](const std::vector<Tensor>& in) { return lora.forward(in[0]); },
                    {x, lora.lora_A(), lora.lora_B(), lora.weight(), lora.bias()});

    // With dropout in training mode: the mask is replayed by resetting the generator on every call.
    Generator dropout_gen(9, 1);
    nn::LoraSettings s = settings(3, 4.5);
    s.dropout = 0.5;
    nn::LoraLinear dropped(base, s, "blocks.0.mlp.c_fc", &dropout_gen);
    dropped.to(DType::f64);
    {
        Tensor b = dropped.lora_B();
        b.copy_(test::random({5, 3}, 23, DType::f64));
    }
    const RngState start = dropout_gen.state();
    CHECK_GRADCHECK(
        [&](const std::vector<Tensor>& in) {
            dropout_gen.set_state(start);
            return dropped.forward(in[0]);
        },
        {x, dropped.lora_A(), dropped.lora_B()});
    // Dropout acts on the adapter's input only: in eval mode, and with B = 0 in training, y = x·Wᵀ + b.
    dropped.eval();
    Tensor y_eval = dropped.forward(x.detach());
    CHECK_FALSE(test::same_bits(y_eval, lora.forward(x.detach())));  // other B: a real adapter term
    dropped.train();
    Tensor y_train = dropped.forward(x.detach());
    CHECK_FALSE(test::same_bits(y_train, y_eval));
    {
        Tensor b = dropped.lora_B();
        b.zero_();
    }
    CHECK(test::same_bits(dropped.forward(x.detach()), base.forward(x.detach().to(DType::f64))));
}

TEST_CASE("lora: with dropout, activation checkpointing gives the plain run's adapter gradients") {
    std::map<std::string, Tensor> grads[2];
    for (int checkpointed = 0; checkpointed < 2; ++checkpointed) {
        nn::ModelConfig c = tiny();
        c.dropout = 0.1;
        c.gradient_checkpointing = checkpointed == 1;
        nn::GPT model(c);
        nn::LoraSettings s = settings();
        s.dropout = 0.2;  // draws from the model's dropout generator, which the recompute replays
        nn::apply_lora(model, s);
        uint64_t seed = 40;
        for (const auto& p : model.parameters())
            if (p.name.ends_with(".lora_B")) {
                Tensor b = p.tensor;
                b.copy_(test::random(b.shape(), seed++, DType::f32, Device::cpu(), -0.1, 0.1));
            }
        model.loss(tokens({2, 8}, 11, 13), tokens({2, 8}, 12, 13)).backward();
        for (const auto& p : model.parameters())
            if (is_adapter(p.name)) {
                REQUIRE(p.tensor.grad().defined());
                grads[checkpointed][p.name] = p.tensor.grad();
            }
    }
    REQUIRE(grads[0].size() == 16);
    for (const auto& [name, g] : grads[0]) {
        INFO(name);
        CHECK_CLOSE(grads[1].at(name), g.to(DType::f64), test::Tolerance{1e-7, 1e-5});
    }
}

TEST_CASE("lora: the merged state dict loaded into a plain GPT gives the LoRA model's logits") {
    nn::GPT model(tiny());
    const nn::LoraReport r = nn::apply_lora(model, settings());
    train_adapters(model, 3);
    model.eval();
    auto* c_fc = dynamic_cast<nn::LoraLinear*>(model.child("blocks")->child("0")->child("mlp")->child("c_fc"));
    REQUIRE(c_fc != nullptr);
    double b_max = 0;
    for (double v : c_fc->lora_B().to_vector<double>()) b_max = std::max(b_max, std::abs(v));
    CHECK(b_max > 1e-3);  // training made B non-zero

    // merged_weight = W + scale·B·A, against a host reference.
    CHECK_CLOSE(c_fc->merged_weight().to_vector<double>(),
                merged_reference(c_fc->weight(), c_fc->lora_A(), c_fc->lora_B(), c_fc->scale()),
                test::Tolerance{1e-6, 1e-5});

    const auto merged = nn::merged_state_dict(model);
    std::map<std::string, Tensor> state;
    for (const auto& [name, t] : merged) {
        CHECK_FALSE(is_adapter(name));
        state[name] = t;
    }
    nn::GPT plain(tiny());
    CHECK(state.size() == plain.state_dict().size());
    plain.load_state_dict(state);
    plain.eval();
    CHECK(test::same_bits(state.at("blocks.0.mlp.c_fc.weight"), c_fc->merged_weight()));
    CHECK(test::same_bits(state.at("lm_head.weight"), model.child("lm_head")->parameters()[0].tensor));

    const Tensor idx = tokens({2, 8}, 4, 13);
    const Tensor lora_logits = logits(model, idx), plain_logits = logits(plain, idx);
    CHECK_CLOSE(plain_logits, lora_logits.to(DType::f64), test::Tolerance{1e-6, 1e-5});
    // And the adapters matter: the base weights alone give other logits.
    nn::GPT base(tiny());
    CHECK(test::compare(logits(base, idx), lora_logits.to(DType::f64), test::Tolerance{1e-6, 1e-5}) != "");
    CHECK(r.modules.size() == 8);
}

TEST_CASE("lora: an optical layer with an adapter quantizes the merged weight; A and B get gradients") {
    const std::string name = "blocks.0.mlp.c_fc";
    Generator gen(3);
    nn::Linear base(24, 16, true, gen, 0.05);
    {
        Tensor b = base.bias();
        b.copy_(test::random({16}, 30));
    }
    nn::LoraLinear lora(base, settings(4, 8), name, nullptr);
    {
        Tensor b = lora.lora_B();
        b.copy_(test::random({16, 4}, 31, DType::f32, Device::cpu(), -0.05, 0.05));
    }
    lora.weight().requires_grad_(false);
    lora.bias().requires_grad_(false);

    // The twin: a plain Linear holding the merged weight, under the same name (same dither stream).
    Generator gen2(4);
    auto plain_base = std::make_shared<nn::Linear>(24, 16, true, gen2);
    {
        Tensor w = plain_base->weight(), b = plain_base->bias();
        w.copy_(lora.merged_weight());
        b.copy_(lora.bias());
    }
    nn::OpticalSettings os;
    nn::OpticalLinear with_lora(lora, os, name), twin(*plain_base, os, name);
    REQUIRE(with_lora.lora() != nullptr);
    CHECK(with_lora.lora()->A.same(lora.lora_A()));  // the same tensors, names and trainability
    CHECK(with_lora.lora()->B.same(lora.lora_B()));
    std::set<std::string> names;
    for (const auto& p : with_lora.parameters()) {
        names.insert(p.name);
        CHECK(p.tensor.requires_grad() == (p.name == "lora_A" || p.name == "lora_B"));
    }
    CHECK(names == std::set<std::string>{"weight", "bias", "lora_A", "lora_B"});
    CHECK(twin.lora() == nullptr);

    const Tensor x = test::random({3, 5, 24}, 32);
    const Tensor probe = test::random({3, 5, 16}, 33, DType::f32, Device::cpu(), 0.5, 1.5);
    for (int call = 0; call < 2; ++call) {  // calibrating call, then an EMA call
        INFO("call " << call);
        Tensor y = with_lora.forward(x), y_twin = twin.forward(x);
        CHECK(test::same_bits(y, y_twin));
        CHECK(test::same_bits(with_lora.w_min_max(), twin.w_min_max()));  // ranges of the merged weight
        CHECK(test::same_bits(with_lora.out_min_max(), twin.out_min_max()));
        if (call == 1) {
            ops::sum(y * probe).backward();
            ops::sum(y_twin * probe).backward();
        }
    }
    // Straight-through: dMerged = the twin's dW; dB = scale·dW·Aᵀ, dA = scale·Bᵀ·dW.
    CHECK_FALSE(lora.weight().grad().defined());
    CHECK_FALSE(lora.bias().grad().defined());
    REQUIRE(lora.lora_A().grad().defined());
    REQUIRE(lora.lora_B().grad().defined());
    const Tensor dw = twin.weight().grad();
    REQUIRE(dw.defined());
    const double scale = lora.scale();
    {
        autograd::NoGradGuard no_grad;
        CHECK_CLOSE(lora.lora_B().grad(), (ops::matmul(dw, lora.lora_A().transpose(0, 1)) * scale).to(DType::f64),
                    test::Tolerance{1e-6, 1e-5});
        CHECK_CLOSE(lora.lora_A().grad(), (ops::matmul(lora.lora_B().transpose(0, 1), dw) * scale).to(DType::f64),
                    test::Tolerance{1e-6, 1e-5});
    }

    // q_bypass: the LoraLinear's digital form.
    nn::OpticalSettings bypass;
    bypass.q_bypass = true;
    nn::OpticalLinear bypassed(lora, bypass, name);
    {
        autograd::NoGradGuard no_grad;
        CHECK(test::same_bits(bypassed.forward(x), lora.forward(x)));
    }

    // Dropout on the adapter's input has no place in the merged form: refused, naming lora.dropout.
    Generator dropout_gen(1, 1);
    nn::LoraSettings s = settings(4, 8);
    s.dropout = 0.1;
    nn::LoraLinear dropped(base, s, name, &dropout_gen);
    CHECK_THROWS_CONTAINING(std::make_shared<nn::OpticalLinear>(dropped, os, name), "lora.dropout");
}

TEST_CASE("lora: the optical transform keeps the adapters; the merged export matches the optical LoRA model") {
    nn::GPT model(tiny());
    nn::apply_lora(model, settings());
    train_adapters(model, 2);
    nn::OpticalPlan plan;  // implied rules: every block Linear and attention module optical
    nn::apply_optical_transform(model, plan);
    auto* c_proj = dynamic_cast<nn::OpticalLinear*>(model.child("blocks")->child("1")->child("attn")->child("c_proj"));
    REQUIRE(c_proj != nullptr);
    REQUIRE(c_proj->lora() != nullptr);

    const Tensor x = tokens({2, 8}, 11, 13), y = tokens({2, 8}, 12, 13);
    Tensor loss = model.loss(x, y);  // training mode: calibrates every range
    CHECK(std::isfinite(loss.item()));
    loss.backward();
    for (const auto& p : model.parameters()) {
        INFO(p.name);
        CHECK(p.tensor.grad().defined() == is_adapter(p.name));
    }

    // Export merged (the optical buffers included) and load into the same optical model without LoRA.
    std::map<std::string, Tensor> state;
    for (const auto& [name, t] : nn::merged_state_dict(model)) state[name] = t;
    CHECK(state.count("blocks.1.attn.c_proj.out_min_max") == 1);
    nn::GPT plain(tiny());
    nn::apply_optical_transform(plain, plan);
    plain.load_state_dict(state);
    model.eval();
    plain.eval();
    const Tensor idx = tokens({2, 8}, 4, 13);
    CHECK(test::same_bits(logits(plain, idx), logits(model, idx)));  // same merged weights, ranges, counters

    // LoRA goes before the transform: an optical model is refused.
    CHECK_THROWS_CONTAINING(nn::apply_lora(plain, settings()), "apply LoRA before the optical transform");
}

TEST_CASE("lora: settings and targets errors name the key; nothing changes on an error") {
    nn::GPT model(tiny());
    const auto refused = [&](nn::LoraSettings s, const std::string& text) {
        CHECK_THROWS_CONTAINING(nn::apply_lora(model, s), text);
        for (const auto& p : model.parameters()) CHECK(p.tensor.requires_grad());
    };
    nn::LoraSettings s = settings();
    s.r = 0;
    refused(s, "lora.r must be a positive integer, got 0");
    s = settings();
    s.alpha = -1;
    refused(s, "lora.alpha");
    s = settings();
    s.dropout = 1.0;
    refused(s, "lora.dropout must be in [0, 1)");
    s = settings();
    s.targets = R"(blocks\.(\d+)";
    refused(s, "lora.targets = 'blocks\\.(\\d+' is not a valid regular expression");
    s = settings();
    s.targets = "c_attn";  // a full match is needed
    refused(s, "lora.targets = 'c_attn' matches no Linear");
    refused(s, "blocks.0.attn.c_attn, blocks.0.attn.c_proj");  // the message lists the Linears
    refused(s, "lm_head");

    nn::apply_lora(model, settings());
    CHECK_THROWS_CONTAINING(nn::apply_lora(model, settings()), "already has LoRA adapters");
}
