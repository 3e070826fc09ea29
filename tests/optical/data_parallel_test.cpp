// tests/optical/data_parallel_test.cpp: optical layers under data parallelism (issue 11,
// specs/optical.md §4.2 "Data parallel", §5): element-mode dither of OpticalLinear and of optical
// attention at rank r of 2 on half the batch equals the full batch's rows (ranges fixed: calibrated
// identically, q_smooth_factor = 1), forward and the attention's input gradient, training and eval
// mode; a GPT made optical after set_data_parallel inherits the slice (whole-model equivalence);
// optical_statistics and average_optical_statistics.
#include "nn/gpt.h"
#include "nn/optical_statistics.h"
#include "nn/optical_transform.h"
#include "tests/optical/optical_testing.h"

#include <algorithm>
#include <cmath>
#include <map>

using namespace lumen;

namespace {

std::map<std::string, Tensor> state_of(const nn::Module& m) {
    std::map<std::string, Tensor> s;
    for (const auto& [name, t] : m.state_dict()) s[name] = t.detach().clone();
    return s;
}

// Rows [r·b, (r+1)·b) of `full` against `part`: bit for bit on the CPU (its kernels are row-
// independent); on CUDA the digital GEMMs around the optical ones may round differently for another
// row count, and a last-bit change can, rarely, move a quantized value by one level: at most 1 % of
// the elements may be farther apart than f32 rounding (a wrong dither offset moves far more).
void check_rows(const Tensor& full, const Tensor& part, int64_t r, Device device) {
    const int64_t b = part.size(0);
    const Tensor rows = full.narrow(0, r * b, b).contiguous();
    if (!device.is_cuda()) {
        CHECK(test::same_bits(part, rows));
        return;
    }
    const std::vector<double> x = part.to_vector<double>(), y = rows.to_vector<double>();
    REQUIRE(x.size() == y.size());
    size_t differ = 0;
    for (size_t i = 0; i < x.size(); ++i) differ += std::abs(x[i] - y[i]) > 1e-5 + 1e-4 * std::abs(y[i]);
    CHECK(differ <= x.size() / 100);
}

// The fraction of elements that differ (the controls: without the rank offset rows must differ).
double fraction_differing(const Tensor& a, const Tensor& b) {
    const std::vector<float> x = a.to_vector<float>(), y = b.to_vector<float>();
    size_t differ = 0;
    for (size_t i = 0; i < x.size(); ++i) differ += x[i] != y[i];
    return double(differ) / double(x.size());
}

nn::OpticalSettings fixed_range_settings(const char* name) {
    nn::OpticalSettings s;
    s.name = name;
    s.q_levels = 16;           // coarse: the dither decides many roundings
    s.q_smooth_factor = 1.0;   // EMA keeps the old range: every rank quantizes with the same ranges
    s.q_init_seed = 5;
    return s;
}

nn::ModelConfig attention_config() {
    nn::ModelConfig c;
    c.n_layer = 2;
    c.n_head = 4;
    c.n_kv_head = 2;
    c.n_embd = 16;
    c.block_size = 32;
    c.vocab_size = 13;
    c.pos = nn::PosKind::rope;
    return c;
}

nn::OpticalPlan fixed_range_plan() {
    nn::OpticalPlan plan;
    plan.settings["attention"] = fixed_range_settings("attention");
    plan.settings["fc"] = fixed_range_settings("fc");
    return plan;
}

Tensor tokens(const Shape& shape, uint64_t seed, int64_t vocab, Device device) {
    Generator gen(seed);
    Tensor u = ops::rand(shape, gen, 0.0, double(vocab), DType::f64);
    std::vector<int64_t> ids;
    for (double x : u.to_vector<double>()) ids.push_back(int64_t(x));
    return Tensor::from(ids, shape, device);
}

}  // namespace

