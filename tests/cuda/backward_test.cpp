// tests/cuda/backward_test.cpp: every differentiable op, forward and backward, on CUDA against the
// CPU reference: the same inputs (drawn on the CPU, copied over), the same output gradient, then
// the outputs and every input gradient compared with dtype-scaled tolerances. GPU-only.
#include "tests/harness.h"

#include <functional>

using namespace lumen;

namespace {

struct Case {
    std::string name;
    std::vector<Shape> shapes;           // float inputs, each requiring grad
    std::function<Tensor(const std::vector<Tensor>&, Device)> fn;
    double lo = -1.0, hi = 1.0;
};

Tensor ids(const std::vector<int64_t>& v, const Shape& s, Device d) { return Tensor::from(v, s).to(d); }

std::vector<Case> cases() {
    using V = const std::vector<Tensor>&;
    std::vector<Case> c;
    auto unary = [&](std::string n, Tensor (*f)(const Tensor&), double lo, double hi) {
        c.push_back({n, {{33, 65}}, [f](V in, Device) { return f(in[0]); }, lo, hi});
    };
    unary("neg", ops::neg, -2, 2);        unary("abs", ops::abs, 0.1, 2);
    unary("exp", ops::exp, -2, 2);        unary("log", ops::log, 0.1, 3);
    unary("sqrt", ops::sqrt, 0.1, 3);     unary("rsqrt", ops::rsqrt, 0.1, 3);
    unary("sin", ops::sin, -3, 3);        unary("cos", ops::cos, -3, 3);
    unary("tanh", ops::tanh, -3, 3);      unary("sigmoid", ops::sigmoid, -4, 4);
    unary("relu", ops::relu, 0.05, 2);    unary("silu", ops::silu, -4, 4);
    unary("gelu", ops::gelu, -4, 4);
    c.push_back({"add broadcast", {{7, 1, 65}, {5, 65}}, [](V in, Device) { return ops::add(in[0], in[1]); }});
    c.push_back({"sub", {{7, 65}, {65}}, [](V in, Device) { return ops::sub(in[0], in[1]); }});
    c.push_back({"mul", {{7, 65}, {7, 1}}, [](V in, Device) { return ops::mul(in[0], in[1]); }});
    c.push_back({"div", {{7, 65}, {65}}, [](V in, Device) { return ops::div(in[0], in[1]); }, 0.5, 2});
    c.push_back({"pow", {{7, 65}, {7, 65}}, [](V in, Device) { return ops::pow(in[0], in[1]); }, 0.5, 2});
    c.push_back({"maximum", {{7, 65}, {65}}, [](V in, Device) { return ops::maximum(in[0], in[1]); }});
    c.push_back({"minimum", {{7, 65}, {65}}, [](V in, Device) { return ops::minimum(in[0], in[1]); }});
    c.push_back({"where", {{7, 65}, {65}}, [](V in, Device) { return ops::where(in[0] > 0.0, in[0], in[1]); }});
    c.push_back({"sum dims", {{6, 7, 129}}, [](V in, Device) { return ops::sum(in[0], {0, 2}); }});
    c.push_back({"mean", {{6, 7, 129}}, [](V in, Device) { return ops::mean(in[0], {-1}, KeepDim::yes); }});
    c.push_back({"max", {{6, 1031}}, [](V in, Device) { return ops::max(in[0], {1}); }});
    c.push_back({"min", {{6, 31}}, [](V in, Device) { return ops::min(in[0], {0}); }});
    c.push_back({"var", {{6, 300}}, [](V in, Device) { return ops::var(in[0], {1}); }});
    c.push_back({"views", {{4, 6, 10}}, [](V in, Device) {
        Tensor t = in[0].transpose(0, 2).slice(0, 1, 9, 2).permute({2, 0, 1}).unsqueeze(1).squeeze(1);
        return t.reshape({-1}).expand({3, t.numel()}).contiguous();
    }});
    c.push_back({"cast", {{5, 17}}, [](V in, Device) { return in[0].to(DType::bf16).to(DType::f32) * in[0]; }});
    c.push_back({"matmul", {{37, 65}, {65, 19}}, [](V in, Device) { return ops::matmul(in[0], in[1]); }});
    c.push_back({"matmul batched broadcast transposed", {{3, 1, 19, 33}, {4, 17, 33}},
                 [](V in, Device) { return ops::matmul(in[0], in[1].transpose(-1, -2)); }});
    c.push_back({"matmul vector", {{33}, {2, 33, 5}}, [](V in, Device) { return ops::matmul(in[0], in[1]); }});
    c.push_back({"softmax", {{9, 1000}}, [](V in, Device) { return ops::softmax(in[0]); }});
    c.push_back({"log_softmax", {{9, 33}}, [](V in, Device) { return ops::log_softmax(in[0]); }});
    c.push_back({"cross_entropy", {{2, 5, 77}}, [](V in, Device d) {
        return ops::cross_entropy(in[0], ids({3, -1, 76, 0, 5, 9, 9, 1, -1, 40}, {2, 5}, d));
    }});
    c.push_back({"embedding", {{11, 33}}, [](V in, Device d) {
        return ops::embedding(in[0], ids({1, 3, 3, 10, 0, 3}, {2, 3}, d));
    }});
    c.push_back({"layernorm", {{13, 768}, {768}, {768}}, [](V in, Device) { return ops::layernorm(in[0], in[1], in[2]); }});
    c.push_back({"layernorm odd", {{70, 3}, {3}, {3}}, [](V in, Device) { return ops::layernorm(in[0], in[1], in[2]); }});
    c.push_back({"rmsnorm", {{13, 1025}, {1025}}, [](V in, Device) { return ops::rmsnorm(in[0], in[1]); }});
    c.push_back({"dropout", {{17, 129}}, [](V in, Device) { Generator g(5); return ops::dropout(in[0], 0.3, g); }});
    c.push_back({"tril", {{2, 9, 7}}, [](V in, Device) { return ops::tril(in[0], 1); }});
    c.push_back({"cat", {{3, 5}, {3, 2}}, [](V in, Device) { return ops::cat({in[0], in[1], in[0]}, 1); }});
    c.push_back({"index_select", {{6, 9}}, [](V in, Device d) {
        return ops::index_select(in[0], 0, ids({5, 0, 5, 2}, {4}, d));
    }});
    c.push_back({"gather", {{4, 6}}, [](V in, Device d) {
        return ops::gather(in[0], 1, ids({0, 5, 5, 1, 2, 2, 3, 3}, {4, 2}, d));
    }});
    c.push_back({"causal_attention gqa", {{2, 4, 9, 16}, {2, 2, 9, 16}, {2, 2, 9, 16}},
                 [](V in, Device) { return ops::causal_attention(in[0], in[1], in[2]); }});
    return c;
}

}  // namespace

