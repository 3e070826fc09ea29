// tests/ops/rope_test.cpp: the rotary position embedding. The spec's known answers (wiggle.md
// §11 row 6: d = 4, θ = 10000, x = (1, 2, 3, 4) at p = 0, 1, 5, both pairings), norm preservation,
// relative-position scores (shifting q and k together leaves q·kᵀ unchanged, shifting one does
// not), T = 1 and T < nh, the interleaved <-> half row permutation, strided inputs, every dtype on
// awkward shapes against a naive double reference (forward and backward), errors and gradcheck.
// On a GPU: CUDA agrees with the CPU on shapes that split the heads over the grid.
#include "tests/harness.h"

#include <cmath>

using namespace lumen;

namespace {

using ops::RopePairing;

// RoPE in double, written independently of the kernels: for element (row, d) of a contiguous
// (rows, T, hs) view, find its partner dim and the pair's frequency, and rotate by ±p·freq.
std::vector<double> ref_rope(const Tensor& x, int64_t pos0, double theta, RopePairing pairing,
                             bool inverse = false) {
    const std::vector<double> xs = x.to_vector<double>();   // (B, nh, T, hs) in logical order
    const int64_t T = x.size(2), hs = x.size(3), half = hs / 2;
    std::vector<double> out(xs.size());
    for (size_t e = 0; e < xs.size(); ++e) {
        const int64_t d = int64_t(e) % hs, t = (int64_t(e) / hs) % T;
        const size_t row = e - size_t(d);
        // Pair index i, whether d is the pair's first member, and the partner dim.
        int64_t i, partner;
        bool first;
        if (pairing == RopePairing::half) {
            first = d < half;
            i = first ? d : d - half;
            partner = first ? d + half : d - half;
        } else {
            first = d % 2 == 0;
            i = d / 2;
            partner = first ? d + 1 : d - 1;
        }
        const double freq = std::exp(-double(2 * i) / double(hs) * std::log(theta));
        const double angle = (inverse ? -1.0 : 1.0) * double(pos0 + t) * freq;
        const double self = xs[e], other = xs[row + size_t(partner)];
        // first: a' = a·cos − b·sin (a = self); second: b' = a·sin + b·cos (b = self).
        out[e] = first ? self * std::cos(angle) - other * std::sin(angle)
                       : other * std::sin(angle) + self * std::cos(angle);
    }
    return out;
}

// q (1, nh, T, hs) and k (1, nh, T, hs) rotated at positions starting from pos_q and pos_k:
// the scores q·kᵀ (1, nh, T, T), in double.
std::vector<double> scores(const Tensor& q, const Tensor& k, int64_t pos_q, int64_t pos_k,
                           RopePairing pairing = RopePairing::half) {
    Tensor qr = ops::rope(q, pos_q, 10000.0, pairing), kr = ops::rope(k, pos_k, 10000.0, pairing);
    return ops::matmul(qr, kr.transpose(2, 3)).to_vector<double>();
}

double max_abs_diff(const std::vector<double>& a, const std::vector<double>& b) {
    double m = 0;
    for (size_t i = 0; i < a.size(); ++i) m = std::max(m, std::abs(a[i] - b[i]));
    return m;
}

// The per-head row permutation that turns an interleaved layout into a half one: new dim j < d/2
// takes old dim 2j, new dim j >= d/2 takes old dim 2(j − d/2) + 1 (wiggle.md §4). (..., d) -> (..., d).
Tensor interleaved_to_half(const Tensor& x) {
    const Shape s = x.shape();
    const int64_t d = s.back();
    Shape pairs = s;
    pairs.back() = d / 2;
    pairs.push_back(2);                                              // (..., d/2, 2)
    return x.reshape(pairs).transpose(-1, -2).contiguous().reshape(s);   // (..., 2, d/2) -> (..., d)
}

const std::vector<double> x1234 = {1, 2, 3, 4};

}  // namespace

