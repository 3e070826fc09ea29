// tests/ops/embedding_test.cpp: embedding: the gather against a host reference on awkward shapes
// (V = 1, C = 1, C = 0, empty and 0-d indices, non-contiguous weight and indices) and dtypes; the
// scatter-add backward with repeated indices checked to the exact value; errors; gradchecks; on a
// GPU, the CUDA kernels against the CPU ones bit for bit (awkward shapes, offset views, a GPT-2
// sized table, one index repeated 4096 times), and CUDA's all-one-bits rows for out-of-range
// indices (the CPU throws).
#include "tests/harness.h"

#include <cmath>
#include <cstring>

using namespace lumen;

namespace {

// out[n, c] = w[idx[n], c], in plain loops over host copies.
std::vector<double> ref_gather(const std::vector<double>& w, const std::vector<int64_t>& idx,
                               int64_t C) {
    std::vector<double> out;
    for (int64_t v : idx)
        for (int64_t c = 0; c < C; ++c) out.push_back(w[size_t(v * C + c)]);
    return out;
}

// Indices in [0, V) from a seeded stream.
Tensor random_indices(const Shape& shape, int64_t V, uint64_t seed, DType dt, Device device) {
    std::vector<int64_t> idx;
    for (double u : test::random(shape, seed, DType::f64).to_vector<double>())
        idx.push_back(std::min<int64_t>(V - 1, int64_t((u + 1) / 2 * double(V))));
    return Tensor::from<int64_t>(idx, shape).to(dt).to(device);
}

}  // namespace

LUMEN_DEVICE_TEST("embedding: forward gathers rows on every dtype and awkward shape") {
    struct Case {
        int64_t V, C;
        Shape indices;
    };
    const Case cases[] = {{10, 4, {6}},   {7, 33, {2, 3}}, {1, 1, {5}},
                          {5, 1, {3, 2}}, {1, 8, {}},      {9, 3, {0}},
                          {4, 2, {3, 0}}, {6, 0, {4}},     {50, 130, {2, 2, 3}}};
    for (DType dt : {DType::f32, DType::f64, DType::bf16, DType::i32})
        for (DType idt : {DType::i32, DType::i64})
            for (const Case& c : cases) {
                INFO(dtype_name(dt) << " " << dtype_name(idt) << " V " << c.V << " C " << c.C
                                    << " indices " << shape_str(c.indices));
                Tensor w = test::random({c.V, c.C}, 111, DType::f64, device, -5, 5).to(dt);
                Tensor idx = random_indices(c.indices, c.V, 112, idt, device);
                Tensor y = ops::embedding(w, idx);
                Shape expected_shape = c.indices;
                expected_shape.push_back(c.C);
                REQUIRE(y.shape() == expected_shape);
                CHECK(y.dtype() == dt);
                // A gather copies: the values must be bit-identical.
                CHECK(y.to_vector<double>() ==
                      ref_gather(w.to_vector<double>(), idx.to_vector<int64_t>(), c.C));
            }
}

LUMEN_DEVICE_TEST("embedding: non-contiguous weight and indices") {
    for (DType dt : {DType::f32, DType::bf16}) {
        INFO(dtype_name(dt));
        Tensor w = test::random({5, 8}, 121, dt, device).transpose(0, 1);                 // (8, 5)
        Tensor w_sliced = test::random({16, 5}, 122, dt, device).slice(0, 1, 16, 2);      // (8, 5)
        Tensor idx = random_indices({4, 3}, 8, 123, DType::i64, device).transpose(0, 1);  // (3, 4)
        REQUIRE_FALSE(w.is_contiguous());
        REQUIRE_FALSE(w_sliced.is_contiguous());
        REQUIRE_FALSE(idx.is_contiguous());
        for (const Tensor& weight : {w, w_sliced}) {
            Tensor y = ops::embedding(weight, idx);
            CHECK(y.shape() == Shape{3, 4, 5});
            CHECK(y.to_vector<double>() ==
                  ref_gather(weight.to_vector<double>(), idx.to_vector<int64_t>(), 5));
        }
    }
}

