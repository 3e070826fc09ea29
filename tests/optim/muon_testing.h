// tests/optim/muon_testing.h: what the Muon tests share: φ⁵, a dense double matrix with the
// Newton–Schulz reference, an independent double-precision Muon step written from
// specs/optimizers.md §8, and the small parameter sets the tests step.
#pragma once

#include "tests/optim/optim_testing.h"

#include "core/kernels/reduce.h"
#include "optim/muon.h"

namespace lumen::muon_test {

using namespace lumen::optim_test;

inline constexpr double a_ = 3.4445, b_ = -4.7750, c_ = 2.0315;

inline double phi5(double x) {
    for (int i = 0; i < 5; ++i) x = a_ * x + b_ * x * x * x + c_ * x * x * x * x * x;
    return x;
}

// A dense row-major matrix in double.
struct Mat {
    int64_t rows = 0, cols = 0;
    std::vector<double> v;
    Mat() = default;
    Mat(int64_t r, int64_t c) : rows(r), cols(c), v(size_t(r * c), 0.0) {}
    double& operator()(int64_t i, int64_t j) { return v[size_t(i * cols + j)]; }
    double operator()(int64_t i, int64_t j) const { return v[size_t(i * cols + j)]; }
};

inline Mat transpose(const Mat& x) {
    Mat t(x.cols, x.rows);
    for (int64_t i = 0; i < x.rows; ++i)
        for (int64_t j = 0; j < x.cols; ++j) t(j, i) = x(i, j);
    return t;
}

inline Mat mul(const Mat& x, const Mat& y) {
    Mat z(x.rows, y.cols);
    for (int64_t i = 0; i < x.rows; ++i)
        for (int64_t k = 0; k < x.cols; ++k) {
            const double xik = x(i, k);
            for (int64_t j = 0; j < y.cols; ++j) z(i, j) += xik * y(k, j);
        }
    return z;
}

// §8's iteration in exact (double) arithmetic: wide side, X/(||X|| + 1e-7), steps × (A = XXᵀ,
// B = bA + cA², X = aX + BX), transposed back.
inline Mat ns_reference(const Mat& g, int steps) {
    const bool tall = g.rows > g.cols;
    Mat x = tall ? transpose(g) : g;
    double sq = 0;
    for (double e : x.v) sq += e * e;
    const double denom = std::sqrt(sq) + 1e-7;
    for (double& e : x.v) e /= denom;
    for (int s = 0; s < steps; ++s) {
        const Mat a = mul(x, transpose(x));
        const Mat aa = mul(a, a);
        Mat b(a.rows, a.cols);
        for (size_t i = 0; i < b.v.size(); ++i) b.v[i] = b_ * a.v[i] + c_ * aa.v[i];
        const Mat bx = mul(b, x);
        for (size_t i = 0; i < x.v.size(); ++i) x.v[i] = a_ * x.v[i] + bx.v[i];
    }
    return tall ? transpose(x) : x;
}

// k orthonormal columns of length n (Gram–Schmidt on seeded normal vectors), as an n × k matrix.
inline Mat orthonormal_columns(int64_t n, int64_t k, uint64_t seed) {
    const std::vector<float> raw = normal(n * k, seed, 1.0);
    Mat q(n, k);
    for (int64_t j = 0; j < k; ++j) {
        std::vector<double> col(static_cast<size_t>(n));
        for (int64_t i = 0; i < n; ++i) col[size_t(i)] = raw[size_t(i * k + j)];
        for (int pass = 0; pass < 2; ++pass)  // twice: re-orthogonalise for accuracy
            for (int64_t p = 0; p < j; ++p) {
                double dot = 0;
                for (int64_t i = 0; i < n; ++i) dot += col[size_t(i)] * q(i, p);
                for (int64_t i = 0; i < n; ++i) col[size_t(i)] -= dot * q(i, p);
            }
        double norm = 0;
        for (double e : col) norm += e * e;
        norm = std::sqrt(norm);
        for (int64_t i = 0; i < n; ++i) q(i, j) = col[size_t(i)] / norm;
    }
    return q;
}

// U·diag(s)·Vᵀ
inline Mat compose(const Mat& u, const std::vector<double>& s, const Mat& v) {
    Mat us = u;
    for (int64_t i = 0; i < u.rows; ++i)
        for (int64_t j = 0; j < u.cols; ++j) us(i, j) *= s[size_t(j)];
    return mul(us, transpose(v));
}

inline Tensor to_tensor(const Mat& m, Device device = Device::cpu()) {
    std::vector<float> f(m.v.begin(), m.v.end());
    return Tensor::from(f, {m.rows, m.cols}, device);
}

inline Mat from_tensor(const Tensor& t) {
    Mat m(t.size(0), t.size(1));
    m.v = t.to_vector<double>();
    return m;
}

inline Mat from_floats(const std::vector<float>& f, int64_t rows, int64_t cols) {
    Mat m(rows, cols);
    for (size_t i = 0; i < f.size(); ++i) m.v[i] = f[i];
    return m;
}

inline double max_abs_diff(const Mat& x, const Mat& y) {
    REQUIRE(x.v.size() == y.v.size());
    double d = 0;
    for (size_t i = 0; i < x.v.size(); ++i) d = std::max(d, std::fabs(x.v[i] - y.v[i]));
    return d;
}

// The §8 step for one tensor in double, with row parts.
struct MuonReference {
    double lr, mu, wd;
    bool nesterov;
    int steps;
    optim::MuonScale scale;
    std::vector<int64_t> parts;
    Mat p, m;

