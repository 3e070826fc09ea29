// tests/dist/zero1_test.cpp: ZeRO-1 (dist/zero1.h) on in-process ranks (tests/dist/thread_group.h):
// the shard plan, steps equal to one optimizer over every parameter (AdamW, Muon + AdamW, empty
// groups on a rank), the gathered state equal to the non-ZeRO state_dict (names, order, values,
// metadata), and loading a full state back per rank (and the gathered one into a plain optimizer).
#include "dist/zero1.h"
#include "nn/gpt.h"
#include "optim/clip.h"
#include "optim/groups.h"
#include "tests/dist/thread_group.h"
#include "tests/dist/tiny_gpt.h"
#include "tests/harness.h"

using namespace lumen;

namespace {

nn::ModelConfig tiny() { return test::tiny_dp_gpt(); }

optim::GroupConfig config(optim::Kind kind) {
    optim::GroupConfig g;
    g.kind = kind;
    g.main = optim::api_defaults(kind);
    g.main.lr = 1e-2;
    g.main.weight_decay = 0.1;
    if (kind == optim::Kind::muon) {
        g.main.ns_f32 = true;
        g.aux_adamw = optim::muon_aux_adamw_api_defaults();
        g.aux_adamw.weight_decay = 0.1;
    }
    return g;
}

// Step s's gradients: the same on every rank (as after the reducer), different each step.
void set_grads(const std::vector<nn::Parameter>& params, int step) {
    for (size_t i = 0; i < params.size(); ++i)
        params[i].tensor.set_grad(test::random(params[i].tensor.shape(), 1000 * uint64_t(step) + i));
}

// One optimizer step as the trainer takes it: flags from every gradient (equal on every rank).
void step(optim::Optimizer& opt, const std::vector<nn::Parameter>& all, int s) {
    set_grads(all, s);
    opt.step({.lr_scale = 1.0 - 0.1 * s, .flags = optim::clip_flags(all, 1.0)});
}

std::vector<nn::Parameter> trainable(const nn::GPT& m) {
    std::vector<nn::Parameter> out;
    for (auto& p : m.parameters())
        if (p.tensor.requires_grad()) out.push_back(p);
    return out;
}

struct Snapshot {
    std::vector<Tensor> params;
    optim::StateDict state;
};

// `steps` steps of one plain optimizer over every parameter of a fresh model.
Snapshot plain_run(optim::Kind kind, int steps, const std::vector<nn::Parameter>* start = nullptr,
                   const optim::StateDict* state = nullptr, int first_step = 0) {
    nn::GPT m(tiny());
    auto params = trainable(m);
    if (start)
        for (size_t i = 0; i < params.size(); ++i) params[i].tensor.detach().copy_((*start)[i].tensor);
    optim::Optimizer opt(optim::make_groups(params, config(kind)));
    if (state) opt.load_state_dict(*state);
    for (int s = first_step; s < first_step + steps; ++s) step(opt, params, s);
    Snapshot out;
    for (auto& p : params) out.params.push_back(p.tensor.detach().clone());
    out.state = opt.state_dict();
    return out;
}

void check_same_state(const optim::StateDict& a, const optim::StateDict& b) {
    REQUIRE(a.tensors.size() == b.tensors.size());
    for (size_t i = 0; i < a.tensors.size(); ++i) {
        INFO("entry " << i << ": " << a.tensors[i].first << " vs " << b.tensors[i].first);
        CHECK(a.tensors[i].first == b.tensors[i].first);
        CHECK(test::same_bits(a.tensors[i].second, b.tensors[i].second));
    }
    CHECK(a.meta == b.meta);
}

// W ranks of ZeRO-1 over the same model: `steps` steps; rank 0's parameters and gathered state.
Snapshot zero_run(optim::Kind kind, int world, int steps, const optim::StateDict* load = nullptr,
                  const std::vector<Tensor>* start = nullptr, int first_step = 0) {
    Snapshot out;
    std::vector<std::vector<Tensor>> params_by_rank(world);
    test::ThreadGroup group(world);
    group.run([&](dist::Communicator& comm) {
        nn::GPT m(tiny());
        auto params = trainable(m);
        if (start)
            for (size_t i = 0; i < params.size(); ++i) params[i].tensor.detach().copy_((*start)[i]);
        const dist::ZeroPlan plan = dist::plan_shards(params, comm.world());
        optim::Optimizer opt(dist::own_groups(optim::make_groups(params, config(kind)), plan, comm.rank()));
        if (load) dist::load_own_state(opt, *load, plan, comm.rank());
        for (int s = first_step; s < first_step + steps; ++s) {
            step(opt, params, s);
            dist::broadcast_parameters(comm, params, plan);
        }
        optim::StateDict gathered = dist::gather_state_dict(comm, opt, plan);
        for (auto& p : params) params_by_rank[comm.rank()].push_back(p.tensor.detach().clone());
        if (comm.rank() == 0) out.state = std::move(gathered);
        else if (!gathered.tensors.empty() || !gathered.meta.is_null())
            throw Error("gather_state_dict returned state on a rank other than 0");
    });
    for (int r = 1; r < world; ++r)
        for (size_t i = 0; i < params_by_rank[0].size(); ++i)
            CHECK(test::same_bits(params_by_rank[r][i], params_by_rank[0][i]));  // every rank the same weights
    out.params = params_by_rank[0];
    return out;
}

}  // namespace

