// data/shard.h: token shards on disk (shared/specs/formats.md §1-2): llm.c / modded-nanogpt files
// (a 1024-byte header of 256 int32: magic, version, token count; then uint16 or uint32 tokens) and
// nanoGPT's raw uint16 train.bin / val.bin (no header).
//
// A Shard maps its file read-only and checks the header and the exact size when opened; the token
// range (every id below the vocabulary) is a separate pass, check_tokens, that the loader runs once
// per shard in its prefetch thread. Every offset and count is int64_t (llm.c's 32-bit file offset
// broke shards over 2 GB). Errors name the file, the byte offset, and what was expected and found.
#pragma once

#include "data/file_io.h"

#include <cstdint>
#include <span>
#include <string>
#include <string_view>

namespace lumen::data {

enum class TokenFormat : uint8_t { llmc_u16, llmc_u32, raw_u16 };

inline constexpr int32_t llmc_magic_u16 = 20240520;    // GPT-2 tokens, version 1
inline constexpr int32_t llmc_version_u16 = 1;
inline constexpr int32_t llmc_magic_u32 = 20240801;    // Llama-3 tokens, version 7
inline constexpr int32_t llmc_version_u32 = 7;
inline constexpr int64_t llmc_header_bytes = 1024;

std::string_view token_format_name(TokenFormat f);   // "llmc uint16", "llmc uint32", "raw uint16"
int64_t token_bytes(TokenFormat f);                  // 2 or 4
int64_t header_bytes(TokenFormat f);                 // 1024 or 0
// The byte offset of token i, and the exact size of a file of n tokens (64-bit arithmetic).
inline int64_t token_byte_offset(TokenFormat f, int64_t i) { return header_bytes(f) + i * token_bytes(f); }
inline int64_t shard_file_bytes(TokenFormat f, int64_t n) { return token_byte_offset(f, n); }

class Shard {
public:
    // Maps `path` and validates it as `format`.
    Shard(const std::string& path, TokenFormat format);
    // Maps an llm.c shard whose header says which of the two llm.c formats it is.
    static Shard open_llmc(const std::string& path);

    const std::string& path() const { return file_.path(); }
    TokenFormat format() const { return format_; }
    int64_t num_tokens() const { return num_tokens_; }
    uint32_t token(int64_t i) const;
    // Copies tokens [start, start + count) into out, widened to int32.
    void read(int64_t start, int64_t count, int32_t* out) const;
    // Errors at the first token >= vocab_size, naming its byte offset and value.
    void check_tokens(int64_t vocab_size) const;

private:
    Shard(MappedFile file, TokenFormat format);

    MappedFile file_;
    TokenFormat format_;
    int64_t num_tokens_ = 0;
    const uint8_t* tokens_ = nullptr;
};

// Writes tokens as a shard of `format` (atomically). Every token must fit the token type; llm.c
// files need 0 < n < 2^31 tokens (the header field is int32), raw files n > 0.
void write_shard(const std::string& path, std::span<const uint32_t> tokens, TokenFormat format);

}  // namespace lumen::data
