// core/cpu/loss.cpp: CPU reference kernels for the fused cross-entropy (conventions in
// core/kernels/loss.h). Rows run in parallel; the per-row losses are then summed in row order in
// f64, so the loss is reproducible bit for bit.
#include "core/cpu/loops.h"
#include "core/kernels/loss.h"

#include <cmath>
#include <limits>

namespace lumen::cpu {
namespace {

int64_t row_grain(int64_t V) { return std::max<int64_t>(1, 16384 / std::max<int64_t>(V, 1)); }

}  // namespace

void cross_entropy(Tensor& loss, Tensor& lse, Tensor& count, const Tensor& logits,
                   const Tensor& target, int64_t ignore_index) {
    const int64_t V = logits.shape().back();
    const int64_t rows = target.numel();
    dispatch_index(target.dtype(), "cross_entropy", [&]<typename I>() {
        const I* t = static_cast<const I*>(target.data_ptr());
        // NOTE: every target is checked before anything is written, and the first bad one (in
        // row order) is reported, so the error does not depend on the thread count.
        for (int64_t r = 0; r < rows; ++r) {
            const int64_t k = int64_t(t[r]);
            if (k != ignore_index && (k < 0 || k >= V))
                fail("cross_entropy",
                     fmt::format(
                         "target {} (at flat position {}) is out of range [0, {}) for V = {} "
                         "and is not ignore_index ({})",
                         k, r, V, V, ignore_index),
                     {{"logits", logits}, {"target", target}});
        }
        dispatch_float(logits.dtype(), "cross_entropy", [&]<typename T>() {
            using C = compute_t<T>;
            const T* x = static_cast<const T*>(logits.data_ptr());
            C* lse_out = static_cast<C*>(lse.data_ptr());
            std::vector<double> row_loss(static_cast<size_t>(rows), 0.0);
            parallel_for(rows, row_grain(V), [&](int64_t begin, int64_t end) {
                for (int64_t r = begin; r < end; ++r) {
                    const int64_t k = int64_t(t[r]);
                    if (k == ignore_index) {
                        lse_out[r] = C(0);  // never read: the backward writes a zero row
                        continue;
                    }
                    const T* xr = x + r * V;  // (V,)
                    C max = -std::numeric_limits<C>::infinity();
                    for (int64_t i = 0; i < V; ++i) max = std::max(max, convert<C>(xr[i]));
                    C sum = 0;
                    for (int64_t i = 0; i < V; ++i) sum += std::exp(convert<C>(xr[i]) - max);
                    const C l = max + std::log(sum);
                    lse_out[r] = l;
                    row_loss[size_t(r)] = double(l - convert<C>(xr[k]));
                }
            });
            double total = 0;
            int64_t valid = 0;
            for (int64_t r = 0; r < rows; ++r) {
                if (int64_t(t[r]) == ignore_index) continue;
                total += row_loss[size_t(r)];
                ++valid;
            }
            static_cast<C*>(loss.data_ptr())[0] = valid > 0 ? C(total / double(valid)) : C(0);
            static_cast<int64_t*>(count.data_ptr())[0] = valid;
        });
    });
}

void cross_entropy_backward(Tensor& dlogits, const Tensor& dloss, const Tensor& logits,
                            const Tensor& target, const Tensor& lse, const Tensor& count,
                            int64_t ignore_index) {
    const int64_t V = logits.shape().back();
    const int64_t rows = target.numel();
    const int64_t valid = static_cast<const int64_t*>(count.data_ptr())[0];
    const double g = dispatch_float(dloss.dtype(), "cross_entropy_backward", [&]<typename G>() {
        return convert<double>(static_cast<const G*>(dloss.data_ptr())[0]);
    });
    dispatch_index(target.dtype(), "cross_entropy_backward", [&]<typename I>() {
        const I* t = static_cast<const I*>(target.data_ptr());
        dispatch_float(logits.dtype(), "cross_entropy_backward", [&]<typename T>() {
            using C = compute_t<T>;
            const C scale = valid > 0 ? C(g / double(valid)) : C(0);  // dloss / count
            const T* x = static_cast<const T*>(logits.data_ptr());
            const C* l = static_cast<const C*>(lse.data_ptr());
            T* dx = static_cast<T*>(dlogits.data_ptr());
            parallel_for(rows, row_grain(V), [&](int64_t begin, int64_t end) {
                for (int64_t r = begin; r < end; ++r) {
                    const int64_t k = int64_t(t[r]);
                    T* dr = dx + r * V;  // (V,)
                    if (k == ignore_index) {
                        for (int64_t i = 0; i < V; ++i) dr[i] = convert<T>(C(0));
                        continue;
                    }
                    const T* xr = x + r * V;
                    for (int64_t i = 0; i < V; ++i) {
                        const C p = std::exp(convert<C>(xr[i]) - l[r]);
                        dr[i] = convert<T>((p - C(i == k ? 1 : 0)) * scale);
                    }
                }
            });
        });
    });
}

}  // namespace lumen::cpu
