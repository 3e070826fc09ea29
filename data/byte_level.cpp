// data/byte_level.cpp: the tables behind GPT-2's byte <-> unicode mapping, built once.
#include "data/byte_level.h"

#include "data/unicode.h"

#include <algorithm>
#include <array>

namespace lumen::data {
namespace {

struct Tables {
    std::array<uint32_t, 256> to_unicode{};
    std::array<int, 256> rank{};
    std::array<uint8_t, 256> at_rank{};
    std::array<int16_t, 512> from_unicode{};  // code point (< 512) -> byte, or -1
};

const Tables& tables() {
    static const Tables t = [] {
        Tables t;
        const auto printable = [](int b) {
            return (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
        };
        uint32_t next = 256;
        for (int b = 0; b < 256; ++b) t.to_unicode[b] = printable(b) ? uint32_t(b) : next++;
        std::array<int, 256> order{};
        for (int b = 0; b < 256; ++b) order[b] = b;
        std::sort(order.begin(), order.end(),
                  [&](int x, int y) { return t.to_unicode[x] < t.to_unicode[y]; });
        t.from_unicode.fill(-1);
        for (int r = 0; r < 256; ++r) {
            t.at_rank[r] = uint8_t(order[r]);
            t.rank[order[r]] = r;
        }
        for (int b = 0; b < 256; ++b) t.from_unicode[t.to_unicode[b]] = int16_t(b);
        return t;
    }();
    return t;
}

}  // namespace

uint32_t byte_to_unicode(uint8_t b) { return tables().to_unicode[b]; }
int byte_rank(uint8_t b) { return tables().rank[b]; }
uint8_t byte_at_rank(int rank) { return tables().at_rank[rank]; }

void append_utf8(std::string& out, uint32_t cp) {
    if (cp < 0x80) {
        out += char(cp);
    } else if (cp < 0x800) {
        out += char(0xC0 | (cp >> 6));
        out += char(0x80 | (cp & 0x3F));
    } else if (cp < 0x10000) {
        out += char(0xE0 | (cp >> 12));
        out += char(0x80 | ((cp >> 6) & 0x3F));
        out += char(0x80 | (cp & 0x3F));
    } else {
        out += char(0xF0 | (cp >> 18));
        out += char(0x80 | ((cp >> 12) & 0x3F));
        out += char(0x80 | ((cp >> 6) & 0x3F));
        out += char(0x80 | (cp & 0x3F));
    }
}

std::string byte_level_encode(std::string_view bytes) {
    std::string out;
    out.reserve(bytes.size() * 2);
    for (char c : bytes) append_utf8(out, byte_to_unicode(static_cast<uint8_t>(c)));
    return out;
}

std::optional<std::string> byte_level_decode(std::string_view text) {
    std::string out;
    out.reserve(text.size());
    for (size_t i = 0; i < text.size();) {
        uint32_t cp;
        i += size_t(utf8_next(text, i, cp));
        if (cp >= tables().from_unicode.size() || tables().from_unicode[cp] < 0) return std::nullopt;
        out += char(tables().from_unicode[cp]);
    }
    return out;
}

}  // namespace lumen::data
