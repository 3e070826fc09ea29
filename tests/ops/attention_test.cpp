// tests/ops/attention_test.cpp: tril (values on any diagonal and dtype, strided input, errors,
// gradcheck) and causal_attention against a naive per-(b, h, i, j) loop in double, including
// T = 1, grouped-query heads (nkv = nh/2 and 1), custom scales and strided q, k, v; queries
// shorter than the keys (the KV-cache offset: Tq < Tk equals the last Tq rows of full attention);
// its errors; and gradchecks of the composition for q, k and v. On a GPU: CUDA tril equals the
// CPU's bit for bit.
#include "tests/harness.h"

#include <cmath>
#include <optional>

using namespace lumen;

namespace {

// tril in double: element (r, k) of each matrix is kept when k - r <= diagonal.
std::vector<double> ref_tril(const Tensor& x, int64_t diagonal) {
    const std::vector<double> xs = x.to_vector<double>();
    const int64_t R = x.size(-2), K = x.size(-1);
    std::vector<double> out(xs.size());
    for (size_t i = 0; i < xs.size(); ++i) {
        const int64_t r = (int64_t(i) / K) % R, k = int64_t(i) % K;
        out[i] = k - r <= diagonal ? xs[i] : 0.0;
    }
    return out;
}

}  // namespace

LUMEN_DEVICE_TEST("tril: values match the reference on every diagonal, shape and dtype") {
    for (DType dt : {DType::f32, DType::f64, DType::bf16, DType::i32})
        for (const Shape& s : {Shape{3, 4}, Shape{4, 3}, Shape{2, 3, 5}, Shape{1, 1}, Shape{0, 3},
                               Shape{2, 0, 4}, Shape{2, 2, 3, 3}})
            for (int64_t diagonal : {-5, -1, 0, 1, 2, 10}) {
                INFO(dtype_name(dt) << " " << shape_str(s) << " diagonal " << diagonal);
                Tensor x = test::random(s, 1, DType::f64, device, -9, 9).to(dt);
                Tensor y = ops::tril(x, diagonal);
                REQUIRE(y.shape() == s);
                CHECK(y.dtype() == dt);
                CHECK(y.to_vector<double>() == ref_tril(x, diagonal));
            }
}

LUMEN_DEVICE_TEST("tril: small cases written out, booleans, strided input, extreme diagonals") {
    Tensor ones = Tensor::ones({3, 3}, DType::f32, device);
    CHECK(ops::tril(ones).to_vector<float>() == std::vector<float>{1, 0, 0, 1, 1, 0, 1, 1, 1});
    CHECK(ops::tril(ones, -1).to_vector<float>() == std::vector<float>{0, 0, 0, 1, 0, 0, 1, 1, 0});
    CHECK(ops::tril(ones, 1).to_vector<float>() == std::vector<float>{1, 1, 0, 1, 1, 1, 1, 1, 1});
    Tensor mask = ops::tril(Tensor::ones({2, 3}, DType::boolean, device));
    CHECK(mask.to_vector<bool>() == std::vector<bool>{true, false, false, true, true, false});
    Tensor x = test::random({5, 4}, 2, DType::f32, device).transpose(0, 1);   // (4, 5) strided
    REQUIRE_FALSE(x.is_contiguous());
    CHECK(ops::tril(x, 1).to_vector<double>() == ref_tril(x, 1));
    Tensor big = test::random({3, 4}, 3, DType::f32, device);
    CHECK(ops::tril(big, INT64_MAX).to_vector<float>() == big.to_vector<float>());
    CHECK(ops::tril(big, INT64_MIN).to_vector<float>() == std::vector<float>(12, 0.f));
}

LUMEN_DEVICE_TEST("tril: errors") {
    CHECK_THROWS_CONTAINING(ops::tril(Tensor::zeros({4}, DType::f32, device)),
                            "tril: x must have at least two dims (..., R, K): x (4,) f32");
}

LUMEN_GRADCHECK_COVERS("tril");

