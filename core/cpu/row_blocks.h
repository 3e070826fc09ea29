// core/cpu/row_blocks.h: fixed-order sums over rows for the CPU backward kernels (norms, the
// oscillating activation): rows are cut into fixed blocks, each block sums its rows in order, and
// the blocks' partial sums are added in block order, so the result is the same whatever the
// thread count.
#pragma once

#include "core/dtype.h"
#include "core/tensor.h"

#include <algorithm>
#include <cstdint>
#include <vector>

namespace lumen::cpu {

// Rows [begin(b), begin(b + 1)) form block b; at least 32 rows per block, at most 256 blocks.
struct RowBlocks {
    int64_t rows, count;
    explicit RowBlocks(int64_t rows_) : rows(rows_), count(std::min<int64_t>(256, (rows_ + 31) / 32)) {}
    int64_t begin(int64_t b) const { return rows * b / count; }
};

// out[j] = Σ_b partial[b·C + j] in block order, converted to T (zeros when there are no blocks).
template <typename T>
void sum_partials(Tensor& out, const std::vector<double>& partial, int64_t count, int64_t C) {
    T* o = static_cast<T*>(out.data_ptr());
    for (int64_t j = 0; j < C; ++j) {
        double acc = 0;
        for (int64_t b = 0; b < count; ++b) acc += partial[static_cast<size_t>(b * C + j)];
        o[j] = convert<T>(acc);
    }
}

}  // namespace lumen::cpu
