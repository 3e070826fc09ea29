// cuda/optim_adafactor.cu: the fused Adafactor step (optim/adafactor.h; reference
// cpu::adafactor_step in optim/adafactor.cpp). Four launches per group over one multi-tensor
// table whose "elements" are tiles (chunk size 1, so chunk.begin is the tile's index in its
// tensor):
//   factored tensor (batch × rows × cols): tiles of kSegRows rows × kStripCols columns of one
//     batch matrix; unfactored tensor (dim ≤ 1): tiles of kVecTile elements.
//   1. moments: factored: per tile, partial sums of G2 per row (over the strip) and per column
//      (over the segment), and of P²; unfactored: V ← b·V + (1 − b)·G2, partial sums of U² and P².
//   2. factors (factored): the strip-0 tile of a segment finishes R for its rows (the strips'
//      partials in order) and sums the new R over them; the segment-0 tile of a strip finishes C.
//   3. rms (factored): mean(R) from the segments' sums, then the tile's partial sum of U².
//   4. apply: every block adds its tensor's P² and U² partials (in order), derives α and the
//      clip divisor, recomputes its U and updates P (and M).
// Every sum is in double in a fixed order (thread-strided, then a fixed tree), so the result does
// not depend on scheduling; element formulas are optim/adafactor.h's unfused f32 operations, as on
// the CPU. Partial sums live in the rule's f64 scratch buffer: no host synchronisation. A bad step
// returns before writing anything.
//
// Slot: ptr {param, grad, R or V, C (null: unfactored), exp_avg (null: no beta1), scratch};
// numel = the tensor's tile count; aux = rows << 32 | cols (factored) or numel (unfactored).
// Scratch of a factored tensor (T tiles, B batch, S segments, K strips per batch):
//   rowpart [B·rows·K] · colpart [B·S·cols] · p2 [T] · u2 [T] · rsum [B·S];  unfactored: p2 [T] · u2 [T].
#include "cuda/common.cuh"
#include "cuda/multi_tensor.h"
#include "optim/adafactor.h"

