// nn/generate.cpp: the sampling rule (on the host, in f64) and the cached / uncached decode loop.
#include "nn/generate.h"

#include "autograd/node.h"
#include "core/error.h"
#include "core/philox.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>
#include <set>

namespace lumen::nn {

namespace {

constexpr uint64_t kSamplingStream = 3;

void require(bool ok, const char* key, const std::string& what) {
    check(ok, "generate", fmt::format("{}: {}", key, what));
}

}  // namespace

void validate(const SamplingOptions& o) {
    require(o.max_new_tokens >= 0, "max_new_tokens", fmt::format("must be ≥ 0 (got {})", o.max_new_tokens));
    require(std::isfinite(o.temperature) && o.temperature >= 0, "temperature",
            fmt::format("must be ≥ 0 (got {})", o.temperature));
    require(o.top_k >= 0, "top_k", fmt::format("must be ≥ 0 (got {})", o.top_k));
    require(std::isfinite(o.top_p) && o.top_p > 0 && o.top_p <= 1, "top_p",
            fmt::format("must be in (0, 1] (got {})", o.top_p));
    require(std::isfinite(o.repetition_penalty) && o.repetition_penalty > 0, "repetition_penalty",
            fmt::format("must be > 0 (got {})", o.repetition_penalty));
    require(o.vocab_limit >= 0, "vocab_limit", fmt::format("must be ≥ 0 (got {})", o.vocab_limit));
}

double sampling_uniform(uint64_t seed, uint64_t step) {
    return double(philox_uniform_from_word(philox_block(RngState{seed, kSamplingStream, step}, 0).v[0]));
}

int64_t sample_next(std::vector<double> logits, const std::vector<int64_t>& context,
                    const SamplingOptions& o, double u) {
    const int64_t V = int64_t(logits.size());
    const double neg_inf = -std::numeric_limits<double>::infinity();
    if (o.vocab_limit > 0)
        for (int64_t i = o.vocab_limit; i < V; ++i) logits[size_t(i)] = neg_inf;
    if (o.repetition_penalty != 1.0) {
        for (int64_t id : std::set<int64_t>(context.begin(), context.end())) {
            if (id < 0 || id >= V) continue;
            double& z = logits[size_t(id)];
            z = z > 0 ? z / o.repetition_penalty : z * o.repetition_penalty;
        }
    }
    if (o.temperature == 0.0)  // greedy: the first maximum
        return int64_t(std::max_element(logits.begin(), logits.end()) - logits.begin());
    for (double& z : logits) z /= o.temperature;
    if (o.top_k > 0 && o.top_k < V) {
        std::vector<double> sorted(logits);
        std::nth_element(sorted.begin(), sorted.begin() + (o.top_k - 1), sorted.end(), std::greater<>());
        const double kth = sorted[size_t(o.top_k - 1)];
        for (double& z : logits)
            if (z < kth) z = neg_inf;
    }
    const double zmax = *std::max_element(logits.begin(), logits.end());
    std::vector<double> p(logits.size());
    double total = 0;
    for (size_t i = 0; i < p.size(); ++i) total += p[i] = std::exp(logits[i] - zmax);
    for (double& x : p) x /= total;
    if (o.top_p < 1.0) {
        std::vector<int64_t> order(static_cast<size_t>(V));
        std::iota(order.begin(), order.end(), 0);
        std::stable_sort(order.begin(), order.end(), [&](int64_t a, int64_t b) { return p[size_t(a)] > p[size_t(b)]; });
        double mass = 0;
        size_t keep = 0;
        while (keep < order.size() && (keep == 0 || mass < o.top_p)) mass += p[size_t(order[keep++])];
        std::vector<double> kept(p.size(), 0.0);
        for (size_t i = 0; i < keep; ++i) kept[size_t(order[i])] = p[size_t(order[i])] / mass;
        p.swap(kept);
    }
    // Inverse CDF in ascending id order; the last id with mass catches rounding at the top.
    double cdf = 0;
    int64_t last = 0;
    for (int64_t i = 0; i < V; ++i) {
        if (p[size_t(i)] <= 0) continue;
        last = i;
        cdf += p[size_t(i)];
        if (u < cdf) return i;
    }
    return last;
}

std::vector<int64_t> generate(GPT& model, const std::vector<int64_t>& prompt, const SamplingOptions& o) {
    validate(o);
    const int64_t block = model.config().block_size;
    check(!prompt.empty() && int64_t(prompt.size()) <= block, "generate",
          fmt::format("the prompt has {} tokens; expected 1 to block_size = {}", prompt.size(), block));
    const Device device = model.parameters().front().tensor.device();
    const bool was_training = model.training(), was_counting = model.gate_counting();
    model.eval();
    model.set_gate_counting(false);
    autograd::NoGradGuard no_grad;

    std::vector<int64_t> seq = prompt, out;
    std::vector<KVCache> caches;
    // Logits (V) for the next token after `seq`.
    auto next_logits = [&]() {
        const int64_t n = int64_t(seq.size());
        Tensor h;
        if (o.use_cache && n <= block) {
            if (caches.empty()) caches.resize(size_t(model.config().n_layer));
            const int64_t have = caches.front().length();
            std::vector<int64_t> fresh(seq.begin() + have, seq.end());
            Tensor idx = Tensor::from(fresh, {1, int64_t(fresh.size())}, device);
            h = model.hidden(idx, &caches, have);                          // (1, n - have, C)
        } else {
            const int64_t start = std::max<int64_t>(0, n - block);
            std::vector<int64_t> window(seq.begin() + start, seq.end());
            h = model.hidden(Tensor::from(window, {1, int64_t(window.size())}, device));
        }
        Tensor last = h.narrow(1, h.size(1) - 1, 1);                        // (1, 1, C)
        return model.head(last).to_vector<double>();                        // (V)
    };
    for (int64_t step = 0; step < o.max_new_tokens; ++step) {
        const int64_t id = sample_next(next_logits(), seq, o, sampling_uniform(o.seed, uint64_t(step)));
        seq.push_back(id);
        out.push_back(id);
        if (o.on_token) o.on_token(id);
        if (id == o.stop_token) break;
    }
    model.train(was_training);
    model.set_gate_counting(was_counting);
    return out;
}

}  // namespace lumen::nn
