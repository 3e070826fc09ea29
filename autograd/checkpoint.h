// autograd/checkpoint.h: activation checkpointing: run a function's forward without keeping its
// intermediate tensors, and recompute it during backward.
//
//   Tensor y = autograd::checkpoint([&](const auto& in) { return block.forward(in[0]); }, {x}, {&gen});
//
// The forward runs under NoGradGuard, so only the inputs and the output stay alive. Backward re-runs
// fn with grad on from detached copies of the inputs, back-propagates dy through that graph (so
// parameters used inside fn get their gradients directly) and passes the inputs' gradients on.
// Random draws inside fn must come from the listed generators: their states are put back to where
// the forward found them for the recompute (and restored after), so dropout masks repeat exactly.
// While backward re-runs fn, in_checkpoint_recompute() is true on that thread, so ops with side
// effects that must happen once per forward (the bio gate's activity counters) can skip them.
#pragma once

#include "core/philox.h"
#include "core/tensor.h"

#include <cstdint>
#include <functional>
#include <vector>

namespace lumen::autograd {

using CheckpointFn = std::function<Tensor(const std::vector<Tensor>&)>;

Tensor checkpoint(const CheckpointFn& fn, const std::vector<Tensor>& inputs,
                  const std::vector<Generator*>& generators = {});

// True on this thread while a checkpoint's backward is re-running its function (nested checkpoints
// included); false in ordinary forwards, including a checkpoint's first forward.
bool in_checkpoint_recompute();
// True on this thread while a checkpoint runs its function's first (no-grad) forward, whose
// recompute will follow in backward; false inside a recompute unless a nested checkpoint's forward
// runs there. Layers that must repeat a call's state in the recompute (the optical layers' ranges
// and counters) save it when this is true and take it back when in_checkpoint_recompute() is.
bool in_checkpoint_forward();
// The id of the innermost checkpoint call whose first forward or recompute runs on this thread (0:
// none). A call keeps its id in its recompute, so state saved under the id is found again there,
// whatever order backward recomputes the calls in. (A checkpoint nested in a recompute gets a new id.)
uint64_t checkpoint_call_id();

}  // namespace lumen::autograd
