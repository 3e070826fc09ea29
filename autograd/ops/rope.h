// autograd/ops/rope.h: the rotary position embedding (RoPE) applied to attention queries and keys.
//
// Shapes use nanoGPT's letters: B batch, nh heads, T sequence, hs head size.
#pragma once

#include "core/tensor.h"

namespace lumen::ops {

// Which dims of a head form the rotated pairs: `half` pairs (i, i + hs/2) (Hugging Face
// Llama/GPT-NeoX layout), `interleaved` pairs (2i, 2i + 1) (GPT-J, Meta's original Llama).
enum class RopePairing { half, interleaved };

// x (B, nh, T, hs), any strides (e.g. a (B, T, nh, hs) tensor transposed), hs even ->
// (B, nh, T, hs) contiguous. Token t sits at position p = pos0 + t (pos0 >= 0: the KV-cache
// length when decoding); pair i turns by α = p·theta^(−2i/hs):
// (a, b) -> (a·cos α − b·sin α, a·sin α + b·cos α). p = 0 is the identity. The angle and its
// cos/sin are computed in f64, the rotation in f32 (f64 for f64). The backward rotates dy by −α.
Tensor rope(const Tensor& x, int64_t pos0, double theta = 10000.0,
            RopePairing pairing = RopePairing::half);

}  // namespace lumen::ops
