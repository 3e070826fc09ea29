// autograd/checkpoint.cpp: activation checkpointing (see autograd/checkpoint.h).
#include "autograd/checkpoint.h"

#include "autograd/node.h"
#include "autograd/registry.h"

namespace lumen::autograd {

static const bool registered = register_differentiable({"checkpoint"});

namespace {

thread_local bool recomputing = false;

// Sets the recompute flag for its lifetime and puts the previous value back (exceptions too).
class RecomputeScope {
public:
    RecomputeScope() : previous_(recomputing) { recomputing = true; }
    ~RecomputeScope() { recomputing = previous_; }
    RecomputeScope(const RecomputeScope&) = delete;
    RecomputeScope& operator=(const RecomputeScope&) = delete;

private:
    bool previous_;
};

std::vector<RngState> states_of(const std::vector<Generator*>& generators) {
    std::vector<RngState> states;
    for (const Generator* g : generators) states.push_back(g->state());
    return states;
}
void set_states(const std::vector<Generator*>& generators, const std::vector<RngState>& states) {
    for (size_t i = 0; i < generators.size(); ++i) generators[i]->set_state(states[i]);
}
}  // namespace

bool in_checkpoint_recompute() { return recomputing; }

Tensor checkpoint(const CheckpointFn& fn, const std::vector<Tensor>& inputs,
                  const std::vector<Generator*>& generators) {
    const std::vector<RngState> at_forward = states_of(generators);
    Tensor y;
    {
        NoGradGuard no_grad;
        Tensor out = fn(inputs);
        // A fresh handle: fn may return one of its inputs, whose own history must stay untouched.
        y = Tensor::over(out.storage(), out.layout(), out.dtype());
    }
    std::vector<Tensor> saved;          // the inputs' values, without their history
    std::vector<bool> wants_grad;
    for (const Tensor& x : inputs) {
        saved.push_back(x.defined() ? x.detach() : Tensor());
        wants_grad.push_back(x.defined() && x.requires_grad());
    }
    record("checkpoint", y, inputs, [fn, saved, wants_grad, generators, at_forward](const Tensor& dy) {
        std::vector<Tensor> detached;
        for (size_t i = 0; i < saved.size(); ++i) {
            Tensor d = saved[i].defined() ? saved[i].detach() : Tensor();
            if (wants_grad[i]) d.set_requires_grad(true);
            detached.push_back(d);
        }
        const std::vector<RngState> now = states_of(generators);
        set_states(generators, at_forward);
        Tensor recomputed;
        {
            EnableGradGuard grad_on;
            RecomputeScope recompute;
            recomputed = fn(detached);
        }
        set_states(generators, now);
        if (recomputed.requires_grad()) run_backward({recomputed}, {dy}, RetainGraph::no);
        Grads dx;
        for (const Tensor& d : detached) dx.push_back(d.defined() && d.requires_grad() ? d.grad() : Tensor());
        return dx;
    });
    return y;
}

}  // namespace lumen::autograd
