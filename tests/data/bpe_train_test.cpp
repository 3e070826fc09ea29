// tests/data/bpe_train_test.cpp: BPE training against Hugging Face tokenizers' merges on the
// fixture corpus, and against a naive trainer (recount every pair after every merge) written here.
#include "data/bpe_train.h"
#include "data/byte_level.h"
#include "data/pretokenize.h"
#include "data/tokenizer_io.h"
#include "tests/data/data_test_util.h"
#include "tests/harness.h"

#include <map>

using namespace lumen::data;

namespace {

// The plainest trainer: count words, then each step recount all adjacent pairs, take the highest
// count (ties: smallest (left id, right id)), and merge it left to right in every word.
std::vector<std::pair<std::string, std::string>> naive_train(const std::vector<std::string_view>& docs,
                                                             int64_t merges_wanted) {
    std::map<std::string, int64_t> counts;
    for (auto d : docs) {
        std::vector<std::string_view> pieces;
        gpt2_split(d, pieces);
        for (auto p : pieces) ++counts[std::string(p)];
    }
    std::vector<std::string> tokens;
    std::map<std::string, int32_t> id_of;
    for (int r = 0; r < 256; ++r) {
        tokens.emplace_back(1, char(byte_at_rank(r)));
        id_of[tokens.back()] = r;
    }
    std::vector<std::pair<std::vector<int32_t>, int64_t>> words;
    for (const auto& [w, c] : counts) {
        std::vector<int32_t> s;
        for (char ch : w) s.push_back(byte_rank(uint8_t(ch)));
        words.push_back({s, c});
    }
    std::vector<std::pair<std::string, std::string>> merges;
    while (int64_t(tokens.size()) < 256 + merges_wanted) {
        std::map<std::pair<int32_t, int32_t>, int64_t> pairs;
        for (const auto& [s, c] : words)
            for (size_t i = 0; i + 1 < s.size(); ++i) pairs[{s[i], s[i + 1]}] += c;
        std::pair<int32_t, int32_t> best{-1, -1};
        int64_t best_count = 0;
        for (const auto& [p, c] : pairs)  // map order: ascending pairs, so ties keep the smallest
            if (c > best_count) {
                best = p;
                best_count = c;
            }
        if (best_count == 0) break;
        const std::string bytes = tokens[size_t(best.first)] + tokens[size_t(best.second)];
        if (!id_of.count(bytes)) {
            id_of[bytes] = int32_t(tokens.size());
            tokens.push_back(bytes);
        }
        const int32_t c = id_of[bytes];
        merges.push_back({tokens[size_t(best.first)], tokens[size_t(best.second)]});
        for (auto& [s, count] : words) {
            std::vector<int32_t> out;
            for (size_t i = 0; i < s.size(); ++i) {
                if (i + 1 < s.size() && s[i] == best.first && s[i + 1] == best.second) {
                    out.push_back(c);
                    ++i;
                } else {
                    out.push_back(s[i]);
                }
            }
            s = out;
        }
    }
    return merges;
}

std::vector<std::pair<std::string, std::string>> spelled_merges(const Tokenizer& t) {
    std::vector<std::pair<std::string, std::string>> out;
    for (const auto& m : t.merges()) out.push_back({t.token_bytes(m.left), t.token_bytes(m.right)});
    return out;
}

}  // namespace

TEST_CASE("bpe_train: the fixture corpus gives Hugging Face's merges, in order") {
    const std::string corpus = lumen::test::read_bytes(lumen::test::tokenizer_fixture("corpus.txt"));
    REQUIRE(corpus.size() > 10000);
    const Tokenizer hf = load_hf_vocab_merges(lumen::test::tokenizer_fixture("vocab.json"),
                                              lumen::test::tokenizer_fixture("merges.txt"));
    BpeTrainOptions opt;
    opt.vocab_size = hf.vocab_size();
    BpeTrainStats stats;
    const Tokenizer mine = train_bpe({corpus}, opt, &stats);
    CHECK(mine.vocab_size() == hf.vocab_size());
    CHECK(mine.eot_id() == mine.vocab_size() - 1);
    CHECK(stats.bytes == int64_t(corpus.size()));
    CHECK(stats.merges == int64_t(hf.merges().size()));
    const auto a = spelled_merges(mine), b = spelled_merges(hf);
    REQUIRE(a.size() == b.size());
    for (size_t i = 0; i < a.size(); ++i) {
        INFO("merge " << i << ": '" << byte_level_encode(a[i].first) << " " << byte_level_encode(a[i].second)
                      << "' vs '" << byte_level_encode(b[i].first) << " " << byte_level_encode(b[i].second) << "'");
        CHECK(a[i] == b[i]);
    }
    CHECK(mine.decode(mine.encode(corpus)) == corpus);
}

TEST_CASE("bpe_train: the incremental trainer equals the naive one, ties included") {
    // Three letters and spaces: counts tie often, and pairs overlap (aaa) inside words.
    std::vector<std::string> texts;
    lumen::RngState rng{7, 0, 0};
    for (int d = 0; d < 40; ++d) {
        std::string t;
        for (int i = 0; i < 300; ++i) {
            const float u = lumen::philox_uniform(rng, uint64_t(d * 1000 + i));
            t += u < 0.08f ? ' ' : char('a' + int(u * 4) % 3);
        }
        texts.push_back(t + " abc abc bca cab");
    }
    const std::vector<std::string_view> docs(texts.begin(), texts.end());
    BpeTrainOptions opt;
    opt.vocab_size = 256 + 120 + 1;
    const Tokenizer mine = train_bpe(docs, opt);
    const auto expected = naive_train(docs, 120);
    const auto got = spelled_merges(mine);
    CHECK(got == expected);
    CHECK(mine.vocab_size() == 256 + 120 + 1);
    for (const auto& t : texts) CHECK(mine.decode(mine.encode(t)) == t);
    // Deterministic whatever the thread interleaving.
    CHECK(spelled_merges(train_bpe(docs, opt)) == got);
}

TEST_CASE("bpe_train: small corpora stop early; bad sizes are refused") {
    BpeTrainOptions opt;
    opt.vocab_size = 1000;
    const Tokenizer t = train_bpe({"ab ab"}, opt);
    CHECK(t.merges().size() == 2);  // "a b", then " ab" = (" ", "ab")
    CHECK(t.vocab_size() == 256 + 2 + 1);
    CHECK(t.encode("ab ab") == std::vector<int32_t>{256, 257});
    opt.vocab_size = 256;
    CHECK_THROWS_CONTAINING(train_bpe({"ab"}, opt), "vocab_size 256 must be at least 256 byte tokens + 1 special");
    int64_t last_done = -1;
    opt.vocab_size = 300;
    opt.progress = [&](std::string_view phase, int64_t done, int64_t total) {
        CHECK((phase == "count" || phase == "merge"));
        CHECK(done <= total);
        last_done = done;
    };
    train_bpe({"hello world hello"}, opt);
    CHECK(last_done == 300 - 257);
}
