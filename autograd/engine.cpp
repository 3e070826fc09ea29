// autograd/engine.cpp: grad mode, node recording, and the backward engine.
//
// Backward walks the nodes reachable from the roots in reverse topological order (iteratively:
// deep graphs do not overflow the stack). Gradients flowing into a node are summed before it
// runs; gradients reaching a leaf are added (+=) into its .grad, converted to its dtype, so
// micro-batches accumulate for free. A node's closure (and with it its saved tensors) is freed as
// soon as it has run unless the graph is retained; running it again is an error that says so.
// While a LeafGradListener is installed, each backward also counts the edges into every leaf and
// reports a leaf as soon as its last edge is done (autograd/node.h says exactly when).
#include "autograd/node.h"

#include "autograd/ops/ops.h"
#include "autograd/registry.h"

#include <unordered_map>
#include <unordered_set>

namespace lumen::autograd {

namespace {
thread_local bool grad_mode = true;
thread_local LeafGradListener* leaf_listener = nullptr;
}

ListenLeafGradients::ListenLeafGradients(LeafGradListener& listener) : previous_(leaf_listener) {
    leaf_listener = &listener;
}
ListenLeafGradients::~ListenLeafGradients() { leaf_listener = previous_; }

bool grad_enabled() { return grad_mode; }
NoGradGuard::NoGradGuard() : previous_(grad_mode) { grad_mode = false; }
NoGradGuard::~NoGradGuard() { grad_mode = previous_; }
EnableGradGuard::EnableGradGuard() : previous_(grad_mode) { grad_mode = true; }
EnableGradGuard::~EnableGradGuard() { grad_mode = previous_; }

bool needs_grad(const std::vector<Tensor>& inputs) {
    if (!grad_mode) return false;
    for (const Tensor& t : inputs)
        if (t.defined() && t.requires_grad()) return true;
    return false;
}
bool needs_grad(std::initializer_list<Tensor> inputs) { return needs_grad(std::vector<Tensor>(inputs)); }

void record(std::string_view name, Tensor& out, const std::vector<Tensor>& inputs, BackwardFn backward) {
    if (!needs_grad(inputs)) return;
    if (!is_differentiable(name))
        throw Error(fmt::format("autograd: op '{}' records a node but is not registered with "
                                "register_differentiable", name));
    auto node = std::make_shared<Node>();
    node->name = name;
    node->backward = std::move(backward);
    node->inputs.reserve(inputs.size());
    for (const Tensor& t : inputs) {
        Edge e;
        if (t.defined()) {
            e.shape = t.shape();
            e.dtype = t.dtype();
            if (t.grad_fn()) e.node = t.grad_fn();
            else if (t.requires_grad()) e.leaf = t.impl_ptr();
        }
        node->inputs.push_back(std::move(e));
    }
    out.impl().grad_fn = std::move(node);
    out.impl().requires_grad = true;
}
void record(std::string_view name, Tensor& out, std::initializer_list<Tensor> inputs, BackwardFn backward) {
    record(name, out, std::vector<Tensor>(inputs), std::move(backward));
}

Tensor sum_to(const Tensor& grad, const Shape& shape) {
    if (grad.shape() == shape) return grad;
    const int64_t lead = grad.dim() - int64_t(shape.size());
    std::vector<int64_t> dims;
    for (int64_t d = 0; d < grad.dim(); ++d)
        if (d < lead || (shape[d - lead] == 1 && grad.shape()[d] != 1)) dims.push_back(d);
    Tensor summed = dims.empty() ? grad : ops::sum(grad, dims, KeepDim::yes);
    return summed.reshape(shape);
}

namespace {

void accumulate_leaf(TensorImpl& leaf, const Tensor& grad) {
    NoGradGuard no_grad;
    Tensor g = grad.dtype() == leaf.dtype ? grad : grad.to(leaf.dtype);
    if (!leaf.grad) {
        leaf.grad = g.clone().impl_ptr();  // NOTE: a copy: grad may alias another tensor's memory
    } else {
        Tensor(leaf.grad).add_(g);
    }
}

// Nodes reachable from the roots, each after every node that feeds it a gradient.
std::vector<Node*> reverse_topological(const std::vector<Node*>& roots) {
    std::vector<Node*> order;
    std::unordered_map<Node*, int> state;  // 1: on the stack, 2: done
    std::vector<std::pair<Node*, size_t>> stack;
    for (Node* root : roots) {
        if (state[root]) continue;
        stack.push_back({root, 0});
        state[root] = 1;
        while (!stack.empty()) {
            auto& [node, next] = stack.back();
            if (next < node->inputs.size()) {
                Node* child = node->inputs[next++].node.get();
                if (child && !state[child]) {
                    state[child] = 1;
                    stack.push_back({child, 0});
                }
            } else {
                state[node] = 2;
                order.push_back(node);
                stack.pop_back();
            }
        }
    }
    return {order.rbegin(), order.rend()};
}

// One run_backward's leaf bookkeeping while a listener is installed. Frames nest on a thread when
// a node's backward runs its own backward (a checkpoint's recompute); the innermost is last.
struct LeafFrame {
    std::unordered_map<TensorImpl*, int64_t> remaining;  // edges into the leaf not yet done
    std::unordered_set<TensorImpl*> got;                 // leaves that received a gradient
};
thread_local std::vector<LeafFrame*> leaf_frames;

class FrameScope {
public:
    explicit FrameScope(LeafFrame* frame) : frame_(frame) {
        if (frame_) leaf_frames.push_back(frame_);
    }
    ~FrameScope() {
        if (frame_) leaf_frames.pop_back();
    }
    FrameScope(const FrameScope&) = delete;
    FrameScope& operator=(const FrameScope&) = delete;

private:
    LeafFrame* frame_;
};

// One edge into `leaf` is done (`received`: it brought a gradient, already added into .grad).
// At the leaf's last edge: hand it to the innermost enclosing backward that still expects edges
// into it, or else report it (only when it got a gradient).
void edge_done(LeafFrame& frame, TensorImpl& leaf, bool received) {
    if (received) frame.got.insert(&leaf);
    if (--frame.remaining[&leaf] > 0 || !frame.got.count(&leaf)) return;
    for (size_t i = leaf_frames.size(); i-- > 0;) {
        LeafFrame* outer = leaf_frames[i];
        if (outer == &frame) continue;
        auto it = outer->remaining.find(&leaf);
        if (it != outer->remaining.end() && it->second > 0) {
            outer->got.insert(&leaf);
            return;
        }
    }
    if (leaf_listener) leaf_listener->gradient_final(leaf);
}

}  // namespace

void run_backward(const std::vector<Tensor>& roots, const std::vector<Tensor>& grads, RetainGraph retain) {
    std::unordered_map<Node*, Tensor> pending;
    std::vector<Node*> root_nodes;
    std::vector<size_t> leaf_roots;  // roots that are leaves themselves
    for (size_t i = 0; i < roots.size(); ++i) {
        const Tensor& root = roots[i];
        check(root.requires_grad(), "backward", "tensor does not require grad and has no grad_fn", {{"root", root}});
        check(grads[i].shape() == root.shape(), "backward", "gradient shape differs from the tensor's",
              {{"root", root}, {"grad", grads[i]}});
        if (!root.grad_fn()) {
            leaf_roots.push_back(i);
            continue;
        }
        Node* n = root.grad_fn().get();
        Tensor& slot = pending[n];
        slot = slot.defined() ? ops::add(slot, grads[i]) : grads[i];
        root_nodes.push_back(n);
    }
    NoGradGuard no_grad;  // NOTE: backward closures build no graph (no double backward)
    const std::vector<Node*> order = reverse_topological(root_nodes);

    // Leaf bookkeeping only while someone listens.
    LeafFrame frame;
    LeafFrame* counts = leaf_listener ? &frame : nullptr;
    if (counts) {
        for (size_t i : leaf_roots) ++frame.remaining[&roots[i].impl()];
        for (Node* node : order)
            for (const Edge& e : node->inputs)
                if (e.leaf) ++frame.remaining[e.leaf.get()];
    }
    FrameScope scope(counts);

    for (size_t i : leaf_roots) {
        accumulate_leaf(roots[i].impl(), grads[i]);
        if (counts) edge_done(frame, roots[i].impl(), true);
    }
    for (Node* node : order) {
        auto it = pending.find(node);
        if (it == pending.end()) {  // reachable but no gradient flowed in
            if (counts)
                for (const Edge& e : node->inputs)
                    if (e.leaf) edge_done(frame, *e.leaf, false);
            continue;
        }
        const Tensor dy = std::move(it->second);
        pending.erase(it);
        if (!node->backward)
            throw Error(fmt::format("backward: {}: the graph was already freed by an earlier "
                                    "backward; pass RetainGraph::yes to backward twice", node->name));
        Grads dx = node->backward(dy);
        if (retain == RetainGraph::no) node->backward = nullptr;
        if (dx.size() != node->inputs.size())
            throw Error(fmt::format("backward: {} returned {} gradients for {} inputs", node->name,
                                    dx.size(), node->inputs.size()));
        for (size_t i = 0; i < dx.size(); ++i) {
            const Edge& e = node->inputs[i];
            if (!e.needed()) continue;
            const bool flows = dx[i].defined();
            if (flows && dx[i].shape() != e.shape)
                throw Error(fmt::format("backward: {} returned a gradient of shape {} for input {} "
                                        "of shape {}", node->name, shape_str(dx[i].shape()), i,
                                        shape_str(e.shape)));
            if (e.leaf) {
                if (flows) accumulate_leaf(*e.leaf, dx[i]);
                if (counts) edge_done(frame, *e.leaf, flows);
            } else if (flows) {
                Tensor& slot = pending[e.node.get()];
                slot = slot.defined() ? ops::add(slot, dx[i]) : dx[i];
            }
        }
    }
}

}  // namespace lumen::autograd

namespace lumen {

void Tensor::backward(const Tensor& grad, RetainGraph retain) const {
    Tensor g = grad;
    if (!g.defined()) {
        check(numel() == 1, "backward", "grad can be omitted only for a one-element tensor", {{"x", *this}});
        g = Tensor::ones(shape(), dtype(), device());
    }
    autograd::run_backward({*this}, {g}, retain);
}

}  // namespace lumen
