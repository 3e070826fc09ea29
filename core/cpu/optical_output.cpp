// core/cpu/optical_output.cpp: CPU reference for the optical output quantizer (see
// core/kernels/optical_output.h; specs/optical.md §3.1, §5).
//
// Row by row (rows in parallel), column part by column part: each element's dither offset comes
// from the Philox block of its flat index (one block serves four consecutive elements), the level
// is optical::quantize_dithered in f32, the bias is added in f32 and the sum rounded once to out's
// dtype. Statistics fold order keys per thread and merge (min/max are order-free).
#include "core/cpu/loops.h"
#include "core/kernels/optical_output.h"
#include "core/kernels/optical_stats.h"

#include <algorithm>
#include <cmath>
#include <mutex>

namespace lumen {

std::vector<int64_t> optical_part_ends(const std::vector<int64_t>& parts, int64_t N, const char* op) {
    if (parts.empty()) return {N};
    check(int64_t(parts.size()) <= optical::max_output_parts, op,
          fmt::format("at most {} column parts, got {}", optical::max_output_parts, parts.size()));
    std::vector<int64_t> ends;
    int64_t total = 0;
    for (int64_t size : parts) {
        check(size >= 0, op, "a part size is negative");
        ends.push_back(total += size);
    }
    check(total == N, op, fmt::format("the part sizes sum to {}, not to the {} output columns", total, N));
    return ends;
}

std::vector<int64_t> check_optical_output(const Tensor& out, const Tensor& stats, const Tensor& acc,
                                          const Tensor& ranges, const std::vector<int64_t>& parts,
                                          const optical::QuantParams& p, const Tensor& bias,
                                          optical::OutputStats what) {
    const char* op = "optical_output";
    check(acc.dim() == 2, op, "acc must be (M, N)", {{"acc", acc}});
    const int64_t N = acc.size(1);
    std::vector<int64_t> ends = optical_part_ends(parts, N, op);
    const int64_t P = int64_t(ends.size());
    check(!p.lut, op, "the output quantizer has no LUT floor");
    check(acc.dtype() == DType::f32 && acc.is_contiguous(), op, "acc must be contiguous f32", {{"acc", acc}});
    check(out.shape() == acc.shape() && out.is_contiguous(), op, "out must be contiguous with acc's shape",
          {{"out", out}, {"acc", acc}});
    check(ranges.dtype() == DType::f32 && ranges.shape() == Shape{P, 2}, op,
          "ranges must be (P, 2) f32, one row per column part", {{"ranges", ranges}});
    check(!bias.defined() || bias.shape() == Shape{N}, op, "bias must be (N)", {{"bias", bias}});
    if (what != optical::OutputStats::none)
        check(stats.dtype() == DType::f32 && stats.shape() == Shape{P, 2} && stats.is_contiguous(), op,
              "stats must be (P, 2) contiguous f32", {{"stats", stats}});
    return ends;
}

namespace cpu {

void optical_output(Tensor& out, Tensor& stats, const Tensor& acc, const Tensor& ranges,
                    const std::vector<int64_t>& parts, const optical::QuantParams& p,
                    const optical::OutputDither& dither, const Tensor& bias, optical::OutputStats what) {
    const auto [M, N] = acc.dims<2>();
    const std::vector<int64_t> ends = check_optical_output(out, stats, acc, ranges, parts, p, bias, what);
    const int64_t P = int64_t(ends.size());
    const bool want_stats = what != optical::OutputStats::none;

    std::vector<float> lo(static_cast<size_t>(P)), hi(static_cast<size_t>(P));
    const float* r = static_cast<const float*>(ranges.data_ptr());
    for (int64_t q = 0; q < P; ++q) {
        lo[size_t(q)] = r[q * ranges.strides()[0]];
        hi[size_t(q)] = r[q * ranges.strides()[0] + ranges.strides()[1]];
    }
    std::vector<float> b(static_cast<size_t>(N), 0.0f);
    if (bias.defined())
        dispatch_float(bias.dtype(), "optical_output", [&]<typename B>() {
            const B* bs = static_cast<const B*>(bias.data_ptr());
            for (int64_t n = 0; n < N; ++n) b[size_t(n)] = convert<float>(bs[n * bias.strides()[0]]);
        });
    const float* a = static_cast<const float*>(acc.data_ptr());

    std::mutex merge;
    std::vector<uint32_t> lo_key(static_cast<size_t>(P), optical::min_identity_key);
    std::vector<uint32_t> hi_key(static_cast<size_t>(P), optical::max_identity_key);
    dispatch_float(out.dtype(), "optical_output", [&]<typename O>() {
        O* o = static_cast<O*>(out.data_ptr());
        parallel_for(M, std::max<int64_t>(1, 8192 / std::max<int64_t>(N, 1)), [&](int64_t begin, int64_t end) {
            std::vector<uint32_t> my_lo(size_t(P), optical::min_identity_key), my_hi(size_t(P), optical::max_identity_key);
            uint64_t cached_block = ~uint64_t(0);
            Philox4 block{};
            for (int64_t m = begin; m < end; ++m) {
                int64_t n = 0;
                for (int64_t q = 0; q < P; ++q) {
                    for (; n < ends[size_t(q)]; ++n) {
                        const int64_t flat = m * N + n;
                        float rr = dither.r;
                        if (!dither.scalar) {
                            const uint64_t i = dither.index_base + uint64_t(flat);
                            if ((i >> 2) != cached_block) {
                                cached_block = i >> 2;
                                block = optical::dither_block(dither.key, cached_block);
                            }
                            rr = philox_uniform_from_word(block.v[i & 3]) - 0.5f;
                        }
                        const float c = a[flat];
                        float y = optical::quantize_dithered(c, lo[size_t(q)], hi[size_t(q)], rr, p);
                        if (bias.defined()) y = optical::add_rn(y, b[size_t(n)]);
                        const O stored = convert<O>(optical::canonical_nan(y));  // the bits CUDA stores too
                        o[flat] = stored;
                        if (want_stats) {
                            const float v = what == optical::OutputStats::product ? c : convert<float>(stored);
                            if (std::isfinite(v)) {
                                const uint32_t key = optical::order_key(v);
                                my_lo[size_t(q)] = std::min(my_lo[size_t(q)], key);
                                my_hi[size_t(q)] = std::max(my_hi[size_t(q)], key);
                            }
                        }
                    }
                }
            }
            if (!want_stats) return;
            std::lock_guard lock(merge);
            for (int64_t q = 0; q < P; ++q) {
                lo_key[size_t(q)] = std::min(lo_key[size_t(q)], my_lo[size_t(q)]);
                hi_key[size_t(q)] = std::max(hi_key[size_t(q)], my_hi[size_t(q)]);
            }
        });
    });
    if (!want_stats) return;
    float* s = static_cast<float*>(stats.data_ptr());
    for (int64_t q = 0; q < P; ++q) {
        s[2 * q] = optical::from_order_key(lo_key[size_t(q)]);
        s[2 * q + 1] = optical::from_order_key(hi_key[size_t(q)]);
    }
}

}  // namespace cpu
}  // namespace lumen
