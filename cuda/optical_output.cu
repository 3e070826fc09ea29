// cuda/optical_output.cu: the CUDA optical output quantizer (see core/kernels/optical_output.h;
// reference core/cpu/optical_output.cpp).
//
// Each thread takes four consecutive flat elements of the (M, N) accumulator (one Philox block when
// the index base is a multiple of 4), quantizes each onto its column part's range with its dither
// offset (optical::quantize_dithered, the CPU's f32 operations), adds the bias in f32 and rounds
// once to out's dtype. The part ranges are read from device memory into shared memory first.
// Statistics, when asked, are fused: per-thread min/max of order keys per part in registers, a warp
// reduction, shared-memory atomics per warp, then one global atomic per part and block into the
// stats tensor's words (initialised to the
// identities before, decoded to floats after, both by one small kernel). Integer min/max is
// order-free: the result is exact and equals the CPU's.
#include "core/kernels/optical_output.h"
#include "core/kernels/optical_stats.h"
#include "cuda/common.cuh"
#include "cuda/optical_store.cuh"

namespace lumen::cuda {

namespace {

constexpr int threads = 256;
constexpr int P_MAX = optical::max_output_parts;

struct PartEnds {
    int64_t end[P_MAX];
    int count;
};

__global__ void stats_init_kernel(uint32_t* keys, int parts) {
    const int q = threadIdx.x;
    if (q < parts) {
        keys[2 * q] = optical::min_identity_key;
        keys[2 * q + 1] = optical::max_identity_key;
    }
}

__global__ void stats_decode_kernel(uint32_t* keys, int parts) {
    const int q = threadIdx.x;
    if (q < 2 * parts) reinterpret_cast<float*>(keys)[q] = optical::from_order_key(keys[q]);
}

template <typename OT, typename BT>
__global__ void output_kernel(int64_t M, int64_t N, const float* acc, OT* out, const float* ranges, int64_t rs0,
                              int64_t rs1, PartEnds parts, optical::QuantParams p, optical::OutputDither dither,
                              const BT* bias, int64_t bias_step, uint32_t* stat_keys, optical::OutputStats what) {
    __shared__ float s_lo[P_MAX], s_hi[P_MAX];
    __shared__ uint32_t s_klo[P_MAX], s_khi[P_MAX];
    if (threadIdx.x < parts.count) {
        s_lo[threadIdx.x] = ranges[threadIdx.x * rs0];
        s_hi[threadIdx.x] = ranges[threadIdx.x * rs0 + rs1];
        s_klo[threadIdx.x] = optical::min_identity_key;
        s_khi[threadIdx.x] = optical::max_identity_key;
    }
    __syncthreads();
    const bool want_stats = what != optical::OutputStats::none;
    // Per-thread statistics in registers (indexed by unrolled constants), reduced per warp at the end.
    uint32_t klo[P_MAX], khi[P_MAX];
#pragma unroll
    for (int j = 0; j < P_MAX; ++j) {
        klo[j] = optical::min_identity_key;
        khi[j] = optical::max_identity_key;
    }
    const int64_t total = M * N, groups = (total + 3) / 4;
    for (int64_t g = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; g < groups; g += int64_t(gridDim.x) * blockDim.x) {
        const int64_t flat0 = 4 * g;
        int64_t n = flat0 % N;
        uint64_t cached = ~uint64_t(0);
        Philox4 block{};
        for (int e = 0; e < 4; ++e, ++n) {
            const int64_t flat = flat0 + e;
            if (flat >= total) break;
            if (n == N) n = 0;
            int q = 0;
            while (n >= parts.end[q]) ++q;
            float r = dither.r;
            if (!dither.scalar) {
                const uint64_t i = dither.index_base + uint64_t(flat);
                if ((i >> 2) != cached) {
                    cached = i >> 2;
                    block = optical::dither_block(dither.key, cached);
                }
                r = philox_uniform_from_word(block.v[i & 3]) - 0.5f;
            }
            const float c = acc[flat];
            float y = optical::quantize_dithered(c, s_lo[q], s_hi[q], r, p);
            if (bias) y = optical::add_rn(y, load_as<float>(bias[n * bias_step]));
            const OT stored = store_canonical<OT>(y);  // NaN: the CPU's bits
            out[flat] = stored;
            if (want_stats) {
                const float v = what == optical::OutputStats::product ? c : load_as<float>(stored);
                if (isfinite(v)) {
                    const uint32_t key = optical::order_key(v);
#pragma unroll
                    for (int j = 0; j < P_MAX; ++j)
                        if (j == q) {
                            klo[j] = min(klo[j], key);
                            khi[j] = max(khi[j], key);
                        }
                }
            }
        }
    }
    if (!want_stats) return;
#pragma unroll
    for (int j = 0; j < P_MAX; ++j) {
        if (j >= parts.count) break;
        const uint32_t lo = __reduce_min_sync(0xffffffffu, klo[j]), hi = __reduce_max_sync(0xffffffffu, khi[j]);
        if (threadIdx.x % 32 == 0) {
            atomicMin(&s_klo[j], lo);
            atomicMax(&s_khi[j], hi);
        }
    }
    __syncthreads();
    if (threadIdx.x < parts.count) {
        atomicMin(&stat_keys[2 * threadIdx.x], s_klo[threadIdx.x]);
        atomicMax(&stat_keys[2 * threadIdx.x + 1], s_khi[threadIdx.x]);
    }
}

}  // namespace

void optical_output(Tensor& out, Tensor& stats, const Tensor& acc, const Tensor& ranges,
                    const std::vector<int64_t>& part_sizes, const optical::QuantParams& p,
                    const optical::OutputDither& dither, const Tensor& bias, optical::OutputStats what) {
    const auto [M, N] = acc.dims<2>();
    const std::vector<int64_t> ends = check_optical_output(out, stats, acc, ranges, part_sizes, p, bias, what);
    const int P = int(ends.size());
    const bool want_stats = what != optical::OutputStats::none;
    const int device = out.device().index;
    set_device(device);
    cudaStream_t stream = compute_stream(device);
    uint32_t* keys = want_stats ? static_cast<uint32_t*>(stats.data_ptr()) : nullptr;
    if (want_stats) {
        stats_init_kernel<<<1, 32, 0, stream>>>(keys, P);
        check_launch("optical_stats_init_kernel", {{"stats", stats}});
    }
    PartEnds pe{};
    for (int q = 0; q < P; ++q) pe.end[q] = ends[size_t(q)];
    pe.count = P;
    const int64_t groups = (M * N + 3) / 4;
    if (groups > 0) {
        const int64_t blocks = std::min<int64_t>(blocks_for(groups, threads), int64_t(properties(device).sm_count) * 8);
        const DType bias_dtype = bias.defined() ? bias.dtype() : DType::f32;
        dispatch_float(out.dtype(), "optical_output", [&]<typename O>() {
            dispatch_float(bias_dtype, "optical_output", [&]<typename B>() {
                const device_t<B>* b = bias.defined() ? data_ptr<B>(bias) : nullptr;
                const int64_t b_step = bias.defined() ? bias.strides()[0] : 0;
                output_kernel<<<unsigned(blocks), threads, 0, stream>>>(
                    M, N, data_ptr<float>(acc), data_ptr<O>(out), data_ptr<float>(ranges), ranges.strides()[0],
                    ranges.strides()[1], pe, p, dither, b, b_step, keys, what);
            });
        });
        check_launch("optical_output_kernel", {{"out", out}, {"acc", acc}, {"ranges", ranges}});
    }
    if (want_stats) {
        stats_decode_kernel<<<1, 32, 0, stream>>>(keys, P);
        check_launch("optical_stats_decode_kernel", {{"stats", stats}});
    }
}

}  // namespace lumen::cuda
