// tests/nn/gpt_cuda_test.cpp: the same model on the GPU: identical initial weights, and logits,
// loss and every gradient within f32 / bf16 tolerance of the CPU's, for every MLP kind.
#include "nn/generate.h"
#include "tests/harness.h"

#include <cmath>

using namespace lumen;

namespace {

Tensor tokens(const Shape& shape, uint64_t seed, int64_t vocab, Device device) {
    Generator gen(seed);
    Tensor u = ops::rand(shape, gen, 0.0, double(vocab), DType::f64);
    std::vector<int64_t> ids;
    for (double x : u.to_vector<double>()) ids.push_back(int64_t(x));
    return Tensor::from(ids, shape, device);
}

// max |a - b| / max(max |b|, 1e-12) over all elements.
double relative_error(const Tensor& a, const Tensor& b) {
    auto x = a.to_vector<double>(), y = b.to_vector<double>();
    double diff = 0, scale = 1e-12;
    for (size_t i = 0; i < x.size(); ++i) {
        diff = std::max(diff, std::abs(x[i] - y[i]));
        scale = std::max(scale, std::abs(y[i]));
    }
    return diff / scale;
}

}  // namespace

LUMEN_CUDA_TEST("gpt cuda: same init, logits and gradients as the CPU (f32 and bf16)") {
    for (auto mlp : {nn::MlpKind::gelu, nn::MlpKind::swiglu, nn::MlpKind::osc, nn::MlpKind::bio}) {
        for (DType dt : {DType::f32, DType::bf16}) {
            INFO(nn::mlp_name(mlp) << " " << dtype_name(dt));
            nn::ModelConfig c;
            c.n_layer = 2;
            c.n_head = 4;
            c.n_kv_head = mlp == nn::MlpKind::swiglu ? 2 : 0;
            c.n_embd = 64;
            c.block_size = 32;
            c.vocab_size = 97;
            c.mlp = mlp;
            c.pos = mlp == nn::MlpKind::gelu ? nn::PosKind::learned : nn::PosKind::rope;
            c.norm = mlp == nn::MlpKind::bio ? nn::NormKind::layernorm : nn::NormKind::rmsnorm;
            nn::GPT cpu(c), gpu(c);
            gpu.to(device);
            auto pc = cpu.parameters(), pg = gpu.parameters();
            for (size_t i = 0; i < pc.size(); ++i) CHECK(test::same_bits(pc[i].tensor, pg[i].tensor));
            cpu.set_compute_dtype(dt);
            gpu.set_compute_dtype(dt);
            gpu.set_gate_counting(true);
            cpu.set_gate_counting(true);
            Tensor idx = tokens({3, 32}, 1, c.vocab_size, Device::cpu());
            Tensor tgt = tokens({3, 32}, 2, c.vocab_size, Device::cpu());
            Tensor lc = cpu.loss(idx, tgt), lg = gpu.loss(idx.to(device), tgt.to(device));
            const double tol = dt == DType::f32 ? 1e-4 : 3e-2;
            CHECK(std::abs(lc.item() - lg.item()) < tol * std::abs(lc.item()));
            CHECK(relative_error(gpu.forward(idx.to(device)), cpu.forward(idx)) < (dt == DType::f32 ? 1e-4 : 5e-2));
            lc.backward();
            lg.backward();
            for (size_t i = 0; i < pc.size(); ++i) {
                INFO(pc[i].name);
                CHECK(relative_error(pg[i].tensor.grad(), pc[i].tensor.grad()) < (dt == DType::f32 ? 1e-3 : 1e-1));
            }
            if (mlp == nn::MlpKind::bio) CHECK(gpu.gate_counters(true) == cpu.gate_counters(true));
        }
    }
}

LUMEN_CUDA_TEST("gpt cuda: cached generation equals uncached on the GPU") {
    nn::ModelConfig c;
    c.n_layer = 2;
    c.n_head = 4;
    c.n_embd = 32;
    c.block_size = 16;
    c.vocab_size = 50;
    c.pos = nn::PosKind::rope;
    c.mlp = nn::MlpKind::osc;
    nn::GPT m(c);
    m.to(device);
    nn::SamplingOptions o;
    o.max_new_tokens = 24;
    o.temperature = 1.0;
    o.top_k = 10;
    auto cached = nn::generate(m, {1, 2, 3, 4}, o);
    o.use_cache = false;
    CHECK(cached == nn::generate(m, {1, 2, 3, 4}, o));
}
