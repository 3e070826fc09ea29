// core/cpu/optical_attention.cpp: the CPU reference of the optical attention kernels (formulas and
// conventions in core/kernels/optical_attention.h).
//
// Naive on purpose: each query row's scores S and probabilities P are held in full (Tk floats
// each), and every sum runs in the order the header fixes (e ascending for S, j ascending for Y),
// one rounding per product and per sum, so the CUDA kernels, which keep that order, reproduce S
// bit for bit. The forward runs (b, h) pairs on OpenMP threads; the backward runs (b, kv head)
// pairs, each looping over the heads of its group in order, so dk and dv need no atomics.
#include "core/cpu/loops.h"
#include "core/kernels/optical_attention.h"

#include <cmath>
#include <limits>
#include <vector>

namespace lumen::cpu {
namespace {

using optical::add_rn;
using optical::mul_rn;
using optical::sub_rn;

struct Dims {
    int64_t B, H, Hkv, Tq, Tk, d, rep, off;
};

Dims dims_of(const Tensor& q, const Tensor& k) {
    const auto [B, H, Tq, d] = q.dims<4>();
    const int64_t Hkv = k.size(1), Tk = k.size(2);
    return {B, H, Hkv, Tq, Tk, d, H / Hkv, Tk - Tq};
}

// Exact [min, max] of finite floats, kept as order keys (so -0 < +0, as the CUDA atomics).
struct MinMax {
    uint32_t lo = optical::min_identity_key, hi = optical::max_identity_key;
    void add(float x) {
        if (!std::isfinite(x)) return;
        const uint32_t key = optical::order_key(x);
        lo = std::min(lo, key);
        hi = std::max(hi, key);
    }
    void merge(const MinMax& o) {
        lo = std::min(lo, o.lo);
        hi = std::max(hi, o.hi);
    }
    void store(const Tensor& out) const {
        float* p = static_cast<float*>(out.data_ptr());
        p[0] = optical::from_order_key(lo);
        p[1] = optical::from_order_key(hi);
    }
};

float range_at(const Tensor& mm, int i) { return static_cast<const float*>(mm.data_ptr())[i]; }

template <typename T>
const T* ptr(const Tensor& t) {
    return t.defined() ? static_cast<const T*>(t.data_ptr()) : nullptr;
}
template <typename T>
T* mut(const Tensor& t) {
    return t.defined() ? static_cast<T*>(t.data_ptr()) : nullptr;
}

// The scores of query row r of head (b, h) over its causal keys j ≤ last: z[j] = c·S (S the
// quantized accumulator, or the float one in the calibration pass).
template <typename T>
struct Scores {
    const Dims& n;
    const OpticalAttentionConfig& c;
    const T* q;  // (B, H, Tq, d)
    const T* k;  // (B, Hkv, Tk, d)
    float lo, hi;
    optical::QuantParams out;

