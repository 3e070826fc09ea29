// core/cpu/matmul.cpp: the CPU batched matrix product (see core/kernels/matmul.h).
//
// Blocked as in GotoBLAS/BLIS. The output is cut into MC x NC tiles, one task each, and the
// tasks run in parallel over (batch, row block, column block). A task walks K in KC steps: it
// packs its A block into MR-row micro-panels and its B block into NR-column micro-panels
// (read through the operands' strides, converted to the compute type, zero padded), then a
// register-blocked micro kernel, whose inner loop runs over NR contiguous packed values and
// vectorises, adds each MR x NR product into a tile in the compute type. The tile is rounded to
// out's dtype once, after the last K step.
//
// NOTE: every output element is summed by one task in a fixed order (KC blocks in turn, k in
// turn within a block), so the result does not depend on the thread count.
#include "core/kernels/matmul.h"

#include "core/cpu/loops.h"

#include <algorithm>
#include <vector>

namespace lumen::cpu {
namespace {

// Block sizes in elements: a B micro-panel (KC x NR) stays in L1, the A block (MC x KC), the
// B block (KC x NC) and the tile (MC x NC) in L2.
constexpr int64_t MC = 64, NC = 256, KC = 256;

// The micro tile: MR x NR accumulators that fit the 16 SSE/AVX registers with room for the
// operands (f32: 8 registers of 4, f64: 8 registers of 2).
template <typename Acc>
struct MicroTile;
template <>
struct MicroTile<float> {
    static constexpr int64_t MR = 4, NR = 8;
};
template <>
struct MicroTile<double> {
    static constexpr int64_t MR = 4, NR = 4;
};

// Packs A (mc x kc; element (i, k) at a[i·sm + k·sk]) into micro-panels of MR rows: panel p
// holds, for k = 0..kc-1, the MR values A(p·MR + i, k) side by side. Rows past mc are zeros.
template <int64_t MR, typename Acc, typename T>
void pack_a(Acc* dst, const T* a, int64_t sm, int64_t sk, int64_t mc, int64_t kc) {
    for (int64_t i0 = 0; i0 < mc; i0 += MR, dst += MR * kc) {
        const int64_t mr = std::min(MR, mc - i0);
        if (sk <= sm) {  // rows are the contiguous direction (or neither is): read along rows
            for (int64_t i = 0; i < mr; ++i) {
                const T* row = a + (i0 + i) * sm;
                for (int64_t k = 0; k < kc; ++k) dst[k * MR + i] = convert<Acc>(row[k * sk]);
            }
            for (int64_t i = mr; i < MR; ++i)
                for (int64_t k = 0; k < kc; ++k) dst[k * MR + i] = Acc(0);
        } else {  // a transposed view: read down columns
            for (int64_t k = 0; k < kc; ++k) {
                const T* col = a + i0 * sm + k * sk;
                for (int64_t i = 0; i < mr; ++i) dst[k * MR + i] = convert<Acc>(col[i * sm]);
                for (int64_t i = mr; i < MR; ++i) dst[k * MR + i] = Acc(0);
            }
        }
    }
}

// Packs B (kc x nc; element (k, j) at b[k·sk + j·sn]) into micro-panels of NR columns: panel p
// holds, for k = 0..kc-1, the NR values B(k, p·NR + j) side by side. Columns past nc are zeros.
template <int64_t NR, typename Acc, typename T>
void pack_b(Acc* dst, const T* b, int64_t sk, int64_t sn, int64_t kc, int64_t nc) {
    for (int64_t j0 = 0; j0 < nc; j0 += NR, dst += NR * kc) {
        const int64_t nr = std::min(NR, nc - j0);
        if (sn <= sk) {  // rows of B are contiguous: copy NR values per k
            for (int64_t k = 0; k < kc; ++k) {
                const T* row = b + k * sk + j0 * sn;
                for (int64_t j = 0; j < nr; ++j) dst[k * NR + j] = convert<Acc>(row[j * sn]);
                for (int64_t j = nr; j < NR; ++j) dst[k * NR + j] = Acc(0);
            }
        } else {  // a transposed view: read down each column
            for (int64_t j = 0; j < nr; ++j) {
                const T* col = b + (j0 + j) * sn;
                for (int64_t k = 0; k < kc; ++k) dst[k * NR + j] = convert<Acc>(col[k * sk]);
            }
            for (int64_t j = nr; j < NR; ++j)
                for (int64_t k = 0; k < kc; ++k) dst[k * NR + j] = Acc(0);
        }
    }
}

// c (MR x NR, row stride ldc) += a_panel (kc x MR) ᵀ· b_panel (kc x NR), both packed. The
// accumulators live in registers for the whole k loop.
template <int64_t MR, int64_t NR, typename Acc>
void micro_kernel(int64_t kc, const Acc* __restrict a, const Acc* __restrict b, Acc* __restrict c,
                  int64_t ldc) {
    Acc acc[MR][NR] = {};
    for (int64_t k = 0; k < kc; ++k, a += MR, b += NR)
        for (int64_t i = 0; i < MR; ++i)
            for (int64_t j = 0; j < NR; ++j) acc[i][j] += a[i] * b[j];
    for (int64_t i = 0; i < MR; ++i)
        for (int64_t j = 0; j < NR; ++j) c[i * ldc + j] += acc[i][j];
}

// T: the operands' type; O: out's (and bias's) type: T, or f32 for bf16 operands.
template <typename T, typename O>
void matmul_typed(Tensor& out, const Tensor& a, const Tensor& b, Accumulate accumulate, const Tensor& bias) {
    using Acc = compute_t<T>;
    constexpr int64_t MR = MicroTile<Acc>::MR, NR = MicroTile<Acc>::NR;
    static_assert(MC % MR == 0 && NC % NR == 0);
    const auto [B, M, K] = a.dims<3>();
    const int64_t N = b.size(2);
    if (B * M * N == 0) return;
    const Strides sa = a.strides(), sb = b.strides();  // (batch, M, K) and (batch, K, N)
    const T* pa = static_cast<const T*>(a.data_ptr());
    const T* pb = static_cast<const T*>(b.data_ptr());
    O* po = static_cast<O*>(out.data_ptr());
    const O* pbias = bias.defined() ? static_cast<const O*>(bias.data_ptr()) : nullptr;  // (N,)
    const int64_t row_blocks = (M + MC - 1) / MC, col_blocks = (N + NC - 1) / NC;
    const int64_t tasks = B * row_blocks * col_blocks;
    // NOTE: at least ~1 MFLOP per chunk of tasks, below that threads cost more than they save.
    const int64_t task_flops = 2 * std::min(M, MC) * std::min(N, NC) * std::max<int64_t>(K, 1);
    const int64_t grain = std::max<int64_t>(1, (int64_t(1) << 20) / task_flops);
    // Scratch sized for the largest task: a tile row is ldc wide, whole micro tiles in each
    // direction.
    const int64_t mc_max = (std::min(M, MC) + MR - 1) / MR * MR, kc_max = std::min(K, KC);
    const int64_t ldc = (std::min(N, NC) + NR - 1) / NR * NR;
    parallel_for(tasks, grain, [&](int64_t begin, int64_t end) {
        std::vector<Acc> a_pack(static_cast<size_t>(mc_max * kc_max));
        std::vector<Acc> b_pack(static_cast<size_t>(kc_max * ldc));
        std::vector<Acc> tile(static_cast<size_t>(mc_max * ldc));  // (mc, nc) sums, row stride ldc
        for (int64_t t = begin; t < end; ++t) {
            const int64_t batch = t / (row_blocks * col_blocks);
            const int64_t i0 = (t / col_blocks) % row_blocks * MC, j0 = t % col_blocks * NC;
            const int64_t mc = std::min(MC, M - i0), nc = std::min(NC, N - j0);
            const T* a_block = pa + batch * sa[0] + i0 * sa[1];  // (mc, K)
            const T* b_block = pb + batch * sb[0] + j0 * sb[2];  // (K, nc)
            std::fill(tile.begin(), tile.end(), Acc(0));
            for (int64_t k0 = 0; k0 < K; k0 += KC) {
                const int64_t kc = std::min(KC, K - k0);
                pack_a<MR>(a_pack.data(), a_block + k0 * sa[2], sa[1], sa[2], mc, kc);
                pack_b<NR>(b_pack.data(), b_block + k0 * sb[1], sb[1], sb[2], kc, nc);
                for (int64_t j = 0; j < nc; j += NR)
                    for (int64_t i = 0; i < mc; i += MR)
                        micro_kernel<MR, NR>(kc, a_pack.data() + i * kc, b_pack.data() + j * kc,
                                             tile.data() + i * ldc + j, ldc);
            }
            O* o = po + batch * M * N + i0 * N + j0;  // (mc, nc) of out, row stride N
            for (int64_t i = 0; i < mc; ++i)
                for (int64_t j = 0; j < nc; ++j) {
                    Acc v = tile[static_cast<size_t>(i * ldc + j)];
                    if (accumulate == Accumulate::yes) v += convert<Acc>(o[i * N + j]);
                    if (pbias) v += convert<Acc>(pbias[j0 + j]);
                    o[i * N + j] = convert<O>(v);
                }
        }
    });
}

}  // namespace

void matmul(Tensor& out, const Tensor& a, const Tensor& b, Accumulate acc, const Tensor& bias) {
    switch (a.dtype()) {
        case DType::f32:
            return matmul_typed<float, float>(out, a, b, acc, bias);
        case DType::f64:
            return matmul_typed<double, double>(out, a, b, acc, bias);
        case DType::bf16:
            if (out.dtype() == DType::f32) return matmul_typed<bf16, float>(out, a, b, acc, bias);
            return matmul_typed<bf16, bf16>(out, a, b, acc, bias);
        case DType::f16:
            if (out.dtype() == DType::f32) return matmul_typed<f16, float>(out, a, b, acc, bias);
            return matmul_typed<f16, f16>(out, a, b, acc, bias);
        default:
            fail("matmul", "expected f32, f64, bf16 or f16 operands",
                 {{"out", out}, {"a", a}, {"b", b}});
    }
}

}  // namespace lumen::cpu
