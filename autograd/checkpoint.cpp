// autograd/checkpoint.cpp: activation checkpointing (see autograd/checkpoint.h).
#include "autograd/checkpoint.h"

#include "autograd/node.h"
#include "autograd/registry.h"

#include <atomic>

namespace lumen::autograd {

static const bool registered = register_differentiable({"checkpoint"});

namespace {

thread_local bool recomputing = false;
thread_local bool first_forward = false;
thread_local uint64_t current_call = 0;
std::atomic<uint64_t> next_call{1};

// The flags and the current call id for a scope's lifetime, put back afterwards (exceptions too).
class FlagsScope {
public:
    FlagsScope(bool recompute, bool forward, uint64_t call)
        : recompute_(recomputing), forward_(first_forward), call_(current_call) {
        recomputing = recompute;
        first_forward = forward;
        current_call = call;
    }
    ~FlagsScope() {
        recomputing = recompute_;
        first_forward = forward_;
        current_call = call_;
    }
    FlagsScope(const FlagsScope&) = delete;
    FlagsScope& operator=(const FlagsScope&) = delete;

private:
    bool recompute_, forward_;
    uint64_t call_;
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
bool in_checkpoint_forward() { return first_forward; }
uint64_t checkpoint_call_id() { return current_call; }

Tensor checkpoint(const CheckpointFn& fn, const std::vector<Tensor>& inputs,
                  const std::vector<Generator*>& generators) {
    const std::vector<RngState> at_forward = states_of(generators);
    const uint64_t call = next_call++;
    Tensor y;
    {
        NoGradGuard no_grad;
        // NOTE: the recompute flag stays: a nested checkpoint's first forward inside an outer
        // recompute is both.
        FlagsScope forward(recomputing, true, call);
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
    record("checkpoint", y, inputs, [fn, saved, wants_grad, generators, at_forward, call](const Tensor& dy) {
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
            FlagsScope recompute(true, false, call);
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
