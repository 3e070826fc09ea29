// benchmarks/kernels.cpp: the kernel benchmarks (see benchmarks/kernels.h). Sizes are those of the issue's
// targets and of the peer script (shared/perf/peer_bench.py): bf16 GEMM 8192³, a 1 GiB device
// copy, an elementwise add on 256M bf16 elements, and a sum over the last dim of 16384×4096 f32.
// Inputs are random (never zeros: they run faster than real data). --quick divides the sizes.
#include "benchmarks/kernels.h"

#include "autograd/node.h"
#include "autograd/ops/ops.h"
#include "benchmarks/timer.h"
#include "core/kernels/elementwise.h"
#include "core/kernels/matmul.h"

namespace lumen::bench {

namespace {

Tensor random_tensor(const Shape& shape, DType dtype, Device device, uint64_t seed) {
    Generator gen(seed);
    return ops::rand(shape, gen, -1.0, 1.0, dtype, device);
}

KernelResult gemm(const KernelOptions& o, DType dtype, const char* name) {
    const int64_t n = o.quick ? 256 : 8192;
    Tensor a = random_tensor({1, n, n}, dtype, o.device, 1), b = random_tensor({1, n, n}, dtype, o.device, 2);
    Tensor c = Tensor::empty({1, n, n}, dtype, o.device);
    const double ms = median_ms(o.device, [&] { kernels::matmul(c, a, b, Accumulate::no); });
    return {fmt::format("{}_{}", name, n), ms, 2.0 * double(n) * double(n) * double(n) / ms / 1e9, "TFLOP/s",
            "peer: torch a @ b, same call"};
}

KernelResult copy(const KernelOptions& o) {
    const int64_t n = o.quick ? (1 << 22) : (int64_t(1) << 30);
    // Random bytes: the storage of a random f32 tensor, read as u8.
    Tensor x = Tensor::over(random_tensor({n / 4}, DType::f32, o.device, 6).storage(), Layout::contiguous({n}), DType::u8);
    Tensor y = Tensor::empty({n}, DType::u8, o.device);
    const double ms = median_ms(o.device, [&] { kernels::copy(y, x); });
    return {o.quick ? "copy_4MiB" : "copy_1GiB", ms, 2.0 * double(n) / ms / 1e9, "TB/s", "peer: torch y.copy_(x)"};
}

KernelResult add(const KernelOptions& o) {
    const int64_t n = o.quick ? (1 << 20) : (int64_t(1) << 28);
    Tensor a = random_tensor({n}, DType::bf16, o.device, 3), b = random_tensor({n}, DType::bf16, o.device, 4);
    Tensor y = Tensor::empty({n}, DType::bf16, o.device);
    const double ms = median_ms(o.device, [&] { kernels::binary(BinaryOp::add, y, a, b); });
    return {o.quick ? "add_bf16_1M" : "add_bf16_256M", ms, 3.0 * 2.0 * double(n) / ms / 1e9, "TB/s",
            "target: >= 85% of the copy rate"};
}

KernelResult row_sum(const KernelOptions& o) {
    const int64_t rows = o.quick ? 256 : 16384, cols = 4096;
    Tensor x = random_tensor({rows, cols}, DType::f32, o.device, 5);
    autograd::NoGradGuard no_grad;
    const double ms = median_ms(o.device, [&] { ops::sum(x, {-1}); });
    return {fmt::format("row_sum_f32_{}x{}", rows, cols), ms, (double(rows) * cols + rows) * 4.0 / ms / 1e9, "TB/s",
            "target: >= 80% of the copy rate"};
}

}  // namespace

std::vector<KernelResult> run_kernel_benchmarks(const KernelOptions& o) {
    std::vector<KernelResult> results;
    results.push_back(gemm(o, DType::bf16, "gemm_bf16"));
    results.push_back(gemm(o, DType::f32, "gemm_f32"));
    results.push_back(copy(o));
    results.push_back(add(o));
    results.push_back(row_sum(o));
    return results;
}

}  // namespace lumen::bench