LUMEN_DEVICE_TEST("rope: the spec's known answers (d = 4, theta = 10000, x = (1, 2, 3, 4))") {
    for (DType dt : {DType::f64, DType::f32}) {
        INFO(dtype_name(dt));
        Tensor x = Tensor::from(x1234, {1, 1, 1, 4}).to(dt).to(device);
        const test::Tolerance tol{2e-7, 2e-7};   // the spec's answers have 8 significant digits
        CHECK_CLOSE(ops::rope(x, 1).to_vector<double>(),
                    (std::vector<double>{-1.9841106, 1.9599007, 2.4623779, 4.0197997}), tol);
        CHECK_CLOSE(ops::rope(x, 1, 10000.0, RopePairing::interleaved).to_vector<double>(),
                    (std::vector<double>{-1.1426397, 1.9220756, 2.9598507, 4.0297995}), tol);
        CHECK_CLOSE(ops::rope(x, 5, 10000.0, RopePairing::half).to_vector<double>(),
                    (std::vector<double>{3.1604350, 1.7975838, -0.1079377, 4.0949594}), tol);
        // Position 5 as token 5 of a sequence starting at 0, and as token 2 of one starting at 3.
        Tensor seq = Tensor::from(x1234, {1, 1, 1, 4}).expand({1, 1, 6, 4}).to(dt).to(device);
        CHECK_CLOSE(ops::rope(seq, 0).narrow(2, 5, 1).to_vector<double>(),
                    (std::vector<double>{3.1604350, 1.7975838, -0.1079377, 4.0949594}), tol);
        CHECK_CLOSE(ops::rope(seq, 3).narrow(2, 2, 1).to_vector<double>(),
                    (std::vector<double>{3.1604350, 1.7975838, -0.1079377, 4.0949594}), tol);
    }
}

LUMEN_DEVICE_TEST("rope: position 0 is the identity, bit for bit, in every dtype and pairing") {
    for (DType dt : {DType::f32, DType::f64, DType::bf16, DType::f16})
        for (RopePairing pairing : {RopePairing::half, RopePairing::interleaved}) {
            INFO(dtype_name(dt) << " interleaved " << (pairing == RopePairing::interleaved));
            Tensor x = test::random({2, 3, 1, 8}, 1, dt, device, -3, 3);
            Tensor y = ops::rope(x, 0, 10000.0, pairing);
            CHECK(y.dtype() == dt);
            CHECK(test::same_bits(y, x));
        }
}

LUMEN_DEVICE_TEST("rope: each head vector keeps its norm, at small and large positions") {
    for (int64_t pos0 : {0, 1, 1000, 100000}) {
        INFO("pos0 " << pos0);
        Tensor x = test::random({2, 3, 9, 16}, 2, DType::f64, device, -2, 2);
        for (RopePairing pairing : {RopePairing::half, RopePairing::interleaved}) {
            Tensor y = ops::rope(x, pos0, 10000.0, pairing);
            const std::vector<double> nx = ops::sum(x * x, {-1}).to_vector<double>();
            const std::vector<double> ny = ops::sum(y * y, {-1}).to_vector<double>();
            CHECK_CLOSE(ny, nx, test::tolerance(DType::f64));
        }
    }
}

LUMEN_DEVICE_TEST("rope: q·kᵀ depends only on i − j: shifting both positions keeps the scores") {
    for (DType dt : {DType::f64, DType::f32})
        for (RopePairing pairing : {RopePairing::half, RopePairing::interleaved}) {
            INFO(dtype_name(dt) << " interleaved " << (pairing == RopePairing::interleaved));
            Tensor q = test::random({1, 2, 6, 8}, 3, dt, device);
            Tensor k = test::random({1, 2, 6, 8}, 4, dt, device);
            const std::vector<double> base = scores(q, k, 0, 0, pairing);
            // f32: the rotated values carry ~1e-7 relative error; scores are sums of 8 products.
            const test::Tolerance tol = dt == DType::f64 ? test::tolerance(dt) : test::Tolerance{1e-5, 1e-5};
            for (int64_t shift : {1, 7, 100}) {
                INFO("shift " << shift);
                CHECK_CLOSE(scores(q, k, shift, shift, pairing), base, tol);
                // Shifting only one of them changes the relative positions, and the scores.
                CHECK(max_abs_diff(scores(q, k, shift, 0, pairing), base) > 1e-2);
                CHECK(max_abs_diff(scores(q, k, 0, shift, pairing), base) > 1e-2);
            }
        }
}

LUMEN_DEVICE_TEST("rope: T = 1 and T < nh work (the reference implementation crashed there)") {
    for (int64_t T : {1, 3}) {
        INFO("T " << T);
        Tensor x = test::random({2, 12, T, 8}, 5, DType::f32, device);
        for (RopePairing pairing : {RopePairing::half, RopePairing::interleaved}) {
            Tensor y = ops::rope(x, 4, 10000.0, pairing);
            REQUIRE(y.shape() == x.shape());
            CHECK_CLOSE(y.to_vector<double>(), ref_rope(x, 4, 10000.0, pairing), test::tolerance(DType::f32));
        }
    }
}

