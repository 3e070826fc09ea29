// tests/optical/attention_module_test.cpp: CausalSelfAttention made optical (specs/optical.md
// §3.3, §4.2, §5, §10 R6): the buffers make_optical registers; the counters (+1 per training call,
// eval calls only the eval counter, bypass and checkpoint recompute nothing) and that a checkpointed
// forward/backward equals the plain one bit for bit; eval-mode calibration; bypass = the digital
// module; load_state_dict re-reading counters and calibration; KV-cache decoding (scalar dither:
// the decode step equals the full forward's last row exactly; element dither: the dither indices
// of a decode call differ from the full call's, so only closeness holds); refused settings; a GPT
// with optical attention: gradient checkpointing bit for bit, cached = uncached generation.
#include "autograd/checkpoint.h"
#include "nn/attention.h"
#include "nn/generate.h"
#include "nn/gpt.h"
#include "tests/optical/attention_testing.h"

#include <map>

using namespace lumen;
using namespace lumen::test::optical_attention;

namespace {

nn::ModelConfig config(double dropout = 0.0) {
    nn::ModelConfig c;
    c.n_layer = 2;
    c.n_head = 4;
    c.n_kv_head = 2;
    c.n_embd = 16;
    c.block_size = 32;
    c.dropout = dropout;
    c.pos = nn::PosKind::rope;
    return c;
}

nn::OpticalSettings settings(bool bypass = false, nn::DitherMode dither = nn::DitherMode::element) {
    nn::OpticalSettings s;
    s.name = "attention";
    s.q_bypass = bypass;
    s.dither = dither;
    s.q_init_seed = 7;
    return s;
}

std::shared_ptr<nn::CausalSelfAttention> attention(uint64_t seed, Device device, double dropout = 0.0) {
    Generator gen(seed);
    auto m = std::make_shared<nn::CausalSelfAttention>(config(dropout), gen, nullptr);
    m->to(device);
    return m;
}

Tensor buffer(const nn::Module& m, const std::string& name) {
    for (const auto& [n, t] : m.buffers())
        if (n == name) return t;
    FAIL("no buffer " << name);
    return {};
}
int64_t counter(const nn::Module& m, const char* name) { return buffer(m, name).to(Device::cpu()).to_vector<int64_t>()[0]; }

std::map<std::string, Tensor> state_of(const nn::Module& m) {
    std::map<std::string, Tensor> s;
    for (const auto& [name, t] : m.state_dict()) s[name] = t.detach().clone();
    return s;
}

Tensor input(uint64_t seed, Device device, int64_t T = 6) { return test::random({2, T, 16}, seed, DType::f32, device); }

const char* const range_buffers[] = {"query_min_max", "key_min_max", "value_min_max", "qk_min_max", "av_min_max"};

}  // namespace

LUMEN_DEVICE_TEST("optical attention module: make_optical registers uncalibrated ranges and zero counters") {
    auto m = attention(1, device);
    CHECK_FALSE(m->is_optical());
    CHECK(m->optical_settings() == nullptr);
    m->make_optical(settings(), "blocks.0.attn");
    CHECK(m->is_optical());
    CHECK(m->optical_settings()->q_init_seed == 7);
    std::vector<std::string> names;
    for (const auto& [name, t] : m->buffers()) names.push_back(name);
    CHECK(names == std::vector<std::string>{"query_min_max", "key_min_max", "value_min_max", "qk_min_max",
                                            "av_min_max", "dither_calls", "dither_eval_calls"});
    for (const char* name : range_buffers) {
        const Tensor b = buffer(*m, name);
        CHECK(b.device() == device);
        CHECK(values(b) == std::vector<float>{INFINITY, -INFINITY});
    }
    CHECK(buffer(*m, "dither_calls").dtype() == DType::i64);
    CHECK(counter(*m, "dither_calls") == 0);
    CHECK_THROWS_CONTAINING(m->make_optical(settings(), "blocks.0.attn"), "already optical");
}

