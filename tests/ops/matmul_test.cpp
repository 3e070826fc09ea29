// tests/ops/matmul_test.cpp: matmul against a naive triple loop in double (numpy's shape rules
// written out plainly) on awkward shapes, broadcast batches, vectors, strided operands and every
// supported dtype; the kernel's Accumulate::yes; errors; gradcheck of every backward path.
#include "tests/harness.h"

#include "core/kernels/matmul.h"

#include <cmath>
#include <omp.h>

using namespace lumen;

namespace {

struct Reference {
    Shape shape;
    std::vector<double> values;
};

// numpy's matmul in double: a vector operand gains a unit dim (removed again from the result),
// batch dims broadcast, and each output element is a plain sum over k.
Reference reference_matmul(const Tensor& a_in, const Tensor& b_in) {
    autograd::NoGradGuard no_grad;
    Tensor a = a_in.dim() == 1 ? a_in.unsqueeze(0) : a_in;  // (..., M, K)
    Tensor b = b_in.dim() == 1 ? b_in.unsqueeze(1) : b_in;  // (..., K, N)
    const int64_t M = a.size(-2), K = a.size(-1), N = b.size(-1);
    const Shape batch = broadcast_shapes(Shape(a.shape().begin(), a.shape().end() - 2),
                                         Shape(b.shape().begin(), b.shape().end() - 2), "test");
    Shape sa = batch, sb = batch;
    sa.insert(sa.end(), {M, K});
    sb.insert(sb.end(), {K, N});
    const std::vector<double> va = a.expand(sa).contiguous().to_vector<double>();
    const std::vector<double> vb = b.expand(sb).contiguous().to_vector<double>();
    const int64_t count = numel_of(batch);
    Reference r;
    r.values.assign(static_cast<size_t>(count * M * N), 0.0);
    for (int64_t p = 0; p < count; ++p)
        for (int64_t i = 0; i < M; ++i)
            for (int64_t j = 0; j < N; ++j) {
                double s = 0;
                for (int64_t k = 0; k < K; ++k)
                    s += va[size_t((p * M + i) * K + k)] * vb[size_t((p * K + k) * N + j)];
                r.values[size_t((p * M + i) * N + j)] = s;
            }
    r.shape = batch;
    if (a_in.dim() != 1) r.shape.push_back(M);
    if (b_in.dim() != 1) r.shape.push_back(N);
    return r;
}

// The dtype's tolerance, with atol grown like the rounding error of a K-term sum.
test::Tolerance tolerance_for(DType dt, int64_t K) {
    test::Tolerance t = test::tolerance(dt);
    t.atol *= std::max(1.0, std::sqrt(double(K)));
    return t;
}

void check_against_reference(const Tensor& a, const Tensor& b) {
    INFO("a " << describe(a) << ", b " << describe(b));
    const Reference ref = reference_matmul(a, b);
    const Tensor y = ops::matmul(a, b);
    REQUIRE(y.shape() == ref.shape);
    CHECK(y.dtype() == a.dtype());
    CHECK_CLOSE(y.to_vector<double>(), ref.values, tolerance_for(a.dtype(), a.size(-1)));
}

}  // namespace

LUMEN_DEVICE_TEST("matmul: forward matches the naive f64 reference on awkward shapes") {
    const std::pair<Shape, Shape> pairs[] = {
        {{3, 4}, {4, 5}},
        {{1, 1}, {1, 1}},
        {{1, 7}, {7, 1}},
        {{7, 1}, {1, 6}},
        {{17, 33}, {33, 65}},
        {{5, 0}, {0, 3}},
        {{0, 4}, {4, 3}},
        {{3, 4}, {4, 0}},
        {{70, 300}, {300, 260}},
        {{2, 1, 3, 4}, {5, 4, 6}},
        {{3, 1, 5, 6}, {1, 2, 6, 7}},
        {{2, 3, 4}, {1, 4, 5}},
        {{4, 9, 5}, {5, 3}},
        {{9, 5}, {4, 5, 3}},
        {{0, 3, 4}, {4, 2}},
        {{4}, {4}},
        {{4}, {4, 3}},
        {{3, 4}, {4}},
        {{2, 3, 4}, {4}},
        {{4}, {2, 4, 3}},
        {{0}, {0}},
    };
    uint64_t seed = 100;
    for (DType dt : {DType::f32, DType::f64, DType::bf16, DType::f16})
        for (const auto& [sa, sb] : pairs) {
            INFO(dtype_name(dt));
            // bf16: the reference reads the bf16-rounded inputs, so it sees the same operands.
            check_against_reference(test::random(sa, seed, dt, device),
                                    test::random(sb, seed + 1, dt, device));
            seed += 2;
        }
}

