// core/kernels/dropout.h: the device switch for dropout, one kernel for both directions.
//
// out = x · mask / (1 - p), where element i (row-major, x contiguous) is dropped when
// philox_uniform(rng, i) < p. The backward calls the same kernel on dy with the same RngState,
// so it regenerates the forward's mask instead of storing it. out is contiguous and written (=).
#pragma once

#include "core/dispatch.h"
#include "core/philox.h"
#include "core/tensor.h"

namespace lumen {

namespace cpu {
void dropout(Tensor& out, const Tensor& x, double p, const RngState& rng);
}  // namespace cpu

#ifdef LUMEN_WITH_CUDA
namespace cuda {
void dropout(Tensor& out, const Tensor& x, double p, const RngState& rng);
}  // namespace cuda
#endif

namespace kernels {
inline void dropout(Tensor& out, const Tensor& x, double p, const RngState& rng) {
    LUMEN_DISPATCH(out.device(), dropout(out, x, p, rng))
}
}  // namespace kernels

}  // namespace lumen
