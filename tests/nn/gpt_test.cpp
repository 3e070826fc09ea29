// tests/nn/gpt_test.cpp: the GPT family: parameter counts (specs/wiggle.md §5), initialisation
// statistics, the step-0 loss, gradchecks of whole modules, checkpointed = plain gradients, RoPE
// inside the model, and each MLP kind overfitting one batch.
#include "autograd/checkpoint.h"
#include "nn/gpt.h"
#include "tests/harness.h"

#include <cmath>

using namespace lumen;

namespace {

nn::ModelConfig tiny(nn::MlpKind mlp, nn::PosKind pos = nn::PosKind::learned) {
    nn::ModelConfig c;
    c.n_layer = 2;
    c.n_head = 2;
    c.n_embd = 8;
    c.block_size = 16;
    c.vocab_size = 13;
    c.mlp = mlp;
    c.pos = pos;
    return c;
}

Tensor tokens(const Shape& shape, uint64_t seed, int64_t vocab) {
    Generator gen(seed);
    Tensor u = ops::rand(shape, gen, 0.0, double(vocab), DType::f64);
    std::vector<int64_t> ids;
    for (double x : u.to_vector<double>()) ids.push_back(int64_t(x));
    return Tensor::from(ids, shape);
}

// Sample mean and standard deviation of a tensor's values.
std::pair<double, double> moments(const Tensor& t) {
    auto v = t.to_vector<double>();
    double mean = 0, sq = 0;
    for (double x : v) mean += x / double(v.size());
    for (double x : v) sq += (x - mean) * (x - mean) / double(v.size());
    return {mean, std::sqrt(sq)};
}

Tensor find(const nn::GPT& m, const std::string& name) {
    for (auto& p : m.parameters())
        if (p.name == name) return p.tensor;
    FAIL("no parameter " << name);
    return {};
}

}  // namespace

TEST_CASE("gpt: parameter counts of the published shapes (specs/wiggle.md §5)") {
    nn::NoInitGuard no_init;  // counting only
    nn::GPT v2(nn::wiggle_v2_config());
    CHECK(v2.num_parameters_reported() == 45'309'312);
    CHECK(v2.num_parameters() == 45'702'528);
    auto v3c = nn::wiggle_v3_config();
    nn::GPT v3(v3c);
    CHECK(v3.num_parameters_reported() == 123'697'920);
    auto gelu = nn::wiggle_v2_config();
    gelu.mlp = nn::MlpKind::gelu;
    CHECK(nn::GPT(gelu).num_parameters_reported() == 26'398'080);
    auto osc = nn::wiggle_v2_config();
    osc.mlp = nn::MlpKind::osc;
    CHECK(nn::GPT(osc).num_parameters_reported() == 26'416'512);
    auto big_bio = nn::gpt2_124m_config();
    big_bio.mlp = nn::MlpKind::bio;
    CHECK(nn::GPT(big_bio).num_parameters_reported() == 350'300'928);
    auto gpt124 = nn::gpt2_124m_config();
    gpt124.norm = nn::NormKind::rmsnorm;
    gpt124.pos = nn::PosKind::none;
    CHECK(nn::GPT(gpt124).num_parameters_reported() == 123'587'328);
}

TEST_CASE("gpt: initialisation statistics of WiggleGPT v2 (spec §11 row 5)") {
    nn::GPT m(nn::wiggle_v2_config());
    auto within = [](double got, double want) { return std::abs(got - want) <= 0.02 * want; };
    CHECK(within(moments(find(m, "blocks.0.mlp.c_proj.weight")).second, 0.0070711));
    CHECK(within(moments(find(m, "blocks.2.attn.c_proj.weight")).second, 0.0070711));
    for (const char* name : {"blocks.1.mlp.sparse_gate.gate.weight", "blocks.1.mlp.sparse_gate.transform.weight",
                             "blocks.3.mlp.c_fc.weight", "blocks.0.attn.c_attn.weight", "wte.weight", "wpe.weight"}) {
        INFO(name);
        CHECK(within(moments(find(m, name)).second, 0.02));
    }
    auto [om, os] = moments(find(m, "blocks.0.mlp.oscillating.omega"));
    CHECK(std::abs(om - 1.0) < 0.01);
    CHECK(std::abs(os - 0.1) < 0.01);
    auto [pm, ps] = moments(find(m, "blocks.3.mlp.sparse_gate.activation.phi"));
    CHECK(std::abs(pm) < 0.01);
    CHECK(std::abs(ps - 0.1) < 0.01);
    for (double b : find(m, "blocks.2.mlp.oscillating.baseline").to_vector<double>()) CHECK(b == 0.0);
    for (double w : find(m, "blocks.1.ln_2.weight").to_vector<double>()) CHECK(w == 1.0);
    // The same seed gives the same weights; another seed does not.
    nn::GPT again(nn::wiggle_v2_config());
    CHECK(test::same_bits(find(m, "wte.weight"), find(again, "wte.weight")));
}