LUMEN_DEVICE_TEST("matmul: K = 0 gives zeros, in every batch") {
    for (DType dt : {DType::f32, DType::f64, DType::bf16, DType::f16}) {
        Tensor a = Tensor::ones({2, 3, 0}, dt, device), b = Tensor::ones({0, 4}, dt, device);
        Tensor y = ops::matmul(a, b);
        REQUIRE(y.shape() == Shape{2, 3, 4});
        CHECK(y.to_vector<double>() == std::vector<double>(24, 0.0));
    }
}

LUMEN_DEVICE_TEST("matmul: strided operands give the bits of their contiguous copies") {
    for (DType dt : {DType::f32, DType::f64, DType::bf16, DType::f16}) {
        INFO(dtype_name(dt));
        const int64_t M = 37, K = 70, N = 45;
        Tensor a = test::random({M, K}, 1, dt, device), b = test::random({K, N}, 2, dt, device);
        Tensor at = test::random({K, M}, 3, dt, device).transpose(0, 1);  // (M, K) column-major
        Tensor bt = test::random({N, K}, 4, dt, device).transpose(0, 1);  // (K, N) column-major
        // Every other column; a window of a larger matrix.
        Tensor as = test::random({M, 2 * K + 1}, 5, dt, device).slice(1, 1, 2 * K + 1, 2);
        Tensor bs = test::random({K + 3, N + 5}, 6, dt, device).slice(0, 2, K + 2);
        bs = bs.slice(1, 3, N + 3);
        // (3, M, K) with the batch in the middle; batch stride 0; (3, 2, M, K) with crossed batch
        // strides, which the op cannot collapse into one batch dim.
        Tensor ap = test::random({M, 3, K}, 7, dt, device).permute({1, 0, 2});
        Tensor bb = test::random({1, K, N}, 8, dt, device).expand({3, K, N});
        Tensor aq = test::random({2, 3, M, K}, 9, dt, device).transpose(0, 1);
        const std::pair<Tensor, Tensor> cases[] = {{at, b},  {a, bt},  {at, bt},
                                                   {as, bs}, {ap, b},  {ap, bb},
                                                   {at, bb}, {aq, bt}, {aq, bb.unsqueeze(1)}};
        for (const auto& [x, w] : cases) {
            INFO("a " << describe(x) << " strides " << shape_str(x.strides()) << ", b "
                      << describe(w) << " strides " << shape_str(w.strides()));
            REQUIRE((!x.is_contiguous() || !w.is_contiguous()));
            // NOTE: bit-identical on the CPU (fixed summation order); cuBLAS may pick another
            // algorithm for another layout, so CUDA is held to the dtype's tolerance.
            CHECK_CLOSE(ops::matmul(x, w), ops::matmul(x.contiguous(), w.contiguous()),
                        device.is_cpu() ? test::Tolerance{0, 0} : tolerance_for(dt, K));
            check_against_reference(x, w);
        }
    }
}

LUMEN_DEVICE_TEST("matmul: the result does not depend on the thread count") {
    Tensor a = test::random({3, 150, 300}, 11, DType::f32, device);
    Tensor b = test::random({280, 300}, 12, DType::f32, device).transpose(0, 1);  // (300, 280)
    const int threads = omp_get_max_threads();
    omp_set_num_threads(1);
    Tensor one = ops::matmul(a, b);
    omp_set_num_threads(std::max(threads, 2));
    Tensor many = ops::matmul(a, b);
    omp_set_num_threads(threads);
    CHECK_CLOSE(many, one, test::Tolerance{0, 0});
}