namespace lumen::cuda {
namespace {

constexpr int kThreads = 256;
constexpr int kWarps = kThreads / 32;
constexpr int64_t kSegRows = 128;
constexpr int64_t kStripCols = 256;
constexpr int kColsPerLane = int(kStripCols / 32);
constexpr int64_t kVecTile = 32768;

struct Tile {
    bool factored;
    int64_t rows, cols, segs, strips, batch;
    int64_t k, seg, strip;        // factored: batch matrix, segment, strip of this tile
    int64_t i0, i1, j0, j1;       // factored: rows [i0, i1), columns [j0, j1) of matrix k
    int64_t numel, tiles;         // the tensor's
    double *rowpart, *colpart, *p2, *u2, *rsum;
};

__host__ __device__ inline int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }
__device__ inline int64_t min_i64(int64_t a, int64_t b) { return a < b ? a : b; }

__device__ Tile decode(const TensorSlot& s, int64_t tile) {
    Tile t{};
    t.tiles = s.numel;
    double* scratch = static_cast<double*>(s.ptr[5]);
    t.factored = s.ptr[3] != nullptr;
    if (!t.factored) {
        t.numel = s.aux;
        t.p2 = scratch;
        t.u2 = scratch + t.tiles;
        t.i0 = tile * kVecTile;
        t.i1 = min_i64(t.numel, t.i0 + kVecTile);
        return t;
    }
    t.rows = s.aux >> 32;
    t.cols = s.aux & 0xffffffffll;
    t.segs = ceil_div(t.rows, kSegRows);
    t.strips = ceil_div(t.cols, kStripCols);
    t.batch = t.tiles / (t.segs * t.strips);
    t.numel = t.batch * t.rows * t.cols;
    t.k = tile / (t.segs * t.strips);
    t.seg = tile % (t.segs * t.strips) / t.strips;
    t.strip = tile % t.strips;
    t.i0 = t.seg * kSegRows;
    t.i1 = min_i64(t.rows, t.i0 + kSegRows);
    t.j0 = t.strip * kStripCols;
    t.j1 = min_i64(t.cols, t.j0 + kStripCols);
    t.rowpart = scratch;
    t.colpart = t.rowpart + t.batch * t.rows * t.strips;
    t.p2 = t.colpart + t.batch * t.segs * t.cols;
    t.u2 = t.p2 + t.tiles;
    t.rsum = t.u2 + t.tiles;
    return t;
}

// Lane 0 gets the warp's sum (a fixed tree).
__device__ double warp_sum(double x) {
    for (int offset = 16; offset > 0; offset >>= 1) x += __shfl_down_sync(0xffffffffu, x, offset);
    return x;
}

// Every thread gets the block's sum of x (warps' trees, then the warps in order).
__device__ double block_sum(double x, double* shared) {
    x = warp_sum(x);
    if (threadIdx.x % 32 == 0) shared[threadIdx.x / 32] = x;
    __syncthreads();
    if (threadIdx.x == 0) {
        double total = 0.0;
        for (int w = 0; w < kWarps; ++w) total += shared[w];
        shared[kWarps] = total;
    }
    __syncthreads();
    const double total = shared[kWarps];
    __syncthreads();
    return total;
}

// Σ a[0..n) with the threads' strided partials, then block_sum.
__device__ double block_sum_of(const double* a, int64_t n, double* shared) {
    double acc = 0.0;
    for (int64_t i = threadIdx.x; i < n; i += kThreads) acc += a[i];
    return block_sum(acc, shared);
}

struct StepScalars {
    int64_t t;
    float gamma;
    optim::AdafactorDecay decay;
};

__device__ StepScalars step_scalars(const optim::AdafactorArgs& args, const float* flags, const int64_t* t_before) {
    StepScalars s;
    s.t = *t_before + 1;
    s.gamma = flags[0];
    s.decay = optim::adafactor_decay(args, s.t);
    return s;
}

__global__ void __launch_bounds__(kThreads)
adafactor_moments_kernel(const TensorSlot* slots, const TensorChunk* chunks, optim::AdafactorArgs args,
                         const float* flags, const int64_t* t_before) {
    if (flags[1] != 0.0f) return;
    __shared__ double shared[kWarps + 1];
    __shared__ double cols[kWarps][kStripCols];
    const StepScalars sc = step_scalars(args, flags, t_before);
    const TensorChunk c = chunks[blockIdx.x];
    const TensorSlot& s = slots[c.slot];
    const Tile t = decode(s, c.begin);
    const float* p = static_cast<const float*>(s.ptr[0]);
    const float* g = static_cast<const float*>(s.ptr[1]);
    if (!t.factored) {
        float* V = static_cast<float*>(s.ptr[2]);
        double p2 = 0.0, u2 = 0.0;
        for (int64_t e = t.i0 + threadIdx.x; e < t.i1; e += kThreads) {
            const float gv = optim::f32::mul(g[e], sc.gamma);
            const float v = sc.decay.ema(V[e], sc.decay.g2(gv));
            V[e] = v;
            const double u = optim::f32::mul(optim::inv_sqrt(v), gv);
            u2 += u * u;
            p2 += double(p[e]) * double(p[e]);
        }
        p2 = block_sum(p2, shared);
        u2 = block_sum(u2, shared);
        if (threadIdx.x == 0) t.p2[c.begin] = p2, t.u2[c.begin] = u2;
        return;
    }
    const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
    double col_acc[kColsPerLane] = {};
    double p2 = 0.0;
    for (int64_t i = t.i0 + warp; i < t.i1; i += kWarps) {
        const int64_t row = t.k * t.rows + i;
        const float* gr = g + row * t.cols;
        const float* pr = p + row * t.cols;
        double row_acc = 0.0;
#pragma unroll
        for (int q = 0; q < kColsPerLane; ++q) {
            const int64_t j = t.j0 + lane + 32 * q;
            if (j < t.j1) {
                const double x = sc.decay.g2(optim::f32::mul(gr[j], sc.gamma));
                row_acc += x;
                col_acc[q] += x;
                p2 += double(pr[j]) * double(pr[j]);
            }
        }
        row_acc = warp_sum(row_acc);
        if (lane == 0) t.rowpart[row * t.strips + t.strip] = row_acc;
    }
#pragma unroll
    for (int q = 0; q < kColsPerLane; ++q) cols[warp][lane + 32 * q] = col_acc[q];
    __syncthreads();
    const int64_t j = t.j0 + threadIdx.x;
    if (j < t.j1) {
        double sum = 0.0;
        for (int w = 0; w < kWarps; ++w) sum += cols[w][threadIdx.x];
        t.colpart[(t.k * t.segs + t.seg) * t.cols + j] = sum;
    }
    p2 = block_sum(p2, shared);
    if (threadIdx.x == 0) t.p2[c.begin] = p2;
}

__global__ void __launch_bounds__(kThreads)
adafactor_factors_kernel(const TensorSlot* slots, const TensorChunk* chunks, optim::AdafactorArgs args,
                         const float* flags, const int64_t* t_before) {
    if (flags[1] != 0.0f) return;
    __shared__ double shared[kWarps + 1];
    const StepScalars sc = step_scalars(args, flags, t_before);
    const TensorChunk c = chunks[blockIdx.x];
    const TensorSlot& s = slots[c.slot];
    const Tile t = decode(s, c.begin);
    if (!t.factored) return;
    if (t.strip == 0) {  // R of this segment's rows, and their sum
        float* R = static_cast<float*>(s.ptr[2]);
        double r_sum = 0.0;
        for (int64_t i = t.i0 + threadIdx.x; i < t.i1; i += kThreads) {
            const int64_t row = t.k * t.rows + i;
            double sum = 0.0;
            for (int64_t q = 0; q < t.strips; ++q) sum += t.rowpart[row * t.strips + q];
            const float r = sc.decay.ema(R[row], float(sum / double(t.cols)));
            R[row] = r;
            r_sum += r;
        }
        r_sum = block_sum(r_sum, shared);
        if (threadIdx.x == 0) t.rsum[t.k * t.segs + t.seg] = r_sum;
    }
    if (t.seg == 0) {  // C of this strip's columns
        float* C = static_cast<float*>(s.ptr[3]);
        const int64_t j = t.j0 + threadIdx.x;
        if (j < t.j1) {
            double sum = 0.0;
            for (int64_t q = 0; q < t.segs; ++q) sum += t.colpart[(t.k * t.segs + q) * t.cols + j];
            C[t.k * t.cols + j] = sc.decay.ema(C[t.k * t.cols + j], float(sum / double(t.rows)));
        }
    }
}

// The tile's row and column factors, in shared memory (factored tensors).
__device__ void load_factors(const TensorSlot& s, const Tile& t, float* row_factor, float* col_factor,
                             double* shared) {
    const float* R = static_cast<const float*>(s.ptr[2]);
    const float* C = static_cast<const float*>(s.ptr[3]);
    const float mean_r = float(block_sum_of(t.rsum + t.k * t.segs, t.segs, shared) / double(t.rows));
    for (int64_t i = t.i0 + threadIdx.x; i < t.i1; i += kThreads)
        row_factor[i - t.i0] = optim::adafactor_row_factor(R[t.k * t.rows + i], mean_r);
    const int64_t j = t.j0 + threadIdx.x;
    if (j < t.j1) col_factor[threadIdx.x] = optim::inv_sqrt(C[t.k * t.cols + j]);
    __syncthreads();
}

__global__ void __launch_bounds__(kThreads)
adafactor_rms_kernel(const TensorSlot* slots, const TensorChunk* chunks, optim::AdafactorArgs args,
                     const float* flags, const int64_t* t_before) {
    if (flags[1] != 0.0f) return;
    __shared__ double shared[kWarps + 1];
    __shared__ float row_factor[kSegRows], col_factor[kStripCols];
    const float gamma = flags[0];
    const TensorChunk c = chunks[blockIdx.x];
    const TensorSlot& s = slots[c.slot];
    const Tile t = decode(s, c.begin);
    if (!t.factored) return;
    load_factors(s, t, row_factor, col_factor, shared);
    const float* g = static_cast<const float*>(s.ptr[1]);
    const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
    double u2 = 0.0;
    for (int64_t i = t.i0 + warp; i < t.i1; i += kWarps) {
        const float* gr = g + (t.k * t.rows + i) * t.cols;
        for (int64_t j = t.j0 + lane; j < t.j1; j += 32) {
            const double u = optim::adafactor_u(row_factor[i - t.i0], col_factor[j - t.j0], optim::f32::mul(gr[j], gamma));
            u2 += u * u;
        }
    }
    u2 = block_sum(u2, shared);
    if (threadIdx.x == 0) t.u2[c.begin] = u2;
}

__global__ void __launch_bounds__(kThreads)
adafactor_apply_kernel(const TensorSlot* slots, const TensorChunk* chunks, optim::AdafactorArgs args,
                       const float* flags, const int64_t* t_before) {
    if (flags[1] != 0.0f) return;
    __shared__ double shared[kWarps + 1];
    __shared__ float row_factor[kSegRows], col_factor[kStripCols];
    const int64_t step = *t_before + 1;
    const float gamma = flags[0];
    const TensorChunk c = chunks[blockIdx.x];
    const TensorSlot& s = slots[c.slot];
    const Tile t = decode(s, c.begin);
    const double sum_p2 = block_sum_of(t.p2, t.tiles, shared);
    const double sum_u2 = block_sum_of(t.u2, t.tiles, shared);
    const double alpha = optim::adafactor_alpha(args, step, sum_p2, t.numel);
    const optim::AdafactorApply apply = optim::adafactor_apply(args, alpha, sum_u2, t.numel);
    float* p = static_cast<float*>(s.ptr[0]);
    const float* g = static_cast<const float*>(s.ptr[1]);
    float* M = static_cast<float*>(s.ptr[4]);
    if (!t.factored) {
        const float* V = static_cast<const float*>(s.ptr[2]);
        for (int64_t e = t.i0 + threadIdx.x; e < t.i1; e += kThreads)
            apply(p[e], M ? M + e : nullptr, optim::f32::mul(optim::inv_sqrt(V[e]), optim::f32::mul(g[e], gamma)));
        return;
    }
    load_factors(s, t, row_factor, col_factor, shared);
    const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
    for (int64_t i = t.i0 + warp; i < t.i1; i += kWarps) {
        const int64_t row = t.k * t.rows + i;
        for (int64_t j = t.j0 + lane; j < t.j1; j += 32) {
            const int64_t e = row * t.cols + j;
            apply(p[e], M ? M + e : nullptr,
                  optim::adafactor_u(row_factor[i - t.i0], col_factor[j - t.j0], optim::f32::mul(g[e], gamma)));
        }
    }
}

}  // namespace

