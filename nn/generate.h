// nn/generate.h: autoregressive sampling with a KV cache (specs/wiggle.md §8.6).
//
// Per token: repetition penalty on the raw logits over the distinct ids of prompt + output (CTRL
// rule: positive ÷ R, negative × R); temperature (0 = argmax); top_k keeps logits ≥ the k-th
// largest, ties kept (0 or ≥ V disables); top_p keeps the shortest prefix of ids sorted by
// probability (ties by lower id) whose mass reaches p, at least one; then one Philox uniform from
// (seed, step) inverts the CDF in ascending id order. Ids ≥ vocab_limit (padding) are never drawn.
//
// With the cache the prompt is encoded once and each step feeds one token; past block_size every
// step re-encodes the last block_size tokens without a cache, exactly as the uncached path does,
// so cached and uncached generation agree token for token.
#pragma once

#include "nn/gpt.h"

#include <functional>
#include <vector>

namespace lumen::nn {

struct SamplingOptions {
    int64_t max_new_tokens = 500;
    double temperature = 0.8;
    int64_t top_k = 200;
    double top_p = 1.0;
    double repetition_penalty = 1.0;
    uint64_t seed = 1337;
    bool use_cache = true;
    int64_t stop_token = -1;   // stop after drawing this id (e.g. GPT-2's EOT 50256); -1 = never
    int64_t vocab_limit = 0;   // ids ≥ this are masked (GPT-2's padding 50257..50303); 0 = none
    std::function<void(int64_t)> on_token;  // called with each new id as it is drawn (streaming)
};

// Throws naming the option when a value is out of range.
void validate(const SamplingOptions& o);

// The next id from raw logits (V), given the ids so far (for the penalty) and a uniform u in [0, 1).
int64_t sample_next(std::vector<double> logits, const std::vector<int64_t>& context,
                    const SamplingOptions& o, double u);

// The uniform that step `step` of a generation with `seed` draws.
double sampling_uniform(uint64_t seed, uint64_t step);

// Generates up to max_new_tokens after `prompt` (1 ≤ length ≤ block_size) and returns the new
// ids. Runs in eval mode without gradients and with gate counting off; restores both.
std::vector<int64_t> generate(GPT& model, const std::vector<int64_t>& prompt, const SamplingOptions& o);

}  // namespace lumen::nn