    // acc_S of (b, h, r, j): e ascending, uncontracted.
    float accumulate(int64_t b, int64_t h, int64_t r, int64_t j) const {
        const T* qr = q + ((b * n.H + h) * n.Tq + r) * n.d;
        const T* kj = k + ((b * n.Hkv + h / n.rep) * n.Tk + j) * n.d;
        float acc = 0.0f;
        for (int64_t e = 0; e < n.d; ++e) acc = add_rn(acc, mul_rn(convert<float>(qr[e]), convert<float>(kj[e])));
        return acc;
    }
    // S from acc_S: the dithered quantizer, or acc itself in the float pass.
    float quantize(float acc, int64_t b, int64_t h, int64_t r, int64_t j) const {
        if (!c.quantized) return acc;
        const uint64_t i = uint64_t(((b * n.H + h) * n.Tq + r) * n.Tk + j);
        return optical::quantize_dithered(acc, lo, hi, attention_qk_offset(c.dither, i), out);
    }
};

template <typename T>
void forward_impl(const OpticalAttentionForward& f, const OpticalAttentionConfig& c) {
    const Dims n = dims_of(f.q, f.k);
    const optical::QuantParams out{c.levels, false, 0.0f};
    const bool quantized = c.quantized;
    const Scores<T> scores{n, c, ptr<T>(f.q), ptr<T>(f.k), quantized ? range_at(f.qk_mm, 0) : 0.0f,
                           quantized ? range_at(f.qk_mm, 1) : 0.0f, out};
    const float av_lo = quantized && f.av_mm.defined() ? range_at(f.av_mm, 0) : 0.0f;
    const float av_hi = quantized && f.av_mm.defined() ? range_at(f.av_mm, 1) : 0.0f;
    const T* v = ptr<T>(f.v);
    const T* vf = ptr<T>(f.v_float);
    T* y = mut<T>(f.y);
    float* row_max = mut<float>(f.row_max);
    float* row_sum = mut<float>(f.row_sum);
    float* pv = mut<float>(f.pv);
    float* s_out = mut<float>(f.scores);
    const int64_t heads = n.B * n.H;
    std::vector<MinMax> qk_stats(static_cast<size_t>(heads)), av_stats(static_cast<size_t>(heads));
    parallel_for(heads, 1, [&](int64_t begin, int64_t end) {
        std::vector<float> z(size_t(n.Tk)), p(size_t(n.Tk)), pq(size_t(n.Tk));
        std::vector<float> acc(size_t(n.d)), acc_pv(size_t(n.d));
        for (int64_t bh = begin; bh < end; ++bh) {
            const int64_t b = bh / n.H, h = bh % n.H;
            const T* vh = v + (b * n.Hkv + h / n.rep) * n.Tk * n.d;            // (Tk, d)
            const T* vfh = vf ? vf + (b * n.Hkv + h / n.rep) * n.Tk * n.d : nullptr;
            MinMax& qk_stat = qk_stats[size_t(bh)];
            MinMax& av_stat = av_stats[size_t(bh)];
            for (int64_t r = 0; r < n.Tq; ++r) {
                const int64_t row = bh * n.Tq + r, last = n.off + r;   // causal keys 0..last
                for (int64_t j = 0; j <= last; ++j) {
                    const float a = scores.accumulate(b, h, r, j);
                    const float s = scores.quantize(a, b, h, r, j);
                    qk_stat.add(c.stats_of_quantized ? s : a);
                    if (s_out) s_out[row * n.Tk + j] = s;
                    z[size_t(j)] = mul_rn(c.scale, s);
                }
                float m = -std::numeric_limits<float>::infinity();
                for (int64_t j = 0; j <= last; ++j) m = std::fmax(m, z[size_t(j)]);
                float l = 0.0f;
                for (int64_t j = 0; j <= last; ++j) l = add_rn(l, expf(sub_rn(z[size_t(j)], m)));
                for (int64_t j = 0; j <= last; ++j) {
                    p[size_t(j)] = attention_probability(z[size_t(j)], m, l);
                    pq[size_t(j)] = quantized ? optical::quantize_det(p[size_t(j)], 0.0f, 1.0f, out) : p[size_t(j)];
                }
                if (row_max) row_max[row] = m;
                if (row_sum) row_sum[row] = l;
                std::fill(acc.begin(), acc.end(), 0.0f);
                std::fill(acc_pv.begin(), acc_pv.end(), 0.0f);
                for (int64_t j = 0; j <= last; ++j) {   // j ascending for every e
                    const T* vj = vh + j * n.d;
                    for (int64_t e = 0; e < n.d; ++e)
                        acc[size_t(e)] = add_rn(acc[size_t(e)], mul_rn(pq[size_t(j)], convert<float>(vj[e])));
                    if (pv) {
                        const T* vfj = vfh + j * n.d;
                        for (int64_t e = 0; e < n.d; ++e)
                            acc_pv[size_t(e)] = add_rn(acc_pv[size_t(e)], mul_rn(p[size_t(j)], convert<float>(vfj[e])));
                    }
                }
                for (int64_t e = 0; e < n.d; ++e) {
                    const float a = acc[size_t(e)];
                    float out_v = a;
                    if (quantized) {
                        const uint64_t i = uint64_t(row * n.d + e);
                        out_v = optical::quantize_dithered(a, av_lo, av_hi, attention_av_offset(c.dither, i), out);
                    }
                    av_stat.add(c.stats_of_quantized ? out_v : a);
                    if (y) y[row * n.d + e] = convert<T>(out_v);
                    if (pv) pv[row * n.d + e] = acc_pv[size_t(e)];
                }
            }
        }
    });
    MinMax qk_all, av_all;
    for (int64_t bh = 0; bh < heads; ++bh) {
        qk_all.merge(qk_stats[size_t(bh)]);
        av_all.merge(av_stats[size_t(bh)]);
    }
    if (f.qk_stat.defined()) qk_all.store(f.qk_stat);
    if (f.av_stat.defined()) av_all.store(f.av_stat);
}

template <typename T>
void backward_impl(const OpticalAttentionBackward& g, const OpticalAttentionConfig& c) {
    const Dims n = dims_of(g.q, g.k);
    const optical::QuantParams out{c.levels, false, 0.0f};
    const Scores<T> scores{n, c, ptr<T>(g.qq), ptr<T>(g.kq), range_at(g.qk_mm, 0), range_at(g.qk_mm, 1), out};
    const T* q = ptr<T>(g.q);
    const T* k = ptr<T>(g.k);
    const T* v = ptr<T>(g.v);
    const T* dy = ptr<T>(g.dy);
    const float* pv = ptr<float>(g.pv);
    const float* row_max = ptr<float>(g.row_max);
    const float* row_sum = ptr<float>(g.row_sum);
    T* dq = mut<T>(g.dq);
    T* dk = mut<T>(g.dk);
    T* dv = mut<T>(g.dv);
    parallel_for(n.B * n.Hkv, 1, [&](int64_t begin, int64_t end) {
        std::vector<float> p(size_t(n.Tk)), dk_acc(size_t(n.Tk * n.d)), dv_acc(size_t(n.Tk * n.d));
        std::vector<float> dq_acc(size_t(n.d)), dyr(size_t(n.d)), qr(size_t(n.d));
        for (int64_t bkv = begin; bkv < end; ++bkv) {
            const int64_t b = bkv / n.Hkv, kvh = bkv % n.Hkv;
            const int64_t kv0 = bkv * n.Tk * n.d;                    // (Tk, d) of this kv head
            std::fill(dk_acc.begin(), dk_acc.end(), 0.0f);
            std::fill(dv_acc.begin(), dv_acc.end(), 0.0f);
            for (int64_t h = kvh * n.rep; h < (kvh + 1) * n.rep; ++h) {
                for (int64_t r = 0; r < n.Tq; ++r) {
                    const int64_t row = (b * n.H + h) * n.Tq + r, last = n.off + r;
                    for (int64_t e = 0; e < n.d; ++e) {
                        dyr[size_t(e)] = convert<float>(dy[row * n.d + e]);
                        qr[size_t(e)] = convert<float>(q[row * n.d + e]);
                    }
                    float D = 0.0f;
                    for (int64_t e = 0; e < n.d; ++e) D += dyr[size_t(e)] * pv[row * n.d + e];
                    std::fill(dq_acc.begin(), dq_acc.end(), 0.0f);
                    for (int64_t j = 0; j <= last; ++j) {
                        const float s = scores.quantize(scores.accumulate(b, h, r, j), b, h, r, j);
                        const float pj = attention_probability(mul_rn(c.scale, s), row_max[row], row_sum[row]);
                        const T* vj = v + kv0 + j * n.d;
                        const T* kj = k + kv0 + j * n.d;
                        float dp = 0.0f;
                        for (int64_t e = 0; e < n.d; ++e) dp += dyr[size_t(e)] * convert<float>(vj[e]);
                        const float ds = c.scale * pj * (dp - D);
                        float* dkj = dk_acc.data() + j * n.d;
                        float* dvj = dv_acc.data() + j * n.d;
                        for (int64_t e = 0; e < n.d; ++e) {
                            dq_acc[size_t(e)] += ds * convert<float>(kj[e]);
                            dkj[e] += ds * qr[size_t(e)];
                            dvj[e] += pj * dyr[size_t(e)];
                        }
                    }
                    if (dq)
                        for (int64_t e = 0; e < n.d; ++e) dq[row * n.d + e] = convert<T>(dq_acc[size_t(e)]);
                }
            }
            if (dk)
                for (int64_t i = 0; i < n.Tk * n.d; ++i) dk[kv0 + i] = convert<T>(dk_acc[size_t(i)]);
            if (dv)
                for (int64_t i = 0; i < n.Tk * n.d; ++i) dv[kv0 + i] = convert<T>(dv_acc[size_t(i)]);
        }
    });
}

// f32, bf16 and f16 operands (the GEMM operand dtypes).
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

}  // namespace

void optical_attention_forward(const OpticalAttentionForward& f, const OpticalAttentionConfig& c) {
    dispatch_operand(f.q.dtype(), "optical_attention_forward", [&]<typename T>() { forward_impl<T>(f, c); });
}

void optical_attention_backward(const OpticalAttentionBackward& g, const OpticalAttentionConfig& c) {
    dispatch_operand(g.q.dtype(), "optical_attention_backward", [&]<typename T>() { backward_impl<T>(g, c); });
}

}  // namespace lumen::cpu