LUMEN_DEVICE_TEST("embedding: repeated indices accumulate in backward, in exact values") {
    Tensor w = Tensor::zeros({4, 3}, DType::f64, device);
    w.set_requires_grad(true);
    Tensor idx = Tensor::from<int64_t>({1, 3, 1, 1, 0}, {5}, device);
    // dy rows: 1, 10, 100, 1000, 10000 times (1, 2, 3)
    Tensor dy = Tensor::from<double>(
        {1, 2, 3, 10, 20, 30, 100, 200, 300, 1000, 2000, 3000, 10000, 20000, 30000}, {5, 3},
        device);
    ops::embedding(w, idx).backward(dy);
    CHECK(w.grad().to_vector<double>() ==
          std::vector<double>{10000, 20000, 30000,  // row 0: index 4
                              1101, 2202, 3303,     // row 1: indices 0, 2, 3
                              0, 0, 0,              // row 2: never used
                              10, 20, 30});         // row 3: index 1
    // A second backward accumulates into .grad (+=), as for any leaf.
    ops::embedding(w, idx).backward(dy);
    CHECK(w.grad().to_vector<double>()[3] == 2202.0);
}

LUMEN_DEVICE_TEST(
    "embedding: bf16 gradients accumulate in f32 (a bf16 running sum stalls at 256)") {
    Tensor w = Tensor::zeros({3, 2}, DType::bf16, device);
    w.set_requires_grad(true);
    Tensor idx = Tensor::full({300}, 2.0, DType::i32, device);
    ops::embedding(w, idx).backward(Tensor::ones({300, 2}, DType::bf16, device));
    CHECK(w.grad().dtype() == DType::bf16);
    CHECK(w.grad().to_vector<float>() == std::vector<float>{0, 0, 0, 0, 300, 300});
}

LUMEN_DEVICE_TEST("embedding: backward matches a host scatter-add on random shapes") {
    struct Case {
        int64_t V, C;
        Shape indices;
    };
    // The last case splits the columns across threads.
    for (const Case& k : {Case{13, 37, {3, 20}}, Case{1, 1, {7}}, Case{50, 64, {4, 500}}}) {
        for (DType dt : {DType::f32, DType::f64, DType::bf16}) {
            INFO(dtype_name(dt) << " V " << k.V << " C " << k.C);
            const int64_t V = k.V, C = k.C;
            Tensor w = test::random({V, C}, 131, dt, device);
            w.set_requires_grad(true);
            Tensor idx = random_indices(k.indices, V, 132, DType::i32, device);
            Shape dy_shape = k.indices;
            dy_shape.push_back(C);
            Tensor dy = test::random(dy_shape, 133, dt, device);
            ops::embedding(w, idx).backward(dy);
            std::vector<double> expected(size_t(V * C), 0.0);
            const std::vector<int64_t> is = idx.to_vector<int64_t>();
            const std::vector<double> g = dy.to_vector<double>();
            for (size_t n = 0; n < is.size(); ++n)
                for (int64_t c = 0; c < C; ++c)
                    expected[size_t(is[n] * C + c)] += g[n * size_t(C) + size_t(c)];
            CHECK(w.grad().dtype() == dt);
            CHECK_CLOSE(w.grad().to_vector<double>(), expected, test::tolerance(dt));
        }
    }
}