TEST_CASE("zero1: the shard plan: largest first to the least-loaded rank, ties to the lowest") {
    std::vector<nn::Parameter> ps;
    const std::vector<int64_t> sizes{10, 30, 20, 30, 5};
    for (size_t i = 0; i < sizes.size(); ++i) ps.push_back({"p" + std::to_string(i), Tensor::zeros({sizes[i]})});
    // By hand: p1(30)->r0, p3(30)->r1, p2(20)->r0 (tie 30/30), p0(10)->r1 (50/30), p4(5)->r1 (50/40).
    const dist::ZeroPlan plan = dist::plan_shards(ps, 2);
    CHECK(plan.owner == std::vector<int>{1, 0, 0, 1, 1});
    CHECK(plan.rank_numel == std::vector<int64_t>{50, 45});
    CHECK(plan.owner_of("p3") == 1);
    CHECK_THROWS_CONTAINING(plan.owner_of("nope"), "nope");
    CHECK(dist::plan_shards(ps, 1).owner == std::vector<int>(5, 0));
    CHECK(dist::describe(plan, 1) ==
          "zero1: optimizer state over 2 ranks by whole tensors; rank 1 steps 3 of 5 tensors (0.00M of 0.00M elements)");
    // More ranks than tensors: a rank with nothing to step is an error naming it.
    const dist::ZeroPlan wide = dist::plan_shards(ps, 6);
    std::vector<optim::Group> groups{{"decay", optim::Kind::adamw, optim::api_defaults(optim::Kind::adamw), ps}};
    for (auto& p : groups[0].params) p.tensor.set_requires_grad(true);
    CHECK_THROWS_CONTAINING(dist::own_groups(groups, wide, 5), "rank 5 owns no parameter");
}

