// core/cpu/reduce.cpp: CPU reference row reductions (see core/kernels/reduce.h).
#include "core/cpu/loops.h"
#include "core/kernels/reduce.h"

#include <cmath>
#include <limits>

namespace lumen::cpu {

void reduce_rows(ReduceOp op, Tensor& out, const Tensor& x, int64_t n) {
    const int64_t rows = out.numel();
    dispatch_all(x.dtype(), "reduce", [&]<typename T>() {
        using Acc = std::conditional_t<std::is_floating_point_v<compute_t<T>>, double, int64_t>;
        const T* in = static_cast<const T*>(x.data_ptr());
        parallel_for(rows, std::max<int64_t>(1, 16384 / std::max<int64_t>(n, 1)), [&](int64_t begin, int64_t end) {
            for (int64_t r = begin; r < end; ++r) {
                const T* row = in + r * n;
                Acc acc = 0;
                if (op == ReduceOp::sum) {
                    for (int64_t i = 0; i < n; ++i) acc += convert<Acc>(row[i]);
                } else {
                    acc = n > 0 ? convert<Acc>(row[0]) : Acc(0);
                    for (int64_t i = 1; i < n; ++i) {
                        const Acc v = convert<Acc>(row[i]);
                        if constexpr (std::is_floating_point_v<Acc>)
                            if (std::isnan(v)) { acc = v; break; }
                        if (op == ReduceOp::max ? v > acc : v < acc) acc = v;
                    }
                }
                dispatch_all(out.dtype(), "reduce", [&]<typename O>() {
                    static_cast<O*>(out.data_ptr())[r] = convert<O>(acc);
                });
            }
        });
    });
}

void argmax_rows(Tensor& out, const Tensor& x, int64_t n) {
    const int64_t rows = out.numel();
    int64_t* result = out.data<int64_t>();
    dispatch_all(x.dtype(), "argmax", [&]<typename T>() {
        using C = std::conditional_t<std::is_floating_point_v<compute_t<T>>, double, int64_t>;
        const T* in = static_cast<const T*>(x.data_ptr());
        parallel_for(rows, std::max<int64_t>(1, 16384 / std::max<int64_t>(n, 1)), [&](int64_t begin, int64_t end) {
            for (int64_t r = begin; r < end; ++r) {
                const T* row = in + r * n;
                int64_t best = 0;
                C best_value = convert<C>(row[0]);
                for (int64_t i = 1; i < n; ++i) {
                    const C v = convert<C>(row[i]);
                    if constexpr (std::is_floating_point_v<C>)
                        if (std::isnan(best_value)) break;
                    bool better = v > best_value;
                    if constexpr (std::is_floating_point_v<C>) better = better || std::isnan(v);
                    if (better) { best = i; best_value = v; }
                }
                result[r] = best;
            }
        });
    });
}

}  // namespace lumen::cpu