LUMEN_DEVICE_TEST("data parallel: OpticalLinear element dither at rank r of 2 = rows of the full batch") {
    auto make = [&] {
        test::OpticalPair p = test::optical_pair(16, 12, true, device, fixed_range_settings("fc"), "blocks.0.mlp.c_fc",
                                                 1, {}, 0.2);
        test::set_ranges(*p.optical, {-1.0f, 1.0f}, {-0.5f, 0.5f}, {-1.5f, 1.5f});
        return p;
    };
    test::OpticalPair full = make(), rank0 = make(), rank1 = make(), unsliced = make();
    rank0.optical->set_data_parallel(0, 2);
    rank1.optical->set_data_parallel(1, 2);
    CHECK(rank1.optical->data_parallel_rank() == 1);
    CHECK(rank1.optical->data_parallel_world() == 2);
    CHECK_THROWS_CONTAINING(unsliced.optical->set_data_parallel(-1, 2), "rank -1 of world 2");
    const test::OpticalPair* halves[2] = {&rank0, &rank1};
    for (bool train : {true, false}) {
        INFO("training mode " << train);
        for (const test::OpticalPair* p : {&full, &rank0, &rank1, &unsliced}) p->optical->train(train);
        for (uint64_t call = 0; call < 2; ++call) {  // the call counters advance alike
            const Tensor x = test::random({4, 3, 16}, 40 + call, DType::f32, device);  // (B = 4, T, in)
            const Tensor y = full.optical->forward(x);                                 // (4, 3, 12)
            for (int64_t r = 0; r < 2; ++r) check_rows(y, halves[r]->optical->forward(x.narrow(0, 2 * r, 2)), r, device);
            const Tensor control = unsliced.optical->forward(x.narrow(0, 2, 2));      // rank 1's rows at rank 0
            CHECK(fraction_differing(control, y.narrow(0, 2, 2).contiguous()) > 0.05);
        }
    }
    for (const test::OpticalPair* p : {&rank0, &rank1})
        CHECK(test::same_bits(p->optical->x_min_max(), full.optical->x_min_max()));  // the ranges stayed fixed
}

LUMEN_DEVICE_TEST("data parallel: optical attention element dither at rank r of 2 = the full batch's entries") {
    const nn::ModelConfig c = attention_config();
    auto make = [&] {
        Generator gen(3);
        auto m = std::make_shared<nn::CausalSelfAttention>(c, gen, nullptr);
        m->to(device);
        return m;
    };
    auto full = make(), rank0 = make(), rank1 = make(), unsliced = make();
    rank0->set_data_parallel(0, 2);  // before make_optical: kept while digital
    for (auto& m : {full, rank0, rank1, unsliced}) m->make_optical(fixed_range_settings("attention"), "blocks.0.attn");
    rank1->set_data_parallel(1, 2);  // after: the same
    CHECK(rank0->data_parallel_rank() == 0);
    CHECK(rank1->data_parallel_rank() == 1);
    {
        // Calibrate on the full batch once; every module takes that state (ranges and counters).
        full->train();
        autograd::NoGradGuard no_grad;
        full->forward(test::random({4, 6, 16}, 7, DType::f32, device));
    }
    const auto calibrated = state_of(*full);
    for (auto& m : {rank0, rank1, unsliced}) m->load_state_dict(calibrated);
    std::shared_ptr<nn::CausalSelfAttention> halves[2] = {rank0, rank1};
    for (bool train : {true, false}) {
        INFO("training mode " << train);
        for (auto& m : {full, rank0, rank1, unsliced}) m->train(train);
        Tensor x = test::random({4, 6, 16}, 8 + uint64_t(train), DType::f32, device);
        const Tensor dy = test::random({4, 6, 16}, 9, DType::f32, device);
        x.set_requires_grad(true);
        const Tensor y = full->forward(x);                             // (4, 6, C)
        ops::sum(y * dy).backward();
        for (int64_t r = 0; r < 2; ++r) {
            Tensor xr = x.detach().narrow(0, 2 * r, 2).contiguous();
            xr.set_requires_grad(true);
            const Tensor yr = halves[r]->forward(xr);
            check_rows(y.detach(), yr.detach(), r, device);
            ops::sum(yr * dy.narrow(0, 2 * r, 2)).backward();          // the backward recomputes S's dither
            check_rows(x.grad(), xr.grad(), r, device);
        }
        autograd::NoGradGuard no_grad;
        const Tensor control = unsliced->forward(x.detach().narrow(0, 2, 2).contiguous());
        CHECK(fraction_differing(control, y.detach().narrow(0, 2, 2).contiguous()) > 0.05);
    }
    for (const char* range : {"qk_min_max", "av_min_max"})
        for (const auto& [name, t] : rank1->buffers())
            if (name == range) CHECK(test::same_bits(t, calibrated.at(range)));
}

LUMEN_DEVICE_TEST("data parallel: a GPT made optical after set_data_parallel inherits the slice; halves = full") {
    const nn::ModelConfig c = attention_config();
    nn::GPT full(c), rank0(c), rank1(c);
    rank0.set_data_parallel(0, 2);
    rank1.set_data_parallel(1, 2);
    for (nn::GPT* m : {&full, &rank0, &rank1}) {
        m->to(device);
        nn::apply_optical_transform(*m, fixed_range_plan());  // the transform at optical.start_iter
    }
    int64_t linears = 0, attentions = 0;
    for (auto& [name, m] : rank1.modules()) {
        if (auto* l = dynamic_cast<nn::OpticalLinear*>(m)) {
            ++linears;
            CHECK_MESSAGE(l->data_parallel_rank() == 1, name);
            CHECK(l->data_parallel_world() == 2);
        }
        if (auto* a = dynamic_cast<nn::CausalSelfAttention*>(m)) {
            ++attentions;
            CHECK(a->is_optical());
            CHECK_MESSAGE(a->data_parallel_rank() == 1, name);
        }
    }
    CHECK(linears == 4 * c.n_layer);  // c_attn, c_proj, c_fc, mlp.c_proj per block
    CHECK(attentions == c.n_layer);
    {
        full.train();
        autograd::NoGradGuard no_grad;
        full.forward(tokens({4, 8}, 1, c.vocab_size, device));  // calibrates every range on the full batch
    }
    const auto calibrated = state_of(full);
    rank0.load_state_dict(calibrated);
    rank1.load_state_dict(calibrated);
    nn::GPT* halves[2] = {&rank0, &rank1};
    for (uint64_t step = 0; step < 2; ++step) {
        const Tensor idx = tokens({4, 8}, 2 + step, c.vocab_size, device);
        autograd::NoGradGuard no_grad;
        const Tensor logits = full.forward(idx);                                    // (4, 8, V)
        for (int64_t r = 0; r < 2; ++r) check_rows(logits, halves[r]->forward(idx.narrow(0, 2 * r, 2)), r, device);
    }
}

