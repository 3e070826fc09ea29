// tests/harness.cpp: device list, tolerances, comparisons and random inputs for the tests.
#include "tests/harness.h"

#include "core/kernels/elementwise.h"

#include <cmath>
#include <cstring>

namespace lumen::test {

namespace {
// Probes whether CUDA tensors can run the elementwise kernels, and why not.
std::pair<std::vector<Device>, std::string> find_devices() {
    std::vector<Device> list{Device::cpu()};
    if (!built_with_cuda()) return {list, "this build has no CUDA support (LUMEN_CUDA=OFF or no nvcc)"};
    const int count = cuda_device_count();
    if (count == 0) return {list, "no CUDA device is present"};
    try {
        Tensor probe = Tensor::empty({1}, DType::f32, Device::cuda(0));
        kernels::fill(probe, 1.0);
    } catch (const Error& e) {
        return {list, fmt::format("the CUDA backend cannot run ops here ({})", e.what())};
    }
    for (int i = 0; i < count; ++i) list.push_back(Device::cuda(i));
    return {list, ""};
}
const std::pair<std::vector<Device>, std::string>& probe() {
    static const auto result = find_devices();
    return result;
}
}  // namespace

const std::vector<Device>& devices() { return probe().first; }
const std::string& cuda_skip_reason() { return probe().second; }

Tolerance tolerance(DType dt) {
    switch (dt) {
    case DType::f64: return {1e-10, 1e-9};
    case DType::f32: return {1e-5, 1e-5};
    case DType::f16: return {1e-3, 2e-3};
    case DType::bf16: return {1e-2, 1.6e-2};
    default: return {0, 0};
    }
}

std::string compare(const std::vector<double>& a, const std::vector<double>& e, Tolerance tol) {
    if (a.size() != e.size()) return fmt::format("sizes differ: {} vs {}", a.size(), e.size());
    for (size_t i = 0; i < a.size(); ++i) {
        const double x = a[i], y = e[i];
        if (std::isnan(y) && std::isnan(x)) continue;
        if (std::isinf(y) || std::isinf(x)) {
            if (x != y) return fmt::format("element {}: {} vs expected {}", i, x, y);
            continue;
        }
        if (!(std::abs(x - y) <= tol.atol + tol.rtol * std::abs(y)))
            return fmt::format("element {}: {:.10g} vs expected {:.10g} (|diff| {:.3g} > atol {:.3g} + rtol {:.3g}·|expected|)",
                               i, x, y, std::abs(x - y), tol.atol, tol.rtol);
    }
    return "";
}

std::string compare(const Tensor& actual, const Tensor& expected, Tolerance tol) {
    if (actual.shape() != expected.shape())
        return fmt::format("shapes differ: {} vs expected {}", shape_str(actual.shape()), shape_str(expected.shape()));
    return compare(actual.to_vector<double>(), expected.to_vector<double>(), tol);
}

bool same_bits(const Tensor& a, const Tensor& b) {
    Tensor x = a.to(Device::cpu()).contiguous(), y = b.to(Device::cpu()).contiguous();
    if (x.shape() != y.shape() || x.dtype() != y.dtype()) return false;
    return x.numel() == 0 ||
           std::memcmp(x.data_ptr(), y.data_ptr(), size_t(x.numel()) * dtype_size(x.dtype())) == 0;
}

Tensor random(const Shape& shape, uint64_t seed, DType dtype, Device device, double lo, double hi) {
    Generator gen(seed, 0);
    Tensor values = ops::rand(shape, gen, lo, hi, DType::f64);
    return values.to(dtype).to(device);
}

Tensor leaf(const Shape& shape, uint64_t seed, double lo, double hi) {
    Tensor t = random(shape, seed, DType::f64, Device::cpu(), lo, hi);
    t.set_requires_grad(true);
    return t;
}

namespace {
std::set<std::string, std::less<>>& cases() {
    static std::set<std::string, std::less<>> set;
    return set;
}
}  // namespace

bool register_gradcheck_cases(std::initializer_list<std::string_view> names) {
    for (auto n : names) cases().emplace(n);
    return true;
}
const std::set<std::string, std::less<>>& gradcheck_cases() { return cases(); }

}  // namespace lumen::test
