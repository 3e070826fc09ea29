// data/tokenizer.cpp: building a tokenizer's lookup tables, and BPE encoding of one piece with a
// heap of candidate merges (rank, position) over a linked list of symbols: O(n log n) per piece,
// the same result as GPT-2's "merge the lowest-ranked pair everywhere, repeat" loop.
#include "data/tokenizer.h"

#include "core/error.h"
#include "data/byte_level.h"
#include "data/pretokenize.h"

#include <algorithm>
#include <queue>

namespace lumen::data {

Tokenizer::Tokenizer(std::vector<std::string> tokens, std::vector<Merge> merges,
                     std::vector<int32_t> special_ids, std::string_view source,
                     IgnoreMerges ignore_merges, Pretokenizer pretokenizer)
    : source_(source), tokens_(std::move(tokens)), merges_(std::move(merges)),
      special_ids_(std::move(special_ids)), can_encode_(true), ignore_merges_(ignore_merges),
      pretokenizer_(pretokenizer) {
    const int64_t V = vocab_size();
    if (V == 0) throw Error(fmt::format("{}: the vocabulary is empty", source_));
    if (V > INT32_MAX) throw Error(fmt::format("{}: {} tokens do not fit int32 ids", source_, V));
    special_flag_.assign(size_t(V), false);
    for (int32_t id : special_ids_) {
        if (id < 0 || id >= V)
            throw Error(fmt::format("{}: special token id {} is outside the vocabulary (0..{})",
                                    source_, id, V - 1));
        if (!special_of_.emplace(tokens_[size_t(id)], id).second)
            throw Error(fmt::format("{}: special token '{}' is listed twice", source_, tokens_[size_t(id)]));
        special_flag_[size_t(id)] = true;
    }
    for (int32_t id = 0; id < V; ++id) {
        const std::string& bytes = tokens_[size_t(id)];
        if (bytes.empty()) throw Error(fmt::format("{}: token {} has no bytes", source_, id));
        if (is_special(id)) continue;
        const auto [it, inserted] = id_of_.emplace(bytes, id);
        if (!inserted)
            throw Error(fmt::format("{}: tokens {} and {} are both '{}'", source_, it->second, id,
                                    byte_level_encode(bytes)));
    }
    byte_id_.fill(-1);
    for (int b = 0; b < 256; ++b) {
        const auto it = id_of_.find(std::string(1, char(b)));
        if (it != id_of_.end()) byte_id_[size_t(b)] = it->second;
    }
    merge_of_.reserve(merges_.size());
    for (size_t rank = 0; rank < merges_.size(); ++rank) {
        const auto [l, r] = merges_[rank];
        if (l < 0 || l >= V || r < 0 || r >= V || is_special(l) || is_special(r))
            throw Error(fmt::format("{}: merge {} ({}, {}) names an id outside the ordinary tokens",
                                    source_, rank, l, r));
        const std::string merged = tokens_[size_t(l)] + tokens_[size_t(r)];
        const auto it = id_of_.find(merged);
        if (it == id_of_.end())
            throw Error(fmt::format("{}: merge {} ('{}', '{}'): the merged token '{}' is not in the "
                                    "vocabulary", source_, rank, byte_level_encode(tokens_[size_t(l)]),
                                    byte_level_encode(tokens_[size_t(r)]), byte_level_encode(merged)));
        if (!merge_of_.emplace(pair_key(l, r), std::pair{int32_t(rank), it->second}).second)
            throw Error(fmt::format("{}: merge {} ('{}', '{}') is listed twice", source_, rank,
                                    byte_level_encode(tokens_[size_t(l)]),
                                    byte_level_encode(tokens_[size_t(r)])));
    }
}

Tokenizer Tokenizer::decode_only(std::vector<std::string> tokens, std::vector<int32_t> special_ids,
                                 std::string_view source) {
    Tokenizer t;
    t.source_ = source;
    t.tokens_ = std::move(tokens);
    t.special_ids_ = std::move(special_ids);
    t.special_flag_.assign(t.tokens_.size(), false);
    for (int32_t id : t.special_ids_) {
        if (id < 0 || id >= t.vocab_size())
            throw Error(fmt::format("{}: special token id {} is outside the vocabulary (0..{})",
                                    source, id, t.vocab_size() - 1));
        t.special_of_.emplace(t.tokens_[size_t(id)], id);
        t.special_flag_[size_t(id)] = true;
    }
    t.byte_id_.fill(-1);
    return t;
}

const std::string& Tokenizer::token_bytes(int32_t id) const {
    if (id < 0 || id >= vocab_size())
        throw Error(fmt::format("{}: token id {} is outside the vocabulary (0..{})", source_, id,
                                vocab_size() - 1));
    return tokens_[size_t(id)];
}

bool Tokenizer::is_special(int32_t id) const {
    return id >= 0 && id < vocab_size() && special_flag_[size_t(id)];
}

int32_t Tokenizer::special_id(std::string_view text) const {
    const auto it = special_of_.find(std::string(text));
    return it == special_of_.end() ? -1 : it->second;
}

void Tokenizer::encode_piece(std::string_view piece, std::vector<int32_t>& out) const {
    if (ignore_merges_ == IgnoreMerges::yes) {
        if (const auto it = id_of_.find(std::string(piece)); it != id_of_.end()) {
            out.push_back(it->second);
            return;
        }
    }
    const int32_t n = int32_t(piece.size());
    std::vector<int32_t> id(static_cast<size_t>(n)), prev(static_cast<size_t>(n)),
        next(static_cast<size_t>(n));
    for (int32_t i = 0; i < n; ++i) {
        const uint8_t b = static_cast<uint8_t>(piece[size_t(i)]);
        id[size_t(i)] = byte_id_[b];
        if (id[size_t(i)] < 0)
            throw Error(fmt::format("{}: byte 0x{:02X} has no token in this vocabulary", source_, b));
        prev[size_t(i)] = i - 1;
        next[size_t(i)] = i + 1 < n ? i + 1 : -1;
    }
    struct Candidate {
        int32_t rank, pos;
        bool operator>(const Candidate& o) const { return rank != o.rank ? rank > o.rank : pos > o.pos; }
    };
    std::priority_queue<Candidate, std::vector<Candidate>, std::greater<>> heap;
    const auto lookup = [&](int32_t l, int32_t r) -> const std::pair<int32_t, int32_t>* {
        const auto it = merge_of_.find(pair_key(l, r));
        return it == merge_of_.end() ? nullptr : &it->second;
    };
    const auto push = [&](int32_t p) {
        const int32_t q = next[size_t(p)];
        if (q < 0) return;
        if (const auto* m = lookup(id[size_t(p)], id[size_t(q)])) heap.push({m->first, p});
    };
    for (int32_t i = 0; i + 1 < n; ++i) push(i);
    while (!heap.empty()) {
        const Candidate c = heap.top();
        heap.pop();
        const int32_t p = c.pos, q = next[size_t(p)];
        if (id[size_t(p)] < 0 || q < 0) continue;
        const auto* m = lookup(id[size_t(p)], id[size_t(q)]);
        if (!m || m->first != c.rank) continue;  // stale: a neighbour merged since the push
        id[size_t(p)] = m->second;
        id[size_t(q)] = -1;
        next[size_t(p)] = next[size_t(q)];
        if (next[size_t(q)] >= 0) prev[size_t(next[size_t(q)])] = p;
        if (prev[size_t(p)] >= 0) push(prev[size_t(p)]);
        push(p);
    }
    for (int32_t i = 0; i >= 0; i = next[size_t(i)]) out.push_back(id[size_t(i)]);
}

void Tokenizer::encode_ordinary(std::string_view text, std::vector<int32_t>& out,
                                EncodeCache& cache) const {
    if (!can_encode_)
        throw Error(fmt::format("{}: this tokenizer can only decode (it has no merges, like llm.c's "
                                "gpt2_tokenizer.bin); load vocab.json + merges.txt or tokenizer.json "
                                "to encode", source_));
    cache.scratch.clear();
    pretokenize(pretokenizer_, text, cache.scratch);
    if (cache.pieces.size() > (size_t(1) << 20)) cache.pieces.clear();  // bound the memory
    for (std::string_view piece : cache.scratch) {
        auto it = cache.pieces.find(piece);
        if (it == cache.pieces.end()) {
            it = cache.pieces.emplace(std::string(piece), std::vector<int32_t>()).first;
            encode_piece(piece, it->second);
        }
        out.insert(out.end(), it->second.begin(), it->second.end());
    }
}

std::vector<int32_t> Tokenizer::encode(std::string_view text, AllowSpecial allow) const {
    std::vector<int32_t> out;
    EncodeCache cache;
    if (allow == AllowSpecial::no || special_of_.empty()) {
        encode_ordinary(text, out, cache);
        return out;
    }
    // Split at the earliest special token (the longest one where several start together).
    size_t pos = 0;
    while (pos <= text.size()) {
        size_t best = std::string_view::npos, best_len = 0;
        int32_t best_id = -1;
        for (const auto& [special, id] : special_of_) {
            const size_t at = text.find(special, pos);
            if (at < best || (at == best && at != std::string_view::npos && special.size() > best_len)) {
                best = at;
                best_len = special.size();
                best_id = id;
            }
        }
        encode_ordinary(text.substr(pos, best == std::string_view::npos ? text.npos : best - pos),
                        out, cache);
        if (best == std::string_view::npos) break;
        out.push_back(best_id);
        pos = best + best_len;
    }
    return out;
}

std::string Tokenizer::decode(std::span<const int32_t> ids) const {
    std::string out;
    for (int32_t id : ids) out += token_bytes(id);
    return out;
}

}  // namespace lumen::data