void adafactor_step(MultiTensorTable& table, Tensor& scratch, const std::vector<optim::AdafactorTensors>& tensors,
                    const optim::AdafactorArgs& args, const float* flags, const int64_t* t_before, int device) {
    std::vector<TensorSlot> slots;
    std::vector<int64_t> offsets;  // into scratch, in doubles
    int64_t total = 0;
    for (const optim::AdafactorTensors& x : tensors) {
        const int64_t n = x.param.numel();
        if (n == 0) continue;
        TensorSlot s{};
        s.ptr[0] = x.param.data_ptr();
        s.ptr[1] = x.grad.data_ptr();
        s.ptr[4] = x.exp_avg.defined() ? x.exp_avg.data_ptr() : nullptr;
        int64_t need = 0;
        if (x.row.defined()) {
            const optim::FactoredShape f = optim::factored_shape(x.param);
            check(f.rows < (int64_t(1) << 31) && f.cols < (int64_t(1) << 31), "adafactor_step",
                  "a factored dimension of 2^31 or more", {{"param", x.param}});
            const int64_t segs = ceil_div(f.rows, kSegRows), strips = ceil_div(f.cols, kStripCols);
            s.ptr[2] = x.row.data_ptr();
            s.ptr[3] = x.col.data_ptr();
            s.numel = f.batch * segs * strips;
            s.aux = (f.rows << 32) | f.cols;
            need = f.batch * f.rows * strips + f.batch * segs * f.cols + 2 * s.numel + f.batch * segs;
        } else {
            s.ptr[2] = x.sq.data_ptr();
            s.ptr[3] = nullptr;
            s.numel = ceil_div(n, kVecTile);
            s.aux = n;
            need = 2 * s.numel;
        }
        slots.push_back(s);
        offsets.push_back(total);
        total += need;
    }
    if (slots.empty()) return;
    const Device dev = Device::cuda(device);
    if (!scratch.defined() || scratch.numel() < total || scratch.device() != dev)
        scratch = Tensor::empty({total}, DType::f64, dev);
    double* base = static_cast<double*>(scratch.data_ptr());
    for (size_t i = 0; i < slots.size(); ++i) slots[i].ptr[5] = base + offsets[i];
    table.set(slots, 1, dev);  // NOTE: chunk size 1: one chunk per tile
    set_device(device);
    cudaStream_t stream = compute_stream(device);
    const unsigned grid = unsigned(table.num_chunks());
    adafactor_moments_kernel<<<grid, kThreads, 0, stream>>>(table.slots(), table.chunks(), args, flags, t_before);
    check_launch("adafactor_moments_kernel");
    adafactor_factors_kernel<<<grid, kThreads, 0, stream>>>(table.slots(), table.chunks(), args, flags, t_before);
    check_launch("adafactor_factors_kernel");
    adafactor_rms_kernel<<<grid, kThreads, 0, stream>>>(table.slots(), table.chunks(), args, flags, t_before);
    check_launch("adafactor_rms_kernel");
    adafactor_apply_kernel<<<grid, kThreads, 0, stream>>>(table.slots(), table.chunks(), args, flags, t_before);
    check_launch("adafactor_apply_kernel");
}

}  // namespace lumen::cuda