LUMEN_DEVICE_TEST("embedding: errors name the op, the bad index and V") {
    Tensor w = Tensor::zeros({5, 3}, DType::f32, device);
    // Index values are checked on the CPU only: on CUDA that would need a host sync (see the CUDA
    // test "out-of-range indices gather all-one bits" below).
    if (device.is_cpu()) {
        CHECK_THROWS_CONTAINING(
            ops::embedding(w, Tensor::from<int64_t>({0, 4, 9, 1}, {4}, device)),
            "embedding: index 9 (at flat position 2) is out of range [0, 5) for V = 5: "
            "weight (5, 3) f32");
        CHECK_THROWS_CONTAINING(ops::embedding(w, Tensor::from<int32_t>({-1}, {1}, device)),
                                "embedding: index -1");
        CHECK_THROWS_CONTAINING(ops::embedding(Tensor::zeros({0, 3}, DType::f32, device),
                                               Tensor::zeros({1}, DType::i64, device)),
                                "out of range [0, 0) for V = 0");
    }
    CHECK_THROWS_CONTAINING(ops::embedding(w, Tensor::zeros({2}, DType::f32, device)),
                            "embedding: indices must be i32 or i64: weight (5, 3) f32");
    CHECK_THROWS_CONTAINING(ops::embedding(Tensor::zeros({5}, DType::f32, device),
                                           Tensor::zeros({2}, DType::i64, device)),
                            "embedding: weight must be (V, C)");
}

LUMEN_GRADCHECK_COVERS("embedding");

TEST_CASE("embedding: gradcheck, repeated indices and a non-contiguous weight") {
    Tensor idx = Tensor::from<int64_t>({2, 0, 2, 3, 2, 1}, {2, 3});
    CHECK_GRADCHECK([idx](const std::vector<Tensor>& in) { return ops::embedding(in[0], idx); },
                    {test::leaf({4, 3}, 141)});
    CHECK_GRADCHECK(
        [idx](const std::vector<Tensor>& in) { return ops::embedding(in[0].transpose(0, 1), idx); },
        {test::leaf({5, 4}, 142)});
    Tensor one = Tensor::from<int32_t>({0, 0, 0}, {3});
    CHECK_GRADCHECK([one](const std::vector<Tensor>& in) { return ops::embedding(in[0], one); },
                    {test::leaf({1, 1}, 143)});
}

// ---- CUDA against the CPU kernels (run only where a GPU is present) ----

namespace {

struct EmbRun {
    Tensor out, dweight;
};
EmbRun embedding_on(Device device, const Tensor& w_host, const Tensor& idx_host, const Tensor& dy_host) {
    Tensor w = w_host.to(device).detach();  // a fresh leaf, also when device is the CPU
    const bool grad = is_floating(w.dtype());
    if (grad) w.set_requires_grad(true);
    Tensor out = ops::embedding(w, idx_host.to(device));
    if (grad) out.backward(dy_host.to(device));
    return {out.detach(), grad ? w.grad() : Tensor()};
}

}  // namespace

LUMEN_CUDA_TEST("embedding: CUDA matches the CPU kernels bit for bit, forward and backward") {
    struct Case {
        int64_t V, C;
        Shape indices;
    };
    // C = 1, 3, 33 (row sizes that no 16-byte unit divides), no indices, 0-d indices, many rows,
    // a GPT-2 sized table.
    const Case cases[] = {{10, 4, {6}},     {1, 1, {5}},       {7, 33, {2, 3}},  {5, 3, {3, 2}},
                          {1, 8, {}},       {9, 3, {0}},       {6, 0, {4}},      {3, 1, {70000}},
                          {50, 130, {2, 2, 3}}, {13, 1025, {40}}, {50304, 768, {4, 1024}}};
    for (DType dt : {DType::f32, DType::f64, DType::bf16, DType::f16, DType::i32})
        for (DType idt : {DType::i32, DType::i64})
            for (const Case& c : cases) {
                if (c.V == 50304 && (dt == DType::f64 || dt == DType::i32 || idt == DType::i32))
                    continue;  // the large table once per float dtype is enough
                INFO(dtype_name(dt) << " " << dtype_name(idt) << " V " << c.V << " C " << c.C
                                    << " indices " << shape_str(c.indices));
                Tensor w = test::random({c.V, c.C}, 401, DType::f64, Device::cpu(), -5, 5).to(dt);
                Tensor idx = random_indices(c.indices, c.V, 402, idt, Device::cpu());
                Shape dy_shape = c.indices;
                dy_shape.push_back(c.C);
                Tensor dy = test::random(dy_shape, 403, is_floating(dt) ? dt : DType::f32, Device::cpu());
                const EmbRun cpu = embedding_on(Device::cpu(), w, idx, dy);
                const EmbRun gpu = embedding_on(device, w, idx, dy);
                CHECK(gpu.out.device() == device);
                CHECK(test::same_bits(gpu.out, cpu.out));
                // The CUDA backward sums each row in index order in f32 (f64), as the CPU does.
                if (is_floating(dt)) {
                    CHECK(test::same_bits(gpu.dweight, cpu.dweight));
                    CHECK(test::same_bits(gpu.dweight, embedding_on(device, w, idx, dy).dweight));
                }
            }
}