TEST_CASE("gpt: the step-0 loss of WiggleGPT v2 on random tokens is about ln V (spec §11 row 10)") {
    auto c = nn::wiggle_v2_config();
    c.block_size = 64;
    nn::GPT m(c);
    autograd::NoGradGuard no_grad;
    Tensor idx = tokens({2, 64}, 1, c.vocab_size), tgt = tokens({2, 64}, 2, c.vocab_size);
    m.set_gate_counting(true);
    const double loss = m.loss(idx, tgt).item();
    CHECK(loss >= 10.80);
    CHECK(loss <= 11.05);
    // At init z ≈ 0, so v ≈ 0.5 > θ = 0.25: every gate unit is active (spec §11 row 3).
    auto r = m.read_sparsity(true, true);
    CHECK(r.per_layer.size() == 4);
    CHECK(r.mean >= 0.9999);
    CHECK(r.calls_total == 4 * 2 * 64 * 1536);  // one forward adds B·T·H per layer
}

TEST_CASE("gpt: sparsity counters: train and eval apart, reset, none while sampling-style no-count") {
    auto c = tiny(nn::MlpKind::bio);
    nn::GPT m(c);
    Tensor idx = tokens({2, 5}, 3, c.vocab_size);
    m.forward(idx);  // counting off: nothing
    CHECK(m.read_sparsity(true, false).calls_total == 0);
    m.set_gate_counting(true);
    m.forward(idx);
    CHECK(m.read_sparsity(true, false).calls_total == 2 * 2 * 5 * 32);
    m.eval();
    m.forward(idx);
    CHECK(m.read_sparsity(false, false).calls_total == 2 * 2 * 5 * 32);
    CHECK(m.read_sparsity(true, true).calls_total == 2 * 2 * 5 * 32);  // reads, then resets train only
    CHECK(m.read_sparsity(true, false).calls_total == 0);
    CHECK(m.read_sparsity(false, false).calls_total == 2 * 2 * 5 * 32);
    // Counters survive a save/restore through gate_counters.
    auto saved = m.gate_counters(false);
    m.read_sparsity(false, true);
    m.set_gate_counters(false, saved);
    CHECK(m.gate_counters(false) == saved);
}

TEST_CASE("gpt: gradient checkpointing gives the same gradients and counts gates once") {
    for (auto mlp : {nn::MlpKind::gelu, nn::MlpKind::bio, nn::MlpKind::osc, nn::MlpKind::swiglu}) {
        INFO(nn::mlp_name(mlp));
        auto c = tiny(mlp, nn::PosKind::rope);
        c.dropout = 0.1;
        nn::GPT plain(c);
        c.gradient_checkpointing = true;
        nn::GPT ckpt(c);
        plain.set_gate_counting(true);
        ckpt.set_gate_counting(true);
        Tensor idx = tokens({2, 6}, 4, c.vocab_size), tgt = tokens({2, 6}, 5, c.vocab_size);
        Tensor l1 = plain.loss(idx, tgt), l2 = ckpt.loss(idx, tgt);
        CHECK(test::same_bits(l1, l2));
        l1.backward();
        l2.backward();
        auto p1 = plain.parameters(), p2 = ckpt.parameters();
        for (size_t i = 0; i < p1.size(); ++i) {
            INFO(p1[i].name);
            CHECK(test::same_bits(p1[i].tensor.grad(), p2[i].tensor.grad()));
        }
        CHECK(plain.gate_counters(true) == ckpt.gate_counters(true));
    }
}

