// tests/data/tokenizer_json_test.cpp: Hugging Face tokenizer.json with SmolLM's settings (the
// pre-tokenizer Sequence [Digits(individual_digits), ByteLevel], 17 special tokens) against the
// `tokenizers` library's ids and decodes (tests/fixtures/tokenizer/smollm/, written by
// tests/reference/make_smollm_tokenizer_fixture.py), the GPT-2 tokenizer.json again, the digit
// splits, lumen's format keeping the pre-tokenizer, and the errors for settings lumen refuses.
#include "data/pretokenize.h"
#include "data/tokenizer.h"
#include "data/tokenizer_io.h"
#include "tests/data/data_test_util.h"
#include "tests/harness.h"

#include <filesystem>
#include <functional>

using namespace lumen::data;
using lumen::test::ScratchDir;
using lumen::test::tokenizer_fixture;
using nlohmann::json;

namespace {

using Ids = std::vector<int32_t>;
using Pieces = std::vector<std::string>;

const std::string& smollm_path() {
    static const std::string p = tokenizer_fixture("smollm/tokenizer.json");
    return p;
}

const json& smollm_fixture() {
    static const json j = json::parse(lumen::test::read_bytes(tokenizer_fixture("smollm/cases.json")));
    return j;
}

const Tokenizer& smollm() {
    static const Tokenizer t = load_hf_tokenizer_json(smollm_path());
    return t;
}

Pieces split(Pretokenizer p, std::string_view text) {
    std::vector<std::string_view> pieces;
    pretokenize(p, text, pieces);
    return {pieces.begin(), pieces.end()};
}

// Every case: `tokenizers`' ids with special tokens split out, its decode, and the ids with
// special tokens' text taken as ordinary text.
void check_smollm_cases(const Tokenizer& tok, const std::string& label) {
    const json& cases = smollm_fixture()["cases"];
    REQUIRE(cases.size() >= 25);
    for (const json& c : cases) {
        const std::string text = c["text"];
        INFO(label << ", case: " << c["text"].dump());
        const Ids ids = c["ids"].get<Ids>();
        CHECK(tok.encode(text, AllowSpecial::yes) == ids);
        CHECK(tok.decode(ids) == c["decoded"].get<std::string>());
        const Ids ordinary = c["ids_ordinary"].get<Ids>();
        CHECK(tok.encode(text) == ordinary);
        CHECK(tok.decode(ordinary) == text);
    }
}

json read_json(const std::string& path) { return json::parse(lumen::test::read_bytes(path)); }

// Writes `j` to dir/name and loads it with load_tokenizer.
Tokenizer load_edited(const ScratchDir& dir, const json& j, const std::string& name = "tokenizer.json") {
    lumen::test::write_bytes(dir.file(name), j.dump());
    return load_tokenizer(dir.file(name));
}

}  // namespace

TEST_CASE("tokenizer.json: SmolLM's settings load: 17 special tokens, digits then the GPT-2 regex") {
    const Tokenizer& tok = smollm();
    CHECK(tok.vocab_size() == smollm_fixture()["meta"]["vocab_size"].get<int64_t>());
    CHECK(tok.pretokenizer() == Pretokenizer::digits_gpt2);
    CHECK(tok.ignore_merges() == IgnoreMerges::no);
    const auto names = smollm_fixture()["meta"]["special_tokens"].get<std::vector<std::string>>();
    REQUIRE(names.size() == 17);
    REQUIRE(tok.special_ids().size() == 17);
    for (size_t i = 0; i < names.size(); ++i) {
        INFO("special token " << names[i]);
        CHECK(tok.special_id(names[i]) == int32_t(i));
        CHECK(tok.is_special(int32_t(i)));
        CHECK(tok.token_bytes(int32_t(i)) == names[i]);
    }
    CHECK(tok.eot_id() == 0);
    CHECK_FALSE(tok.is_special(17));
}

TEST_CASE("tokenizer.json: SmolLM fixture cases encode and decode like `tokenizers`") {
    check_smollm_cases(smollm(), "tokenizer.json");
}

TEST_CASE("tokenizer.json: the digit pre-tokenizers split like `tokenizers`' pre_tokenize_str") {
    int checked = 0;
    for (const json& c : smollm_fixture()["cases"]) {
        if (!c.contains("pieces")) continue;  // the text holds special tokens
        const std::string text = c["text"];
        INFO("case: " << c["text"].dump());
        CHECK(split(Pretokenizer::digits_gpt2, text) == c["pieces"].get<Pieces>());
        CHECK(split(Pretokenizer::digit_runs_gpt2, text) == c["pieces_digit_runs"].get<Pieces>());
        ++checked;
    }
    CHECK(checked >= 15);
}

