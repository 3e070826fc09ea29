// nn/layers.cpp: Linear, Embedding, the norms and Dropout.
#include "nn/layers.h"

#include "autograd/ops/ops.h"

namespace lumen::nn {

namespace {
thread_local bool skip_init = false;
}

NoInitGuard::NoInitGuard() : previous_(skip_init) { skip_init = true; }
NoInitGuard::~NoInitGuard() { skip_init = previous_; }

Tensor init_normal(const Shape& shape, Generator& gen, double mean, double std) {
    return skip_init ? Tensor::empty(shape) : ops::randn(shape, gen, mean, std);
}

Tensor cast_to(const Tensor& param, DType dtype) {
    return param.dtype() == dtype ? param : ops::cast(param, dtype);
}

Linear::Linear(int64_t in, int64_t out, bool bias, Generator& gen, double init_std, Role role,
               std::vector<int64_t> row_parts)
    : in_(in), out_(out) {
    weight_ = register_parameter("weight", init_normal({out, in}, gen, 0.0, init_std), role,
                                 std::move(row_parts));
    if (bias) bias_ = register_parameter("bias", Tensor::zeros({out}), Role::bias);
}

Linear::Linear(Adopt, const Linear& digital) : in_(digital.in_), out_(digital.out_) {
    for (const Parameter& p : digital.parameters()) {
        const bool trainable = p.tensor.requires_grad();
        Tensor t = register_parameter(p.name, p.tensor, p.role, p.row_parts);
        t.set_requires_grad(trainable);
        if (p.name == "weight") weight_ = t;
        else if (p.name == "bias") bias_ = t;  // others (a LoraLinear's lora_A, lora_B) are kept under their names
    }
}

Tensor Linear::forward(const Tensor& x) {
    Shape out_shape = x.shape();
    out_shape.back() = out_;
    Tensor x2 = x.reshape({-1, in_});                                        // (N, in)
    Tensor y = ops::matmul(x2, cast_to(weight_, x.dtype()).transpose(0, 1)); // (N, out)
    if (bias_.defined()) y = y + cast_to(bias_, x.dtype());
    return y.reshape(out_shape);                                            // (..., out)
}

Embedding::Embedding(int64_t num, int64_t dim, Generator& gen, double init_std) {
    weight_ = register_parameter("weight", init_normal({num, dim}, gen, 0.0, init_std), Role::embedding);
}

Tensor Embedding::forward(const Tensor& indices) { return ops::embedding(weight_, indices); }

LayerNorm::LayerNorm(int64_t dim, bool bias, double eps) : eps_(eps) {
    weight_ = register_parameter("weight", Tensor::ones({dim}), Role::norm);
    if (bias) bias_ = register_parameter("bias", Tensor::zeros({dim}), Role::norm);
}

Tensor LayerNorm::forward(const Tensor& x) {
    return ops::layernorm(x, cast_to(weight_, x.dtype()),
                          bias_.defined() ? cast_to(bias_, x.dtype()) : Tensor(), eps_);
}

RMSNorm::RMSNorm(int64_t dim, double eps) : eps_(eps) {
    weight_ = register_parameter("weight", Tensor::ones({dim}), Role::norm);
}

Tensor RMSNorm::forward(const Tensor& x) { return ops::rmsnorm(x, cast_to(weight_, x.dtype()), eps_); }

Tensor Dropout::forward(const Tensor& x) {
    if (!training() || p_ == 0.0) return x;
    return ops::dropout(x, p_, *gen_, Training::yes);
}

}  // namespace lumen::nn
