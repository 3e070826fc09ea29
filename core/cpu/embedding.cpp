// core/cpu/embedding.cpp: CPU reference kernels for the embedding gather and its scatter-add
// backward (conventions in core/kernels/embedding.h). The backward splits the C columns across
// threads, and each thread walks every index in order: no two threads touch one element, and each
// element's sum runs in index order, so the result is the same for any thread count.
#include "core/cpu/loops.h"
#include "core/kernels/embedding.h"

#include <cstring>

namespace lumen::cpu {

void embedding(Tensor& out, const Tensor& weight, const Tensor& indices) {
    const int64_t V = weight.shape()[0], C = weight.shape()[1];
    const int64_t N = indices.numel();
    dispatch_index(indices.dtype(), "embedding", [&]<typename I>() {
        const I* idx = static_cast<const I*>(indices.data_ptr());
        for (int64_t n = 0; n < N; ++n) {
            const int64_t v = int64_t(idx[n]);
            if (v < 0 || v >= V)
                fail("embedding",
                     fmt::format("index {} (at flat position {}) is out of range [0, {}) "
                                 "for V = {}",
                                 v, n, V, V),
                     {{"weight", weight}, {"indices", indices}});
        }
        // A row copy needs no arithmetic, so any dtype works as raw bytes.
        const size_t row_bytes = static_cast<size_t>(C) * dtype_size(weight.dtype());
        const auto* w = static_cast<const unsigned char*>(weight.data_ptr());
        auto* o = static_cast<unsigned char*>(out.data_ptr());
        if (row_bytes == 0) return;
        const int64_t grain = std::max<int64_t>(1, 16384 / std::max<int64_t>(C, 1));
        parallel_for(N, grain, [&](int64_t begin, int64_t end) {
            for (int64_t n = begin; n < end; ++n)
                std::memcpy(o + size_t(n) * row_bytes, w + size_t(idx[n]) * row_bytes, row_bytes);
        });
    });
}

void embedding_backward(Tensor& dweight, const Tensor& dy, const Tensor& indices) {
    const int64_t V = dweight.shape()[0], C = dweight.shape()[1];
    const int64_t N = indices.numel();
    dispatch_index(indices.dtype(), "embedding_backward", [&]<typename I>() {
        const I* idx = static_cast<const I*>(indices.data_ptr());
        dispatch_float(dweight.dtype(), "embedding_backward", [&]<typename T>() {
            using Acc = compute_t<T>;
            const T* g = static_cast<const T*>(dy.data_ptr());  // (N, C)
            T* dw = static_cast<T*>(dweight.data_ptr());        // (V, C)
            // NOTE: bf16/f16 gradients accumulate in an f32 buffer: a bf16 running sum loses
            // every small addend once a frequent token's row has grown.
            std::vector<Acc> buffer;
            Acc* acc = nullptr;
            if constexpr (std::is_same_v<T, Acc>) {
                acc = dw;
            } else {
                buffer.resize(static_cast<size_t>(V * C));
                acc = buffer.data();
            }
            parallel_for(V * C, parallel_grain, [&](int64_t b, int64_t e) {
                for (int64_t i = b; i < e; ++i) acc[i] = Acc(0);
            });
            const int64_t grain = std::max<int64_t>(1, 16384 / std::max<int64_t>(N, 1));
            parallel_for(C, grain, [&](int64_t c0, int64_t c1) {
                for (int64_t n = 0; n < N; ++n) {
                    Acc* dst = acc + int64_t(idx[n]) * C;
                    const T* src = g + n * C;
                    for (int64_t c = c0; c < c1; ++c) dst[c] += convert<Acc>(src[c]);
                }
            });
            if constexpr (!std::is_same_v<T, Acc>)
                parallel_for(V * C, parallel_grain, [&](int64_t b, int64_t e) {
                    for (int64_t i = b; i < e; ++i) dw[i] = convert<T>(acc[i]);
                });
        });
    });
}

}  // namespace lumen::cpu