TEST_CASE("tokenizer.json: hand-checked digit splits") {
    CHECK(split(Pretokenizer::digits_gpt2, "") == Pieces{});
    CHECK(split(Pretokenizer::digits_gpt2, " 123") == Pieces{" ", "1", "2", "3"});
    CHECK(split(Pretokenizer::digit_runs_gpt2, " 123") == Pieces{" ", "123"});
    CHECK(split(Pretokenizer::gpt2, " 123") == Pieces{" 123"});
    CHECK(split(Pretokenizer::digits_gpt2, "a1 b") == Pieces{"a", "1", " b"});
    CHECK(split(Pretokenizer::digits_gpt2, "it's 5'll") == Pieces{"it", "'s", " ", "5", "'ll"});
    // Full-width digits (3 bytes each) are \p{N}; invalid bytes are not.
    CHECK(split(Pretokenizer::digits_gpt2, "\xEF\xBC\x92\xEF\xBC\x90") == Pieces{"\xEF\xBC\x92", "\xEF\xBC\x90"});
    CHECK(split(Pretokenizer::digit_runs_gpt2, "\xFF" "12\xFF") == Pieces{"\xFF", "12", "\xFF"});
    CHECK(pretokenizer_from_name("digits+gpt2") == Pretokenizer::digits_gpt2);
    CHECK(pretokenizer_from_name(pretokenizer_name(Pretokenizer::digit_runs_gpt2)) ==
          Pretokenizer::digit_runs_gpt2);
    CHECK_FALSE(pretokenizer_from_name("llama3").has_value());
}

TEST_CASE("tokenizer.json: ignore_merges takes a piece that is a token as is") {
    // The fixture's variant: ignore_merges true, and whole-word tokens that no merge reaches.
    json j = read_json(smollm_path());
    j["model"]["ignore_merges"] = true;
    for (const auto& token : smollm_fixture()["meta"]["ignore_merges_vocab"])
        j["model"]["vocab"][token.get<std::string>()] = j["model"]["vocab"].size();
    ScratchDir dir("tok_json_ignore");
    const Tokenizer tok = load_edited(dir, j);
    CHECK(tok.ignore_merges() == IgnoreMerges::yes);
    int differ = 0;
    for (const json& c : smollm_fixture()["cases"]) {
        INFO("case: " << c["text"].dump());
        const Ids expected = c["ids_ignore_merges"].get<Ids>();
        CHECK(tok.encode(c["text"].get<std::string>(), AllowSpecial::yes) == expected);
        differ += expected != c["ids"].get<Ids>();
    }
    CHECK(differ >= 1);  // the variant must be able to tell the rule apart
}

TEST_CASE("tokenizer.json: lumen's format keeps the pre-tokenizer; load_tokenizer picks tokenizer.json") {
    ScratchDir dir("tok_json_lumen");
    save_tokenizer(smollm(), dir.file("tokenizer.lumen.json"));
    CHECK(read_json(dir.file("tokenizer.lumen.json"))["pretokenizer"] == "digits+gpt2");
    const Tokenizer back = load_tokenizer(dir.file("tokenizer.lumen.json"));
    CHECK(back.pretokenizer() == Pretokenizer::digits_gpt2);
    CHECK(back.tokens() == smollm().tokens());
    CHECK(back.special_ids() == smollm().special_ids());
    check_smollm_cases(back, "lumen format");

    json bad = read_json(dir.file("tokenizer.lumen.json"));
    bad["pretokenizer"] = "llama3";
    CHECK_THROWS_CONTAINING(load_edited(dir, bad, "bad.lumen.json"), "pretokenizer 'llama3' is not supported");

    // A Hugging Face model folder holds tokenizer.json and often vocab.json + merges.txt too.
    ScratchDir folder("tok_json_folder");
    namespace fs = std::filesystem;
    fs::copy_file(smollm_path(), folder.file("tokenizer.json"));
    fs::copy_file(tokenizer_fixture("vocab.json"), folder.file("vocab.json"));
    fs::copy_file(tokenizer_fixture("merges.txt"), folder.file("merges.txt"));
    const Tokenizer picked = load_tokenizer(folder.str());
    CHECK(picked.pretokenizer() == Pretokenizer::digits_gpt2);
    CHECK(picked.special_ids().size() == 17);
    check_smollm_cases(load_tokenizer(smollm_path()), "load_tokenizer(file)");
}

TEST_CASE("tokenizer.json: the GPT-2 fixture still matches its cases") {
    const Tokenizer tok = load_tokenizer(tokenizer_fixture("tokenizer.json"));
    CHECK(tok.pretokenizer() == Pretokenizer::gpt2);
    const json all = lumen::test::fixture_cases();
    for (const json& c : all["cases"]) {
        const std::string text = lumen::test::from_hex(c["hex"]);
        INFO("case hex: " << c["hex"].get<std::string>());
        CHECK(tok.encode(text) == c["ids"].get<Ids>());
        if (c.contains("hf_ids")) CHECK(tok.encode(text, AllowSpecial::yes) == c["hf_ids"].get<Ids>());
        CHECK(tok.decode(c["ids"].get<Ids>()) == text);
    }
    // Merges written as "a b" strings (tokenizers < 0.20) load to the same tokenizer.
    json j = read_json(tokenizer_fixture("tokenizer.json"));
    REQUIRE(j["model"]["merges"][0].is_array());
    for (json& m : j["model"]["merges"]) m = m[0].get<std::string>() + " " + m[1].get<std::string>();
    ScratchDir dir("tok_json_gpt2");
    const Tokenizer strings = load_edited(dir, j);
    REQUIRE(strings.merges().size() == tok.merges().size());
    for (size_t i = 0; i < tok.merges().size(); ++i) {
        CHECK(strings.merges()[i].left == tok.merges()[i].left);
        CHECK(strings.merges()[i].right == tok.merges()[i].right);
    }
}

