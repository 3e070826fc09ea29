// nn/optical_statistics.h: the optical range statistics that data-parallel ranks average after each
// optimizer step (specs/optical.md §4.2 "Data parallel"): each rank updates its ranges from its own
// micro-batches, so after the step the ranks' ranges differ; averaging them (sum over ranks ÷ W)
// gives every rank the same ranges again.
//
//   for (Tensor& t : nn::optical_statistics(model)) ...             // the buffers themselves
//   nn::average_optical_statistics(model, world, [&](Tensor& slab) { comm.all_reduce_sum(slab); });
//
// Which tensors, in model order (depth first), each f32 on the model's device, aliasing the registered
// buffers (writing into them updates the model):
//   OpticalLinear:               x_min_max (2), out_min_max (P, 2)
//   optical attention module:    query_min_max, key_min_max, value_min_max, qk_min_max, av_min_max (2)
// Not included, because they are identical on every rank already:
//   w_min_max: measured on the weight, which is replicated (the same on all ranks after each step), so
//     every rank computes the same EMA; averaging would only add rounding (W not a power of two).
//   dither_calls, dither_eval_calls: every rank runs the same number of forwards, so the counters agree.
//   layers with q_bypass: they never update their ranges.
// Averaging needs every rank's range of a layer calibrated or all uncalibrated ([+inf, -inf]
// stays [+inf, -inf]; one uncalibrated rank would turn the mean infinite). In a data-parallel run
// every rank makes the same calls, so they calibrate together.
#pragma once

#include "nn/module.h"

#include <functional>
#include <vector>

namespace lumen::nn {

// The range buffers to average across ranks (see above); empty for a model without optical layers.
std::vector<Tensor> optical_statistics(Module& model);

// One collective: packs optical_statistics(model) into one f32 slab on their device, calls
// all_reduce_sum(slab) (which must leave the sum over ranks in it), divides by `world` and writes
// the means back into the buffers. Does nothing (and calls nothing) when there are no statistics.
void average_optical_statistics(Module& model, int world, const std::function<void(Tensor& slab)>& all_reduce_sum);

}  // namespace lumen::nn