LUMEN_DEVICE_TEST("optical attention module: R6 counters; a checkpointed call equals the plain one bit for bit") {
    auto m = attention(2, device);
    m->make_optical(settings(), "blocks.0.attn");
    const Tensor x = input(3, device);
    m->train();
    m->forward(x);
    m->forward(x);
    CHECK(counter(*m, "dither_calls") == 2);
    m->eval();
    m->forward(x);
    CHECK(counter(*m, "dither_calls") == 2);
    CHECK(counter(*m, "dither_eval_calls") == 1);
    m->train();
    {
        autograd::NoGradGuard no_grad;   // statistics and counters follow the mode, not grad mode
        m->forward(x);
    }
    CHECK(counter(*m, "dither_calls") == 3);

    // A twin in the same state runs the same calls without checkpointing. Two checkpointed calls
    // before one backward: each recompute must find its own call's ranges and counter.
    auto twin = attention(2, device);
    twin->make_optical(settings(), "blocks.0.attn");
    twin->load_state_dict(state_of(*m));
    const Tensor x2 = input(5, device);
    std::vector<Tensor> xa{x.clone(), x2.clone()}, xb{x.clone(), x2.clone()};
    for (Tensor& t : xa) t.set_requires_grad(true);
    for (Tensor& t : xb) t.set_requires_grad(true);
    auto run = [&](Tensor& in) { return autograd::checkpoint([&](const std::vector<Tensor>& i) { return m->forward(i[0]); }, {in}); };
    const std::vector<Tensor> ya{run(xa[0]), run(xa[1])};
    CHECK(counter(*m, "dither_calls") == 5);
    const Tensor dy = test::random(ya[0].shape(), 4, DType::f32, device);
    Tensor loss_a = ops::sum(ya[0] * dy) + ops::sum(ya[1] * (dy * 2.0));
    loss_a.backward();
    CHECK(counter(*m, "dither_calls") == 5);   // the recomputes advanced nothing
    const std::vector<Tensor> yb{twin->forward(xb[0]), twin->forward(xb[1])};
    Tensor loss_b = ops::sum(yb[0] * dy) + ops::sum(yb[1] * (dy * 2.0));
    loss_b.backward();
    for (int i = 0; i < 2; ++i) {
        CHECK(test::same_bits(ya[size_t(i)], yb[size_t(i)]));
        CHECK(test::same_bits(xa[size_t(i)].grad(), xb[size_t(i)].grad()));
    }
    const auto pa = m->parameters(), pb = twin->parameters();
    for (size_t i = 0; i < pa.size(); ++i) CHECK(test::same_bits(pa[i].tensor.grad(), pb[i].tensor.grad()));
    for (const auto& [name, t] : m->buffers()) CHECK_MESSAGE(test::same_bits(t, buffer(*twin, name)), name);
}

LUMEN_DEVICE_TEST("optical attention module: an uncalibrated module in eval calibrates on that batch, then holds") {
    auto m = attention(5, device);
    m->make_optical(settings(), "blocks.1.attn");
    m->eval();
    const Tensor x = input(6, device);
    const Tensor y = m->forward(x);
    for (float v : values(y)) CHECK(std::isfinite(v));
    for (const char* name : range_buffers) {
        const std::vector<float> r = values(buffer(*m, name));
        CHECK_MESSAGE((std::isfinite(r[0]) && std::isfinite(r[1]) && r[0] <= r[1]), name);
    }
    // The value range is the projected v's [min, max] (no RoPE on v): columns [C + kv, C + 2kv).
    const Tensor qkv = dynamic_cast<nn::Linear*>(m->child("c_attn"))->forward(x);   // (2, T, 32)
    const std::vector<float> v = values(qkv.narrow(2, 24, 8).contiguous());
    CHECK(values(buffer(*m, "value_min_max")) == std::vector<float>{*std::min_element(v.begin(), v.end()),
                                                                    *std::max_element(v.begin(), v.end())});
    std::map<std::string, std::vector<float>> before;
    for (const char* name : range_buffers) before[name] = values(buffer(*m, name));
    const Tensor y2 = m->forward(input(7, device));
    for (float e : values(y2)) CHECK(std::isfinite(e));
    for (const char* name : range_buffers) CHECK(values(buffer(*m, name)) == before[name]);
    CHECK(counter(*m, "dither_eval_calls") == 2);
    CHECK(counter(*m, "dither_calls") == 0);
}

