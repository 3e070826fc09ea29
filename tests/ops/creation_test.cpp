// tests/ops/creation_test.cpp: arange (float and integer dtypes, negative steps, empty ranges,
// errors), zeros_like / ones_like / empty_like, and the argument checks of rand and randn (the
// streams themselves are checked in tests/core/philox_test.cpp).
#include "tests/harness.h"

#include <fmt/format.h>

#include <cmath>

using namespace lumen;

namespace {
// start + i·step for i < ceil((end - start) / step), in f64.
std::vector<double> arange_ref(double start, double end, double step) {
    std::vector<double> out;
    const double n = std::ceil((end - start) / step);
    for (int64_t i = 0; i < int64_t(n); ++i) out.push_back(start + double(i) * step);
    return out;
}
}  // namespace

LUMEN_DEVICE_TEST("arange: float dtypes, fractional and negative steps") {
    auto values = [&](double start, double end, double step, DType dt) {
        Tensor t = ops::arange(start, end, step, dt, device);
        CHECK(t.dtype() == dt);
        CHECK(t.device() == device);
        CHECK(t.dim() == 1);
        return t.to_vector<double>();
    };
    CHECK(values(0, 5, 1, DType::f32) == std::vector<double>{0, 1, 2, 3, 4});
    CHECK(values(0, 1, 0.25, DType::f32) == std::vector<double>{0, 0.25, 0.5, 0.75});
    CHECK(values(5, 0, -1, DType::f64) == std::vector<double>{5, 4, 3, 2, 1});
    CHECK(values(-1, 1.5, 0.5, DType::f16) == std::vector<double>{-1, -0.5, 0, 0.5, 1});
    CHECK(values(0, 1, 0.1, DType::f64).size() == 10);
    CHECK_CLOSE(values(0, -1, -0.3, DType::f32), (std::vector<double>{0, -0.3, -0.6, -0.9}), test::tolerance(DType::f32));
    CHECK(values(-1, 1, 0.1, DType::f64) == arange_ref(-1, 1, 0.1));
    CHECK(values(0.5, 3, 1, DType::f64) == std::vector<double>{0.5, 1.5, 2.5});  // a partial last step
    // bf16: each value rounded on its own (no accumulated error): 257 rounds to 256, 259 to 260.
    std::vector<double> b = values(0, 300, 1, DType::bf16), expected;
    for (int i = 0; i < 300; ++i) expected.push_back(double(float(bf16(float(i)))));
    CHECK(b == expected);
    CHECK(b[257] == 256);
    CHECK(b[259] == 260);
    // Empty ranges.
    CHECK(values(3, 3, 1, DType::f32).empty());
    CHECK(values(3, 0, 1, DType::f32).empty());
    CHECK(values(0, 3, -1, DType::f32).empty());
    CHECK(ops::arange(2, 2).shape() == Shape{0});
}

LUMEN_DEVICE_TEST("arange: integer dtypes") {
    auto values = [&](double start, double end, double step, DType dt) {
        Tensor t = ops::arange(start, end, step, dt, device);
        CHECK(t.dtype() == dt);
        return t.to_vector<int64_t>();
    };
    CHECK(values(0, 10, 3, DType::i32) == std::vector<int64_t>{0, 3, 6, 9});
    CHECK(values(10, -10, -7, DType::i64) == std::vector<int64_t>{10, 3, -4});
    CHECK(values(250, 256, 1, DType::u8) == std::vector<int64_t>{250, 251, 252, 253, 254, 255});
    CHECK(values(-3, 3, 2, DType::i8) == std::vector<int64_t>{-3, -1, 1});
    CHECK(values(0, 65536, 16384, DType::u16) == std::vector<int64_t>{0, 16384, 32768, 49152});
    CHECK(values(0, 0, 1, DType::i64).empty());
    const int64_t big = int64_t(1) << 40;
    CHECK(values(double(big), double(big + 3), 1, DType::i64) == std::vector<int64_t>{big, big + 1, big + 2});
}

