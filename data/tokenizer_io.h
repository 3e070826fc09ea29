// data/tokenizer_io.h: reading and writing tokenizer files.
//
// lumen's own format, `tokenizer.lumen.json` (what ./prepare writes), is one JSON object:
//
//   {"format": "lumen-bpe", "version": 1, "pretokenizer": "gpt2",
//    "tokens": ["!", "\"", ..., "Ġthe", ..., "<|endoftext|>"],   // id -> bytes, GPT-2 spelling
//    "merges": [[76, 83], [256, 69], ...],                          // (left id, right id), by rank
//    "special_tokens": {"<|endoftext|>": 8191},
//    "ignore_merges": false}
//
// Token bytes are written in GPT-2's byte-to-unicode spelling (data/byte_level.h) so the file is
// valid UTF-8 and readable; a merge's result is the token with the concatenated bytes.
// "pretokenizer" is a name of data/pretokenize.h: "gpt2", "digits+gpt2" (SmolLM) or
// "digit_runs+gpt2"; files written before the digit splits existed say "gpt2" and load unchanged.
//
// Also read: Hugging Face `vocab.json` + `merges.txt` (GPT-2 style; "<|endoftext|>" is taken as
// special) and `tokenizer.json` with a BPE model (merges as "a b" or ["a", "b"], ignore_merges,
// byte_fallback false), no normalizer, the ByteLevel decoder, and as pre-tokenizer ByteLevel
// (add_prefix_space false, GPT-2 regex) alone or in a Sequence after Digits (SmolLM / cosmo2);
// its added tokens become special tokens. Anything else is refused with the key named. llm.c's
// `gpt2_tokenizer.bin` (shared/specs/formats.md §5) loads as a decode-only tokenizer and can be
// written (version 2).
#pragma once

#include "data/tokenizer.h"

#include <string>

namespace lumen::data {

void save_tokenizer(const Tokenizer& tokenizer, const std::string& path);
Tokenizer load_lumen_tokenizer(const std::string& path);

Tokenizer load_hf_vocab_merges(const std::string& vocab_json, const std::string& merges_txt);
Tokenizer load_hf_tokenizer_json(const std::string& path);

inline constexpr uint32_t llmc_tokenizer_magic = 20240328;
Tokenizer load_llmc_tokenizer(const std::string& path);
void save_llmc_tokenizer(const Tokenizer& tokenizer, const std::string& path);

// Any format above, told apart by content. A directory is searched for tokenizer.lumen.json,
// tokenizer.json, vocab.json (+ merges.txt) and gpt2_tokenizer.bin, in that order.
Tokenizer load_tokenizer(const std::string& path);

}  // namespace lumen::data
