// tests/ops/wiggle_testing.h: what the oscillate, bio_gate and gelu_exact tests share: double
// references of the three ops (shared/specs/wiggle.md §1, §2), the spec's table of known answers,
// and small tensor builders.
#pragma once

#include "tests/harness.h"

#include <cmath>
#include <vector>

namespace lumen::wiggle_test {

// ---- plain double references, independent of the kernels' code ----

struct OscRef {
    std::vector<double> y, dx, domega, dphi, dbaseline;
};

// x (rows, H) row-major values; omega, phi, baseline (H); dy (rows, H).
inline OscRef ref_oscillate(const std::vector<double>& x, const std::vector<double>& omega,
                     const std::vector<double>& phi, const std::vector<double>& baseline,
                     const std::vector<double>& dy) {
    const size_t H = omega.size(), rows = H == 0 ? 0 : x.size() / H;
    OscRef r;
    r.domega.assign(H, 0.0), r.dphi.assign(H, 0.0), r.dbaseline.assign(H, 0.0);
    for (size_t i = 0; i < rows; ++i)
        for (size_t j = 0; j < H; ++j) {
            const double xv = x[i * H + j], g = dy[i * H + j];
            const double u = omega[j] * xv + phi[j], t = std::tanh(xv);
            r.y.push_back(std::sin(u) * t + baseline[j]);
            r.dx.push_back(g * (omega[j] * std::cos(u) * t + std::sin(u) * (1 - t * t)));
            r.domega[j] += g * xv * std::cos(u) * t;
            r.dphi[j] += g * std::cos(u) * t;
            r.dbaseline[j] += g;
        }
    return r;
}

inline double sigmoid(double z) { return 1 / (1 + std::exp(-z)); }

struct GateRef {
    std::vector<double> m, da, dz;
};
inline GateRef ref_bio_gate(const std::vector<double>& a, const std::vector<double>& z, double threshold,
                     const std::vector<double>& dm) {
    GateRef r;
    for (size_t i = 0; i < a.size(); ++i) {
        const double v = sigmoid(z[i]), s = sigmoid(5 * (v - threshold));
        r.m.push_back(a[i] * s);
        r.da.push_back(dm[i] * s);
        r.dz.push_back(dm[i] * a[i] * 5 * s * (1 - s) * v * (1 - v));
    }
    return r;
}

inline double ref_gelu_exact(double x) { return 0.5 * x * (1 + std::erf(x / std::sqrt(2.0))); }
inline double ref_gelu_exact_derivative(double x) {
    return 0.5 * (1 + std::erf(x / std::sqrt(2.0))) + x * std::exp(-0.5 * x * x) / std::sqrt(2 * M_PI);
}

inline Tensor values(const std::vector<double>& v, const Shape& shape, DType dt, Device device) {
    return Tensor::from(v, shape).to(dt).to(device);
}
inline Tensor leaf_values(const std::vector<double>& v, const Shape& shape, DType dt, Device device) {
    return values(v, shape, dt, device).detach().set_requires_grad();
}
inline std::vector<double> times(std::vector<double> v, double k) {
    for (double& e : v) e *= k;
    return v;
}

// ---- spec §11 table 1: one case per channel of a (1, 6) x ----
inline const std::vector<double> table_x = {1, -1, 0.5, 3, 0, -2};
inline const std::vector<double> table_omega = {1, 1, 1, 1, 1, 1.5};
inline const std::vector<double> table_phi = {0, 0, 0, 0, 0.3, -0.5};
inline const std::vector<double> table_baseline = {0, 0, 0, 0, 0, 0.1};
inline const std::vector<double> table_y = {0.640859384, 0.640859384, 0.221550767, 0.140422135, 0, -0.238164706};
inline const std::vector<double> table_dx = {0.764887301, -0.764887301, 0.782589087, -0.983704445, 0.295520207, 1.378938236};
inline const std::vector<double> table_domega = {0.411491079, 0.411491079, 0.202772979, -2.955290220, 0, -1.805540148};
inline const std::vector<double> table_dphi = {0.411491079, -0.411491079, 0.405545959, -0.985096740, 0, 0.902770074};

// The table's tolerance in dtype dt: rel 1e-6 (f32); f64 is held to 1e-12 against the closed
// forms (the table itself has 9 digits).
inline test::Tolerance table_tol(DType dt) { return dt == DType::f64 ? test::Tolerance{1e-15, 1e-12} : test::Tolerance{1e-12, 1e-6}; }

struct OscOut {
    std::vector<double> y, dx, domega, dphi, dbaseline;
};
// y and all four gradients through the public op, from per-row values repeated `rows` times.
inline OscOut run_table(DType dt, Device device, size_t rows) {
    const int64_t H = int64_t(table_x.size());
    std::vector<double> xs;
    for (size_t r = 0; r < rows; ++r) xs.insert(xs.end(), table_x.begin(), table_x.end());
    Tensor x = leaf_values(xs, {int64_t(rows), H}, dt, device);
    Tensor w = leaf_values(table_omega, {H}, dt, device), p = leaf_values(table_phi, {H}, dt, device);
    Tensor b = leaf_values(table_baseline, {H}, dt, device);
    Tensor y = ops::oscillate(x, w, p, b);
    y.backward(Tensor::ones(y.shape(), dt, device));
    return {y.to_vector<double>(), x.grad().to_vector<double>(), w.grad().to_vector<double>(),
            p.grad().to_vector<double>(), b.grad().to_vector<double>()};
}

}  // namespace lumen::wiggle_test
