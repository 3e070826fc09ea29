// autograd/node.h: the autograd graph: nodes, grad mode, and `record`, which every op calls.
//
// An op computes its output, then records a node holding a closure that maps the output's
// gradient to one gradient per input (undefined where an input gets none). The closure captures
// only what backward reads, as detached tensors. record() does nothing when grad mode is off or
// no input requires grad, so inference builds no graph.
//
//   autograd::record("tanh", y, {x}, [y = y.detach()](const Tensor& dy) {
//       return autograd::Grads{dy * (1 - y * y)};
//   });
#pragma once

#include "core/tensor.h"

#include <functional>
#include <initializer_list>
#include <string_view>
#include <vector>

namespace lumen::autograd {

using Grads = std::vector<Tensor>;
using BackwardFn = std::function<Grads(const Tensor& dy)>;

// Where an input's gradient goes: the node that produced it, or the leaf tensor that accumulates
// it, or nowhere (an input that does not require grad).
struct Edge {
    std::shared_ptr<Node> node;
    std::shared_ptr<TensorImpl> leaf;
    Shape shape;  // the input's shape, which its gradient must have
    DType dtype = DType::f32;
    bool needed() const { return node || leaf; }
};

struct Node {
    std::string_view name;  // the op's name, for errors
    std::vector<Edge> inputs;
    BackwardFn backward;    // cleared after use unless the graph is retained
};

// Grad mode: thread-local, on by default.
bool grad_enabled();
class NoGradGuard {
public:
    NoGradGuard();
    ~NoGradGuard();
    NoGradGuard(const NoGradGuard&) = delete;
    NoGradGuard& operator=(const NoGradGuard&) = delete;

private:
    bool previous_;
};
class EnableGradGuard {
public:
    EnableGradGuard();
    ~EnableGradGuard();
    EnableGradGuard(const EnableGradGuard&) = delete;
    EnableGradGuard& operator=(const EnableGradGuard&) = delete;

private:
    bool previous_;
};

// True when an op on these inputs must record a node.
bool needs_grad(std::initializer_list<Tensor> inputs);
bool needs_grad(const std::vector<Tensor>& inputs);

// Attaches a node to `out` when needs_grad(inputs). `name` must outlive the graph (a literal).
void record(std::string_view name, Tensor& out, std::initializer_list<Tensor> inputs, BackwardFn backward);
void record(std::string_view name, Tensor& out, const std::vector<Tensor>& inputs, BackwardFn backward);

// "This leaf's gradient is final for the backward running on this thread": the hook that lets
// data-parallel training (dist/grad_reducer.h) start reducing gradients while backward still runs.
// run_backward counts, for each leaf, the edges into it from the nodes reachable from its roots
// (a root that is itself a leaf counts once); each edge is counted down when its node runs, or is
// skipped because no gradient flowed into it, or returns an undefined gradient for it. At zero,
// after the last += into .grad, gradient_final(leaf) is called once, but only if the leaf got a
// gradient in this backward (a leaf that got none is not reported: its .grad is untouched).
// A nested run_backward (a checkpoint's recompute) reports the leaves used inside it when its own
// count reaches zero, unless an enclosing backward on this thread still has edges into the leaf:
// then the enclosing one reports it. A leaf that gets a gradient from a nested backward after the
// enclosing one reported it (a parameter shared by two checkpointed blocks) is reported again:
// listeners that need "exactly once" must treat a second call as an error.
// Listening costs nothing when no listener is installed. The listener must not throw past
// backward unless it means to abort it (an exception leaves the graph half run).
class LeafGradListener {
public:
    virtual ~LeafGradListener() = default;
    virtual void gradient_final(TensorImpl& leaf) = 0;
};
// Installs `listener` for this thread for the guard's lifetime (the previous one comes back after).
class ListenLeafGradients {
public:
    explicit ListenLeafGradients(LeafGradListener& listener);
    ~ListenLeafGradients();
    ListenLeafGradients(const ListenLeafGradients&) = delete;
    ListenLeafGradients& operator=(const ListenLeafGradients&) = delete;

private:
    LeafGradListener* previous_;
};

// Runs backward from `roots` with the given output gradients (same shapes): accumulates (+=) into
// every reachable leaf's .grad. Frees each node's closure after use unless retain == yes.
void run_backward(const std::vector<Tensor>& roots, const std::vector<Tensor>& grads, RetainGraph retain);

// Reduces a broadcast gradient back to `shape` (sums over the broadcast dims).
Tensor sum_to(const Tensor& grad, const Shape& shape);

}  // namespace lumen::autograd
