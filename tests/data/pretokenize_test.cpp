// tests/data/pretokenize_test.cpp: the hand-written GPT-2 split against the `regex` module's
// (tests/fixtures/tokenizer/cases.json, written by tests/reference/make_tokenizer_fixture.py) and
// against cases worked out by hand from the pattern.
#include "data/pretokenize.h"
#include "tests/data/data_test_util.h"
#include "tests/harness.h"

using namespace lumen::data;

namespace {
std::vector<std::string> split(std::string_view text) {
    std::vector<std::string_view> pieces;
    gpt2_split(text, pieces);
    return {pieces.begin(), pieces.end()};
}
}  // namespace

TEST_CASE("pretokenize: matches the regex reference on every fixture case") {
    const auto cases = lumen::test::fixture_cases()["cases"];
    REQUIRE(cases.size() >= 20);
    for (const auto& c : cases) {
        const std::string text = lumen::test::from_hex(c["hex"]);
        std::vector<std::string> expected;
        for (const auto& p : c["pieces"]) expected.push_back(lumen::test::from_hex(p));
        INFO("case hex: " << c["hex"].get<std::string>());
        CHECK(split(text) == expected);
    }
}

TEST_CASE("pretokenize: hand-checked splits") {
    using V = std::vector<std::string>;
    CHECK(split("") == V{});
    CHECK(split("Hello world") == V{"Hello", " world"});
    CHECK(split("it's I'M") == V{"it", "'s", " I", "'", "M"});
    CHECK(split("we'll they've") == V{"we", "'ll", " they", "'ve"});
    CHECK(split("a   b") == V{"a", "  ", " b"});           // \s+(?!\S) leaves one space for " b"
    CHECK(split("a \n\tb") == V{"a", " \n", "\t", "b"});   // the run minus its last char, then \s+
    CHECK(split("x  ") == V{"x", "  "});                   // a run at the end stays whole
    CHECK(split("abc123 45") == V{"abc", "123", " 45"});
    CHECK(split("?!... ok") == V{"?!...", " ok"});
    CHECK(split(" \xFF\xFE" "a") == V{" \xFF\xFE", "a"});  // invalid bytes are punctuation-like
    std::string joined;
    for (const auto& p : split("  mixed\t\ttext, 42 'quotes' \xF0\x9F\xA6\x80!\n")) joined += p;
    CHECK(joined == "  mixed\t\ttext, 42 'quotes' \xF0\x9F\xA6\x80!\n");
}
