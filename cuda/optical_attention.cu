// cuda/optical_attention.cu: the optical attention kernels on the GPU (formulas and conventions in
// core/kernels/optical_attention.h; reference: core/cpu/optical_attention.cpp).
//
// What is materialised (specs/optical.md §3.5): no T×T tensor. The forward keeps per query row
// the f32 pair (m, l) (row_max, row_sum: B·H·Tq each) and the float P·v rows for the backward's
// D (pv: B·H·Tq·d f32, only when a backward will run); the backward adds D (B·H·Tq f32). S and P
// exist only as 32×32 tiles in shared memory; the optional `scores` output (tests) is the one
// exception and is produced only when asked for.
//
// Forward: one block of 256 threads per (b, h, 32 query rows), 8 threads per row. Pass 1 walks
// the 32-key tiles of the causal window: S tile → Z = c·S → an online (max, Σ exp) per thread,
// combined over the row's 8 threads by a fixed shuffle tree. Pass 2 walks them again: the same S
// bits (same dither indices, same e-ascending uncontracted dot products as the CPU), P, Q_det(P),
// and Y_acc += Q(P)·vq with j ascending, so Y_acc equals the CPU's whenever Q(P) does. P comes
// from exp (CUDA's expf vs glibc's) and an online sum, so a level of Q(P) can differ from the
// CPU's at a boundary (rare); S never does.
// Backward: D = dy·pv per row; one block per (b, kv head, 32 keys) accumulates dk and dv over the
// group's heads and the query tiles of the causal window; one block per (b, h, 32 query rows)
// accumulates dq over the key tiles. Each gradient element is summed by one thread in a fixed
// order: no atomics, the same bits on every run. The min/max statistics use exact integer atomics
// on ordered keys. Nothing here synchronises with the host.
#include "core/kernels/optical_attention.h"
#include "cuda/common.cuh"

