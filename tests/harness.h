// tests/harness.h: what every lumen test uses: device-parametrised cases, closeness checks with
// dtype-scaled tolerances, seeded random inputs, and gradcheck cases that register coverage.
//
//   LUMEN_DEVICE_TEST("exp: forward matches the reference") { ... uses `device` ... }
//   LUMEN_GRADCHECK_COVERS("exp", "log");           // at namespace scope, once per op name
//   CHECK_GRADCHECK([](const auto& in) { return ops::exp(in[0]); }, {test::leaf({3, 4}, 1)});
#pragma once

#include "autograd/gradcheck.h"
#include "autograd/node.h"
#include "autograd/ops/ops.h"
#include "autograd/registry.h"
#include "core/tensor.h"

#include <doctest/doctest.h>

#include <set>
#include <string>

namespace lumen::test {

// The devices a LUMEN_DEVICE_TEST runs on: the CPU, and CUDA devices when this build has CUDA
// op kernels and a GPU is present. `cuda_skip_reason` says why CUDA cases are skipped ("" if not).
const std::vector<Device>& devices();
const std::string& cuda_skip_reason();

struct Tolerance {
    double atol, rtol;
};
// For comparing a result in `dt` with an f64 reference.
Tolerance tolerance(DType dt);

// "" when |actual - expected| ≤ atol + rtol·|expected| everywhere (NaN matches NaN, ±Inf must
// match exactly) and shapes agree; otherwise a message naming the first bad element.
std::string compare(const Tensor& actual, const Tensor& expected, Tolerance tol);
std::string compare(const std::vector<double>& actual, const std::vector<double>& expected, Tolerance tol);

// Whether a and b hold the same bytes (same shape and dtype), wherever they live.
bool same_bits(const Tensor& a, const Tensor& b);

// Uniform values in [lo, hi) from a Philox stream keyed by `seed`.
Tensor random(const Shape& shape, uint64_t seed, DType dtype = DType::f32, Device device = Device::cpu(),
              double lo = -1.0, double hi = 1.0);
// An f64 CPU leaf that requires grad, for gradcheck.
Tensor leaf(const Shape& shape, uint64_t seed, double lo = -1.0, double hi = 1.0);

// Gradcheck coverage: names registered by test files (see tests/autograd/coverage_test.cpp).
bool register_gradcheck_cases(std::initializer_list<std::string_view> names);
const std::set<std::string, std::less<>>& gradcheck_cases();

}  // namespace lumen::test

#define LUMEN_TEST_CONCAT_(a, b) a##b
#define LUMEN_TEST_CONCAT(a, b) LUMEN_TEST_CONCAT_(a, b)

#define LUMEN_DEVICE_TEST_IMPL(fn, name)                                     \
    static void fn(::lumen::Device device);                                  \
    TEST_CASE(name) {                                                        \
        for (::lumen::Device d : ::lumen::test::devices()) {                 \
            INFO("device: " << d.str());                                     \
            fn(d);                                                           \
        }                                                                    \
    }                                                                        \
    static void fn([[maybe_unused]] ::lumen::Device device)
// A test case run once per available device, with `device` in scope.
#define LUMEN_DEVICE_TEST(name) LUMEN_DEVICE_TEST_IMPL(LUMEN_TEST_CONCAT(lumen_device_test_, __LINE__), name)

#define LUMEN_CUDA_TEST_IMPL(fn, name)                                       \
    static void fn(::lumen::Device device);                                  \
    TEST_CASE(name * doctest::test_suite("cuda")) {                          \
        for (::lumen::Device d : ::lumen::test::devices()) {                 \
            if (!d.is_cuda()) continue;                                      \
            INFO("device: " << d.str());                                     \
            fn(d);                                                           \
        }                                                                    \
    }                                                                        \
    static void fn([[maybe_unused]] ::lumen::Device device)
// A test case that needs a GPU: runs once per CUDA device, and not at all without one (the test
// binary says once, at start, why CUDA cases are skipped).
#define LUMEN_CUDA_TEST(name) LUMEN_CUDA_TEST_IMPL(LUMEN_TEST_CONCAT(lumen_cuda_test_, __LINE__), name)

#define LUMEN_GRADCHECK_COVERS(...)                                          \
    static const bool LUMEN_TEST_CONCAT(lumen_gradcheck_covers_, __LINE__) = \
        ::lumen::test::register_gradcheck_cases({__VA_ARGS__})

#define CHECK_CLOSE(actual, expected, ...)                                   \
    do {                                                                     \
        const std::string lumen_close_ = ::lumen::test::compare((actual), (expected), __VA_ARGS__); \
        CHECK_MESSAGE(lumen_close_.empty(), lumen_close_);                   \
    } while (0)

#define CHECK_GRADCHECK(...)                                                 \
    do {                                                                     \
        const auto lumen_gc_ = ::lumen::autograd::gradcheck(__VA_ARGS__);    \
        CHECK_MESSAGE(lumen_gc_.ok, lumen_gc_.message);                      \
    } while (0)

#define CHECK_THROWS_CONTAINING(expr, text) \
    CHECK_THROWS_WITH_AS(expr, doctest::Contains(doctest::String(std::string(text).c_str())), ::lumen::Error)