LUMEN_DEVICE_TEST("data parallel: optical_statistics lists the rank-dependent ranges; average writes the mean") {
    const nn::ModelConfig c = attention_config();
    nn::GPT a(c), b(c);
    CHECK(nn::optical_statistics(a).empty());
    bool called = false;
    nn::average_optical_statistics(a, 2, [&](Tensor&) { called = true; });
    CHECK_FALSE(called);  // nothing to average: no collective
    nn::OpticalPlan plan;
    plan.settings["fc"].name = "fc";
    plan.settings["attention"].name = "attention";
    for (nn::GPT* m : {&a, &b}) {
        m->to(device);
        nn::apply_optical_transform(*m, plan);
        m->train();
    }
    {
        autograd::NoGradGuard no_grad;  // two "ranks": different micro-batches, different ranges
        a.forward(tokens({2, 8}, 1, c.vocab_size, device));
        b.forward(tokens({2, 8}, 2, c.vocab_size, device));
    }
    std::vector<Tensor> sa = nn::optical_statistics(a), sb = nn::optical_statistics(b);
    // Per block: c_attn, c_proj, c_fc, mlp.c_proj (x and out each) and the attention's five ranges.
    REQUIRE(sa.size() == size_t(c.n_layer * (4 * 2 + 5)));
    REQUIRE(sb.size() == sa.size());
    // Which buffers, in model order: compare against the state dict by identity of storage.
    std::vector<std::string> names;
    const std::vector<nn::NamedTensor> buffers = a.buffers();
    for (const Tensor& s : sa)
        for (const auto& [name, t] : buffers)
            if (s.storage().get() == t.storage().get()) names.push_back(name);
    REQUIRE(names.size() == sa.size());
    CHECK(names[0] == "blocks.0.attn.query_min_max");
    CHECK(names[4] == "blocks.0.attn.av_min_max");
    CHECK(names[5] == "blocks.0.attn.c_attn.x_min_max");
    CHECK(names[6] == "blocks.0.attn.c_attn.out_min_max");
    for (const std::string& n : names) {
        CHECK(n.find("w_min_max") == std::string::npos);
        CHECK(n.find("dither") == std::string::npos);
    }
    std::vector<std::vector<float>> va, vb;
    for (size_t i = 0; i < sa.size(); ++i) {
        CHECK(sa[i].dtype() == DType::f32);
        CHECK(sa[i].device() == device);
        va.push_back(sa[i].to_vector<float>());
        vb.push_back(sb[i].to_vector<float>());
    }
    CHECK(va != vb);  // the ranks' ranges differ before the averaging
    std::map<std::string, Tensor> before = state_of(a);
    // The fake all-reduce adds rank b's values, in the same order, to a's slab.
    std::vector<float> other;
    for (const auto& v : vb) other.insert(other.end(), v.begin(), v.end());
    int calls = 0;
    nn::average_optical_statistics(a, 2, [&](Tensor& slab) {
        ++calls;
        CHECK(slab.dim() == 1);
        CHECK(slab.numel() == int64_t(other.size()));
        CHECK(slab.device() == device);
        slab.copy_(slab + Tensor::from(other, {int64_t(other.size())}, device));
    });
    CHECK(calls == 1);
    for (size_t i = 0; i < sa.size(); ++i) {
        INFO(names[i]);
        const std::vector<float> got = sa[i].to_vector<float>();
        for (size_t j = 0; j < got.size(); ++j) CHECK(got[j] == (va[i][j] + vb[i][j]) / 2.0f);
    }
    // Everything else is untouched: weights, w_min_max, the counters.
    for (const auto& [name, t] : a.state_dict()) {
        if (std::find(names.begin(), names.end(), name) != names.end()) continue;
        CHECK_MESSAGE(test::same_bits(t, before.at(name)), name);
    }
}
