// data/tokenizer.h: a byte-level BPE tokenizer (GPT-2's scheme): encode, decode, special tokens.
//
// A tokenizer is a table id -> token bytes, merges (left id, right id) in rank order, and special
// tokens (such as <|endoftext|>) that encode only when asked for and never take part in merges.
// Encoding splits text with the tokenizer's pre-tokenizer (data/pretokenize.h: GPT-2's regex, or
// SmolLM's digits-then-regex), maps each byte of a
// piece to its one-byte token, and merges the lowest-ranked adjacent pair, leftmost first, until
// no pair has a merge. The result of merging (a, b) is the token whose bytes are bytes(a) + bytes(b).
// Decoding concatenates token bytes: the result is raw bytes, which need not be valid UTF-8 when
// the ids end inside a character. Loading and saving: data/tokenizer_io.h. Training: data/bpe_train.h.
#pragma once

#include "data/pretokenize.h"

#include <array>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

namespace lumen::data {

enum class AllowSpecial : bool { no, yes };     // yes: special-token text encodes as its id
enum class IgnoreMerges : bool { no, yes };     // yes: a piece that is a whole token is taken as is

inline constexpr std::string_view end_of_text = "<|endoftext|>";

// Pieces already encoded, reused across calls (one per thread: not thread-safe). Looked up by
// string_view (heterogeneous lookup), so a hit allocates nothing.
struct EncodeCache {
    struct Hash {
        using is_transparent = void;
        size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
    };
    std::unordered_map<std::string, std::vector<int32_t>, Hash, std::equal_to<>> pieces;
    std::vector<std::string_view> scratch;  // the pieces of the text being encoded
};

class Tokenizer {
public:
    struct Merge {
        int32_t left, right;
    };

    Tokenizer() = default;
    // tokens[id] = the bytes of token id; merges in rank order; special_ids index into tokens.
    // Checks every id, that merge results exist and that non-special tokens are unique; errors
    // start with `source` (a file name, or "tokenizer").
    Tokenizer(std::vector<std::string> tokens, std::vector<Merge> merges,
              std::vector<int32_t> special_ids, std::string_view source = "tokenizer",
              IgnoreMerges ignore_merges = IgnoreMerges::no,
              Pretokenizer pretokenizer = Pretokenizer::gpt2);
    // A tokenizer that can only decode (llm.c's gpt2_tokenizer.bin has no merges).
    static Tokenizer decode_only(std::vector<std::string> tokens, std::vector<int32_t> special_ids,
                                 std::string_view source);

    int64_t vocab_size() const { return int64_t(tokens_.size()); }
    bool can_encode() const { return can_encode_; }
    IgnoreMerges ignore_merges() const { return ignore_merges_; }
    Pretokenizer pretokenizer() const { return pretokenizer_; }
    const std::vector<std::string>& tokens() const { return tokens_; }
    const std::vector<Merge>& merges() const { return merges_; }
    const std::vector<int32_t>& special_ids() const { return special_ids_; }
    const std::string& token_bytes(int32_t id) const;
    bool is_special(int32_t id) const;
    // The id of a special token's text, or -1.
    int32_t special_id(std::string_view text) const;
    // The id of <|endoftext|>, or -1 when the tokenizer has none.
    int32_t eot_id() const { return special_id(end_of_text); }

    std::vector<int32_t> encode(std::string_view text, AllowSpecial allow = AllowSpecial::no) const;
    // Appends the ids of `text` (no special tokens) to `out`, reusing `cache`.
    void encode_ordinary(std::string_view text, std::vector<int32_t>& out, EncodeCache& cache) const;
    // The concatenated bytes of the tokens; an id outside the vocabulary is an error.
    std::string decode(std::span<const int32_t> ids) const;

private:
    void encode_piece(std::string_view piece, std::vector<int32_t>& out) const;

    std::string source_ = "tokenizer";
    std::vector<std::string> tokens_;
    std::vector<Merge> merges_;
    std::vector<int32_t> special_ids_;
    std::unordered_map<uint64_t, std::pair<int32_t, int32_t>> merge_of_;  // pair -> (rank, result)
    std::unordered_map<std::string, int32_t> id_of_;                      // non-special bytes -> id
    std::unordered_map<std::string, int32_t> special_of_;                 // special text -> id
    std::vector<bool> special_flag_;                                      // id -> is special
    std::array<int32_t, 256> byte_id_{};                                  // -1: no such token
    bool can_encode_ = false;
    IgnoreMerges ignore_merges_ = IgnoreMerges::no;
    Pretokenizer pretokenizer_ = Pretokenizer::gpt2;
};

inline uint64_t pair_key(int32_t left, int32_t right) {
    return (uint64_t(uint32_t(left)) << 32) | uint32_t(right);
}

}  // namespace lumen::data
