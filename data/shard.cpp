// data/shard.cpp: header and size validation, token reads and range checks, and the shard writer.
#include "data/shard.h"

#include "core/error.h"

#include <algorithm>
#include <bit>
#include <cstring>
#include <vector>

namespace lumen::data {
namespace {

static_assert(std::endian::native == std::endian::little, "shards are little-endian on disk");

[[noreturn]] void fail_at(const std::string& path, int64_t offset, std::string_view what) {
    throw Error(fmt::format("{}: byte {}: {}", path, offset, what));
}

int32_t read_i32(const uint8_t* p) {
    int32_t v;
    std::memcpy(&v, p, 4);
    return v;
}

// The llm.c format named by a header's magic; fails on an unknown magic or a wrong version.
TokenFormat llmc_format_of(const MappedFile& f) {
    if (f.bytes() < llmc_header_bytes)
        throw Error(fmt::format("{}: truncated header: an llm.c shard starts with {} header bytes, "
                                "the file has {}", f.path(), llmc_header_bytes, f.bytes()));
    const int32_t magic = read_i32(f.data()), version = read_i32(f.data() + 4);
    TokenFormat format;
    int32_t want_version;
    if (magic == llmc_magic_u16) {
        format = TokenFormat::llmc_u16;
        want_version = llmc_version_u16;
    } else if (magic == llmc_magic_u32) {
        format = TokenFormat::llmc_u32;
        want_version = llmc_version_u32;
    } else {
        fail_at(f.path(), 0, fmt::format(
            "unknown magic {} (expected {} for uint16 tokens or {} for uint32 tokens); a nanoGPT "
            "train.bin / val.bin has no header: declare it with token_format = \"raw_u16\" in "
            "dataset.json", magic, llmc_magic_u16, llmc_magic_u32));
    }
    if (version != want_version)
        fail_at(f.path(), 4, fmt::format("magic {} needs version {}, found {}", magic, want_version,
                                         version));
    return format;
}

}  // namespace

std::string_view token_format_name(TokenFormat f) {
    switch (f) {
    case TokenFormat::llmc_u16: return "llmc uint16";
    case TokenFormat::llmc_u32: return "llmc uint32";
    case TokenFormat::raw_u16: return "raw uint16";
    }
    return "?";
}

int64_t token_bytes(TokenFormat f) { return f == TokenFormat::llmc_u32 ? 4 : 2; }
int64_t header_bytes(TokenFormat f) { return f == TokenFormat::raw_u16 ? 0 : llmc_header_bytes; }

Shard Shard::open_llmc(const std::string& path) {
    MappedFile file(path);
    const TokenFormat format = llmc_format_of(file);
    return Shard(std::move(file), format);
}

Shard::Shard(const std::string& path, TokenFormat format) : Shard(MappedFile(path), format) {}

Shard::Shard(MappedFile file, TokenFormat format) : file_(std::move(file)), format_(format) {
    const std::string& path = file_.path();
    const int64_t size = file_.bytes(), w = token_bytes(format);
    if (format == TokenFormat::raw_u16) {
        if (size == 0) throw Error(fmt::format("{}: empty file: a raw uint16 shard needs tokens", path));
        if (size % 2 != 0)
            throw Error(fmt::format("{}: {} bytes is an odd size: a raw uint16 file holds whole "
                                    "2-byte tokens (truncated?)", path, size));
        if (size >= llmc_header_bytes) {
            const int32_t magic = read_i32(file_.data()), count = read_i32(file_.data() + 8);
            const int64_t w_llmc = magic == llmc_magic_u16 ? 2 : magic == llmc_magic_u32 ? 4 : 0;
            if (w_llmc > 0 && llmc_header_bytes + int64_t(count) * w_llmc == size)
                fail_at(path, 0, fmt::format("declared raw uint16 but this is an llm.c shard (magic "
                                             "{}, {} tokens, size agrees): declare token_format = "
                                             "\"llmc\"", magic, count));
        }
        num_tokens_ = size / 2;
        tokens_ = file_.data();
        return;
    }
    const TokenFormat found = llmc_format_of(file_);
    if (found != format)
        fail_at(path, 0, fmt::format("the header says {} tokens but {} tokens were expected "
                                     "(token_bytes in dataset.json)", token_format_name(found),
                                     token_format_name(format)));
    const int32_t count = read_i32(file_.data() + 8);
    if (count <= 0) fail_at(path, 8, fmt::format("the token count must be > 0, found {}", count));
    num_tokens_ = count;
    const int64_t want = shard_file_bytes(format, num_tokens_);
    if (size < want) {
        const int64_t missing = (want - size + w - 1) / w;
        throw Error(fmt::format("{}: truncated: the header promises {} tokens = {} bytes, the file "
                                "has {}: the last {} tokens are missing", path, num_tokens_, want,
                                size, missing));
    }
    if (size > want)
        throw Error(fmt::format("{}: byte {}: {} trailing bytes after the last of the {} tokens the "
                                "header promises (expected {} bytes, found {})", path, want,
                                size - want, num_tokens_, want, size));
    tokens_ = file_.data() + llmc_header_bytes;
}

uint32_t Shard::token(int64_t i) const {
    if (format_ == TokenFormat::llmc_u32) {
        uint32_t v;
        std::memcpy(&v, tokens_ + 4 * i, 4);
        return v;
    }
    uint16_t v;
    std::memcpy(&v, tokens_ + 2 * i, 2);
    return v;
}

void Shard::read(int64_t start, int64_t count, int32_t* out) const {
    if (start < 0 || count < 0 || start + count > num_tokens_)
        throw Error(fmt::format("{}: read of tokens [{}, {}) is outside the shard's {} tokens",
                                path(), start, start + count, num_tokens_));
    if (format_ == TokenFormat::llmc_u32) {
        std::memcpy(out, tokens_ + 4 * start, size_t(count) * 4);  // ids < 2^31 (check_tokens)
        return;
    }
    const uint8_t* p = tokens_ + 2 * start;
    for (int64_t i = 0; i < count; ++i) {
        uint16_t v;
        std::memcpy(&v, p + 2 * i, 2);
        out[i] = v;
    }
}

void Shard::check_tokens(int64_t vocab_size) const {
    for (int64_t i = 0; i < num_tokens_; ++i) {
        const uint32_t t = token(i);
        if (int64_t(t) >= vocab_size)
            fail_at(path(), token_byte_offset(format_, i),
                    fmt::format("token {} (index {}) is outside the vocabulary of {} tokens", t, i,
                                vocab_size));
    }
}

void write_shard(const std::string& path, std::span<const uint32_t> tokens, TokenFormat format) {
    const int64_t n = int64_t(tokens.size());
    if (n == 0) throw Error(fmt::format("{}: cannot write a shard with no tokens", path));
    if (format != TokenFormat::raw_u16 && n >= (int64_t(1) << 31))
        throw Error(fmt::format("{}: {} tokens exceed the llm.c header's int32 count (< 2^31); "
                                "write more, smaller shards", path, n));
    AtomicFile file(path);
    if (format != TokenFormat::raw_u16) {
        int32_t header[256] = {};
        const bool u32 = format == TokenFormat::llmc_u32;
        header[0] = u32 ? llmc_magic_u32 : llmc_magic_u16;
        header[1] = u32 ? llmc_version_u32 : llmc_version_u16;
        header[2] = int32_t(n);
        file.write(header, sizeof header);
    }
    if (format == TokenFormat::llmc_u32) {
        file.write(tokens.data(), tokens.size_bytes());
    } else {
        std::vector<uint16_t> chunk;
        for (int64_t begin = 0; begin < n; begin += (1 << 20)) {
            const int64_t end = std::min(n, begin + (int64_t(1) << 20));
            chunk.clear();
            for (int64_t i = begin; i < end; ++i) {
                if (tokens[size_t(i)] > 0xFFFF)
                    throw Error(fmt::format("{}: token {} at index {} does not fit uint16 ({}); "
                                            "write a uint32 shard", path, tokens[size_t(i)], i,
                                            token_format_name(format)));
                chunk.push_back(uint16_t(tokens[size_t(i)]));
            }
            file.write(chunk.data(), chunk.size() * 2);
        }
    }
    file.commit();
}

}  // namespace lumen::data