LUMEN_DEVICE_TEST("matmul: kernel with Accumulate::yes adds into out") {
    for (DType dt : {DType::f32, DType::f64, DType::bf16, DType::f16}) {
        INFO(dtype_name(dt));
        const int64_t B = 2, M = 19, K = 300, N = 21;
        Tensor a = test::random({B, K, M}, 21, dt, device).transpose(1, 2);  // (B, M, K) strided
        Tensor b = test::random({K, N}, 22, dt, device).unsqueeze(0).expand({B, K, N});
        Tensor out = test::random({B, M, N}, 23, dt, device);
        const std::vector<double> before = out.to_vector<double>();
        const Reference ref = reference_matmul(a, b);
        kernels::matmul(out, a, b, Accumulate::yes);
        std::vector<double> expected = ref.values;
        for (size_t i = 0; i < expected.size(); ++i) expected[i] += before[i];
        CHECK_CLOSE(out.to_vector<double>(), expected, tolerance_for(dt, K));
        kernels::matmul(out, a, b, Accumulate::no);  // and no overwrites
        CHECK_CLOSE(out.to_vector<double>(), ref.values, tolerance_for(dt, K));
    }
}

LUMEN_DEVICE_TEST("matmul: errors name the op and operands") {
    Tensor a = Tensor::zeros({2, 3, 768}, DType::f32, device),
           b = Tensor::zeros({3072, 768}, DType::f32, device);
    CHECK_THROWS_CONTAINING(ops::matmul(a, b),
                            "matmul: inner dimensions differ (768 vs 3072): a (2, 3, 768) f32");
    CHECK_THROWS_CONTAINING(
        ops::matmul(Tensor::zeros({4}, DType::f32, device), Tensor::zeros({5}, DType::f32, device)),
        "matmul: inner dimensions differ (4 vs 5)");
    Tensor c = Tensor::zeros({768, 4}, DType::bf16, device);
    CHECK_THROWS_CONTAINING(ops::matmul(a, c), "matmul: dtypes differ");
    Tensor i = Tensor::zeros({3, 3}, DType::i32, device);
    CHECK_THROWS_CONTAINING(ops::matmul(i, i),
                            "matmul: expected f32, f64, bf16 or f16 operands, got i32: a (3, 3) i32");
    Tensor s = Tensor::scalar(2.0, DType::f32, device);
    CHECK_THROWS_CONTAINING(ops::matmul(s, a), "matmul: operands must have at least one dim");
    CHECK_THROWS_CONTAINING(ops::matmul(Tensor::zeros({2, 3, 4}, DType::f32, device),
                                        Tensor::zeros({3, 4, 5}, DType::f32, device)),
                            "matmul: batch dimensions do not broadcast ((2,) vs (3,))");
    for (Device other : test::devices())
        if (other != device)
            CHECK_THROWS_CONTAINING(ops::matmul(Tensor::zeros({2, 3}, DType::f32, device),
                                                Tensor::zeros({3, 2}, DType::f32, other)),
                                    "matmul: tensors on different devices");
}

LUMEN_DEVICE_TEST("matmul: bf16 backward matches the f64 gradients") {
    // y = a · b with dy = 1: da(i, k) = Σ_j b(k, j), db(k, j) = Σ_i a(i, k).
    Tensor a = test::random({2, 5, 40}, 31, DType::bf16, device).requires_grad_();
    Tensor b = test::random({40, 6}, 32, DType::bf16, device).requires_grad_();
    ops::sum(ops::matmul(a, b)).backward();
    const std::vector<double> va = a.to_vector<double>(), vb = b.to_vector<double>();
    std::vector<double> da(va.size()), db(vb.size(), 0.0);
    for (int64_t p = 0; p < 10; ++p)
        for (int64_t k = 0; k < 40; ++k) {
            double row = 0;
            for (int64_t j = 0; j < 6; ++j) row += vb[size_t(k * 6 + j)];
            da[size_t(p * 40 + k)] = row;
            for (int64_t j = 0; j < 6; ++j) db[size_t(k * 6 + j)] += va[size_t(p * 40 + k)];
        }
    CHECK(a.grad().dtype() == DType::bf16);
    CHECK_CLOSE(a.grad().to_vector<double>(), da, tolerance_for(DType::bf16, 6));
    CHECK_CLOSE(b.grad().to_vector<double>(), db, tolerance_for(DType::bf16, 10));
}

LUMEN_GRADCHECK_COVERS("matmul");

