// core/cpu/softmax.cpp: CPU reference kernels for softmax and log_softmax over the last dim
// (conventions in core/kernels/softmax.h). One row per iteration, rows split across OpenMP
// threads; every row sum runs left to right in the compute type, so results are reproducible.
#include "core/cpu/loops.h"
#include "core/kernels/softmax.h"

#include <cmath>
#include <limits>

namespace lumen::cpu {
namespace {

enum class Log : bool { no, yes };

// Rows of n elements in a contiguous tensor (a 0-d tensor is one row of one element).
int64_t row_length(const Tensor& t) { return t.dim() == 0 ? 1 : t.shape().back(); }

// About 16k elements per chunk, so short rows are batched and long rows each get a thread.
int64_t row_grain(int64_t n) { return std::max<int64_t>(1, 16384 / std::max<int64_t>(n, 1)); }

template <typename T>
void forward_rows(Log log, Tensor& y, const Tensor& x, const CausalSoftmax& causal = {}) {
    using C = compute_t<T>;
    const C scale = C(causal.scale);
    const int64_t n = row_length(x);
    if (n == 0) return;
    const int64_t rows = x.numel() / n;
    const T* in = static_cast<const T*>(x.data_ptr());
    T* out = static_cast<T*>(y.data_ptr());
    parallel_for(rows, row_grain(n), [&](int64_t begin, int64_t end) {
        for (int64_t r = begin; r < end; ++r) {
            const T* xr = in + r * n;
            T* yr = out + r * n;
            // The causal window: keys j ≤ last (every key without the causal variant).
            const int64_t last = causal.tq > 0 ? r % causal.tq + (n - causal.tq) : n - 1;
            auto value = [&](int64_t i) { return causal.tq > 0 ? convert<C>(xr[i]) * scale : convert<C>(xr[i]); };
            // NOTE: max starts at -inf, so an all -inf row gives -inf − (-inf) = NaN everywhere.
            C max = -std::numeric_limits<C>::infinity();
            for (int64_t i = 0; i <= last; ++i) max = std::max(max, value(i));
            C sum = 0;
            for (int64_t i = 0; i <= last; ++i) sum += std::exp(value(i) - max);
            if (log == Log::yes) {
                const C log_sum = std::log(sum);
                for (int64_t i = 0; i < n; ++i)
                    yr[i] = convert<T>(convert<C>(xr[i]) - max - log_sum);
            } else {
                for (int64_t i = 0; i <= last; ++i) yr[i] = convert<T>(std::exp(value(i) - max) / sum);
                for (int64_t i = last + 1; i < n; ++i) yr[i] = convert<T>(C(0));
            }
        }
    });
}

template <typename T>
void backward_rows(Log log, Tensor& dx, const Tensor& dy, const Tensor& y, double scale_d = 1.0) {
    using C = compute_t<T>;
    const C scale = C(scale_d);
    const bool scaled = scale_d != 1.0;
    const int64_t n = row_length(y);
    if (n == 0) return;
    const int64_t rows = y.numel() / n;
    const T* g = static_cast<const T*>(dy.data_ptr());
    const T* out = static_cast<const T*>(y.data_ptr());
    T* d = static_cast<T*>(dx.data_ptr());
    parallel_for(rows, row_grain(n), [&](int64_t begin, int64_t end) {
        for (int64_t r = begin; r < end; ++r) {
            const T* gr = g + r * n;
            const T* yr = out + r * n;
            T* dr = d + r * n;
            if (log == Log::yes) {
                C sum = 0;  // Σ dy
                for (int64_t i = 0; i < n; ++i) sum += convert<C>(gr[i]);
                for (int64_t i = 0; i < n; ++i)
                    dr[i] = convert<T>(convert<C>(gr[i]) - std::exp(convert<C>(yr[i])) * sum);
            } else {
                C dot = 0;  // Σ dy·y
                for (int64_t i = 0; i < n; ++i) dot += convert<C>(gr[i]) * convert<C>(yr[i]);
                for (int64_t i = 0; i < n; ++i) {
                    const C d = convert<C>(yr[i]) * (convert<C>(gr[i]) - dot);
                    dr[i] = convert<T>(scaled ? d * scale : d);
                }
            }
        }
    });
}

}  // namespace

void causal_softmax(Tensor& y, const Tensor& x, const CausalSoftmax& c) {
    dispatch_float(x.dtype(), "causal_softmax", [&]<typename T>() { forward_rows<T>(Log::no, y, x, c); });
}
void causal_softmax_backward(Tensor& dx, const Tensor& dy, const Tensor& y, const CausalSoftmax& c) {
    dispatch_float(y.dtype(), "causal_softmax_backward",
                   [&]<typename T>() { backward_rows<T>(Log::no, dx, dy, y, c.scale); });
}
void softmax(Tensor& y, const Tensor& x) {
    dispatch_float(x.dtype(), "softmax", [&]<typename T>() { forward_rows<T>(Log::no, y, x); });
}
void log_softmax(Tensor& y, const Tensor& x) {
    dispatch_float(x.dtype(), "log_softmax",
                   [&]<typename T>() { forward_rows<T>(Log::yes, y, x); });
}
void softmax_backward(Tensor& dx, const Tensor& dy, const Tensor& y) {
    dispatch_float(y.dtype(), "softmax_backward",
                   [&]<typename T>() { backward_rows<T>(Log::no, dx, dy, y); });
}
void log_softmax_backward(Tensor& dx, const Tensor& dy, const Tensor& y) {
    dispatch_float(y.dtype(), "log_softmax_backward",
                   [&]<typename T>() { backward_rows<T>(Log::yes, dx, dy, y); });
}

}  // namespace lumen::cpu