TEST_CASE("tril: gradcheck") {
    for (int64_t diagonal : {-1, 0, 2}) {
        INFO("diagonal " << diagonal);
        CHECK_GRADCHECK([diagonal](const std::vector<Tensor>& in) { return ops::tril(in[0], diagonal); },
                        {test::leaf({2, 3, 4}, 4)});
    }
    CHECK_GRADCHECK([](const std::vector<Tensor>& in) { return ops::tril(in[0].transpose(0, 1)); },
                    {test::leaf({4, 3}, 5)});
}

LUMEN_CUDA_TEST("tril: CUDA equals the CPU bit for bit, forward and backward") {
    for (DType dt : {DType::f32, DType::bf16, DType::f64, DType::i64, DType::u8, DType::boolean})
        for (const Shape& s : {Shape{1, 1}, Shape{3, 4}, Shape{4, 3}, Shape{2, 3, 5}, Shape{0, 3},
                               Shape{2, 0, 4}, Shape{3, 70, 33}, Shape{2, 1025, 1031}})
            for (int64_t diagonal : {INT64_MIN, int64_t(-5), int64_t(-1), int64_t(0), int64_t(1),
                                     int64_t(40), INT64_MAX}) {
                INFO(dtype_name(dt) << " " << shape_str(s) << " diagonal " << diagonal);
                Tensor x = test::random(s, 6, DType::f64, Device::cpu(), -9, 9).to(dt);
                const std::vector<double> want = ops::tril(x, diagonal).to_vector<double>();
                CHECK(ops::tril(x.to(device), diagonal).to_vector<double>() == want);
            }
    Tensor x = test::random({2, 5, 7}, 7, DType::f32, Device::cpu());
    Tensor dy = test::random({2, 5, 7}, 8, DType::f32, Device::cpu());
    Tensor xc = x.detach().set_requires_grad(), xg = x.to(device).detach().set_requires_grad();
    ops::tril(xc, 1).backward(dy);
    ops::tril(xg, 1).backward(dy.to(device));
    CHECK(xg.grad().to_vector<float>() == xc.grad().to_vector<float>());
}

namespace {

// Causal attention in double, one (b, h, i) row at a time: query i of Tq sits at position
// p = Tk - Tq + i; scores q_i·k_j·scale for j <= p, a softmax with the max subtracted, and the
// weighted sum of v_j. Head h reads kv head h / (nh/nkv).
std::vector<double> ref_attention(const Tensor& q, const Tensor& k, const Tensor& v, double scale) {
    const auto [B, nh, Tq, hs] = q.dims<4>();
    const int64_t nkv = k.size(1), group = nh / nkv, Tk = k.size(2);
    const std::vector<double> qs = q.to_vector<double>(), ks = k.to_vector<double>(), vs = v.to_vector<double>();
    auto qa = [&](int64_t b, int64_t h, int64_t t, int64_t d) { return qs[size_t(((b * nh + h) * Tq + t) * hs + d)]; };
    auto ka = [&](int64_t b, int64_t h, int64_t t, int64_t d) { return ks[size_t(((b * nkv + h) * Tk + t) * hs + d)]; };
    auto va = [&](int64_t b, int64_t h, int64_t t, int64_t d) { return vs[size_t(((b * nkv + h) * Tk + t) * hs + d)]; };
    std::vector<double> out;
    for (int64_t b = 0; b < B; ++b)
        for (int64_t h = 0; h < nh; ++h)
            for (int64_t qi = 0; qi < Tq; ++qi) {
                const int64_t kvh = h / group, i = Tk - Tq + qi;   // i: the query's position
                std::vector<double> score(static_cast<size_t>(i + 1));
                double m = -INFINITY;
                for (int64_t j = 0; j <= i; ++j) {
                    double s = 0;
                    for (int64_t d = 0; d < hs; ++d) s += qa(b, h, qi, d) * ka(b, kvh, j, d);
                    score[size_t(j)] = s * scale;
                    m = std::max(m, score[size_t(j)]);
                }
                double total = 0;
                for (double& s : score) total += (s = std::exp(s - m));
                for (int64_t d = 0; d < hs; ++d) {
                    double acc = 0;
                    for (int64_t j = 0; j <= i; ++j) acc += score[size_t(j)] / total * va(b, kvh, j, d);
                    out.push_back(acc);
                }
            }
    return out;
}

struct AttnCase {
    int64_t B, nh, nkv, T, hs;
    std::optional<double> scale;
};

}  // namespace

