// data/bpe_train.h: training a byte-level BPE tokenizer to a target vocabulary size.
//
// The documents are split with the GPT-2 pre-tokenizer and the distinct pieces ("words") counted
// (OpenMP over documents). Training then repeats: take the adjacent pair with the highest count
// (summed over words, weighted by word counts; ties go to the smaller (left id, right id)), record
// it as a merge and replace it in every word that holds it. Pair counts are updated incrementally
// from the words that changed, and a max-heap with lazy re-validation finds the next pair, so a
// merge costs time in the words it touches, not in the corpus. This is the algorithm of Hugging
// Face tokenizers' BpeTrainer; with the full 256-byte alphabet both give the same merges
// (tests/data/bpe_train_test.cpp checks against a file written by it).
//
// Id layout of the result: 0..255 are the single bytes in GPT-2's order (data/byte_level.h), then
// one id per merge in the order they were learned, then the special tokens. (A merge whose bytes
// already formed a token would reuse its id, as Hugging Face's trainer does; exact greedy BPE never
// makes one, since a string between two token boundaries is always split the same way.)
#pragma once

#include "data/tokenizer.h"

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

namespace lumen::data {

struct BpeTrainOptions {
    int64_t vocab_size = 8192;  // including the 256 byte tokens and the special tokens
    std::vector<std::string> special_tokens = {std::string(end_of_text)};
    // Called on the calling thread with a phase ("count": bytes done of total, "merge": merges done
    // of the most possible), often; may be empty.
    std::function<void(std::string_view phase, int64_t done, int64_t total)> progress;
};

struct BpeTrainStats {
    int64_t bytes = 0;          // corpus bytes read
    int64_t words = 0;          // pieces counted
    int64_t distinct_words = 0;
    int64_t merges = 0;
    double count_s = 0, merge_s = 0;
};

// Trains on `docs` (raw bytes; invalid UTF-8 is allowed). The vocabulary ends smaller than asked
// when the corpus runs out of pairs; `stats`, when given, receives the sizes and times.
Tokenizer train_bpe(const std::vector<std::string_view>& docs, const BpeTrainOptions& options,
                    BpeTrainStats* stats = nullptr);

}  // namespace lumen::data
