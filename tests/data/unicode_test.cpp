// tests/data/unicode_test.cpp: strict UTF-8 decoding, the L/N/space classifier, and GPT-2's byte
// <-> unicode mapping (data/unicode.h, data/byte_level.h).
#include "data/byte_level.h"
#include "data/unicode.h"
#include "tests/harness.h"

#include <set>

using namespace lumen::data;

TEST_CASE("unicode: utf8_next decodes valid sequences and rejects invalid ones byte by byte") {
    uint32_t cp = 0;
    CHECK(utf8_next("A", 0, cp) == 1);
    CHECK(cp == 'A');
    CHECK(utf8_next("\xC3\xA9", 0, cp) == 2);  // é
    CHECK(cp == 0xE9);
    CHECK(utf8_next("\xE0\xB8\xA0", 0, cp) == 3);  // Thai ภ
    CHECK(cp == 0x0E20);
    CHECK(utf8_next("\xF0\x9F\xA6\x80", 0, cp) == 4);  // 🦀
    CHECK(cp == 0x1F980);
    for (const char* bad : {"\x80", "\xC0\xAF", "\xC1\x81", "\xE0\x80\xAF", "\xED\xA0\x80",
                            "\xF4\x90\x80\x80", "\xF5\x80\x80\x80", "\xFF", "\xE2\x82", "\xF0\x9F\x98"}) {
        INFO("bytes: " << bad);
        CHECK(utf8_next(bad, 0, cp) == 1);
        CHECK(cp == invalid_code_point);
    }
    CHECK(utf8_next("\xE2\x82" "A", 0, cp) == 1);  // truncated by a non-continuation byte
}

TEST_CASE("unicode: char_class follows \\p{L}, \\p{N} and White_Space") {
    for (uint32_t cp : {uint32_t('a'), uint32_t('Z'), 0xE9u, 0xAAu, 0x0E20u, 0x4E2Du, 0x3042u,
                        0x0394u, 0x1F00u, 0x02B0u /* Lm */, 0x01C5u /* Lt */})
        CHECK_MESSAGE(char_class(cp) == CharClass::letter, cp);
    for (uint32_t cp : {uint32_t('0'), uint32_t('9'), 0xB2u /* ² */, 0xBDu /* ½ */, 0xFF13u /* ３ */,
                        0x216Bu /* Ⅻ Nl */, 0x0E51u /* Thai one */})
        CHECK_MESSAGE(char_class(cp) == CharClass::number, cp);
    for (uint32_t cp : {0x09u, 0x0Au, 0x0Bu, 0x0Du, 0x20u, 0x85u, 0xA0u, 0x2003u, 0x2028u, 0x3000u})
        CHECK_MESSAGE(char_class(cp) == CharClass::space, cp);
    for (uint32_t cp : {uint32_t('\''), uint32_t('.'), 0x1Cu, 0x200Bu, 0xFEFFu, 0x0E31u /* Mn */,
                        0x1F980u, 0x2764u, invalid_code_point, 0xDC80u})
        CHECK_MESSAGE(char_class(cp) == CharClass::other, cp);
}

TEST_CASE("byte_level: GPT-2's mapping, its order and round trips") {
    CHECK(byte_to_unicode('!') == '!');
    CHECK(byte_to_unicode(' ') == 0x120);   // Ġ
    CHECK(byte_to_unicode('\n') == 0x10A);  // Ċ
    CHECK(byte_to_unicode(0xAD) == 0x143);  // the soft hyphen is not printable
    CHECK(byte_to_unicode(0xFF) == 0xFF);
    std::set<uint32_t> chars;
    for (int b = 0; b < 256; ++b) chars.insert(byte_to_unicode(uint8_t(b)));
    CHECK(chars.size() == 256);
    CHECK(byte_at_rank(0) == '!');
    CHECK(byte_at_rank(93) == '~');
    CHECK(byte_at_rank(188) == 0);  // the first non-printable byte follows the 188 printable ones
    for (int r = 0; r < 256; ++r) CHECK(byte_rank(byte_at_rank(r)) == r);
    std::string all;
    for (int b = 0; b < 256; ++b) all += char(b);
    const std::string spelled = byte_level_encode(all);
    CHECK(byte_level_decode(spelled) == all);
    CHECK(byte_level_encode(" the") == "\xC4\xA0the");
    CHECK_FALSE(byte_level_decode("\xE4\xB8\xAD").has_value());  // 中 is not in the alphabet
    CHECK_FALSE(byte_level_decode("\xFF").has_value());          // invalid UTF-8
}