LUMEN_DEVICE_TEST("rope: the row permutation maps interleaved to half with equal scores") {
    Tensor q = test::random({2, 3, 5, 8}, 6, DType::f64, device);
    Tensor k = test::random({2, 3, 5, 8}, 7, DType::f64, device);
    Tensor qh = interleaved_to_half(q), kh = interleaved_to_half(k);
    // The rotated vectors are the same permutation of each other ...
    CHECK_CLOSE(ops::rope(qh, 11).to_vector<double>(),
                interleaved_to_half(ops::rope(q, 11, 10000.0, RopePairing::interleaved)).to_vector<double>(),
                test::tolerance(DType::f64));
    // ... so the attention scores agree.
    CHECK_CLOSE(scores(qh, kh, 11, 11, RopePairing::half), scores(q, k, 11, 11, RopePairing::interleaved),
                test::tolerance(DType::f64));
    // Without the permutation the two pairings are different rotations.
    CHECK(max_abs_diff(scores(q, k, 11, 11, RopePairing::half), scores(q, k, 11, 11, RopePairing::interleaved)) > 1e-2);
}

LUMEN_DEVICE_TEST("rope: strided inputs give the contiguous input's result, bit for bit") {
    for (DType dt : {DType::f32, DType::bf16, DType::f64})
        for (RopePairing pairing : {RopePairing::half, RopePairing::interleaved}) {
            INFO(dtype_name(dt) << " interleaved " << (pairing == RopePairing::interleaved));
            // (B, T, nh, hs) transposed to (B, nh, T, hs), as q and k come out of c_attn.
            Tensor x = test::random({2, 7, 3, 6}, 8, dt, device).transpose(1, 2);
            REQUIRE_FALSE(x.is_contiguous());
            Tensor y = ops::rope(x, 9, 10000.0, pairing);
            CHECK(y.is_contiguous());
            CHECK(test::same_bits(y, ops::rope(x.contiguous(), 9, 10000.0, pairing)));
            // A strided head dim and an offset start: every other element of a wider tensor.
            Tensor w = test::random({1, 2, 5, 13}, 9, dt, device).slice(3, 1, 13, 2);   // (1, 2, 5, 6)
            REQUIRE_FALSE(w.is_contiguous());
            CHECK(test::same_bits(ops::rope(w, 3, 500.0, pairing), ops::rope(w.contiguous(), 3, 500.0, pairing)));
        }
}

LUMEN_DEVICE_TEST("rope: every dtype matches the naive double reference on awkward shapes, both ways") {
    const Shape shapes[] = {Shape{1, 1, 1, 2}, Shape{1, 3, 5, 6},   Shape{3, 1, 130, 64}, Shape{1, 1, 130, 2},
                            Shape{1, 3, 1, 64}, Shape{1, 1, 5, 64}, Shape{3, 1, 1, 6},    Shape{2, 2, 3, 16}};
    for (DType dt : {DType::f32, DType::f64, DType::bf16, DType::f16})
        for (const Shape& s : shapes)
            for (RopePairing pairing : {RopePairing::half, RopePairing::interleaved})
                for (int64_t pos0 : {0, 17, 100000})
                    for (double theta : {10000.0, 500000.0}) {
                        INFO(dtype_name(dt) << " " << shape_str(s) << " interleaved "
                                            << (pairing == RopePairing::interleaved) << " pos0 " << pos0
                                            << " theta " << theta);
                        Tensor x = test::random(s, 10, dt, device, -2, 2).set_requires_grad();
                        Tensor y = ops::rope(x, pos0, theta, pairing);
                        REQUIRE(y.shape() == s);
                        CHECK(y.dtype() == dt);
                        CHECK_CLOSE(y.to_vector<double>(), ref_rope(x, pos0, theta, pairing), test::tolerance(dt));
                        // The backward rotates dy by −α.
                        Tensor dy = test::random(s, 11, dt, device, -2, 2);
                        y.backward(dy);
                        REQUIRE(x.grad().defined());
                        CHECK_CLOSE(x.grad().to_vector<double>(), ref_rope(dy, pos0, theta, pairing, true),
                                    test::tolerance(dt));
                    }
}

