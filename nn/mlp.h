// nn/mlp.h: the MLP kinds of a block: gelu and gelu_tanh (nanoGPT, GPT-2), swiglu (Llama), osc (WiggleGPT v3) and bio
// (WiggleGPT v2), and the oscillating activation they share. specs/wiggle.md §§1–3.
//
// Parameter names follow WiggleGPT: osc `mlp.activation.{omega,phi,baseline}`; bio
// `mlp.oscillating.*`, `mlp.sparse_gate.{gate,transform}.weight`, `mlp.sparse_gate.activation.*`.
#pragma once

#include "nn/config.h"
#include "nn/layers.h"

namespace lumen::nn {

// y = sin(ω·x + φ)·tanh(x) + b per channel; ω ~ N(1, 0.1²), φ ~ N(0, 0.1²), b = 0.
class OscillatingActivation : public Module {
public:
    OscillatingActivation(int64_t channels, Generator& gen);
    Tensor forward(const Tensor& x);  // (..., H) -> (..., H)

private:
    Tensor omega_, phi_, baseline_;
};

class Mlp : public Module {
public:
    virtual Tensor forward(const Tensor& x) = 0;  // (B, T, C) -> (B, T, C)
};

// The bio MLP's soft sparse-event gate: m = a ⊙ σ(5·(σ(a·W_gᵀ) − θ)), then osc2(m·W_tᵀ). It
// counts gate activity (v > θ) into device counters while counting is on (see GPT::sparsity).
class SparseGate : public Module {
public:
    SparseGate(int64_t hidden, double threshold, bool bias, Generator& gen);
    Tensor forward(const Tensor& a);  // (N, H) -> (N, H)
    // (2,) i64 [active, total] for training-mode and eval-mode forwards, on the model's device.
    const Tensor& counts(bool training_mode) const { return training_mode ? train_counts_ : eval_counts_; }
    void set_counting(bool on) { counting_ = on; }

private:
    double threshold_;
    bool counting_ = false;
    Tensor train_counts_, eval_counts_;
    Child<Linear> gate_, transform_;
    Child<OscillatingActivation> activation_;
};

std::shared_ptr<Mlp> make_mlp(const ModelConfig& c, Generator& gen, Generator* dropout_gen);

}  // namespace lumen::nn