LUMEN_DEVICE_TEST("causal_attention: matches the per-(b, h, i, j) reference, with GQA and custom scales") {
    const AttnCase cases[] = {
        {2, 4, 4, 5, 3, std::nullopt}, {1, 4, 2, 6, 4, std::nullopt}, {2, 4, 1, 7, 3, std::nullopt},
        {1, 2, 2, 1, 5, std::nullopt}, {2, 4, 2, 1, 3, 0.7},           {1, 3, 3, 9, 8, 0.25},
        {2, 4, 1, 4, 2, 2.0},          {1, 1, 1, 17, 16, std::nullopt},
    };
    for (DType dt : {DType::f32, DType::f64, DType::bf16})
        for (const AttnCase& c : cases) {
            INFO(dtype_name(dt) << " B " << c.B << " nh " << c.nh << " nkv " << c.nkv << " T " << c.T
                                << " hs " << c.hs << " scale " << c.scale.value_or(-1));
            Tensor q = test::random({c.B, c.nh, c.T, c.hs}, 10, dt, device, -2, 2);
            Tensor k = test::random({c.B, c.nkv, c.T, c.hs}, 11, dt, device, -2, 2);
            Tensor v = test::random({c.B, c.nkv, c.T, c.hs}, 12, dt, device, -2, 2);
            Tensor y = ops::causal_attention(q, k, v, c.scale);
            REQUIRE(y.shape() == q.shape());
            CHECK(y.dtype() == dt);
            const double scale = c.scale.value_or(1.0 / std::sqrt(double(c.hs)));
            // NOTE: bf16 rounds the scores, the probabilities and the output: three roundings.
            const test::Tolerance tol = dt == DType::bf16 ? test::Tolerance{4e-2, 4e-2} : test::tolerance(dt);
            CHECK_CLOSE(y.to_vector<double>(), ref_attention(q, k, v, scale), tol);
        }
}

LUMEN_DEVICE_TEST("causal_attention: strided q, k, v as a (B, T, nh, hs) layout transposed") {
    const int64_t B = 2, T = 5, nh = 4, nkv = 2, hs = 3;
    Tensor q = test::random({B, T, nh, hs}, 13, DType::f32, device).transpose(1, 2);    // (B, nh, T, hs)
    Tensor k = test::random({B, T, nkv, hs}, 14, DType::f32, device).transpose(1, 2);   // (B, nkv, T, hs)
    Tensor v = test::random({B, T, nkv, hs}, 15, DType::f32, device).transpose(1, 2);
    REQUIRE_FALSE(q.is_contiguous());
    CHECK_CLOSE(ops::causal_attention(q, k, v).to_vector<double>(),
                ref_attention(q, k, v, 1 / std::sqrt(3.0)), test::tolerance(DType::f32));
}

LUMEN_DEVICE_TEST("causal_attention: the first position attends only to itself") {
    Tensor q = test::random({1, 2, 4, 3}, 16, DType::f64, device);
    Tensor k = test::random({1, 2, 4, 3}, 17, DType::f64, device);
    Tensor v = test::random({1, 2, 4, 3}, 18, DType::f64, device);
    Tensor y = ops::causal_attention(q, k, v);
    CHECK(y.narrow(2, 0, 1).to_vector<double>() == v.narrow(2, 0, 1).to_vector<double>());
}

