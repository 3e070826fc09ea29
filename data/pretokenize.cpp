// data/pretokenize.cpp: the GPT-2 split as a scanner over code points. Each step tries the regex's
// alternatives in order at the current position, as a backtracking regex engine would. The digit
// splits cut the text at \p{N} characters and hand the stretches between them to that scanner.
#include "data/pretokenize.h"

#include "data/unicode.h"

#include <array>

namespace lumen::data {
namespace {

struct Char {
    uint32_t cp;
    int len;
    CharClass cls;
};

// ASCII classes, so the common case needs no decoding or table search.
constexpr std::array<CharClass, 128> ascii_classes = [] {
    std::array<CharClass, 128> t{};
    for (int b = 0; b < 128; ++b) {
        const bool letter = (b >= 'a' && b <= 'z') || (b >= 'A' && b <= 'Z');
        t[size_t(b)] = letter ? CharClass::letter
                     : (b >= '0' && b <= '9') ? CharClass::number
                     : ((b >= 9 && b <= 13) || b == ' ') ? CharClass::space
                     : CharClass::other;
    }
    return t;
}();

inline Char char_at(std::string_view s, size_t i) {
    const uint8_t b = static_cast<uint8_t>(s[i]);
    if (b < 0x80) return {b, 1, ascii_classes[b]};
    Char c;
    c.len = utf8_next(s, i, c.cp);
    c.cls = char_class(c.cp);
    return c;
}

// The length of a contraction ('s 't 're 've 'm 'll 'd) at s[i], which holds '\'', or 0.
size_t contraction_length(std::string_view s, size_t i) {
    const std::string_view rest = s.substr(i + 1);
    if (rest.empty()) return 0;
    const char c = rest[0];
    if (c == 's' || c == 't' || c == 'm' || c == 'd') return 2;
    if (rest.size() >= 2) {
        const std::string_view two = rest.substr(0, 2);
        if (two == "re" || two == "ve" || two == "ll") return 3;
    }
    return 0;
}

// Digits, then the GPT-2 regex on each stretch between them: a digit piece is one \p{N}
// character (`runs` false) or a whole run of them, and the regex leaves such a piece whole.
void digit_split(std::string_view s, bool runs, std::vector<std::string_view>& pieces) {
    const size_t n = s.size();
    size_t start = 0, i = 0;  // s[start, i) holds no digit
    while (i < n) {
        Char c = char_at(s, i);
        if (c.cls != CharClass::number) {
            i += size_t(c.len);
            continue;
        }
        gpt2_split(s.substr(start, i - start), pieces);
        size_t end = i + size_t(c.len);
        while (runs && end < n && (c = char_at(s, end)).cls == CharClass::number) end += size_t(c.len);
        pieces.push_back(s.substr(i, end - i));
        start = i = end;
    }
    gpt2_split(s.substr(start), pieces);
}

}  // namespace

std::string_view pretokenizer_name(Pretokenizer p) {
    switch (p) {
        case Pretokenizer::gpt2: return "gpt2";
        case Pretokenizer::digits_gpt2: return "digits+gpt2";
        case Pretokenizer::digit_runs_gpt2: return "digit_runs+gpt2";
    }
    return "?";
}

std::optional<Pretokenizer> pretokenizer_from_name(std::string_view name) {
    for (Pretokenizer p : {Pretokenizer::gpt2, Pretokenizer::digits_gpt2, Pretokenizer::digit_runs_gpt2})
        if (pretokenizer_name(p) == name) return p;
    return std::nullopt;
}

void pretokenize(Pretokenizer p, std::string_view text, std::vector<std::string_view>& pieces) {
    switch (p) {
        case Pretokenizer::gpt2: return gpt2_split(text, pieces);
        case Pretokenizer::digits_gpt2: return digit_split(text, false, pieces);
        case Pretokenizer::digit_runs_gpt2: return digit_split(text, true, pieces);
    }
}

void gpt2_split(std::string_view s, std::vector<std::string_view>& pieces) {
    const size_t n = s.size();
    size_t i = 0;
    while (i < n) {
        const size_t start = i;
        if (s[i] == '\'') {
            if (const size_t len = contraction_length(s, i)) {
                pieces.push_back(s.substr(start, len));
                i += len;
                continue;
            }
        }
        const Char c = char_at(s, i);
        // ` ?\p{L}+`, ` ?\p{N}+`, ` ?[^\s\p{L}\p{N}]+`: an optional space, then a run of one class.
        size_t run = i;
        CharClass target = CharClass::space;
        if (c.cp == ' ' && i + 1 < n) {
            const Char next = char_at(s, i + 1);
            if (next.cls != CharClass::space) {
                target = next.cls;
                run = i + 1;
            }
        } else if (c.cls != CharClass::space) {
            target = c.cls;
        }
        if (target != CharClass::space) {
            size_t k = run;
            while (k < n) {
                const Char d = char_at(s, k);
                if (d.cls != target) break;
                k += size_t(d.len);
            }
            pieces.push_back(s.substr(start, k - start));
            i = k;
            continue;
        }
        // `\s+(?!\S)` then `\s+`: the whole whitespace run at the end of the text or before more
        // whitespace; before a non-space character, the run minus its last character (which then
        // starts the next piece, e.g. as the space of " word"), unless the run is one character.
        size_t k = i, last = i;
        while (k < n) {
            const Char d = char_at(s, k);
            if (d.cls != CharClass::space) break;
            last = k;
            k += size_t(d.len);
        }
        const size_t end = (k < n && last > start) ? last : k;
        pieces.push_back(s.substr(start, end - start));
        i = end;
    }
}

}  // namespace lumen::data