    void step(const std::vector<float>& g, double lr_scale = 1.0) {
        const double lr_t = lr * lr_scale;
        Mat u(p.rows, p.cols);
        for (size_t i = 0; i < p.v.size(); ++i) {
            m.v[i] = mu * m.v[i] + (1 - mu) * g[i];
            u.v[i] = nesterov ? (1 - mu) * g[i] + mu * m.v[i] : m.v[i];
        }
        Mat o(p.rows, p.cols);
        int64_t first = 0;
        for (int64_t rows : parts) {
            Mat part(rows, p.cols);
            std::copy(u.v.begin() + first * p.cols, u.v.begin() + (first + rows) * p.cols, part.v.begin());
            const double s = scale == optim::MuonScale::original
                                 ? std::sqrt(std::max(1.0, double(rows) / double(p.cols)))
                                 : 0.2 * std::sqrt(double(std::max(rows, p.cols)));
            const Mat op = ns_reference(part, steps);
            for (size_t i = 0; i < op.v.size(); ++i) o.v[size_t(first * p.cols) + i] = s * op.v[i];
            first += rows;
        }
        for (size_t i = 0; i < p.v.size(); ++i) p.v[i] = p.v[i] * (1 - lr_t * wd) - lr_t * o.v[i];
    }
};

inline MuonReference reference_for(const optim::Hyper& h, const nn::Parameter& p) {
    MuonReference r{h.lr, h.momentum, h.weight_decay, h.nesterov, int(h.ns_steps), h.muon_scale,
                    p.row_parts.empty() ? std::vector<int64_t>{p.tensor.size(0)} : p.row_parts,
                    from_tensor(p.tensor), Mat(p.tensor.size(0), p.tensor.size(1))};
    return r;
}

inline optim::Hyper f32_hyper() {
    optim::Hyper h = optim::api_defaults(optim::Kind::muon);
    h.ns_f32 = true;
    return h;
}

// Matrices only (Muon takes 2-D tensors): awkward sizes, a tall one, a 1×1, a c_attn with parts.
inline std::vector<nn::Parameter> muon_params(Device device) {
    nn::Parameter attn = param("attn", {48, 32}, 5, device);
    attn.row_parts = {32, 8, 8};
    return {param("w", {33, 17}, 1, device), param("t", {70, 9}, 2, device), param("one", {1, 1}, 3, device),
            param("wide", {5, 300}, 4, device), attn};
}

inline optim::Optimizer muon_group(const optim::Hyper& h, std::vector<nn::Parameter> params) {
    return one_group(optim::Kind::muon, h, std::move(params));
}

inline void feed(const std::vector<nn::Parameter>& ps, int step) {
    for (size_t i = 0; i < ps.size(); ++i) set_grad(ps[i], grad_values(ps[i], step, i));
}

}  // namespace lumen::muon_test