LUMEN_DEVICE_TEST("causal_attention: errors name the op and operands") {
    auto t = [&](const Shape& s, DType dt = DType::f32) { return Tensor::zeros(s, dt, device); };
    Tensor q = t({2, 4, 5, 3}), k = t({2, 2, 5, 3});
    CHECK_THROWS_CONTAINING(ops::causal_attention(t({4, 5, 3}), k, k),
                            "causal_attention: expected q (B, nh, Tq, hs), k and v (B, nkv, Tk, hs): q (4, 5, 3) f32");
    CHECK_THROWS_CONTAINING(ops::causal_attention(q, t({2, 3, 5, 3}), t({2, 3, 5, 3})),
                            "causal_attention: nh (4) must be a multiple of nkv (3)");
    CHECK_THROWS_CONTAINING(ops::causal_attention(q, t({1, 2, 5, 3}), t({1, 2, 5, 3})),
                            "causal_attention: batch sizes differ (B = 2 in q, 1 in k)");
    CHECK_THROWS_CONTAINING(ops::causal_attention(q, t({2, 2, 4, 3}), t({2, 2, 4, 3})),
                            "causal_attention: q has more positions than k (Tq = 5 in q, Tk = 4 in k; need Tq <= Tk)");
    CHECK_THROWS_CONTAINING(ops::causal_attention(t({2, 4, 1, 3}), t({2, 2, 0, 3}), t({2, 2, 0, 3})),
                            "causal_attention: q has more positions than k (Tq = 1 in q, Tk = 0 in k");
    CHECK_THROWS_CONTAINING(ops::causal_attention(q, t({2, 2, 5, 4}), t({2, 2, 5, 4})),
                            "causal_attention: head sizes differ (hs = 3 in q, 4 in k)");
    CHECK_THROWS_CONTAINING(ops::causal_attention(q, k, t({2, 1, 5, 3})),
                            "causal_attention: k and v must have the same shape");
    CHECK_THROWS_CONTAINING(ops::causal_attention(q, k, t({2, 2, 5, 3}, DType::f64)),
                            "causal_attention: dtypes differ");
    CHECK_THROWS_CONTAINING(ops::causal_attention(t({2, 4, 5, 3}, DType::i32), t({2, 2, 5, 3}, DType::i32),
                                                  t({2, 2, 5, 3}, DType::i32)),
                            "causal_attention: expected floating tensors");
    if (device.is_cuda())
        CHECK_THROWS_CONTAINING(ops::causal_attention(q, k, Tensor::zeros({2, 2, 5, 3})),
                                "causal_attention: tensors on different devices");
}

// causal_attention is a composition (no node of its own), so no coverage name; its gradients
// through matmul, where and softmax are still checked for q, k and v.
TEST_CASE("causal_attention: gradcheck for q, k and v, with GQA and a strided q") {
    for (int64_t nkv : {4, 2, 1}) {
        INFO("nkv " << nkv);
        CHECK_GRADCHECK([](const std::vector<Tensor>& in) { return ops::causal_attention(in[0], in[1], in[2]); },
                        {test::leaf({2, 4, 3, 2}, 19), test::leaf({2, nkv, 3, 2}, 20), test::leaf({2, nkv, 3, 2}, 21)});
    }
    CHECK_GRADCHECK([](const std::vector<Tensor>& in) {
                        return ops::causal_attention(in[0].transpose(1, 2), in[1], in[2], 0.8);
                    },
                    {test::leaf({1, 4, 2, 3}, 22), test::leaf({1, 1, 4, 3}, 23), test::leaf({1, 1, 4, 3}, 24)});
}

