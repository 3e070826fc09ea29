// core/cpu/optical_stats.cpp: CPU reference for the optical range statistics and the operand
// quantizer (see core/kernels/optical_stats.h; specs/optical.md §2.1, §4).
//
// min/max fold order keys (optical::order_key), so the result does not depend on the thread count
// or the walk order, and -0/+0 come out as on the GPU. Quantiles sort the finite values' keys (the
// GPU's radix sort orders the same keys) and interpolate with optical::sorted_quantile.
#include "core/cpu/loops.h"
#include "core/kernels/optical_stats.h"

#include <algorithm>
#include <cmath>
#include <mutex>
#include <vector>

namespace lumen::cpu {
namespace {

// The element (p, c) of a (P, 2) or (2,) range tensor (any strides).
float* range_at(const Tensor& range, int64_t p, int64_t c) {
    float* base = static_cast<float*>(range.data_ptr());
    if (range.dim() == 1) return base + c * range.strides()[0];
    return base + p * range.strides()[0] + c * range.strides()[1];
}

void check_range(const char* op, const Tensor& range) {
    check(range.dtype() == DType::f32 && range.numel() == 2, op, "a range is 2 f32 values [lo, hi]",
          {{"range", range}});
}

void write_pair(Tensor& out, float lo, float hi) {
    *range_at(out, 0, 0) = lo;
    *range_at(out, 0, 1) = hi;
}

}  // namespace

void optical_min_max(Tensor& out, const Tensor& x) {
    check_range("optical_min_max", out);
    std::mutex merge;
    uint32_t lo = optical::min_identity_key, hi = optical::max_identity_key;
    dispatch_float(x.dtype(), "optical_min_max", [&]<typename T>() {
        const T* data = static_cast<const T*>(x.storage()->data());
        // Each OpenMP chunk folds into its own slot (thread id), merged at the end: min and max
        // are order-free, so the result is the same whatever the split.
        const int threads = omp_get_max_threads();
        std::vector<uint32_t> los(size_t(threads), optical::min_identity_key);
        std::vector<uint32_t> his(size_t(threads), optical::max_identity_key);
        for_each_strided<1>(x.shape(), {&x.layout()}, [&](const std::array<int64_t, 1>& off) {
            const float v = convert<float>(data[off[0]]);
            if (!std::isfinite(v)) return;
            const uint32_t k = optical::order_key(v);
            const size_t t = size_t(omp_get_thread_num());
            los[t] = std::min(los[t], k);
            his[t] = std::max(his[t], k);
        });
        std::lock_guard lock(merge);
        for (int t = 0; t < threads; ++t) {
            lo = std::min(lo, los[size_t(t)]);
            hi = std::max(hi, his[size_t(t)]);
        }
    });
    write_pair(out, optical::from_order_key(lo), optical::from_order_key(hi));
}

void optical_quantiles(Tensor& out, const Tensor& x, double a, double b) {
    check_range("optical_quantiles", out);
    std::vector<uint32_t> keys;
    dispatch_float(x.dtype(), "optical_quantiles", [&]<typename T>() {
        const T* data = static_cast<const T*>(x.storage()->data());
        // Each thread collects its finite keys; the sort makes the collection order irrelevant.
        std::vector<std::vector<uint32_t>> parts(static_cast<size_t>(omp_get_max_threads()));
        for_each_strided<1>(x.shape(), {&x.layout()}, [&](const std::array<int64_t, 1>& off) {
            const float v = convert<float>(data[off[0]]);
            if (std::isfinite(v)) parts[size_t(omp_get_thread_num())].push_back(optical::order_key(v));
        });
        for (const auto& part : parts) keys.insert(keys.end(), part.begin(), part.end());
    });
    if (keys.empty()) return write_pair(out, INFINITY, -INFINITY);
    std::sort(keys.begin(), keys.end());
    const auto at = [&](int64_t j) { return optical::from_order_key(keys[size_t(j)]); };
    const int64_t n = int64_t(keys.size());
    write_pair(out, optical::sorted_quantile(at, n, a), optical::sorted_quantile(at, n, b));
}

void optical_range_update(Tensor& mm, const Tensor& batch, float f, float g, bool training) {
    check_range("optical_range_update", mm);
    check_range("optical_range_update", batch);
    float* lo = range_at(mm, 0, 0);
    float* hi = range_at(mm, 0, 1);
    const float blo = *range_at(batch, 0, 0), bhi = *range_at(batch, 0, 1);
    if (!optical::range_is_calibrated(blo, bhi)) return;  // no finite values in the batch
    if (!optical::range_is_calibrated(*lo, *hi)) {
        *lo = blo;
        *hi = bhi;
    } else if (training) {
        *lo = optical::add_rn(optical::mul_rn(f, *lo), optical::mul_rn(g, blo));
        *hi = optical::add_rn(optical::mul_rn(f, *hi), optical::mul_rn(g, bhi));
    }
}

void optical_quantize(Tensor& out, const Tensor& x, const Tensor& range, const optical::QuantParams& p) {
    check_range("optical_quantize", range);
    check(out.shape() == x.shape() && out.is_contiguous(), "optical_quantize",
          "out must be contiguous with x's shape", {{"out", out}, {"x", x}});
    const float lo = *range_at(range, 0, 0), hi = *range_at(range, 0, 1);
    dispatch_float(x.dtype(), "optical_quantize", [&]<typename T>() {
        dispatch_float(out.dtype(), "optical_quantize", [&]<typename O>() {
            const T* in = static_cast<const T*>(x.storage()->data());
            O* o = static_cast<O*>(out.storage()->data());
            for_each_strided<2>(x.shape(), {&out.layout(), &x.layout()}, [&](const std::array<int64_t, 2>& off) {
                const float v = convert<float>(in[off[1]]);
                o[off[0]] = convert<O>(optical::canonical_nan(optical::quantize_det(v, lo, hi, p)));
            });
        });
    });
}

}  // namespace lumen::cpu
