// data/unicode.cpp: the character classifier: a 256-entry table for U+0000..U+00FF, then a binary
// search in the generated L*/N* ranges, then the short White_Space list.
#include "data/unicode.h"

#include <algorithm>
#include <array>
#include <iterator>

namespace lumen::data {
namespace {

struct Range {
    uint32_t first, last;
    CharClass cls;
};
constexpr CharClass L = CharClass::letter;
constexpr CharClass N = CharClass::number;

constexpr Range letter_number_ranges[] = {
#include "data/unicode_tables.inc"
};

// The Unicode White_Space property (PropList.txt; unchanged since Unicode 6.3).
bool is_white_space(uint32_t cp) {
    return (cp >= 0x09 && cp <= 0x0D) || cp == 0x20 || cp == 0x85 || cp == 0xA0 || cp == 0x1680 ||
           (cp >= 0x2000 && cp <= 0x200A) || cp == 0x2028 || cp == 0x2029 || cp == 0x202F ||
           cp == 0x205F || cp == 0x3000;
}

CharClass classify_slow(uint32_t cp) {
    if (cp == invalid_code_point) return CharClass::other;
    if (is_white_space(cp)) return CharClass::space;
    const auto* end = std::end(letter_number_ranges);
    const auto* it = std::upper_bound(std::begin(letter_number_ranges), end, cp,
                                      [](uint32_t c, const Range& r) { return c < r.first; });
    if (it != std::begin(letter_number_ranges) && cp <= (it - 1)->last) return (it - 1)->cls;
    return CharClass::other;
}

const std::array<CharClass, 256>& latin1_table() {
    static const std::array<CharClass, 256> table = [] {
        std::array<CharClass, 256> t{};
        for (uint32_t cp = 0; cp < 256; ++cp) t[cp] = classify_slow(cp);
        return t;
    }();
    return table;
}

}  // namespace

CharClass char_class(uint32_t cp) {
    if (cp < 256) return latin1_table()[cp];
    return classify_slow(cp);
}

}  // namespace lumen::data
