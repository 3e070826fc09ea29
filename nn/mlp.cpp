// nn/mlp.cpp: the oscillating activation, the four MLP kinds and the bio MLP's sparse gate.
#include "nn/mlp.h"

#include "autograd/ops/ops.h"
#include "autograd/ops/wiggle.h"

#include <cmath>

namespace lumen::nn {

OscillatingActivation::OscillatingActivation(int64_t channels, Generator& gen) {
    omega_ = register_parameter("omega", init_normal({channels}, gen, 1.0, 0.1), Role::osc);
    phi_ = register_parameter("phi", init_normal({channels}, gen, 0.0, 0.1), Role::osc);
    baseline_ = register_parameter("baseline", Tensor::zeros({channels}), Role::osc);
}

Tensor OscillatingActivation::forward(const Tensor& x) {
    const DType dt = x.dtype();
    return ops::oscillate(x, cast_to(omega_, dt), cast_to(phi_, dt), cast_to(baseline_, dt));
}

SparseGate::SparseGate(int64_t hidden, double threshold, bool bias, Generator& gen) : threshold_(threshold) {
    gate_ = register_module("gate", std::make_shared<Linear>(hidden, hidden, bias, gen));
    transform_ = register_module("transform", std::make_shared<Linear>(hidden, hidden, bias, gen));
    activation_ = register_module("activation", std::make_shared<OscillatingActivation>(hidden, gen));
    train_counts_ = register_buffer("train_counts", Tensor::zeros({2}, DType::i64), false);
    eval_counts_ = register_buffer("eval_counts", Tensor::zeros({2}, DType::i64), false);
}

Tensor SparseGate::forward(const Tensor& a) {
    Tensor z = gate_->forward(a);                                        // (N, H)
    Tensor* counts = counting_ ? (training() ? &train_counts_ : &eval_counts_) : nullptr;
    Tensor m = ops::bio_gate(a, z, threshold_, counts);                 // (N, H)
    return activation_->forward(transform_->forward(m));                 // (N, H)
}

namespace {

double proj_std(const ModelConfig& c) { return 0.02 / std::sqrt(2.0 * double(c.n_layer)); }

// nanoGPT's MLP: c_proj(gelu(c_fc(x))), exact (erf) GELU, or the tanh form (GPT-2's gelu_new,
// which Hugging Face GPT-2 checkpoints were trained with).
class GeluMlp : public Mlp {
public:
    GeluMlp(const ModelConfig& c, Generator& gen, Generator* dropout_gen) : tanh_form_(c.mlp == MlpKind::gelu_tanh) {
        c_fc_ = register_module("c_fc", std::make_shared<Linear>(c.n_embd, c.hidden(), c.bias, gen));
        c_proj_ = register_module("c_proj", std::make_shared<Linear>(c.hidden(), c.n_embd, c.bias, gen,
                                                                     proj_std(c)));
        dropout_ = register_module("dropout", std::make_shared<Dropout>(c.dropout, dropout_gen));
    }
    Tensor forward(const Tensor& x) override {
        const Tensor h = c_fc_->forward(x);  // (B, T, H)
        return dropout_->forward(c_proj_->forward(tanh_form_ ? ops::gelu(h) : ops::gelu_exact(h)));
    }

private:
    bool tanh_form_;
    Child<Linear> c_fc_, c_proj_;
    Child<Dropout> dropout_;
};

// Llama's MLP: c_proj(silu(c_gate(x)) ⊙ c_fc(x)).
class SwigluMlp : public Mlp {
public:
    SwigluMlp(const ModelConfig& c, Generator& gen, Generator* dropout_gen) {
        c_gate_ = register_module("c_gate", std::make_shared<Linear>(c.n_embd, c.hidden(), c.bias, gen));
        c_fc_ = register_module("c_fc", std::make_shared<Linear>(c.n_embd, c.hidden(), c.bias, gen));
        c_proj_ = register_module("c_proj", std::make_shared<Linear>(c.hidden(), c.n_embd, c.bias, gen,
                                                                     proj_std(c)));
        dropout_ = register_module("dropout", std::make_shared<Dropout>(c.dropout, dropout_gen));
    }
    Tensor forward(const Tensor& x) override {
        Tensor h = ops::silu(c_gate_->forward(x)) * c_fc_->forward(x);   // (B, T, H)
        return dropout_->forward(c_proj_->forward(h));
    }

private:
    Child<Linear> c_gate_, c_fc_, c_proj_;
    Child<Dropout> dropout_;
};

// WiggleGPT v3: c_proj(osc(c_fc(x))).
class OscMlp : public Mlp {
public:
    OscMlp(const ModelConfig& c, Generator& gen, Generator* dropout_gen) {
        c_fc_ = register_module("c_fc", std::make_shared<Linear>(c.n_embd, c.hidden(), c.bias, gen));
        activation_ = register_module("activation", std::make_shared<OscillatingActivation>(c.hidden(), gen));
        c_proj_ = register_module("c_proj", std::make_shared<Linear>(c.hidden(), c.n_embd, c.bias, gen,
                                                                     proj_std(c)));
        dropout_ = register_module("dropout", std::make_shared<Dropout>(c.dropout, dropout_gen));
    }
    Tensor forward(const Tensor& x) override {
        return dropout_->forward(c_proj_->forward(activation_->forward(c_fc_->forward(x))));
    }

private:
    Child<Linear> c_fc_, c_proj_;
    Child<OscillatingActivation> activation_;
    Child<Dropout> dropout_;
};

// WiggleGPT v2: c_fc → osc1 → sparse gate (→ transform → osc2) → c_proj (spec §2 table).
class BioMlp : public Mlp {
public:
    BioMlp(const ModelConfig& c, Generator& gen, Generator* dropout_gen) {
        const int64_t H = c.hidden();
        c_fc_ = register_module("c_fc", std::make_shared<Linear>(c.n_embd, H, c.bias, gen));
        oscillating_ = register_module("oscillating", std::make_shared<OscillatingActivation>(H, gen));
        sparse_gate_ = register_module("sparse_gate", std::make_shared<SparseGate>(H, c.bio_threshold, c.bias, gen));
        c_proj_ = register_module("c_proj", std::make_shared<Linear>(H, c.n_embd, c.bias, gen, proj_std(c)));
        dropout_ = register_module("dropout", std::make_shared<Dropout>(c.dropout, dropout_gen));
    }
    Tensor forward(const Tensor& x) override {
        const auto [B, T, C] = x.dims<3>();
        Tensor a = oscillating_->forward(c_fc_->forward(x));             // (B, T, H)
        const int64_t H = a.size(2);
        Tensor o = sparse_gate_->forward(a.reshape({B * T, H}));         // (N, H)
        return dropout_->forward(c_proj_->forward(o.reshape({B, T, H})));
    }

private:
    Child<Linear> c_fc_, c_proj_;
    Child<OscillatingActivation> oscillating_;
    Child<SparseGate> sparse_gate_;
    Child<Dropout> dropout_;
};

}  // namespace

std::shared_ptr<Mlp> make_mlp(const ModelConfig& c, Generator& gen, Generator* dropout_gen) {
    switch (c.mlp) {
        case MlpKind::gelu:
        case MlpKind::gelu_tanh: return std::make_shared<GeluMlp>(c, gen, dropout_gen);
        case MlpKind::swiglu: return std::make_shared<SwigluMlp>(c, gen, dropout_gen);
        case MlpKind::osc: return std::make_shared<OscMlp>(c, gen, dropout_gen);
        case MlpKind::bio: return std::make_shared<BioMlp>(c, gen, dropout_gen);
    }
    return nullptr;
}

}  // namespace lumen::nn