namespace lumen::cuda {
namespace {

using optical::add_rn;
using optical::mul_rn;

constexpr int BQ = 32;       // query rows per tile
constexpr int BK = 32;       // keys per tile
constexpr int LANES = 8;     // threads per tile row
constexpr int THREADS = BQ * LANES;
constexpr int PS = BK + 1;   // padded row of a P tile
constexpr int max_head_size = 128;

struct Dims {
    int64_t B, H, Hkv, Tq, Tk, d, rep, off;
};

__device__ __forceinline__ int64_t min_i64(int64_t a, int64_t b) { return a < b ? a : b; }
__device__ __forceinline__ int64_t max_i64(int64_t a, int64_t b) { return a > b ? a : b; }

// Thread-local [min, max] of finite values as order keys, flushed with one atomic pair per warp.
struct StatKeys {
    uint32_t lo = optical::min_identity_key, hi = optical::max_identity_key;
    __device__ void add(float x) {
        if (!isfinite(x)) return;
        const uint32_t k = optical::order_key(x);
        lo = min(lo, k);
        hi = max(hi, k);
    }
    __device__ void flush(uint32_t* out) {
        for (int o = 16; o > 0; o /= 2) {
            lo = min(lo, __shfl_xor_sync(0xFFFFFFFFu, lo, o));
            hi = max(hi, __shfl_xor_sync(0xFFFFFFFFu, hi, o));
        }
        if (out && threadIdx.x % 32 == 0) {
            atomicMin(out, lo);
            atomicMax(out + 1, hi);
        }
    }
};

// The (2,) statistics hold order keys while the kernel folds into them.
__global__ void stats_init_kernel(uint32_t* a, uint32_t* b) {
    const uint32_t init = threadIdx.x == 0 ? optical::min_identity_key : optical::max_identity_key;
    if (threadIdx.x < 2) {
        if (a) a[threadIdx.x] = init;
        if (b) b[threadIdx.x] = init;
    }
}
// Keys back to floats, in place.
__global__ void stats_decode_kernel(uint32_t* a, uint32_t* b) {
    if (threadIdx.x < 2) {
        if (a) a[threadIdx.x] = __float_as_uint(optical::from_order_key(a[threadIdx.x]));
        if (b) b[threadIdx.x] = __float_as_uint(optical::from_order_key(b[threadIdx.x]));
    }
}

// rows × d elements of `src` (row stride d) from row `first` into a tile of row stride DS (f32),
// zero past `count` rows.
template <typename DT>
__device__ __forceinline__ void load_tile(float* tile, int DS, const DT* src, int64_t first, int64_t count,
                                          int rows, int64_t d) {
    for (int64_t idx = threadIdx.x; idx < int64_t(rows) * d; idx += THREADS) {
        const int64_t i = idx / d, e = idx % d;
        tile[i * DS + e] = first + i < count ? load_as<float>(src[(first + i) * d + e]) : 0.0f;
    }
}

// acc_S of tile row `row` and tile key `col`: e ascending, uncontracted (the CPU's bits).
__device__ __forceinline__ float dot_rn(const float* a, const float* b, int64_t d) {
    float acc = 0.0f;
    for (int64_t e = 0; e < d; ++e) acc = add_rn(acc, mul_rn(a[e], b[e]));
    return acc;
}

// S of acc (the quantizer, or acc in the float pass) for element i_S.
__device__ __forceinline__ float score_of(float acc, uint64_t i, float lo, float hi,
                                          const OpticalAttentionConfig& c) {
    if (!c.quantized) return acc;
    return optical::quantize_dithered(acc, lo, hi, attention_qk_offset(c.dither, i),
                                      optical::QuantParams{c.levels, false, 0.0f});
}

// l·exp(m − m_new), 0 when m is -inf (an empty partial).
__device__ __forceinline__ float rescale(float l, float m, float m_new) {
    return m == -INFINITY ? 0.0f : l * expf(m - m_new);
}

template <typename DT>
struct ForwardArgs {
    const DT *q, *k, *v, *vf;
    const float *qk_mm, *av_mm;
    DT* y;
    float *row_max, *row_sum, *pv, *scores;
    uint32_t *qk_stat, *av_stat;
    Dims n;
    OpticalAttentionConfig c;
};

template <typename DT, int DMAX>
__global__ void __launch_bounds__(THREADS) forward_kernel(const ForwardArgs<DT> a) {
    constexpr int DS = DMAX + 1;
    constexpr int PER = DMAX / LANES;
    extern __shared__ float smem[];
    float* sQ = smem;              // (BQ, DS) operand q rows
    float* sK = sQ + BQ * DS;      // (BK, DS) operand k
    float* sV = sK + BK * DS;      // (BK, DS) operand v
    float* sVf = sV + BK * DS;     // (BK, DS) unquantized v (pv only)
    float* sP = sVf + BK * DS;     // (BQ, PS) float P
    float* sPq = sP + BQ * PS;     // (BQ, PS) Q_det(P)

    const Dims& n = a.n;
    const OpticalAttentionConfig& c = a.c;
    const int t = threadIdx.x, row = t / LANES, lane = t % LANES;
    const int64_t b = blockIdx.z, h = blockIdx.y, r0 = int64_t(blockIdx.x) * BQ;
    const int64_t r = r0 + row;
    const bool active = r < n.Tq;
    const int64_t last = active ? n.off + r : -1;                     // my row's last causal key
    const int64_t key_end = n.off + min_i64(r0 + BQ, n.Tq);      // keys any row of the tile sees
    const int64_t head = b * n.H + h;
    const DT* qh = a.q + head * n.Tq * n.d;                           // (Tq, d)
    const int64_t kv = (b * n.Hkv + h / n.rep) * n.Tk * n.d;           // (Tk, d) offset
    const float qk_lo = c.quantized ? a.qk_mm[0] : 0.0f, qk_hi = c.quantized ? a.qk_mm[1] : 0.0f;
    const float av_lo = c.quantized && a.av_mm ? a.av_mm[0] : 0.0f;
    const float av_hi = c.quantized && a.av_mm ? a.av_mm[1] : 0.0f;
    const optical::QuantParams out{c.levels, false, 0.0f};
    StatKeys qk_stat, av_stat;

    load_tile(sQ, DS, qh, r0, n.Tq, BQ, n.d);
    // Pass 1: the row's (m, l), each thread over keys lane, lane + 8, ... of every tile.
    float m = -INFINITY, l = 0.0f;
    for (int64_t k0 = 0; k0 < key_end; k0 += BK) {
        __syncthreads();
        load_tile(sK, DS, a.k + kv, k0, n.Tk, BK, n.d);
        __syncthreads();
#pragma unroll
        for (int cc = 0; cc < BK / LANES; ++cc) {
            const int col = lane + LANES * cc;
            const int64_t j = k0 + col;
            if (j > last) continue;
            const uint64_t i = uint64_t((head * n.Tq + r) * n.Tk + j);
            const float acc = dot_rn(sQ + row * DS, sK + col * DS, n.d);
            const float s = score_of(acc, i, qk_lo, qk_hi, c);
            qk_stat.add(c.stats_of_quantized ? s : acc);
            if (a.scores) a.scores[(head * n.Tq + r) * n.Tk + j] = s;
            const float z = mul_rn(c.scale, s);
            const float m_new = fmaxf(m, z);
            l = rescale(l, m, m_new) + expf(z - m_new);
            m = m_new;
        }
    }
    for (int o = LANES / 2; o > 0; o /= 2) {   // the row's 8 threads are adjacent lanes of one warp
        const float m_o = __shfl_xor_sync(0xFFFFFFFFu, m, o), l_o = __shfl_xor_sync(0xFFFFFFFFu, l, o);
        const float m_new = fmaxf(m, m_o);
        l = rescale(l, m, m_new) + rescale(l_o, m_o, m_new);
        m = m_new;
    }
    qk_stat.flush(a.qk_stat);
    if (active && lane == 0) {
        if (a.row_max) a.row_max[head * n.Tq + r] = m;
        if (a.row_sum) a.row_sum[head * n.Tq + r] = l;
    }
    if (!a.y && !a.pv && !a.av_stat) return;   // block-uniform: no later barrier is skipped by some

    // Pass 2: the same S, then P, Q(P) and the row's Y accumulators (features lane + 8·cc).
    float acc_y[PER], acc_pv[PER];
#pragma unroll
    for (int cc = 0; cc < PER; ++cc) acc_y[cc] = acc_pv[cc] = 0.0f;
    for (int64_t k0 = 0; k0 < key_end; k0 += BK) {
        __syncthreads();
        load_tile(sK, DS, a.k + kv, k0, n.Tk, BK, n.d);
        load_tile(sV, DS, a.v + kv, k0, n.Tk, BK, n.d);
        if (a.pv) load_tile(sVf, DS, a.vf + kv, k0, n.Tk, BK, n.d);
        __syncthreads();
#pragma unroll
        for (int cc = 0; cc < BK / LANES; ++cc) {
            const int col = lane + LANES * cc;
            const int64_t j = k0 + col;
            float p = 0.0f, pq = 0.0f;
            if (j <= last) {
                const uint64_t i = uint64_t((head * n.Tq + r) * n.Tk + j);
                const float s = score_of(dot_rn(sQ + row * DS, sK + col * DS, n.d), i, qk_lo, qk_hi, c);
                p = attention_probability(mul_rn(c.scale, s), m, l);
                pq = c.quantized ? optical::quantize_det(p, 0.0f, 1.0f, out) : p;
            }
            sP[row * PS + col] = p;
            sPq[row * PS + col] = pq;
        }
        __syncthreads();
        const int64_t cols = min_i64(BK, last - k0 + 1);   // my row's causal keys in this tile
        for (int jj = 0; jj < cols; ++jj) {
            const float pq = sPq[row * PS + jj], p = sP[row * PS + jj];
#pragma unroll
            for (int cc = 0; cc < PER; ++cc) {
                const int e = lane + LANES * cc;
                if (e < n.d) {
                    acc_y[cc] = add_rn(acc_y[cc], mul_rn(pq, sV[jj * DS + e]));
                    if (a.pv) acc_pv[cc] = add_rn(acc_pv[cc], mul_rn(p, sVf[jj * DS + e]));
                }
            }
        }
    }
#pragma unroll
    for (int cc = 0; cc < PER; ++cc) {
        const int e = lane + LANES * cc;
        if (!active || e >= n.d) continue;
        const int64_t at = (head * n.Tq + r) * n.d + e;
        float yv = acc_y[cc];
        if (c.quantized)
            yv = optical::quantize_dithered(yv, av_lo, av_hi, attention_av_offset(c.dither, uint64_t(at)), out);
        av_stat.add(c.stats_of_quantized ? yv : acc_y[cc]);
        if (a.y) a.y[at] = store_from<DT>(yv);
        if (a.pv) a.pv[at] = acc_pv[cc];
    }
    av_stat.flush(a.av_stat);
}

// D_r = dy_r · pv_r, one warp per row (fixed shuffle tree).
template <typename DT>
__global__ void delta_kernel(int64_t rows, int64_t d, const DT* __restrict__ dy, const float* __restrict__ pv,
                             float* __restrict__ D) {
    const int64_t row = (int64_t(blockIdx.x) * blockDim.x + threadIdx.x) / 32;
    const int lane = threadIdx.x % 32;
    if (row >= rows) return;   // warp-uniform
    float sum = 0.0f;
    for (int64_t e = lane; e < d; e += 32) sum += load_as<float>(dy[row * d + e]) * pv[row * d + e];
    for (int o = 16; o > 0; o /= 2) sum += __shfl_xor_sync(0xFFFFFFFFu, sum, o);
    if (lane == 0) D[row] = sum;
}

template <typename DT>
struct BackwardArgs {
    const DT *dy, *q, *k, *v, *qq, *kq;
    const float *qk_mm, *row_max, *row_sum, *D;
    DT *dq, *dk, *dv;
    Dims n;
    OpticalAttentionConfig c;
};

// P and dS of tile entry (query r of head `head`, key j), 0 off the causal window. sQq/sKq rows
// hold the operands of S, dyr the row's dy, vj the key's unquantized v.
__device__ __forceinline__ void p_and_ds(float& p, float& ds, const float* qq_row, const float* kq_row,
                                         const float* dy_row, const float* v_row, int64_t head, int64_t r,
                                         int64_t j, float m, float l, float D, float lo, float hi,
                                         const Dims& n, const OpticalAttentionConfig& c) {
    const uint64_t i = uint64_t((head * n.Tq + r) * n.Tk + j);
    const float s = score_of(dot_rn(qq_row, kq_row, n.d), i, lo, hi, c);
    p = attention_probability(mul_rn(c.scale, s), m, l);
    float dp = 0.0f;
    for (int64_t e = 0; e < n.d; ++e) dp += dy_row[e] * v_row[e];
    ds = c.scale * p * (dp - D);
}

// dk, dv of 32 keys of one kv head: over the group's heads, then the query tiles that see them.
template <typename DT, int DMAX>
__global__ void __launch_bounds__(THREADS) dkdv_kernel(const BackwardArgs<DT> a) {
    constexpr int DS = DMAX + 1;
    constexpr int PER = DMAX / LANES;
    extern __shared__ float smem[];
    float* sKq = smem;             // (BK, DS) operand k
    float* sV = sKq + BK * DS;     // (BK, DS) unquantized v
    float* sQq = sV + BK * DS;     // (BQ, DS) operand q
    float* sQ = sQq + BQ * DS;     // (BQ, DS) unquantized q
    float* sdY = sQ + BQ * DS;     // (BQ, DS) dy
    float* sP = sdY + BQ * DS;     // (BQ, PS)
    float* sdS = sP + BQ * PS;     // (BQ, PS)
    float* sRow = sdS + BQ * PS;   // (3, BQ): m, l, D

    const Dims& n = a.n;
    const OpticalAttentionConfig& c = a.c;
    const int t = threadIdx.x, trow = t / LANES, lane = t % LANES;
    const int64_t b = blockIdx.z, kvh = blockIdx.y, k0 = int64_t(blockIdx.x) * BK;
    const int64_t kv = (b * n.Hkv + kvh) * n.Tk * n.d;
    const float lo = c.quantized ? a.qk_mm[0] : 0.0f, hi = c.quantized ? a.qk_mm[1] : 0.0f;
    load_tile(sKq, DS, a.kq + kv, k0, n.Tk, BK, n.d);
    load_tile(sV, DS, a.v + kv, k0, n.Tk, BK, n.d);
    float acc_dk[PER], acc_dv[PER];
#pragma unroll
    for (int cc = 0; cc < PER; ++cc) acc_dk[cc] = acc_dv[cc] = 0.0f;
    const int64_t r_first = max_i64(0, k0 - n.off);   // the first query that sees key k0
    for (int64_t h = kvh * n.rep; h < (kvh + 1) * n.rep; ++h) {
        const int64_t head = b * n.H + h, rows0 = head * n.Tq;
        for (int64_t q0 = r_first / BQ * BQ; q0 < n.Tq; q0 += BQ) {
            __syncthreads();
            load_tile(sQq, DS, a.qq + rows0 * n.d, q0, n.Tq, BQ, n.d);
            load_tile(sQ, DS, a.q + rows0 * n.d, q0, n.Tq, BQ, n.d);
            load_tile(sdY, DS, a.dy + rows0 * n.d, q0, n.Tq, BQ, n.d);
            if (t < BQ) {
                const bool in = q0 + t < n.Tq;
                sRow[t] = in ? a.row_max[rows0 + q0 + t] : 0.0f;
                sRow[BQ + t] = in ? a.row_sum[rows0 + q0 + t] : 1.0f;
                sRow[2 * BQ + t] = in ? a.D[rows0 + q0 + t] : 0.0f;
            }
            __syncthreads();
            const int64_t r = q0 + trow;   // entries: query trow, keys lane + 8·cc
#pragma unroll
            for (int cc = 0; cc < BK / LANES; ++cc) {
                const int col = lane + LANES * cc;
                const int64_t j = k0 + col;
                float p = 0.0f, ds = 0.0f;
                if (r < n.Tq && j < n.Tk && j <= n.off + r)
                    p_and_ds(p, ds, sQq + trow * DS, sKq + col * DS, sdY + trow * DS, sV + col * DS, head, r, j,
                             sRow[trow], sRow[BQ + trow], sRow[2 * BQ + trow], lo, hi, n, c);
                sP[trow * PS + col] = p;
                sdS[trow * PS + col] = ds;
            }
            __syncthreads();
            // Accumulate: key trow of the tile, features lane + 8·cc, queries in order.
            const int rows = int(min_i64(BQ, n.Tq - q0));
            for (int i = 0; i < rows; ++i) {
                const float p = sP[i * PS + trow], ds = sdS[i * PS + trow];
#pragma unroll
                for (int cc = 0; cc < PER; ++cc) {
                    const int e = lane + LANES * cc;
                    if (e < n.d) {
                        acc_dv[cc] += p * sdY[i * DS + e];
                        acc_dk[cc] += ds * sQ[i * DS + e];
                    }
                }
            }
        }
    }
    const int64_t j = k0 + trow;
    if (j >= n.Tk) return;
#pragma unroll
    for (int cc = 0; cc < PER; ++cc) {
        const int e = lane + LANES * cc;
        if (e >= n.d) continue;
        if (a.dk) a.dk[kv + j * n.d + e] = store_from<DT>(acc_dk[cc]);
        if (a.dv) a.dv[kv + j * n.d + e] = store_from<DT>(acc_dv[cc]);
    }
}

// dq of 32 query rows of one head, over the key tiles of their causal window.
template <typename DT, int DMAX>
__global__ void __launch_bounds__(THREADS) dq_kernel(const BackwardArgs<DT> a) {
    constexpr int DS = DMAX + 1;
    constexpr int PER = DMAX / LANES;
    extern __shared__ float smem[];
    float* sQq = smem;             // (BQ, DS) operand q
    float* sdY = sQq + BQ * DS;    // (BQ, DS) dy
    float* sKq = sdY + BQ * DS;    // (BK, DS) operand k
    float* sK = sKq + BK * DS;     // (BK, DS) unquantized k
    float* sV = sK + BK * DS;      // (BK, DS) unquantized v
    float* sdS = sV + BK * DS;     // (BQ, PS)

    const Dims& n = a.n;
    const OpticalAttentionConfig& c = a.c;
    const int t = threadIdx.x, row = t / LANES, lane = t % LANES;
    const int64_t b = blockIdx.z, h = blockIdx.y, r0 = int64_t(blockIdx.x) * BQ;
    const int64_t r = r0 + row, head = b * n.H + h, rows0 = head * n.Tq;
    const bool active = r < n.Tq;
    const int64_t last = active ? n.off + r : -1;
    const int64_t key_end = n.off + min_i64(r0 + BQ, n.Tq);
    const int64_t kv = (b * n.Hkv + h / n.rep) * n.Tk * n.d;
    const float lo = c.quantized ? a.qk_mm[0] : 0.0f, hi = c.quantized ? a.qk_mm[1] : 0.0f;
    const float m = active ? a.row_max[rows0 + r] : 0.0f, l = active ? a.row_sum[rows0 + r] : 1.0f;
    const float D = active ? a.D[rows0 + r] : 0.0f;
    load_tile(sQq, DS, a.qq + rows0 * n.d, r0, n.Tq, BQ, n.d);
    load_tile(sdY, DS, a.dy + rows0 * n.d, r0, n.Tq, BQ, n.d);
    float acc[PER];
#pragma unroll
    for (int cc = 0; cc < PER; ++cc) acc[cc] = 0.0f;
    for (int64_t k0 = 0; k0 < key_end; k0 += BK) {
        __syncthreads();
        load_tile(sKq, DS, a.kq + kv, k0, n.Tk, BK, n.d);
        load_tile(sK, DS, a.k + kv, k0, n.Tk, BK, n.d);
        load_tile(sV, DS, a.v + kv, k0, n.Tk, BK, n.d);
        __syncthreads();
#pragma unroll
        for (int cc = 0; cc < BK / LANES; ++cc) {
            const int col = lane + LANES * cc;
            const int64_t j = k0 + col;
            float p = 0.0f, ds = 0.0f;
            if (j <= last)
                p_and_ds(p, ds, sQq + row * DS, sKq + col * DS, sdY + row * DS, sV + col * DS, head, r, j, m, l,
                         D, lo, hi, n, c);
            sdS[row * PS + col] = ds;
        }
        __syncthreads();
        const int64_t cols = min_i64(BK, last - k0 + 1);
        for (int jj = 0; jj < cols; ++jj) {
            const float ds = sdS[row * PS + jj];
#pragma unroll
            for (int cc = 0; cc < PER; ++cc) {
                const int e = lane + LANES * cc;
                if (e < n.d) acc[cc] += ds * sK[jj * DS + e];
            }
        }
    }
    if (!active) return;
#pragma unroll
    for (int cc = 0; cc < PER; ++cc) {
        const int e = lane + LANES * cc;
        if (e < n.d) a.dq[(rows0 + r) * n.d + e] = store_from<DT>(acc[cc]);
    }
}

Dims dims_of(const Tensor& q, const Tensor& k) {
    const auto [B, H, Tq, d] = q.dims<4>();
    const int64_t Hkv = k.size(1), Tk = k.size(2);
    return {B, H, Hkv, Tq, Tk, d, H / Hkv, Tk - Tq};
}

template <typename T>
const device_t<T>* ptr_or_null(const Tensor& t) {
    return t.defined() ? data_ptr<T>(t) : nullptr;
}
float* f32_or_null(const Tensor& t) { return t.defined() ? static_cast<float*>(t.data_ptr()) : nullptr; }
uint32_t* keys_or_null(const Tensor& t) { return t.defined() ? static_cast<uint32_t*>(t.data_ptr()) : nullptr; }

// Calls f with the head-size bound DMAX ∈ {32, 64, 128} that covers d.
template <typename F>
void dispatch_head_size(int64_t d, const char* op, F&& f) {
    check(d <= max_head_size, op,
          concat_message({"head size d = ", std::to_string(d), " exceeds the CUDA kernels' limit of ",
                          std::to_string(max_head_size)}));
    if (d <= 32) f.template operator()<32>();
    else if (d <= 64) f.template operator()<64>();
    else f.template operator()<128>();
}

template <typename F>
void dispatch_operand(DType dt, const char* op, F&& f) {
    switch (dt) {
    case DType::f32: f.template operator()<float>(); return;
    case DType::bf16: f.template operator()<bf16>(); return;
    case DType::f16: f.template operator()<f16>(); return;
    default:
        throw Error(concat_message({op, ": expected an operand dtype (f32, bf16, f16), got ", dtype_name(dt)}));
    }
}

template <typename K>
void allow_shared(K kernel, size_t bytes) {
    LUMEN_CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, int(bytes)));
}

}  // namespace