TEST_CASE("tokenizer.json: unsupported settings are refused with the key and value named") {
    const json base = read_json(smollm_path());
    ScratchDir dir("tok_json_bad");
    const auto refused = [&](const std::function<void(json&)>& edit) {
        json j = base;
        edit(j);
        lumen::test::write_bytes(dir.file("tokenizer.json"), j.dump());
        return load_tokenizer(dir.file("tokenizer.json"));
    };
    const auto digits = [](json& j) -> json& { return j["pre_tokenizer"]["pretokenizers"][0]; };
    CHECK(refused([](json&) {}).pretokenizer() == Pretokenizer::digits_gpt2);  // the edits alone fail
    CHECK(refused([&](json& j) { digits(j)["individual_digits"] = false; }).pretokenizer() ==
          Pretokenizer::digit_runs_gpt2);
    CHECK(refused([](json& j) {
              j["pre_tokenizer"]["pretokenizers"].erase(0);
          }).pretokenizer() == Pretokenizer::gpt2);

    CHECK_THROWS_CONTAINING(refused([](json& j) { j["pre_tokenizer"] = {{"type", "Whitespace"}}; }),
                            "pre_tokenizer = \"Whitespace\" is not supported");
    CHECK_THROWS_CONTAINING(refused([](json& j) { j["pre_tokenizer"] = nullptr; }),
                            "pre_tokenizer = null is not supported");
    CHECK_THROWS_CONTAINING(refused([](json& j) { j["model"]["byte_fallback"] = true; }),
                            "model.byte_fallback = true is not supported");
    CHECK_THROWS_CONTAINING(refused([](json& j) { j["model"]["ignore_merges"] = "no"; }),
                            "model.ignore_merges = \"no\" is not supported");
    CHECK_THROWS_CONTAINING(refused([&](json& j) { digits(j)["individual_digits"] = "yes"; }),
                            "pre_tokenizer.pretokenizers[0].individual_digits = \"yes\" is not supported");
    CHECK_THROWS_CONTAINING(refused([&](json& j) { digits(j).erase("individual_digits"); }),
                            "pre_tokenizer.pretokenizers[0].individual_digits = null is not supported");
    CHECK_THROWS_CONTAINING(refused([&](json& j) { digits(j)["max_digits"] = 3; }),
                            "pre_tokenizer.pretokenizers[0].max_digits = 3 is not supported");
    CHECK_THROWS_CONTAINING(refused([&](json& j) { digits(j)["type"] = "Split"; }),
                            "pre_tokenizer.pretokenizers[0].type = \"Split\" is not supported");
    CHECK_THROWS_CONTAINING(refused([](json& j) {
                                j["pre_tokenizer"]["pretokenizers"][1]["add_prefix_space"] = true;
                            }),
                            "pre_tokenizer.pretokenizers[1].add_prefix_space = true is not supported");
    CHECK_THROWS_CONTAINING(refused([](json& j) {
                                j["pre_tokenizer"]["pretokenizers"][1]["use_regex"] = false;
                            }),
                            "pre_tokenizer.pretokenizers[1].use_regex = false is not supported");
    CHECK_THROWS_CONTAINING(refused([](json& j) {
                                auto& steps = j["pre_tokenizer"]["pretokenizers"];
                                std::swap(steps[0], steps[1]);  // ByteLevel first: bytes, not digits
                            }),
                            "pre_tokenizer.pretokenizers = ");
    CHECK_THROWS_CONTAINING(refused([](json& j) { j["decoder"] = nullptr; }),
                            "decoder = null is not supported");
    CHECK_THROWS_CONTAINING(refused([](json& j) { j["decoder"] = {{"type", "Metaspace"}}; }),
                            "decoder = \"Metaspace\" is not supported");
    CHECK_THROWS_CONTAINING(refused([](json& j) { j["added_tokens"][1]["lstrip"] = true; }),
                            "added_tokens[1].lstrip = true is not supported");
    CHECK_THROWS_CONTAINING(refused([](json& j) { j["added_tokens"][2]["id"] = "two"; }),
                            "added_tokens[2]");
    CHECK_THROWS_CONTAINING(refused([](json& j) { j["normalizer"] = {{"type", "NFC"}}; }),
                            "normalizer = {\"type\":\"NFC\"} is not supported");
}