LUMEN_CUDA_TEST("cuda backward: every op's forward and gradients equal the CPU's") {
    uint64_t seed = 100;
    for (const Case& c : cases()) {
        INFO("op: " << c.name);
        std::vector<Tensor> cpu_in, gpu_in;
        for (const Shape& s : c.shapes) {
            Tensor x = test::random(s, seed++, DType::f32, Device::cpu(), c.lo, c.hi);
            cpu_in.push_back(x.clone().requires_grad_());
            gpu_in.push_back(x.to(device).requires_grad_());
        }
        Tensor y_cpu = c.fn(cpu_in, Device::cpu()), y_gpu = c.fn(gpu_in, device);
        REQUIRE(y_gpu.device() == device);
        CHECK_CLOSE(y_gpu, y_cpu, test::Tolerance{2e-5, 2e-4});
        Tensor dy = test::random(y_cpu.shape(), seed++, DType::f32);
        y_cpu.backward(dy);
        y_gpu.backward(dy.to(device));
        for (size_t i = 0; i < cpu_in.size(); ++i) {
            INFO("gradient of input " << i);
            REQUIRE(gpu_in[i].grad().defined());
            CHECK(gpu_in[i].grad().device() == device);
            CHECK_CLOSE(gpu_in[i].grad(), cpu_in[i].grad(), test::Tolerance{2e-5, 2e-4});
        }
    }
}