void optical_attention_forward(const OpticalAttentionForward& f, const OpticalAttentionConfig& c) {
    const Dims n = dims_of(f.q, f.k);
    const int device = f.q.device().index;
    set_device(device);
    cudaStream_t stream = compute_stream(device);
    uint32_t* qk_stat = keys_or_null(f.qk_stat);
    uint32_t* av_stat = keys_or_null(f.av_stat);
    if (qk_stat || av_stat) {
        stats_init_kernel<<<1, 32, 0, stream>>>(qk_stat, av_stat);
        check_launch("stats_init_kernel");
    }
    if (n.B * n.H * n.Tq > 0) {
        dispatch_operand(f.q.dtype(), "optical_attention_forward", [&]<typename T>() {
            using DT = device_t<T>;
            const ForwardArgs<DT> args{ptr_or_null<T>(f.q), ptr_or_null<T>(f.k), ptr_or_null<T>(f.v),
                                       ptr_or_null<T>(f.v_float), f32_or_null(f.qk_mm), f32_or_null(f.av_mm),
                                       f.y.defined() ? data_ptr<T>(f.y) : nullptr, f32_or_null(f.row_max),
                                       f32_or_null(f.row_sum), f32_or_null(f.pv), f32_or_null(f.scores), qk_stat,
                                       av_stat, n, c};
            dispatch_head_size(n.d, "optical_attention_forward", [&]<int DMAX>() {
                const size_t bytes = sizeof(float) * (4 * BQ * (DMAX + 1) + 2 * BQ * PS);
                const auto kernel = forward_kernel<DT, DMAX>;
                allow_shared(kernel, bytes);
                const dim3 grid(unsigned((n.Tq + BQ - 1) / BQ), unsigned(n.H), unsigned(n.B));
                kernel<<<grid, THREADS, bytes, stream>>>(args);
            });
        });
        check_launch("optical_attention forward_kernel", {{"q", f.q}, {"k", f.k}, {"v", f.v}});
    }
    if (qk_stat || av_stat) {
        stats_decode_kernel<<<1, 32, 0, stream>>>(qk_stat, av_stat);
        check_launch("stats_decode_kernel");
    }
}

