// data/unicode.h: strict UTF-8 decoding and the character classes of the GPT-2 pre-tokenizer.
//
// The classes are those of the regex `\p{L}`, `\p{N}` and `\s`: letters are the general categories
// L*, numbers N* (a table generated from Python's unicodedata: data/unicode_tables.inc, written by
// tests/reference/make_unicode_tables.py), spaces the Unicode White_Space property (what both
// the `regex` module and Oniguruma, used by Hugging Face tokenizers, match with `\s`). A byte that
// does not start a valid UTF-8 sequence (overlong, surrogate, above U+10FFFF, truncated, or a stray
// continuation byte) decodes as a one-byte `invalid_code_point` of class `other`: byte-level BPE
// keeps every byte, and this equals Python's decode(errors="surrogateescape") followed by the regex.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>

namespace lumen::data {

enum class CharClass : uint8_t { letter, number, space, other };

inline constexpr uint32_t invalid_code_point = 0xFFFFFFFFu;

// The class of a code point (invalid_code_point is `other`).
CharClass char_class(uint32_t cp);

// Decodes the code point starting at s[i] (i < s.size()) into `cp` and returns its length in
// bytes, 1 to 4. An invalid byte returns 1 with cp = invalid_code_point.
inline int utf8_next(std::string_view s, size_t i, uint32_t& cp) {
    const auto byte = [&](size_t k) { return static_cast<uint8_t>(s[k]); };
    const uint8_t b0 = byte(i);
    cp = invalid_code_point;
    if (b0 < 0x80) { cp = b0; return 1; }
    int len = 0;
    uint32_t value = 0, min_value = 0;
    if (b0 >= 0xC2 && b0 <= 0xDF) { len = 2; value = b0 & 0x1Fu; min_value = 0x80; }
    else if (b0 >= 0xE0 && b0 <= 0xEF) { len = 3; value = b0 & 0x0Fu; min_value = 0x800; }
    else if (b0 >= 0xF0 && b0 <= 0xF4) { len = 4; value = b0 & 0x07u; min_value = 0x10000; }
    else return 1;  // a continuation byte, C0/C1 (always overlong) or F5..FF
    if (i + size_t(len) > s.size()) return 1;
    for (int k = 1; k < len; ++k) {
        const uint8_t b = byte(i + size_t(k));
        if ((b & 0xC0u) != 0x80u) return 1;
        value = (value << 6) | (b & 0x3Fu);
    }
    if (value < min_value || value > 0x10FFFF || (value >= 0xD800 && value <= 0xDFFF)) return 1;
    cp = value;
    return len;
}

}  // namespace lumen::data