LUMEN_DEVICE_TEST("optical attention module: q_bypass is the digital module exactly and touches nothing") {
    auto digital = attention(8, device), bypass = attention(8, device);
    bypass->make_optical(settings(true), "blocks.0.attn");
    const Tensor x = input(9, device);
    for (bool train : {true, false}) {
        digital->train(train);
        bypass->train(train);
        CHECK(test::same_bits(digital->forward(x), bypass->forward(x)));
    }
    for (const char* name : range_buffers) CHECK(values(buffer(*bypass, name)) == std::vector<float>{INFINITY, -INFINITY});
    CHECK(counter(*bypass, "dither_calls") == 0);
    CHECK(counter(*bypass, "dither_eval_calls") == 0);
}

LUMEN_DEVICE_TEST("optical attention module: load_state_dict re-reads the counters and the calibration") {
    auto a = attention(10, device), b = attention(11, device);
    a->make_optical(settings(), "blocks.0.attn");
    b->make_optical(settings(), "blocks.0.attn");
    a->train();
    a->forward(input(12, device));
    a->forward(input(13, device));
    b->load_state_dict(state_of(*a));
    CHECK(counter(*b, "dither_calls") == 2);
    // A training call on both: b must neither recalibrate qk/av nor restart its counter.
    b->train();
    const Tensor x = input(14, device);
    CHECK(test::same_bits(a->forward(x), b->forward(x)));
    for (const auto& [name, t] : a->buffers()) CHECK_MESSAGE(test::same_bits(t, buffer(*b, name)), name);
}

LUMEN_DEVICE_TEST("optical attention: a decode step with scalar dither equals the full call's last rows exactly") {
    // Scalar dither gives every element the same offset, so the call shape does not move the
    // dither: a call over the last rows (Tq < Tk) repeats those rows of the full call bit for bit.
    // Element dither indexes (B, H, Tq, Tk) of the call, so there the rows differ by dither only.
    const Dims n{2, 4, 2, 9, 9, 8};
    const Qkv x = random_qkv(n, 15, DType::f32, device);
    ops::OpticalAttentionCall call;
    call.ranges = {range(-1, 1, device), range(-1, 1, device), range(-1, 1, device), range(-2, 2.5f, device),
                   range(-0.6f, 0.7f, device)};
    call.update_ranges = false;
    call.dither.scalar = true;
    call.dither.r = optical::scalar_dither_offset(7 + 2 * 3);
    const Tensor full = ops::optical_causal_attention(x.q, x.k, x.v, call);
    for (int64_t tq : {1, 3}) {
        const Tensor part = ops::optical_causal_attention(x.q.narrow(2, n.Tq - tq, tq), x.k, x.v, call);
        CHECK(test::same_bits(part, full.narrow(2, n.Tq - tq, tq).contiguous()));
    }
    call.dither = element_dither(7, 1, 2, 5);
    const std::vector<float> a = values(ops::optical_causal_attention(x.q, x.k, x.v, call).narrow(2, n.Tq - 1, 1).contiguous());
    const std::vector<float> b = values(ops::optical_causal_attention(x.q.narrow(2, n.Tq - 1, 1), x.k, x.v, call));
    const double step = 1.3 / 255;
    double total = 0;
    for (size_t i = 0; i < a.size(); ++i) {
        CHECK(std::abs(a[i] - b[i]) <= 4 * step);
        total += std::abs(a[i] - b[i]);
    }
    CHECK(total / double(a.size()) <= 1.5 * step);
}

