// tests/data/tokenizer_test.cpp: encoding and decoding against the Hugging Face fixture
// (tests/fixtures/tokenizer/), every loader (vocab.json + merges.txt, tokenizer.json, lumen's
// format, llm.c's gpt2_tokenizer.bin) and their errors.
#include "data/byte_level.h"
#include "data/tokenizer.h"
#include "data/tokenizer_io.h"
#include "tests/data/data_test_util.h"
#include "tests/harness.h"

#include <cstring>

using namespace lumen::data;
using lumen::test::from_hex;
using lumen::test::ScratchDir;
using lumen::test::tokenizer_fixture;

namespace {

const Tokenizer& hf_pair() {
    static const Tokenizer t =
        load_hf_vocab_merges(tokenizer_fixture("vocab.json"), tokenizer_fixture("merges.txt"));
    return t;
}

void check_cases(const Tokenizer& tok, const std::string& label) {
    const nlohmann::json all = lumen::test::fixture_cases();
    for (const auto& c : all["cases"]) {
        const std::string text = from_hex(c["hex"]);
        INFO(label << ", case hex: " << c["hex"].get<std::string>());
        const auto ids = tok.encode(text);
        CHECK(ids == c["ids"].get<std::vector<int32_t>>());
        CHECK(tok.decode(ids) == text);
        if (c.contains("hf_ids"))  // Hugging Face splits out special tokens
            CHECK(tok.encode(text, AllowSpecial::yes) == c["hf_ids"].get<std::vector<int32_t>>());
    }
}

}  // namespace

TEST_CASE("tokenizer: vocab.json + merges.txt encode every fixture case like the references") {
    const Tokenizer& tok = hf_pair();
    CHECK(tok.vocab_size() == 1000);
    CHECK(tok.eot_id() == 0);
    CHECK(tok.merges().size() == 743);
    check_cases(tok, "vocab.json");
}

TEST_CASE("tokenizer: tokenizer.json loads to the same tokenizer") {
    const Tokenizer tok = load_hf_tokenizer_json(tokenizer_fixture("tokenizer.json"));
    CHECK(tok.tokens() == hf_pair().tokens());
    CHECK(tok.special_ids() == hf_pair().special_ids());
    check_cases(tok, "tokenizer.json");
    CHECK(load_tokenizer(tokenizer_fixture("tokenizer.json")).tokens() == tok.tokens());
    CHECK(load_tokenizer(tokenizer_fixture("vocab.json")).merges().size() == tok.merges().size());
}

TEST_CASE("tokenizer: special tokens encode only when allowed") {
    const Tokenizer& tok = hf_pair();
    const auto ordinary = tok.encode("a<|endoftext|>b");
    CHECK(std::count(ordinary.begin(), ordinary.end(), tok.eot_id()) == 0);
    const auto special = tok.encode("<|endoftext|>a<|endoftext|><|endoftext|>", AllowSpecial::yes);
    REQUIRE(special.size() == 4);
    CHECK(special[0] == 0);
    CHECK(special[2] == 0);
    CHECK(special[3] == 0);
    CHECK(tok.decode(special) == "<|endoftext|>a<|endoftext|><|endoftext|>");
}

TEST_CASE("tokenizer: lumen's format saves and loads exactly") {
    ScratchDir dir("tok_lumen");
    save_tokenizer(hf_pair(), dir.file("t.lumen.json"));
    const Tokenizer back = load_tokenizer(dir.file("t.lumen.json"));
    CHECK(back.tokens() == hf_pair().tokens());
    CHECK(back.special_ids() == hf_pair().special_ids());
    REQUIRE(back.merges().size() == hf_pair().merges().size());
    for (size_t i = 0; i < back.merges().size(); ++i) {
        CHECK(back.merges()[i].left == hf_pair().merges()[i].left);
        CHECK(back.merges()[i].right == hf_pair().merges()[i].right);
    }
    check_cases(back, "lumen format");
    // A directory is searched for the known names.
    ScratchDir dir2("tok_dir");
    save_tokenizer(hf_pair(), dir2.file("tokenizer.lumen.json"));
    CHECK(load_tokenizer(dir2.str()).vocab_size() == 1000);
}

TEST_CASE("tokenizer: llm.c gpt2_tokenizer.bin decodes, and the writer round-trips") {
    const Tokenizer bin = load_tokenizer(tokenizer_fixture("gpt2_tokenizer.llmc"));
    CHECK_FALSE(bin.can_encode());
    CHECK(bin.vocab_size() == 1000);
    CHECK(bin.eot_id() == 0);
    const nlohmann::json all = lumen::test::fixture_cases();
    for (const auto& c : all["cases"]) {
        const auto ids = c["ids"].get<std::vector<int32_t>>();
        CHECK(bin.decode(ids) == from_hex(c["hex"]));
    }
    CHECK_THROWS_CONTAINING(bin.encode("hi"), "can only decode");
    ScratchDir dir("tok_llmc");
    save_llmc_tokenizer(hf_pair(), dir.file("gpt2_tokenizer.bin"));
    CHECK(lumen::test::read_bytes(dir.file("gpt2_tokenizer.bin")) ==
          lumen::test::read_bytes(tokenizer_fixture("gpt2_tokenizer.llmc")));
}

