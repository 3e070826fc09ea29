// nn/layers.h: the basic layers: Linear, Embedding, LayerNorm, RMSNorm, Dropout.
//
// Parameters are kept in their own dtype (f32 master weights in training); a layer casts them to
// the input's dtype at use, so a bf16 activation stream runs bf16 GEMMs while gradients flow back
// to the f32 parameters (the cast's backward converts them). Initial values are drawn on the CPU
// from the caller's Philox generator, so a seed gives the same weights whatever the device.
#pragma once

#include "core/philox.h"
#include "nn/module.h"

namespace lumen::nn {

// N(mean, std²) of `shape` drawn from `gen`, or uninitialised memory while a NoInitGuard is alive
// (a model about to be loaded from a checkpoint, or only counted, skips the draws).
Tensor init_normal(const Shape& shape, Generator& gen, double mean, double std);

class NoInitGuard {
public:
    NoInitGuard();
    ~NoInitGuard();
    NoInitGuard(const NoInitGuard&) = delete;
    NoInitGuard& operator=(const NoInitGuard&) = delete;

private:
    bool previous_;
};

// `param` in `like`'s dtype: itself when it already is, else a differentiable cast.
Tensor cast_to(const Tensor& param, DType dtype);

class Linear : public Module {
public:
    // weight (out, in) ~ N(0, init_std²); bias (out) = 0 when `bias`. row_parts: see Parameter.
    Linear(int64_t in, int64_t out, bool bias, Generator& gen, double init_std = 0.02,
           Role role = Role::matrix, std::vector<int64_t> row_parts = {});
    // x (..., in) -> (..., out) = x·Wᵀ + b
    virtual Tensor forward(const Tensor& x);
    const Tensor& weight() const { return weight_; }
    const Tensor& bias() const { return bias_; }
    int64_t in_features() const { return in_; }
    int64_t out_features() const { return out_; }

protected:
    // Adopts `digital`'s weight and bias tensors (the same handles, no copy), registered with the
    // same roles and row_parts and their requires_grad kept: the optical transform's subclass and
    // LoraLinear. Any other parameter of `digital` (a LoraLinear's lora_A, lora_B) is registered too.
    struct Adopt {};
    Linear(Adopt, const Linear& digital);

    int64_t in_, out_;
    Tensor weight_, bias_;
};

class Embedding : public Module {
public:
    // weight (num, dim) ~ N(0, init_std²)
    Embedding(int64_t num, int64_t dim, Generator& gen, double init_std = 0.02);
    // indices (...) -> (..., dim)
    Tensor forward(const Tensor& indices);
    const Tensor& weight() const { return weight_; }

private:
    Tensor weight_;
};

// A norm over the last dim, weight starting at 1 (and bias at 0 when `bias`, LayerNorm only).
class Norm : public Module {
public:
    virtual Tensor forward(const Tensor& x) = 0;  // (..., C) -> (..., C)
};

class LayerNorm : public Norm {
public:
    LayerNorm(int64_t dim, bool bias, double eps);
    Tensor forward(const Tensor& x) override;

private:
    double eps_;
    Tensor weight_, bias_;
};

class RMSNorm : public Norm {
public:
    RMSNorm(int64_t dim, double eps);
    Tensor forward(const Tensor& x) override;

private:
    double eps_;
    Tensor weight_;
};

// Zeroes with probability p in training mode, drawing from the shared dropout generator (which
// activation checkpointing replays); identity in eval mode or at p = 0.
class Dropout : public Module {
public:
    Dropout(double p, Generator* gen) : p_(p), gen_(gen) {}
    Tensor forward(const Tensor& x);

private:
    double p_;
    Generator* gen_;
};

}  // namespace lumen::nn