TEST_CASE("arange: errors") {
    CHECK_THROWS_CONTAINING(ops::arange(0, 5, 0), "arange: step must be non-zero");
    CHECK_THROWS_CONTAINING(ops::arange(0, INFINITY), "arange: start, end and step must be finite");
    CHECK_THROWS_CONTAINING(ops::arange(NAN, 1), "arange: start, end and step must be finite");
    CHECK_THROWS_CONTAINING(ops::arange(0, 1, NAN), "arange: start, end and step must be finite");
    CHECK_THROWS_CONTAINING(ops::arange(0, 1e300), "arange: too many elements");
}

LUMEN_DEVICE_TEST("zeros_like, ones_like and empty_like follow shape, dtype and device") {
    for (DType dt : {DType::f32, DType::bf16, DType::i64, DType::boolean}) {
        INFO(dtype_name(dt));
        Tensor x = Tensor::ones({2, 3, 4}, dt, device).transpose(0, 2);  // (4, 3, 2), strided
        for (Tensor y : {ops::zeros_like(x), ops::ones_like(x), ops::empty_like(x)}) {
            CHECK(y.shape() == Shape{4, 3, 2});
            CHECK(y.dtype() == dt);
            CHECK(y.device() == device);
            CHECK(y.is_contiguous());
            CHECK(y.storage() != x.storage());
            CHECK_FALSE(y.requires_grad());
        }
        CHECK(ops::zeros_like(x).to_vector<double>() == std::vector<double>(24, 0.0));
        CHECK(ops::ones_like(x).to_vector<double>() == std::vector<double>(24, 1.0));
    }
    Tensor leaf = Tensor::zeros({3}, DType::f64, device).requires_grad_();
    CHECK_FALSE(ops::ones_like(leaf).requires_grad());  // creation records no gradient
    CHECK(ops::zeros_like(Tensor::scalar(5, DType::f32, device)).dim() == 0);
    CHECK(ops::empty_like(Tensor::zeros({0, 7}, DType::f32, device)).shape() == Shape{0, 7});
}

LUMEN_DEVICE_TEST("rand and randn: argument errors leave the generator where it was") {
    Generator gen(1, 2);
    CHECK_THROWS_CONTAINING(ops::rand({3}, gen, 0, 1, DType::i32, device), "rand: expected a floating dtype, got i32");
    CHECK_THROWS_CONTAINING(ops::rand({3}, gen, 1, 0, DType::f32, device), "rand: empty range [1, 0)");
    CHECK_THROWS_CONTAINING(ops::rand({3}, gen, NAN, 1, DType::f32, device), "rand: empty range [nan, 1)");
    CHECK_THROWS_CONTAINING(ops::rand({-1, 2}, gen, 0, 1, DType::f32, device), "empty: negative size in shape (-1, 2)");
    CHECK_THROWS_CONTAINING(ops::randn({3}, gen, 0, 1, DType::boolean, device), "randn: expected a floating dtype, got bool");
    CHECK_THROWS_CONTAINING(ops::randn({3}, gen, 0, -1, DType::f32, device), "randn: std must be ≥ 0, got -1");
    CHECK_THROWS_CONTAINING(ops::randn({3}, gen, 0, NAN, DType::f32, device), "randn: std must be ≥ 0, got nan");
    CHECK_THROWS_CONTAINING(ops::randn({2, -3}, gen, 0, 1, DType::f32, device), "empty: negative size");
    CHECK(gen.state().offset == 0);

    // Degenerate but valid: an empty range [lo, lo) gives lo; std 0 gives the mean.
    CHECK(ops::rand({5}, gen, 2.5, 2.5, DType::f32, device).to_vector<float>() == std::vector<float>(5, 2.5f));
    CHECK(ops::randn({5}, gen, -1.5, 0, DType::f64, device).to_vector<double>() == std::vector<double>(5, -1.5));
    CHECK(gen.state().offset == 4);
    Tensor r = ops::rand({2, 0, 3}, gen, 0, 1, DType::bf16, device);
    CHECK(r.shape() == Shape{2, 0, 3});
    CHECK(r.dtype() == DType::bf16);
    CHECK(gen.state().offset == 4);
}
