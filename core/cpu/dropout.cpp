// core/cpu/dropout.cpp: CPU reference dropout (see core/kernels/dropout.h).
//
// The keep scale 1/(1 - p) is computed in f64 and rounded once to the compute type (f32 for
// f32/bf16/f16, f64 for f64); a kept element is x · scale in the compute type. The uniform draw
// is compared with p in f64, exactly as the contract states it.
#include "core/cpu/loops.h"
#include "core/kernels/dropout.h"

namespace lumen::cpu {

void dropout(Tensor& out, const Tensor& x, double p, const RngState& rng) {
    const int64_t n = x.numel();
    dispatch_float(x.dtype(), "dropout", [&]<typename T>() {
        using A = compute_t<T>;
        const A scale = A(1.0 / (1.0 - p));
        const T* xs = static_cast<const T*>(x.data_ptr());
        T* os = static_cast<T*>(out.data_ptr());
        parallel_for(n, parallel_grain, [&](int64_t begin, int64_t end) {
            for (int64_t i = begin; i < end; ++i) {
                const bool drop = double(philox_uniform(rng, uint64_t(i))) < p;
                os[i] = drop ? convert<T>(A(0)) : convert<T>(convert<A>(xs[i]) * scale);
            }
        });
    });
}

}  // namespace lumen::cpu
