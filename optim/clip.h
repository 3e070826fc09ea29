// optim/clip.h: the per-iteration flags every optimizer step reads (specs/optimizers.md §1):
// the global gradient L2 norm, the clip factor γ and the "bad step" flag, computed on the
// gradients' device without a host synchronisation.
//
//   Tensor flags = optim::clip_flags(opt.parameters(), 1.0, loss);   // (3,) f32: [γ, bad, norm]
//   opt.step({.lr_scale = s, .flags = flags});
//
// norm = sqrt(Σ g²) over every gradient (a parameter without one counts as zeros), summed in f32
// in a fixed order: each chunk of kClipChunk elements of one tensor is summed by kClipLanes lanes
// (lane j takes elements j, j + lanes, ...), the lanes are added pairwise (a fixed tree), and the
// chunk sums are added the same way. The CPU and CUDA paths use this one order.
// γ = min(1, grad_clip/(norm + 1e-6)) (1 when grad_clip = 0), bad = !isfinite(loss) ||
// !isfinite(norm) (an undefined loss counts as finite).
#pragma once

#include "core/tensor.h"
#include "nn/parameter.h"

#include <vector>

namespace lumen::optim {

inline constexpr int64_t kClipChunk = 65536;
inline constexpr int kClipLanes = 256;

Tensor clip_flags(const std::vector<nn::Parameter>& params, double grad_clip, const Tensor& loss = {});

}  // namespace lumen::optim

#ifdef LUMEN_WITH_CUDA
namespace lumen::cuda {
// cuda/optim_clip.cu. grads: contiguous f32 on `device`; loss: one f32 element or undefined.
// Writes flags (3,) f32.
void clip_flags(Tensor& flags, const std::vector<Tensor>& grads, double grad_clip, const Tensor& loss,
                Device device);
// counts (G,) i64: counts[i] += (flags[1] == 0), on the device.
void advance_step_counts(Tensor& counts, const Tensor& flags);
}  // namespace lumen::cuda
#endif
