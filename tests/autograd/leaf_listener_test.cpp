// tests/autograd/leaf_listener_test.cpp: the "leaf gradient is final" listener (autograd/node.h):
// each leaf that gets a gradient is reported once, after its last contribution (the value seen
// in the callback is the final .grad), in backward order; leaves that get no gradient are not
// reported; checkpointed blocks report their parameters from the recompute's backward.
#include "autograd/checkpoint.h"
#include "tests/harness.h"

#include <map>

using namespace lumen;

namespace {

// Records every report: which leaf, and a copy of its .grad at that moment.
struct Recorder : autograd::LeafGradListener {
    std::vector<const TensorImpl*> order;
    std::map<const TensorImpl*, std::vector<Tensor>> seen;
    void gradient_final(TensorImpl& leaf) override {
        order.push_back(&leaf);
        seen[&leaf].push_back(Tensor(leaf.grad).clone());
    }
    int count(const Tensor& t) const {
        auto it = seen.find(&t.impl());
        return it == seen.end() ? 0 : int(it->second.size());
    }
    // Reported exactly once, with the value the leaf's .grad has after backward.
    void check_once_final(const Tensor& t, const char* name) const {
        INFO("leaf " << name);
        REQUIRE(count(t) == 1);
        CHECK(test::same_bits(seen.at(&t.impl())[0], t.grad()));
    }
    size_t position(const Tensor& t) const {
        for (size_t i = 0; i < order.size(); ++i)
            if (order[i] == &t.impl()) return i;
        FAIL("leaf never reported");
        return 0;
    }
};

}  // namespace

TEST_CASE("leaf listener: a weight used twice is reported once, after both contributions") {
    Tensor w = test::leaf({4, 4}, 1), x = test::leaf({3, 4}, 2);
    // w is used by two matmuls (a tied weight): the first to run backward must not report it.
    Tensor h = ops::tanh(ops::matmul(x, w));
    Tensor y = ops::matmul(h, w);
    Recorder rec;
    {
        autograd::ListenLeafGradients listen(rec);
        ops::sum(y * y).backward();
    }
    rec.check_once_final(w, "w");
    rec.check_once_final(x, "x");
    // The contributions really were two: the final gradient differs from the second matmul's alone.
    Tensor w2 = w.detach().clone().requires_grad_();
    Tensor y2 = ops::matmul(ops::tanh(ops::matmul(x.detach(), w.detach())), w2);
    ops::sum(y2 * y2).backward();
    CHECK(!test::same_bits(w2.grad(), w.grad()));
}

TEST_CASE("leaf listener: a leaf used many ways (and a leaf root) is reported once; order is backward's") {
    Tensor a = test::leaf({5}, 3), b = test::leaf({5}, 4), c = test::leaf({5}, 5);
    // a: used by three ops at different depths; c: only near the root; b: only deep.
    Tensor d1 = ops::exp(a * b);           // deep
    Tensor d2 = ops::tanh(d1 + a);
    Tensor loss = ops::sum(d2 * c + a * a);
    Recorder rec;
    {
        autograd::ListenLeafGradients listen(rec);
        loss.backward();
    }
    rec.check_once_final(a, "a");
    rec.check_once_final(b, "b");
    rec.check_once_final(c, "c");
    CHECK(rec.order.size() == 3);
    CHECK(rec.position(c) < rec.position(b));  // c's only edge is nearer the root than b's

    // A root that is itself a leaf: its gradient arrives before any node runs.
    Tensor r = test::leaf({3}, 6);
    Recorder rec2;
    {
        autograd::ListenLeafGradients listen(rec2);
        autograd::run_backward({r, ops::sum(r * r)}, {Tensor::ones({3}, DType::f64), Tensor::ones({}, DType::f64)},
                               RetainGraph::no);
    }
    rec2.check_once_final(r, "r");
    CHECK_CLOSE(r.grad().to_vector<double>(), [&] {  // 1 + 2r
        std::vector<double> e;
        for (double v : r.to_vector<double>()) e.push_back(1 + 2 * v);
        return e;
    }(), test::Tolerance{1e-12, 1e-12});
}

