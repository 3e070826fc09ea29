// data/byte_level.h: GPT-2's byte <-> unicode mapping (openai/gpt-2 encoder.py `bytes_to_unicode`).
//
// Byte-level BPE works on bytes, but vocab.json, merges.txt and tokenizer.json spell tokens as
// text: each byte is shown as one printable character. The 188 printable bytes ('!'..'~',
// '¡'..'¬', '®'..'ÿ') stand for themselves; the other 68 map, in byte order, to U+0100 upward
// (a space is 'Ġ' U+0120, a newline 'Ċ' U+010A). Sorting bytes by their character gives GPT-2's
// order of the 256 base tokens (its ids 0..255), which lumen's own tokenizers use too.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace lumen::data {

// The character that stands for byte b.
uint32_t byte_to_unicode(uint8_t b);
// The position of byte b in GPT-2's base-token order, and its inverse.
int byte_rank(uint8_t b);
uint8_t byte_at_rank(int rank);

// Raw bytes -> their byte-level spelling (UTF-8).
std::string byte_level_encode(std::string_view bytes);
// Byte-level spelling -> raw bytes; nullopt when the text is not valid UTF-8 or holds a
// character outside the 256 of the mapping.
std::optional<std::string> byte_level_decode(std::string_view text);

// Appends the UTF-8 encoding of code point cp to out.
void append_utf8(std::string& out, uint32_t cp);

}  // namespace lumen::data
