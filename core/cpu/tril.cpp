// core/cpu/tril.cpp: CPU reference tril (see core/kernels/tril.h): one pass over the rows of the
// stacked matrices, copying each row's first diagonal + r + 1 elements and zeroing the rest.
#include "core/cpu/loops.h"
#include "core/kernels/tril.h"

#include <algorithm>

namespace lumen::cpu {

void tril(Tensor& out, const Tensor& x, int64_t diagonal) {
    const int64_t R = x.size(-2), K = x.size(-1);
    const int64_t rows = R > 0 && K > 0 ? x.numel() / K : 0;   // rows of all the matrices
    const int64_t d = std::clamp<int64_t>(diagonal, -R, K);    // same result, no overflow
    dispatch_all(x.dtype(), "tril", [&]<typename T>() {
        const T* xs = static_cast<const T*>(x.data_ptr());
        T* os = static_cast<T*>(out.data_ptr());
        parallel_for(rows, std::max<int64_t>(1, parallel_grain / std::max<int64_t>(K, 1)),
                     [&](int64_t begin, int64_t end) {
            for (int64_t row = begin; row < end; ++row) {
                const int64_t r = row % R;
                // Columns [0, kept) are on or below the diagonal.
                const int64_t kept = std::clamp<int64_t>(r + d + 1, 0, K);
                const T* xr = xs + row * K;
                T* orow = os + row * K;
                for (int64_t k = 0; k < kept; ++k) orow[k] = xr[k];
                for (int64_t k = kept; k < K; ++k) orow[k] = convert<T>(0);
            }
        });
    });
}

}  // namespace lumen::cpu