TEST_CASE("leaf listener: a leaf reached only through a branch no gradient flows into is not reported") {
    Tensor x = test::leaf({4}, 7), w = test::leaf({4}, 8), v = test::leaf({4}, 9);
    Tensor h = ops::tanh(w);      // reachable from the loss, but the checkpoint returns no gradient for it
    Tensor g = ops::exp(v);       // v: reached through the dead branch and a live one
    // The checkpointed function ignores its second input, so its backward returns an undefined
    // gradient there and the tanh node behind it is skipped.
    Tensor y = autograd::checkpoint([](const std::vector<Tensor>& in) { return in[0] * 2.0; }, {x, h * g});
    Tensor loss = ops::sum(y + g);
    Recorder rec;
    {
        autograd::ListenLeafGradients listen(rec);
        loss.backward();
    }
    CHECK(rec.count(w) == 0);
    CHECK(!w.grad().defined());
    rec.check_once_final(x, "x");
    rec.check_once_final(v, "v");
}

TEST_CASE("leaf listener: parameters inside a checkpoint are reported, once, with their final value") {
    Tensor w1 = test::leaf({4, 4}, 10), w2 = test::leaf({4, 4}, 11), x = test::leaf({2, 4}, 12);
    Tensor u = test::leaf({4, 4}, 13);  // used inside the block and outside it, nearer the input
    auto block = [&](const std::vector<Tensor>& in) {
        return ops::matmul(ops::tanh(ops::matmul(in[0], w1)), w2) + ops::matmul(in[0], u);
    };
    Tensor h = ops::matmul(x, u);                 // u's outer edge: runs after the checkpoint's backward
    Tensor y = autograd::checkpoint(block, {h});
    Recorder rec;
    {
        autograd::ListenLeafGradients listen(rec);
        ops::sum(y * y).backward();
    }
    rec.check_once_final(w1, "w1");
    rec.check_once_final(w2, "w2");
    rec.check_once_final(x, "x");
    rec.check_once_final(u, "u");  // not from the recompute: the outer backward still had an edge into u
    CHECK(rec.position(w2) < rec.position(x));
    CHECK(rec.position(w1) < rec.position(u));

    // Same gradients as the plain computation (the listener changes nothing).
    Tensor w1p = w1.detach().clone().requires_grad_(), w2p = w2.detach().clone().requires_grad_();
    Tensor up = u.detach().clone().requires_grad_();
    Tensor hp = ops::matmul(x.detach(), up);
    Tensor yp = ops::matmul(ops::tanh(ops::matmul(hp, w1p)), w2p) + ops::matmul(hp, up);
    ops::sum(yp * yp).backward();
    CHECK_CLOSE(w1.grad(), w1p.grad(), test::Tolerance{1e-12, 1e-12});
    CHECK_CLOSE(u.grad(), up.grad(), test::Tolerance{1e-12, 1e-12});
}

TEST_CASE("leaf listener: a parameter shared by two checkpointed blocks is reported by each (documented)") {
    Tensor w = test::leaf({3, 3}, 14), x = test::leaf({2, 3}, 15);
    auto block = [&](const std::vector<Tensor>& in) { return ops::tanh(ops::matmul(in[0], w)); };
    Tensor y = autograd::checkpoint(block, {autograd::checkpoint(block, {x})});
    Recorder rec;
    {
        autograd::ListenLeafGradients listen(rec);
        ops::sum(y).backward();
    }
    // Each recompute's backward is complete on its own; the second report carries the full value.
    REQUIRE(rec.count(w) == 2);
    CHECK(test::same_bits(rec.seen.at(&w.impl())[1], w.grad()));
    CHECK(!test::same_bits(rec.seen.at(&w.impl())[0], w.grad()));
}

TEST_CASE("leaf listener: guards nest and restore; nothing is reported without one") {
    Tensor w = test::leaf({3}, 16);
    Recorder outer, inner;
    {
        autograd::ListenLeafGradients a(outer);
        {
            autograd::ListenLeafGradients b(inner);
            ops::sum(w * w).backward();
        }
        ops::sum(w * w).backward();
    }
    ops::sum(w * w).backward();
    CHECK(inner.count(w) == 1);
    CHECK(outer.count(w) == 1);
    CHECK(outer.seen.at(&w.impl())[0].to_vector<double>() != inner.seen.at(&w.impl())[0].to_vector<double>());
}
