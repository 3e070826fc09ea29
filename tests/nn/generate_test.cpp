// tests/nn/generate_test.cpp: the sampling rule (spec §11 row 12) and cached = uncached generation.
#include "nn/generate.h"
#include "tests/harness.h"

using namespace lumen;

namespace {

nn::ModelConfig tiny(nn::MlpKind mlp, nn::PosKind pos) {
    nn::ModelConfig c;
    c.n_layer = 2;
    c.n_head = 4;
    c.n_kv_head = 2;
    c.n_embd = 16;
    c.block_size = 12;
    c.vocab_size = 23;
    c.mlp = mlp;
    c.pos = pos;
    return c;
}

}  // namespace

TEST_CASE("sample: repetition penalty (CTRL rule), greedy, top-k ties, top-p, padding") {
    nn::SamplingOptions o;
    o.top_k = 0;
    o.repetition_penalty = 2.0;
    o.temperature = 0.0;
    // logits (2, -1, 0.5) with ids 0 and 1 in context: R = 2 -> (1, -2, 0.5): greedy picks 0.
    CHECK(nn::sample_next({2.0, -1.0, 0.5}, {0, 1}, o, 0.5) == 0);
    // R = 4 -> (0.5, -4, 0.5): ties go to the lower id.
    o.repetition_penalty = 4.0;
    CHECK(nn::sample_next({2.0, -1.0, 0.5}, {0, 1}, o, 0.5) == 0);
    o.repetition_penalty = 5.0;  // (0.4, -5, 0.5) -> 2
    CHECK(nn::sample_next({2.0, -1.0, 0.5}, {0, 1}, o, 0.5) == 2);

    nn::SamplingOptions s;
    s.temperature = 1.0;
    s.top_k = 1;  // argmax whatever u
    for (double u : {0.0, 0.5, 0.999}) CHECK(nn::sample_next({0.1, 3.0, 2.0}, {}, s, u) == 1);
    s.top_k = 0;
    s.top_p = 1e-6;  // the single most likely id
    for (double u : {0.0, 0.999}) CHECK(nn::sample_next({0.1, 3.0, 2.0}, {}, s, u) == 1);
    // top_k = 2 keeps ties of the 2nd largest: logits (1, 3, 1, 1): all kept, equal mass 1/... no:
    // kth = 1, so every id stays; u just below 1 reaches the last id.
    s.top_p = 1.0;
    s.top_k = 2;
    CHECK(nn::sample_next({1.0, 3.0, 1.0, 1.0}, {}, s, 0.9999999) == 3);
    // top_k = 1 with a tie at the top keeps both maxima: u small -> first, u large -> second.
    s.top_k = 1;
    CHECK(nn::sample_next({3.0, 0.0, 3.0}, {}, s, 0.1) == 0);
    CHECK(nn::sample_next({3.0, 0.0, 3.0}, {}, s, 0.9) == 2);
    // Inverse CDF in id order with equal logits: u in [i/4, (i+1)/4) gives id i.
    s.top_k = 0;
    for (int i = 0; i < 4; ++i) CHECK(nn::sample_next({0.0, 0.0, 0.0, 0.0}, {}, s, (i + 0.5) / 4) == i);
    // Padding ids are never drawn, even when they dominate.
    s.vocab_limit = 2;
    for (double u : {0.0, 0.5, 0.999}) CHECK(nn::sample_next({0.0, 0.0, 50.0, 50.0}, {}, s, u) < 2);
    nn::SamplingOptions bad;
    bad.top_p = 0.0;
    CHECK_THROWS_CONTAINING(nn::validate(bad), "top_p");
}

TEST_CASE("generate: cached equals uncached token for token, past block_size too") {
    for (auto pos : {nn::PosKind::learned, nn::PosKind::rope, nn::PosKind::none}) {
        for (auto mlp : {nn::MlpKind::gelu, nn::MlpKind::bio}) {
            INFO(nn::pos_name(pos) << " " << nn::mlp_name(mlp));
            nn::GPT model(tiny(mlp, pos));
            model.set_gate_counting(true);
            nn::SamplingOptions o;
            o.max_new_tokens = 20;  // 3 + 20 > block_size 12
            o.temperature = 1.0;
            o.top_k = 0;
            o.seed = 7;
            std::vector<int64_t> streamed;
            o.on_token = [&](int64_t id) { streamed.push_back(id); };
            auto cached = nn::generate(model, {1, 2, 3}, o);
            o.use_cache = false;
            o.on_token = nullptr;
            auto uncached = nn::generate(model, {1, 2, 3}, o);
            CHECK(cached.size() == 20);
            CHECK(cached == uncached);
            CHECK(streamed == cached);
            CHECK(model.training());                      // mode restored
            CHECK(model.gate_counting());
            if (mlp == nn::MlpKind::bio) {                // sampling counts nothing
                CHECK(model.read_sparsity(false, false).calls_total == 0);
            }
            o.seed = 8;                                   // another seed, another sample
            CHECK(nn::generate(model, {1, 2, 3}, o) != uncached);
        }
    }
}

TEST_CASE("generate: stop token, prompt limits") {
    nn::GPT model(tiny(nn::MlpKind::gelu, nn::PosKind::learned));
    nn::SamplingOptions o;
    o.temperature = 0.0;
    o.max_new_tokens = 5;
    auto greedy = nn::generate(model, {4}, o);
    o.stop_token = greedy[1];
    auto stopped = nn::generate(model, {4}, o);
    CHECK(stopped.size() <= 2);
    CHECK(stopped.back() == greedy[1]);
    CHECK_THROWS_CONTAINING(nn::generate(model, {}, o), "the prompt has 0 tokens");
    CHECK_THROWS_CONTAINING(nn::generate(model, std::vector<int64_t>(13, 1), o), "block_size = 12");
}