TEST_CASE("gpt: gradcheck of whole small models of each MLP kind and position scheme (f64)") {
    struct Case {
        nn::MlpKind mlp;
        nn::PosKind pos;
        nn::NormKind norm;
        int64_t kv;
    };
    for (Case k : {Case{nn::MlpKind::gelu, nn::PosKind::learned, nn::NormKind::layernorm, 0},
                   Case{nn::MlpKind::swiglu, nn::PosKind::rope, nn::NormKind::rmsnorm, 1},
                   Case{nn::MlpKind::osc, nn::PosKind::none, nn::NormKind::rmsnorm, 0},
                   Case{nn::MlpKind::bio, nn::PosKind::rope, nn::NormKind::layernorm, 0}}) {
        INFO(nn::mlp_name(k.mlp) << " " << nn::pos_name(k.pos));
        auto c = tiny(k.mlp, k.pos);
        c.n_layer = 1;
        c.n_embd = 4;
        c.vocab_size = 5;
        c.norm = k.norm;
        c.n_kv_head = k.kv;
        c.bias = k.mlp == nn::MlpKind::gelu;
        c.tie_embeddings = k.mlp != nn::MlpKind::swiglu;
        nn::GPT m(c);
        m.to(DType::f64);
        m.set_compute_dtype(DType::f64);
        // Larger weights than the init so that every path carries signal.
        Generator gen(7);
        for (auto& p : m.parameters()) p.tensor.detach().add_(ops::randn(p.tensor.shape(), gen, 0.0, 0.3, DType::f64));
        Tensor idx = tokens({2, 3}, 8, c.vocab_size), tgt = tokens({2, 3}, 9, c.vocab_size);
        std::vector<Tensor> params;
        for (auto& p : m.parameters()) params.push_back(p.tensor);
        CHECK_GRADCHECK([&](const std::vector<Tensor>&) { return m.loss(idx, tgt); }, params,
                        autograd::GradcheckOptions{1e-6, 1e-6, 1e-4});
    }
}

TEST_CASE("gpt: RoPE in the model: T = 1 and T < n_head work, positions matter") {
    auto c = tiny(nn::MlpKind::osc, nn::PosKind::rope);
    c.n_head = 4;
    nn::GPT m(c);
    m.eval();
    autograd::NoGradGuard no_grad;
    CHECK(m.forward(tokens({1, 1}, 1, c.vocab_size)).shape() == Shape{1, 1, c.vocab_size});
    CHECK(m.forward(tokens({3, 2}, 1, c.vocab_size)).shape() == Shape{3, 2, c.vocab_size});
    // The last token's logits depend on the order of the earlier ones with RoPE ...
    Tensor a = Tensor::from(std::vector<int64_t>{1, 2, 3, 4}, {1, 4});
    Tensor b = Tensor::from(std::vector<int64_t>{2, 1, 3, 4}, {1, 4});
    CHECK_FALSE(test::same_bits(m.forward(a).narrow(1, 3, 1), m.forward(b).narrow(1, 3, 1)));
    // ... but not without positions (pos = none, the NoPE model): one layer sees a set of tokens.
    c.pos = nn::PosKind::none;
    c.n_layer = 1;
    nn::GPT nope(c);
    nope.eval();
    CHECK_CLOSE(nope.forward(a).narrow(1, 3, 1), nope.forward(b).narrow(1, 3, 1), test::Tolerance{1e-6, 1e-5});
    CHECK_THROWS_CONTAINING(m.forward(tokens({1, 17}, 1, c.vocab_size)), "exceeds block_size 16");
}

TEST_CASE("gpt: a tiny model of each MLP kind overfits one batch (CPU)") {
    for (auto mlp : {nn::MlpKind::gelu, nn::MlpKind::swiglu, nn::MlpKind::osc, nn::MlpKind::bio}) {
        INFO(nn::mlp_name(mlp));
        auto c = tiny(mlp, mlp == nn::MlpKind::gelu ? nn::PosKind::learned : nn::PosKind::rope);
        c.n_embd = 32;
        c.n_head = 4;
        c.vocab_size = 32;
        nn::GPT m(c);
        Tensor idx = tokens({2, 16}, 11, c.vocab_size), tgt = tokens({2, 16}, 12, c.vocab_size);
        // Plain Adam written here with ops, so this test depends on the model alone.
        std::vector<Tensor> ms, vs;
        auto ps = m.parameters();
        for (auto& p : ps) {
            ms.push_back(Tensor::zeros(p.tensor.shape()));
            vs.push_back(Tensor::zeros(p.tensor.shape()));
        }
        double first = 0, last = 0;
        for (int step = 1; step <= 120; ++step) {
            Tensor loss = m.loss(idx, tgt);
            loss.backward();
            last = loss.item();
            if (step == 1) first = last;
            autograd::NoGradGuard no_grad;
            const double lr = 1e-2, b1 = 0.9, b2 = 0.99;
            for (size_t i = 0; i < ps.size(); ++i) {
                Tensor g = ps[i].tensor.grad();
                ms[i] = ms[i] * b1 + g * (1 - b1);
                vs[i] = vs[i] * b2 + g * g * (1 - b2);
                Tensor mhat = ms[i] / (1 - std::pow(b1, step)), vhat = vs[i] / (1 - std::pow(b2, step));
                ps[i].tensor.detach().add_(mhat / (ops::sqrt(vhat) + 1e-8), -lr);
                ps[i].tensor.zero_grad();
            }
        }
        INFO("first " << first << " last " << last);
        CHECK(first > 3.0);   // ≈ ln 32
        CHECK(last < 0.5);
    }
}