void optical_attention_backward(const OpticalAttentionBackward& g, const OpticalAttentionConfig& c) {
    const Dims n = dims_of(g.q, g.k);
    const int device = g.dy.device().index;
    set_device(device);
    cudaStream_t stream = compute_stream(device);
    const bool want_kv = g.dk.defined() || g.dv.defined();
    if (n.B * n.H * n.Tq == 0 || (!g.dq.defined() && !want_kv)) {
        // No query row: the keys get zero gradients.
        for (Tensor grad : {g.dk, g.dv})
            if (grad.defined()) grad.zero_();
        return;
    }
    Tensor D = Tensor::empty({n.B, n.H, n.Tq}, DType::f32, g.dy.device());   // (B, H, Tq)
    dispatch_operand(g.q.dtype(), "optical_attention_backward", [&]<typename T>() {
        using DT = device_t<T>;
        const int64_t rows = n.B * n.H * n.Tq;
        delta_kernel<DT><<<unsigned((rows * 32 + 255) / 256), 256, 0, stream>>>(
            rows, n.d, data_ptr<T>(g.dy), static_cast<const float*>(g.pv.data_ptr()), static_cast<float*>(D.data_ptr()));
        check_launch("optical_attention delta_kernel", {{"dy", g.dy}, {"pv", g.pv}});
        const BackwardArgs<DT> args{data_ptr<T>(g.dy), data_ptr<T>(g.q), data_ptr<T>(g.k), data_ptr<T>(g.v),
                                    data_ptr<T>(g.qq), data_ptr<T>(g.kq), f32_or_null(g.qk_mm),
                                    f32_or_null(g.row_max), f32_or_null(g.row_sum),
                                    static_cast<const float*>(D.data_ptr()),
                                    g.dq.defined() ? data_ptr<T>(g.dq) : nullptr,
                                    g.dk.defined() ? data_ptr<T>(g.dk) : nullptr,
                                    g.dv.defined() ? data_ptr<T>(g.dv) : nullptr, n, c};
        dispatch_head_size(n.d, "optical_attention_backward", [&]<int DMAX>() {
            if (want_kv && n.Tk > 0) {
                const size_t bytes = sizeof(float) * (5 * BQ * (DMAX + 1) + 2 * BQ * PS + 3 * BQ);
                const auto kernel = dkdv_kernel<DT, DMAX>;
                allow_shared(kernel, bytes);
                const dim3 grid(unsigned((n.Tk + BK - 1) / BK), unsigned(n.Hkv), unsigned(n.B));
                kernel<<<grid, THREADS, bytes, stream>>>(args);
                check_launch("optical_attention dkdv_kernel", {{"dy", g.dy}, {"q", g.q}, {"k", g.k}});
            }
            if (g.dq.defined()) {
                const size_t bytes = sizeof(float) * (5 * BQ * (DMAX + 1) + BQ * PS);
                const auto kernel = dq_kernel<DT, DMAX>;
                allow_shared(kernel, bytes);
                const dim3 grid(unsigned((n.Tq + BQ - 1) / BQ), unsigned(n.H), unsigned(n.B));
                kernel<<<grid, THREADS, bytes, stream>>>(args);
                check_launch("optical_attention dq_kernel", {{"dy", g.dy}, {"q", g.q}, {"k", g.k}});
            }
        });
    });
}

}  // namespace lumen::cuda