LUMEN_DEVICE_TEST("causal_attention: Tq < Tk gives the last Tq rows of full attention (KV-cache offset)") {
    const int64_t B = 2, nh = 4, Tk = 7, hs = 5;
    for (DType dt : {DType::f32, DType::f64, DType::bf16})
        for (int64_t nkv : {4, 2, 1}) {
            Tensor q = test::random({B, nh, Tk, hs}, 30, dt, device, -2, 2);
            Tensor k = test::random({B, nkv, Tk, hs}, 31, dt, device, -2, 2);
            Tensor v = test::random({B, nkv, Tk, hs}, 32, dt, device, -2, 2);
            const std::vector<double> full = ops::causal_attention(q, k, v).to_vector<double>();
            const test::Tolerance tol = dt == DType::bf16 ? test::Tolerance{4e-2, 4e-2} : test::tolerance(dt);
            for (int64_t Tq : {1, 3, 7}) {
                INFO(dtype_name(dt) << " nkv " << nkv << " Tq " << Tq);
                Tensor q_last = q.narrow(2, Tk - Tq, Tq);   // (B, nh, Tq, hs): the last Tq queries
                Tensor y = ops::causal_attention(q_last, k, v);
                REQUIRE(y.shape() == Shape{B, nh, Tq, hs});
                // The same rows of full attention: (B, nh, Tq, hs) out of (B, nh, Tk, hs).
                std::vector<double> want;
                for (int64_t bh = 0; bh < B * nh; ++bh)
                    for (int64_t r = Tk - Tq; r < Tk; ++r)
                        for (int64_t d = 0; d < hs; ++d) want.push_back(full[size_t((bh * Tk + r) * hs + d)]);
                CHECK_CLOSE(y.to_vector<double>(), want, tol);
                CHECK_CLOSE(y.to_vector<double>(), ref_attention(q_last, k, v, 1 / std::sqrt(double(hs))), tol);
            }
        }
}

LUMEN_DEVICE_TEST("causal_attention: Tq = 1 attends to every key; an empty q gives an empty result") {
    Tensor q = test::random({1, 2, 1, 3}, 33, DType::f64, device);
    Tensor k = test::random({1, 2, 6, 3}, 34, DType::f64, device);
    Tensor v = test::random({1, 2, 6, 3}, 35, DType::f64, device);
    // Unmasked attention over all 6 keys, composed by hand.
    Tensor want = ops::matmul(ops::softmax(ops::matmul(q, k.transpose(2, 3)) * (1 / std::sqrt(3.0))), v);
    CHECK_CLOSE(ops::causal_attention(q, k, v).to_vector<double>(), want.to_vector<double>(),
                test::tolerance(DType::f64));
    Tensor y = ops::causal_attention(Tensor::zeros({1, 2, 0, 3}, DType::f64, device), k, v);
    CHECK(y.shape() == Shape{1, 2, 0, 3});
}

// f32: the same bits as scaling, masking and softmax done separately; bf16: closer to f64 than that
// composition (the fused softmax scales in f32 instead of rounding the scaled scores to bf16).
LUMEN_DEVICE_TEST("causal_attention: Tq = Tk equals the plain (T, T) causal mask composition") {
    for (DType dt : {DType::f32, DType::bf16}) {
        INFO(dtype_name(dt));
        Tensor q = test::random({2, 4, 6, 8}, 36, dt, device, -2, 2);
        Tensor k = test::random({2, 4, 6, 8}, 37, dt, device, -2, 2);
        Tensor v = test::random({2, 4, 6, 8}, 38, dt, device, -2, 2);
        Tensor att = ops::mul(ops::matmul(q, k.transpose(2, 3)), ops::scalar_like(1 / std::sqrt(8.0), q));
        Tensor mask = ops::tril(Tensor::ones({6, 6}, DType::boolean, device));
        att = ops::where(mask, att, ops::scalar_like(-INFINITY, att));
        Tensor want = ops::matmul(ops::softmax(att), v);
        if (dt == DType::f32) {
            CHECK(test::same_bits(ops::causal_attention(q, k, v), want));
        } else {
            CHECK_CLOSE(ops::causal_attention(q, k, v), want, test::tolerance(DType::bf16));
        }
    }
}

TEST_CASE("causal_attention: gradcheck with Tq < Tk, with GQA") {
    for (int64_t Tq : {1, 2}) {
        for (int64_t nkv : {2, 1}) {
            INFO("Tq " << Tq << " nkv " << nkv);
            CHECK_GRADCHECK([](const std::vector<Tensor>& in) { return ops::causal_attention(in[0], in[1], in[2]); },
                            {test::leaf({2, 2, Tq, 3}, 40), test::leaf({2, nkv, 4, 3}, 41), test::leaf({2, nkv, 4, 3}, 42)});
        }
    }
}
