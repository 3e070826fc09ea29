// data/pretokenize.h: GPT-2's pre-tokenizer, the regex of openai/gpt-2 encoder.py written by hand:
//
//     's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
//
// Hugging Face's ByteLevel pre-tokenizer (add_prefix_space = false, use_regex = true) and tiktoken's
// "gpt2" encoding split the same way. The pieces are byte ranges of the input that concatenate
// back to it; BPE merges never cross them. Invalid UTF-8 bytes are class `other` (data/unicode.h).
#pragma once

#include <string_view>
#include <vector>

namespace lumen::data {

// Appends the pieces of `text` to `pieces`, in order.
void gpt2_split(std::string_view text, std::vector<std::string_view>& pieces);

}  // namespace lumen::data