LUMEN_DEVICE_TEST("optical attention module: KV-cache generation runs optically on the eval counter") {
    for (nn::DitherMode mode : {nn::DitherMode::scalar, nn::DitherMode::element}) {
        auto full = attention(16, device), cached = attention(16, device);
        full->make_optical(settings(false, mode), "blocks.0.attn");
        cached->make_optical(settings(false, mode), "blocks.0.attn");
        full->train();
        full->forward(input(17, device, 8));   // calibrate in training
        full->eval();
        cached->load_state_dict(state_of(*full));
        cached->eval();
        const Tensor x = input(18, device, 8);
        // cached: a prefill of 7 tokens, then one decode step (two eval calls); full: one extra eval
        // call first, so its full forward runs with the same scalar seed as the decode step.
        nn::KVCache cache;
        cached->forward(x.narrow(1, 0, 7), &cache, 0);
        const Tensor step = cached->forward(x.narrow(1, 7, 1), &cache, 7);
        full->forward(x);
        const Tensor last = full->forward(x).narrow(1, 7, 1).contiguous();
        CHECK(counter(*cached, "dither_eval_calls") == 2);
        CHECK(counter(*cached, "dither_calls") == 1);
        CHECK(cache.length() == 8);
        for (float v : values(step)) CHECK(std::isfinite(v));
        if (mode == nn::DitherMode::scalar) {
            CHECK_CLOSE(step, last, test::Tolerance{1e-6, 1e-5});
        } else {   // other dither offsets only: a small relative difference
            const std::vector<float> a = values(step), b = values(last);
            double diff = 0, norm = 0;
            for (size_t i = 0; i < a.size(); ++i) {
                diff += (a[i] - b[i]) * (a[i] - b[i]);
                norm += double(b[i]) * b[i];
            }
            CHECK(std::sqrt(diff / norm) < 0.05);
        }
    }
}

LUMEN_DEVICE_TEST("optical attention module: refused settings name themselves") {
    auto m = attention(19, device, 0.1);
    nn::OpticalSettings q = settings();
    q.q_quantiles = std::pair{0.001, 0.999};
    CHECK_THROWS_CONTAINING(m->make_optical(q, "blocks.0.attn"), "q_quantiles");
    m->make_optical(settings(), "blocks.0.attn");
    m->train();
    CHECK_THROWS_CONTAINING(m->forward(input(20, device)), "attention dropout (dropout = 0.1) is not supported");
    m->eval();
    for (float v : values(m->forward(input(20, device)))) CHECK(std::isfinite(v));
}

namespace {

// A GPT whose attention modules are all optical (scalar dither: a decode step repeats the full
// call's last row exactly, so cached and uncached generation see the same attention).
std::unique_ptr<nn::GPT> optical_gpt(bool checkpointing) {
    nn::ModelConfig c = config();
    c.vocab_size = 23;
    c.gradient_checkpointing = checkpointing;
    auto model = std::make_unique<nn::GPT>(c);
    for (auto& [name, m] : model->modules())
        if (auto* attn = dynamic_cast<nn::CausalSelfAttention*>(m)) attn->make_optical(settings(false, nn::DitherMode::scalar), name);
    return model;
}

Tensor tokens(uint64_t seed, int64_t T) {
    std::vector<int64_t> ids;
    for (double u : test::random({2, T}, seed, DType::f64, Device::cpu(), 0, 23).to_vector<double>()) ids.push_back(int64_t(u));
    return Tensor::from(ids, {2, T});
}

}  // namespace

TEST_CASE("optical attention module: a GPT trains through checkpointing bit for bit and generates with the cache") {
    auto plain = optical_gpt(false), ckpt = optical_gpt(true);
    const Tensor idx = tokens(30, 8), tgt = tokens(31, 8);
    for (int step = 0; step < 2; ++step) {   // the first step calibrates, the second averages
        Tensor l1 = plain->loss(idx, tgt), l2 = ckpt->loss(idx, tgt);
        CHECK(test::same_bits(l1, l2));
        l1.backward();
        l2.backward();
    }
    const auto p1 = plain->parameters(), p2 = ckpt->parameters();
    for (size_t i = 0; i < p1.size(); ++i) CHECK_MESSAGE(test::same_bits(p1[i].tensor.grad(), p2[i].tensor.grad()), p1[i].name);
    for (const auto& [name, t] : plain->buffers()) CHECK_MESSAGE(test::same_bits(t, buffer(*ckpt, name)), name);
    CHECK(counter(*plain->child("blocks")->child("1")->child("attn"), "dither_calls") == 2);

    nn::SamplingOptions o;
    o.max_new_tokens = 6;
    o.temperature = 0.0;
    const std::vector<int64_t> prompt{1, 2, 3};
    o.use_cache = true;
    const std::vector<int64_t> cached = nn::generate(*plain, prompt, o);
    o.use_cache = false;
    const std::vector<int64_t> uncached = nn::generate(*ckpt, prompt, o);
    CHECK(cached.size() == 6);
    CHECK(cached == uncached);
    CHECK(counter(*plain->child("blocks")->child("0")->child("attn"), "dither_eval_calls") == 6);
}