LUMEN_CUDA_TEST("embedding: CUDA backward with one index repeated 4096 times, and offset views") {
    for (DType dt : {DType::f32, DType::bf16}) {
        INFO(dtype_name(dt));
        Tensor w = test::random({20, 96}, 411, dt, Device::cpu());
        Tensor idx = Tensor::full({4096}, 7.0, DType::i64);
        Tensor dy = test::random({4096, 96}, 412, dt, Device::cpu());
        const EmbRun cpu = embedding_on(Device::cpu(), w, idx, dy), gpu = embedding_on(device, w, idx, dy);
        CHECK(test::same_bits(gpu.dweight, cpu.dweight));
        // Contiguous views that start one element into their storage, so that rows of C = 8 sit
        // off 16-byte boundaries: weight (8, 8) and dy (31, 8).
        auto offset_view = [&](int64_t rows, uint64_t seed) {
            return test::random({rows * 8 + 1}, seed, dt, device)
                .slice(0, 1, rows * 8 + 1)
                .reshape({rows, 8});
        };
        Tensor wv = offset_view(8, 413).detach();
        Tensor iv = random_indices({31}, 8, 414, DType::i32, device);
        Tensor dyv = offset_view(31, 415);
        REQUIRE(wv.is_contiguous());
        REQUIRE(dyv.is_contiguous());
        wv.set_requires_grad(true);
        Tensor out = ops::embedding(wv, iv);
        CHECK(out.to_vector<double>() == ref_gather(wv.to_vector<double>(), iv.to_vector<int64_t>(), 8));
        out.backward(dyv);
        const EmbRun host = embedding_on(Device::cpu(), wv.detach().to(Device::cpu()), iv.to(Device::cpu()),
                                         dyv.to(Device::cpu()));
        CHECK(test::same_bits(wv.grad(), host.dweight));
    }
}

LUMEN_CUDA_TEST("embedding: on CUDA out-of-range indices gather all-one bits, not an error") {
    // The CPU throws (see "errors name the op"); CUDA would need a host sync to check, so the
    // gather writes a row of all-one bits (NaN in float dtypes, -1 in integer ones) and the
    // backward drops that row of dy.
    Tensor w = Tensor::from<float>({1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15}, {5, 3}, device);
    w.set_requires_grad(true);
    Tensor idx = Tensor::from<int64_t>({0, 9, -1, 2}, {4}, device);
    Tensor out = ops::embedding(w, idx);
    const std::vector<float> o = out.to_vector<float>();
    for (int c = 0; c < 3; ++c) {
        CHECK(o[size_t(c)] == float(1 + c));       // row 0: weight row 0
        CHECK(std::isnan(o[size_t(3 + c)]));        // index 9
        CHECK(std::isnan(o[size_t(6 + c)]));        // index -1
        CHECK(o[size_t(9 + c)] == float(7 + c));    // row 3: weight row 2
    }
    out.backward(Tensor::ones({4, 3}, DType::f32, device));
    CHECK(w.grad().to_vector<float>() ==
          std::vector<float>{1, 1, 1, 0, 0, 0, 1, 1, 1, 0, 0, 0, 0, 0, 0});
    Tensor wi = Tensor::from<int32_t>({1, 2, 3, 4}, {2, 2}, device);
    CHECK(ops::embedding(wi, Tensor::from<int32_t>({1, 2}, {2}, device)).to_vector<int32_t>() ==
          std::vector<int32_t>{3, 4, -1, -1});
}