TEST_CASE("tokenizer: llm.c file errors name the byte offset") {
    ScratchDir dir("tok_llmc_bad");
    const std::string good = lumen::test::read_bytes(tokenizer_fixture("gpt2_tokenizer.llmc"));
    const auto load_bytes = [&](const std::string& bytes) {
        lumen::test::write_bytes(dir.file("t.bin"), bytes);
        return load_llmc_tokenizer(dir.file("t.bin"));
    };
    CHECK_THROWS_CONTAINING(load_bytes(good.substr(0, 100)), "truncated header");
    CHECK_THROWS_CONTAINING(load_bytes(good.substr(0, good.size() - 1)), "truncated: token 999");
    CHECK_THROWS_CONTAINING(load_bytes(good + "xy"), "2 trailing bytes");
    std::string bad_magic = good;
    bad_magic[0] = 1;
    CHECK_THROWS_CONTAINING(load_bytes(bad_magic), "byte 0: magic");
    std::string v1 = good;
    v1[4] = 1;  // version 1 implies 50257 tokens
    CHECK_THROWS_CONTAINING(load_bytes(v1), "50257");
    std::string zero = good;
    zero[1024] = 0;
    CHECK_THROWS_CONTAINING(load_bytes(zero), "byte 1024: token 0 has length 0");
}

TEST_CASE("tokenizer: bad vocabularies and merges are refused with the reason") {
    using M = Tokenizer::Merge;
    std::vector<std::string> base;
    for (int r = 0; r < 256; ++r) base.emplace_back(1, char(byte_at_rank(r)));
    auto with = [&](std::vector<std::string> extra) {
        auto t = base;
        t.insert(t.end(), extra.begin(), extra.end());
        return t;
    };
    const int32_t a = byte_rank('a'), b = byte_rank('b');
    const Tokenizer ok(with({"ab"}), {M{a, b}}, {});
    CHECK(ok.encode("abab") == std::vector<int32_t>{256, 256});
    CHECK_THROWS_CONTAINING(Tokenizer(with({}), {M{a, b}}, {}), "the merged token 'ab' is not in the vocabulary");
    CHECK_THROWS_CONTAINING(Tokenizer(with({"ab"}), {M{a, b}, M{a, b}}, {}), "listed twice");
    CHECK_THROWS_CONTAINING(Tokenizer(with({"a"}), {}, {}), "are both 'a'");
    CHECK_THROWS_CONTAINING(Tokenizer(with({"ab"}), {M{a, 999}}, {}), "outside the ordinary tokens");
    CHECK_THROWS_CONTAINING(ok.decode(std::vector<int32_t>{257}), "token id 257 is outside the vocabulary");
    // A vocabulary without every byte cannot encode a missing one.
    const Tokenizer small({"a", "b"}, {}, {});
    CHECK(small.encode("ab") == std::vector<int32_t>{0, 1});
    CHECK_THROWS_CONTAINING(small.encode("c"), "byte 0x63 has no token");

    ScratchDir dir("tok_hf_bad");
    lumen::test::write_bytes(dir.file("vocab.json"), R"({"a": 0, "b": 1, "ab": 2})");
    lumen::test::write_bytes(dir.file("merges.txt"), "#version: 0.2\na b\na c\n");
    CHECK_THROWS_CONTAINING(load_tokenizer(dir.file("vocab.json")), "merges.txt:3: merge 'a c'");
    lumen::test::write_bytes(dir.file("merges.txt"), "a b c\n");
    CHECK_THROWS_CONTAINING(load_tokenizer(dir.file("vocab.json")), "merges.txt:1: expected two tokens");
    lumen::test::write_bytes(dir.file("merges.txt"), "a b\n");
    lumen::test::write_bytes(dir.file("vocab.json"), R"({"a": 0, "b": 2})");
    CHECK_THROWS_CONTAINING(load_hf_vocab_merges(dir.file("vocab.json"), dir.file("merges.txt")),
                            "id 1 is missing");
    lumen::test::write_bytes(dir.file("vocab.json"), "{\"\xE4\xB8\xAD\": 0}");
    CHECK_THROWS_CONTAINING(load_hf_vocab_merges(dir.file("vocab.json"), dir.file("merges.txt")),
                            "not in GPT-2's byte-level spelling");
    std::string tj = lumen::test::read_bytes(tokenizer_fixture("tokenizer.json"));
    const auto replace = [&](std::string s, const std::string& from, const std::string& to) {
        const size_t at = s.find(from);
        REQUIRE(at != std::string::npos);
        return s.replace(at, from.size(), to);
    };
    lumen::test::write_bytes(dir.file("t.json"), replace(tj, "\"add_prefix_space\": false", "\"add_prefix_space\": true"));
    CHECK_THROWS_CONTAINING(load_tokenizer(dir.file("t.json")), "pre_tokenizer.add_prefix_space = true is not supported");
    lumen::test::write_bytes(dir.file("t.json"), replace(tj, "\"normalizer\": null", "\"normalizer\": {\"type\": \"NFC\"}"));
    CHECK_THROWS_CONTAINING(load_tokenizer(dir.file("t.json")), "normalizer");
    lumen::test::write_bytes(dir.file("t.json"), "[1, 2]");
    CHECK_THROWS_CONTAINING(load_tokenizer(dir.file("t.json")), "not a tokenizer file");
    lumen::test::write_bytes(dir.file("t.json"), "{nope");
    CHECK_THROWS_CONTAINING(load_tokenizer(dir.file("t.json")), "not valid JSON");
}
