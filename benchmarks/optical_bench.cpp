// benchmarks/optical_bench.cpp: the optical layers against their digital twins (see optical_bench.h).
#include "benchmarks/optical_bench.h"

#include "autograd/node.h"
#include "autograd/ops/ops.h"
#include "benchmarks/timer.h"
#include "nn/attention.h"
#include "nn/optical_linear.h"

#include <fmt/format.h>

#include <memory>

namespace lumen::bench {

namespace {

// Times `forward` alone and forward + backward (dy of ones-like random values).
void time_pair(Device device, int iters, const std::function<Tensor()>& forward, const Tensor& dy, double& fwd_ms,
               double& total_ms) {
    fwd_ms = median_ms(device, [&] {
        autograd::NoGradGuard no_grad;
        forward();
    }, 3, iters);
    total_ms = median_ms(device, [&] { forward().backward(dy); }, 3, iters);
}

OpticalResult bench_linear(const OpticalBenchOptions& o, int64_t M, int64_t K, int64_t N) {
    Generator gen(1);
    auto digital = std::make_shared<nn::Linear>(K, N, true, gen);
    digital->to(o.device);
    nn::OpticalLinear optical(*digital, nn::OpticalSettings{}, "bench.linear");
    optical.train();
    Tensor x = ops::rand({M, K}, gen, -1.0, 1.0, DType::bf16).to(o.device).requires_grad_(true);
    Tensor dy = ops::rand({M, N}, gen, -1.0, 1.0, DType::bf16).to(o.device);
    OpticalResult r;
    r.what = fmt::format("linear {}x{}->{}", M, K, N);
    time_pair(o.device, o.iters, [&] { return digital->forward(x); }, dy, r.digital_forward_ms, r.digital_ms);
    time_pair(o.device, o.iters, [&] { return optical.forward(x); }, dy, r.optical_forward_ms, r.optical_ms);
    return r;
}

OpticalResult bench_attention(const OpticalBenchOptions& o, int64_t B, int64_t H, int64_t T, int64_t C) {
    nn::ModelConfig c;
    c.n_layer = 1;
    c.n_head = H;
    c.n_embd = C;
    c.block_size = T;
    c.dropout = 0;
    Generator gen(2);
    nn::CausalSelfAttention digital(c, gen, nullptr);
    nn::CausalSelfAttention optical(c, gen, nullptr);
    digital.to(o.device);
    optical.to(o.device);
    optical.make_optical(nn::OpticalSettings{.name = "attention"}, "bench.attn");
    digital.train();
    optical.train();
    Tensor x = ops::rand({B, T, C}, gen, -1.0, 1.0, DType::bf16).to(o.device).requires_grad_(true);
    Tensor dy = ops::rand({B, T, C}, gen, -1.0, 1.0, DType::bf16).to(o.device);
    OpticalResult r;
    r.what = fmt::format("attention block {}x{}x{}x{} (digital projections)", B, H, T, C / H);
    time_pair(o.device, o.iters, [&] { return digital.forward(x); }, dy, r.digital_forward_ms, r.digital_ms);
    time_pair(o.device, o.iters, [&] { return optical.forward(x); }, dy, r.optical_forward_ms, r.optical_ms);
    return r;
}

}  // namespace

std::vector<OpticalResult> run_optical_benchmarks(const OpticalBenchOptions& o) {
    std::vector<OpticalResult> out;
    if (o.quick) {
        out.push_back(bench_linear(o, 256, 64, 96));
        out.push_back(bench_attention(o, 2, 2, 64, 64));
        return out;
    }
    out.push_back(bench_linear(o, 16384, 384, 1536));   // WiggleGPT v2 c_fc
    out.push_back(bench_linear(o, 16384, 1536, 384));   // WiggleGPT v2 c_proj
    out.push_back(bench_linear(o, 16384, 384, 1152));   // WiggleGPT v2 c_attn
    out.push_back(bench_linear(o, 16384, 768, 3072));   // GPT-2 124M c_fc
    out.push_back(bench_linear(o, 16384, 768, 2304));   // GPT-2 124M c_attn
    out.push_back(bench_attention(o, 16, 6, 1024, 384));
    return out;
}

}  // namespace lumen::bench