TEST_CASE("matmul: gradcheck") {
    const auto mm = [](const std::vector<Tensor>& in) { return ops::matmul(in[0], in[1]); };
    const std::pair<Shape, Shape> pairs[] = {
        {{3, 4}, {4, 5}},       {{2, 1, 2, 3}, {3, 3, 2}}, {{3, 4}, {2, 4, 2}},
        {{2, 3, 4}, {4, 2}},    {{2, 3, 4}, {1, 4, 2}},    {{1, 3, 4}, {2, 4, 2}},  // b shared
        {{4}, {4}},             {{4}, {4, 3}},             {{3, 4}, {4}},
        {{2, 3, 4}, {4}},       {{4}, {2, 4, 3}},          {{2, 3, 0}, {0, 2}},
    };
    uint64_t seed = 40;
    for (const auto& [sa, sb] : pairs) {
        INFO(shape_str(sa) << " @ " << shape_str(sb));
        CHECK_GRADCHECK(mm, {test::leaf(sa, seed), test::leaf(sb, seed + 1)});
        seed += 2;
    }
    // Transposed and sliced operands made inside the function.
    CHECK_GRADCHECK(
        [](const std::vector<Tensor>& in) {
            return ops::matmul(in[0].transpose(0, 1), in[1].transpose(1, 2));
        },
        {test::leaf({4, 3}, 60), test::leaf({2, 5, 4}, 61)});
    CHECK_GRADCHECK(
        [](const std::vector<Tensor>& in) {
            return ops::matmul(in[0].slice(1, 0, 8, 2), in[1].permute({1, 0, 2}).transpose(1, 2));
        },
        {test::leaf({3, 8}, 62), test::leaf({5, 2, 4}, 63)});
    // Only one operand requires grad.
    Tensor w = test::random({4, 3}, 64, DType::f64);
    CHECK_GRADCHECK([w](const std::vector<Tensor>& in) { return ops::matmul(in[0], w); },
                    {test::leaf({2, 5, 4}, 65)});
    CHECK_GRADCHECK(
        [w](const std::vector<Tensor>& in) { return ops::matmul(w.transpose(0, 1), in[0]); },
        {test::leaf({2, 4, 2}, 66)});
}

LUMEN_DEVICE_TEST("matmul kernel: bias epilogue, and bf16 operands into an f32 output with accumulation") {
    // out (batch, M, N) = a · b + bias, against a double reference; then += a second product.
    const int64_t batch = 2, M = 19, K = 40, N = 33;
    for (DType dt : {DType::f32, DType::bf16}) {
        for (DType out_dt : {dt, DType::f32}) {
            INFO(dtype_name(dt) << " -> " << dtype_name(out_dt));
            Tensor a = test::random({batch, M, K}, 31, dt, device), b = test::random({batch, K, N}, 32, dt, device);
            Tensor bias = test::random({N}, 33, out_dt, device);
            Tensor out = Tensor::empty({batch, M, N}, out_dt, device);
            kernels::matmul(out, a, b.transpose(1, 2).contiguous().transpose(1, 2), Accumulate::no, bias);
            const auto va = a.to_vector<double>(), vb = b.to_vector<double>(), vbias = bias.to_vector<double>();
            std::vector<double> expected(static_cast<size_t>(batch * M * N));
            for (int64_t p = 0; p < batch; ++p)
                for (int64_t i = 0; i < M; ++i)
                    for (int64_t j = 0; j < N; ++j) {
                        double s = vbias[size_t(j)];
                        for (int64_t k = 0; k < K; ++k)
                            s += va[size_t((p * M + i) * K + k)] * vb[size_t((p * K + k) * N + j)];
                        expected[size_t((p * M + i) * N + j)] = s;
                    }
            CHECK_CLOSE(out.to_vector<double>(), expected, tolerance_for(out_dt, K));
            kernels::matmul(out, a, b, Accumulate::yes);  // out += a · b
            for (size_t e = 0; e < expected.size(); ++e)  // (a·b + bias) + a·b
                expected[e] = 2 * expected[e] - vbias[e % size_t(N)];
            CHECK_CLOSE(out.to_vector<double>(), expected, tolerance_for(out_dt, 2 * K));
        }
    }
}
