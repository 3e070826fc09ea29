// data/bpe_train.cpp: word counting (OpenMP over documents) and the incremental merge loop.
#include "data/bpe_train.h"

#include "core/error.h"
#include "data/byte_level.h"
#include "data/pretokenize.h"

#include <omp.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <queue>
#include <unordered_map>
#include <unordered_set>

namespace lumen::data {
namespace {

using Clock = std::chrono::steady_clock;
double seconds_since(Clock::time_point t0) {
    return std::chrono::duration<double>(Clock::now() - t0).count();
}

struct Word {
    std::vector<int32_t> symbols;
    int64_t count;
};

std::vector<Word> count_words(const std::vector<std::string_view>& docs, const BpeTrainOptions& opt,
                              BpeTrainStats& stats) {
    int64_t total = 0;
    for (auto d : docs) total += int64_t(d.size());
    using WordMap = std::unordered_map<std::string_view, int64_t>;
    std::vector<WordMap> maps(static_cast<size_t>(omp_get_max_threads()));
    std::atomic<int64_t> done{0}, pieces_seen{0};
    const int64_t ndocs = int64_t(docs.size());
#pragma omp parallel
    {
        WordMap& map = maps[size_t(omp_get_thread_num())];
        std::vector<std::string_view> pieces;
#pragma omp for schedule(dynamic, 1)
        for (int64_t d = 0; d < ndocs; ++d) {
            pieces.clear();
            gpt2_split(docs[size_t(d)], pieces);
            for (std::string_view p : pieces) ++map[p];
            pieces_seen += int64_t(pieces.size());
            const int64_t now = done += int64_t(docs[size_t(d)].size());
            if (omp_get_thread_num() == 0 && opt.progress) opt.progress("count", now, total);
        }
    }
    for (size_t t = 1; t < maps.size(); ++t) {
        for (const auto& [word, count] : maps[t]) maps[0][word] += count;
        WordMap().swap(maps[t]);
    }
    std::vector<Word> words;
    words.reserve(maps[0].size());
    for (const auto& [word, count] : maps[0]) {
        Word w{{}, count};
        w.symbols.reserve(word.size());
        for (char c : word) w.symbols.push_back(byte_rank(static_cast<uint8_t>(c)));
        words.push_back(std::move(w));
    }
    stats.bytes = total;
    stats.words = pieces_seen;
    stats.distinct_words = int64_t(words.size());
    if (opt.progress) opt.progress("count", total, total);
    return words;
}

struct Candidate {
    int64_t count;
    int32_t left, right;
};
// Max-heap order: higher count first, then the smaller (left, right).
struct CandidateLess {
    bool operator()(const Candidate& x, const Candidate& y) const {
        if (x.count != y.count) return x.count < y.count;
        return std::pair{x.left, x.right} > std::pair{y.left, y.right};
    }
};

int32_t left_of(uint64_t key) { return int32_t(key >> 32); }
int32_t right_of(uint64_t key) { return int32_t(uint32_t(key)); }

}  // namespace

Tokenizer train_bpe(const std::vector<std::string_view>& docs, const BpeTrainOptions& opt,
                    BpeTrainStats* stats_out) {
    const int64_t n_special = int64_t(opt.special_tokens.size());
    if (opt.vocab_size < 256 + n_special || opt.vocab_size > INT32_MAX)
        throw Error(fmt::format("train_bpe: vocab_size {} must be at least 256 byte tokens + {} "
                                "special tokens = {} (and below 2^31)", opt.vocab_size, n_special,
                                256 + n_special));
    BpeTrainStats stats;
    auto t0 = Clock::now();
    std::vector<Word> words = count_words(docs, opt, stats);
    stats.count_s = seconds_since(t0);
    t0 = Clock::now();

    std::vector<std::string> tokens;
    std::unordered_map<std::string, int32_t> id_of;
    for (int r = 0; r < 256; ++r) {
        tokens.emplace_back(1, char(byte_at_rank(r)));
        id_of.emplace(tokens.back(), r);
    }
    std::unordered_map<uint64_t, int64_t> pair_count;
    std::unordered_map<uint64_t, std::vector<int32_t>> where;  // pair -> words (may repeat)
    for (int32_t w = 0; w < int32_t(words.size()); ++w) {
        const auto& s = words[size_t(w)].symbols;
        for (size_t i = 0; i + 1 < s.size(); ++i) {
            const uint64_t key = pair_key(s[i], s[i + 1]);
            pair_count[key] += words[size_t(w)].count;
            auto& list = where[key];
            if (list.empty() || list.back() != w) list.push_back(w);
        }
    }
    std::priority_queue<Candidate, std::vector<Candidate>, CandidateLess> heap;
    for (const auto& [key, count] : pair_count) heap.push({count, left_of(key), right_of(key)});

    const int64_t target = opt.vocab_size - n_special;
    const int64_t most_merges = target - 256;
    std::vector<Tokenizer::Merge> merges;
    std::unordered_set<uint64_t> grown;
    std::vector<int32_t> merged;
    while (int64_t(tokens.size()) < target && !heap.empty()) {
        const Candidate top = heap.top();
        heap.pop();
        const uint64_t key = pair_key(top.left, top.right);
        const int64_t now = pair_count[key];
        if (now != top.count) {  // counts only fall, so an up-to-date entry is never skipped
            if (now > 0) heap.push({now, top.left, top.right});
            continue;
        }
        if (top.count < 1) break;
        const int32_t a = top.left, b = top.right;
        std::string bytes = tokens[size_t(a)] + tokens[size_t(b)];
        int32_t c;
        if (const auto it = id_of.find(bytes); it != id_of.end()) {
            c = it->second;
        } else {
            c = int32_t(tokens.size());
            id_of.emplace(bytes, c);
            tokens.push_back(std::move(bytes));
        }
        merges.push_back({a, b});

        std::vector<int32_t> ws = std::move(where[key]);
        where.erase(key);
        std::sort(ws.begin(), ws.end());
        ws.erase(std::unique(ws.begin(), ws.end()), ws.end());
        grown.clear();
        const auto add = [&](int32_t l, int32_t r, int64_t delta, int32_t w) {
            const uint64_t k = pair_key(l, r);
            pair_count[k] += delta;
            if (delta > 0) {
                auto& list = where[k];
                if (list.empty() || list.back() != w) list.push_back(w);
                grown.insert(k);
            }
        };
        for (int32_t w : ws) {
            auto& s = words[size_t(w)].symbols;
            const int64_t count = words[size_t(w)].count;
            merged.clear();
            for (size_t i = 0; i < s.size(); ++i) {
                if (i + 1 < s.size() && s[i] == a && s[i + 1] == b) {
                    // Left to right, so a preceding merge in this word is already c.
                    if (!merged.empty()) {
                        add(merged.back(), a, -count, w);
                        add(merged.back(), c, count, w);
                    }
                    add(a, b, -count, w);
                    if (i + 2 < s.size()) {
                        add(b, s[i + 2], -count, w);
                        add(c, s[i + 2], count, w);
                    }
                    merged.push_back(c);
                    ++i;
                } else {
                    merged.push_back(s[i]);
                }
            }
            s.swap(merged);
        }
        for (uint64_t k : grown)
            if (pair_count[k] > 0) heap.push({pair_count[k], left_of(k), right_of(k)});
        if (opt.progress && merges.size() % 64 == 0)
            opt.progress("merge", int64_t(merges.size()), most_merges);
    }
    stats.merges = int64_t(merges.size());
    if (opt.progress) opt.progress("merge", most_merges, most_merges);

    std::vector<int32_t> special_ids;
    for (const std::string& special : opt.special_tokens) {
        special_ids.push_back(int32_t(tokens.size()));
        tokens.push_back(special);
    }
    stats.merge_s = seconds_since(t0);
    if (stats_out) *stats_out = stats;
    return Tokenizer(std::move(tokens), std::move(merges), std::move(special_ids), "train_bpe");
}

}  // namespace lumen::data