LUMEN_DEVICE_TEST("rope: tensors without elements") {
    for (const Shape& s : {Shape{0, 2, 3, 4}, Shape{1, 0, 3, 4}, Shape{1, 2, 0, 4}, Shape{1, 2, 3, 0}}) {
        INFO(shape_str(s));
        Tensor y = ops::rope(Tensor::zeros(s, DType::f32, device), 7);
        CHECK(y.shape() == s);
    }
}

LUMEN_DEVICE_TEST("rope: errors name the op, the problem and x") {
    auto t = [&](const Shape& s, DType dt = DType::f32) { return Tensor::zeros(s, dt, device); };
    CHECK_THROWS_CONTAINING(ops::rope(t({1, 2, 3, 5}), 0), "rope: the head size hs = 5 must be even: x (1, 2, 3, 5) f32");
    CHECK_THROWS_CONTAINING(ops::rope(t({2, 3, 4}), 0), "rope: expected x (B, nh, T, hs): x (2, 3, 4) f32");
    CHECK_THROWS_CONTAINING(ops::rope(t({1, 2, 3, 4}, DType::i32), 0), "rope: expected a floating tensor");
    CHECK_THROWS_CONTAINING(ops::rope(t({1, 2, 3, 4}), -1), "rope: pos0 = -1 must be >= 0");
    CHECK_THROWS_CONTAINING(ops::rope(t({1, 2, 3, 4}), 0, 0.0), "rope: theta = 0 must be positive");
    CHECK_THROWS_CONTAINING(ops::rope(t({1, 2, 3, 4}), 0, NAN), "must be positive");
}

LUMEN_GRADCHECK_COVERS("rope");

TEST_CASE("rope: gradcheck, both pairings, strided input, nonzero pos0") {
    for (RopePairing pairing : {RopePairing::half, RopePairing::interleaved})
        for (int64_t pos0 : {0, 3, 1000}) {
            INFO("interleaved " << (pairing == RopePairing::interleaved) << " pos0 " << pos0);
            CHECK_GRADCHECK([=](const std::vector<Tensor>& in) { return ops::rope(in[0], pos0, 10000.0, pairing); },
                            {test::leaf({2, 3, 4, 6}, 12)});
            CHECK_GRADCHECK([=](const std::vector<Tensor>& in) {
                                return ops::rope(in[0].transpose(1, 2), pos0, 100.0, pairing);
                            },
                            {test::leaf({1, 5, 2, 4}, 13)});
        }
    // Through rotated q and k into scores, as attention uses it.
    CHECK_GRADCHECK([](const std::vector<Tensor>& in) {
                        return ops::matmul(ops::rope(in[0], 2), ops::rope(in[1], 2).transpose(2, 3));
                    },
                    {test::leaf({1, 2, 3, 4}, 14), test::leaf({1, 2, 3, 4}, 15)});
}

LUMEN_CUDA_TEST("rope: CUDA agrees with the CPU, forward and backward, with the heads split over the grid") {
    // (3, 37, 130, 64): 111 heads over several grid rows of a few heads each, the last one short.
    for (const Shape& s : {Shape{3, 37, 130, 64}, Shape{16, 16, 1, 64}, Shape{2, 3, 7, 128}, Shape{4, 5, 33, 2}})
        for (DType dt : {DType::f32, DType::bf16, DType::f64})
            for (RopePairing pairing : {RopePairing::half, RopePairing::interleaved}) {
                INFO(shape_str(s) << " " << dtype_name(dt) << " interleaved " << (pairing == RopePairing::interleaved));
                Tensor x = test::random(s, 16, dt, Device::cpu(), -2, 2);
                Tensor dy = test::random(s, 17, dt, Device::cpu(), -2, 2);
                Tensor xc = x.detach().set_requires_grad(), xg = x.to(device).detach().set_requires_grad();
                Tensor yc = ops::rope(xc, 4095, 10000.0, pairing), yg = ops::rope(xg, 4095, 10000.0, pairing);
                // Both use f64 angles; only the rounding of the rotation may differ (FMA contraction),
                // by at most one unit of the output dtype.
                const test::Tolerance t = test::tolerance(dt);
                CHECK_CLOSE(yg.to_vector<double>(), yc.to_vector<double>(), t);
                yc.backward(dy);
                yg.backward(dy.to(device));
                CHECK_CLOSE(xg.grad().to_vector<double>(), xc.grad().to_vector<double>(), t);
            }
}