TEST_CASE("zero1: 2 ranks of AdamW step exactly as one optimizer; gathered state == state_dict; load and go on") {
    for (auto kind : {optim::Kind::adamw, optim::Kind::muon}) {
        INFO("kind " << optim::kind_name(kind));
        const Snapshot ref = plain_run(kind, 3);
        const Snapshot zero = zero_run(kind, 2, 3);
        REQUIRE(zero.params.size() == ref.params.size());
        for (size_t i = 0; i < ref.params.size(); ++i) {
            INFO("parameter " << i);
            CHECK(test::same_bits(zero.params[i], ref.params[i]));  // elementwise rules: bit-identical
        }
        check_same_state(zero.state, ref.state);

        // Resume: the full state loaded per rank, two more steps == the plain optimizer going on.
        nn::GPT start_model(tiny());
        auto start = trainable(start_model);
        for (size_t i = 0; i < start.size(); ++i) start[i].tensor.detach().copy_(ref.params[i]);
        const Snapshot ref_more = plain_run(kind, 2, &start, &ref.state, 3);
        const Snapshot zero_more = zero_run(kind, 2, 2, &ref.state, &ref.params, 3);
        for (size_t i = 0; i < ref.params.size(); ++i) CHECK(test::same_bits(zero_more.params[i], ref_more.params[i]));
        check_same_state(zero_more.state, ref_more.state);
        // And the other way: ZeRO's gathered state resumes a plain optimizer.
        const Snapshot plain_from_zero = plain_run(kind, 2, &start, &zero.state, 3);
        for (size_t i = 0; i < ref.params.size(); ++i)
            CHECK(test::same_bits(plain_from_zero.params[i], ref_more.params[i]));
    }
}

TEST_CASE("zero1: 3 ranks (uneven shares) also match") {
    const Snapshot ref = plain_run(optim::Kind::adamw, 2);
    const Snapshot zero = zero_run(optim::Kind::adamw, 3, 2);
    for (size_t i = 0; i < ref.params.size(); ++i) CHECK(test::same_bits(zero.params[i], ref.params[i]));
    check_same_state(zero.state, ref.state);
}

TEST_CASE("zero1: a rank whose share of a group is empty keeps the group (same name, steps, state names)") {
    // One big matrix (Muon) and two small vectors (AdamW no_decay): rank 0 gets the matrix only,
    // rank 1 the vectors only, so each rank has one empty group.
    auto make = [] {
        std::vector<nn::Parameter> ps;
        ps.push_back({"w", test::random({16, 16}, 1).set_requires_grad(), nn::Role::matrix});
        ps.push_back({"b", test::random({4}, 2).set_requires_grad(), nn::Role::bias});
        ps.push_back({"n", test::random({4}, 3).set_requires_grad(), nn::Role::norm});
        return ps;
    };
    auto ref_params = make();
    optim::Optimizer ref(optim::make_groups(ref_params, config(optim::Kind::muon)));
    for (int s = 0; s < 2; ++s) step(ref, ref_params, s);
    const optim::StateDict ref_state = ref.state_dict();

    std::vector<std::vector<Tensor>> got(2);
    std::vector<std::vector<size_t>> group_sizes(2);
    optim::StateDict gathered;
    test::ThreadGroup group(2, test::AsyncMode::at_wait);
    group.run([&](dist::Communicator& comm) {
        auto ps = make();
        const dist::ZeroPlan plan = dist::plan_shards(ps, 2);
        optim::Optimizer opt(dist::own_groups(optim::make_groups(ps, config(optim::Kind::muon)), plan, comm.rank()));
        for (auto& g : opt.groups()) group_sizes[comm.rank()].push_back(g.params.size());
        for (int s = 0; s < 2; ++s) {
            step(opt, ps, s);
            dist::broadcast_parameters(comm, ps, plan);
        }
        optim::StateDict sd = dist::gather_state_dict(comm, opt, plan, /*every_rank=*/true);
        for (auto& p : ps) got[comm.rank()].push_back(p.tensor.detach().clone());
        if (comm.rank() == 1) gathered = std::move(sd);  // every_rank: rank 1 has it too
    });
    CHECK(group_sizes[0] == std::vector<size_t>{1, 0});
    CHECK(group_sizes[1] == std::vector<size_t>{0, 2});
    for (int r = 0; r < 2; ++r)
        for (size_t i = 0; i < 3; ++i) CHECK(test::same_bits(got[r][i], ref_params[i].tensor));
    check_same_state(gathered, ref_state);
}
