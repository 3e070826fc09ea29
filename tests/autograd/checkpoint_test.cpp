// tests/autograd/checkpoint_test.cpp: activation checkpointing gives the same values and the same
// gradients (inputs and parameters) as the plain computation, including random draws inside.
#include "autograd/checkpoint.h"
#include "tests/harness.h"

using namespace lumen;

namespace {
// A small two-layer block with parameters captured from outside (as a module's would be).
struct Block {
    Tensor w1, w2;
    Tensor operator()(const Tensor& x) const { return ops::matmul(ops::tanh(ops::matmul(x, w1)), w2) + x; }
};
}  // namespace

LUMEN_GRADCHECK_COVERS("checkpoint");

TEST_CASE("checkpoint: same output and gradients as the plain computation") {
    Block block{test::leaf({4, 6}, 1), test::leaf({6, 4}, 2)};
    Tensor x1 = test::leaf({3, 4}, 3), x2 = x1.detach().clone().requires_grad_();

    Tensor plain = block(block(x1));
    ops::sum(plain * plain).backward();
    const std::vector<double> gx = x1.grad().to_vector<double>();
    const std::vector<double> gw1 = block.w1.grad().to_vector<double>(), gw2 = block.w2.grad().to_vector<double>();
    block.w1.zero_grad();
    block.w2.zero_grad();

    auto run = [&](const std::vector<Tensor>& in) { return block(in[0]); };
    Tensor h = autograd::checkpoint(run, {x2});
    CHECK(h.grad_fn() != nullptr);
    Tensor ckpt = autograd::checkpoint(run, {h});
    CHECK_CLOSE(ckpt, plain, test::Tolerance{0, 0});
    ops::sum(ckpt * ckpt).backward();
    CHECK_CLOSE(x2.grad().to_vector<double>(), gx, test::Tolerance{1e-12, 1e-12});
    CHECK_CLOSE(block.w1.grad().to_vector<double>(), gw1, test::Tolerance{1e-12, 1e-12});
    CHECK_CLOSE(block.w2.grad().to_vector<double>(), gw2, test::Tolerance{1e-12, 1e-12});
}

TEST_CASE("checkpoint: random draws repeat in the recompute (dropout inside)") {
    Tensor w = test::leaf({5, 5}, 4);
    Tensor x1 = test::leaf({8, 5}, 5), x2 = x1.detach().clone().requires_grad_();
    Generator gen_plain(77), gen_ckpt(77);
    auto body = [&](const Tensor& x, Generator& gen) { return ops::dropout(ops::matmul(x, w), 0.5, gen); };

    Tensor plain = body(x1, gen_plain);
    ops::sum(plain * plain).backward();
    const std::vector<double> gx = x1.grad().to_vector<double>(), gw = w.grad().to_vector<double>();
    w.zero_grad();

    Tensor ckpt = autograd::checkpoint([&](const auto& in) { return body(in[0], gen_ckpt); }, {x2}, {&gen_ckpt});
    CHECK_CLOSE(ckpt, plain, test::Tolerance{0, 0});
    const RngState after_forward = gen_ckpt.state();
    ops::sum(ckpt * ckpt).backward();
    CHECK(gen_ckpt.state().offset == after_forward.offset);  // the recompute leaves the stream where it was
    CHECK_CLOSE(x2.grad().to_vector<double>(), gx, test::Tolerance{1e-12, 1e-12});
    CHECK_CLOSE(w.grad().to_vector<double>(), gw, test::Tolerance{1e-12, 1e-12});
}

TEST_CASE("checkpoint: gradcheck, and a function returning its input") {
    Tensor w = test::leaf({3, 3}, 6);
    CHECK_GRADCHECK([w](const std::vector<Tensor>& in) {
        return autograd::checkpoint([w](const auto& v) { return ops::sin(ops::matmul(v[0], w)); }, {in[0]});
    }, {test::leaf({2, 3}, 7)});
    Tensor x = test::leaf({2}, 8);
    Tensor y = autograd::checkpoint([](const auto& v) { return v[0]; }, {x});
    CHECK(x.is_leaf());  // the input's own history is untouched
    ops::sum(y * 3.0).backward();
    CHECK(x.grad().to_vector<double>() == std::vector<double>{3.0, 3.0});
}
