// data/pretokenize.h: the pre-tokenizers. GPT-2's is the regex of openai/gpt-2 encoder.py written by hand:
//
//     's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
//
// Hugging Face's ByteLevel pre-tokenizer (add_prefix_space = false, use_regex = true) and tiktoken's
// "gpt2" encoding split the same way. The pieces are byte ranges of the input that concatenate
// back to it; BPE merges never cross them. Invalid UTF-8 bytes are class `other` (data/unicode.h).
//
// Some tokenizers split digits out first: Hugging Face's pre-tokenizer Sequence [Digits, ByteLevel]
// (SmolLM's "cosmo2" tokenizer uses individual_digits = true). Digits isolates every \p{N}
// character (Rust's char::is_numeric: Nd, Nl, No) or every run of them, and the GPT-2 regex then splits the text between the digits
// on its own: " 123" becomes " ", "1", "2", "3".
#pragma once

#include <cstdint>
#include <optional>
#include <string_view>
#include <vector>

namespace lumen::data {

enum class Pretokenizer : uint8_t {
    gpt2,             // "gpt2": the GPT-2 regex
    digits_gpt2,      // "digits+gpt2": each \p{N} character one piece, the regex in between
    digit_runs_gpt2,  // "digit_runs+gpt2": each run of \p{N} characters one piece, the regex in between
};

// The name above (as lumen's tokenizer file stores it), and back (nullopt for an unknown name).
std::string_view pretokenizer_name(Pretokenizer p);
std::optional<Pretokenizer> pretokenizer_from_name(std::string_view name);

// Appends the pieces of `text` to `pieces`, in order.
void gpt2_split(std::string_view text, std::vector<std::string_view>& pieces);
void pretokenize(Pretokenizer p, std::string_view text, std::vector<std::string_view>& pieces);

}  // namespace lumen::data
