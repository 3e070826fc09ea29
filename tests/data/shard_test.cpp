// tests/data/shard_test.cpp: llm.c shards (both magics) and raw nanoGPT files: round trips, 64-bit
// offset arithmetic, and every validation error with its file, byte offset and expected/found.
#include "data/shard.h"
#include "tests/data/data_test_util.h"
#include "tests/harness.h"

#include <cstring>

using namespace lumen::data;
using lumen::test::ScratchDir;

namespace {

std::string header(int32_t magic, int32_t version, int32_t count) {
    std::string h(1024, '\0');
    std::memcpy(&h[0], &magic, 4);
    std::memcpy(&h[4], &version, 4);
    std::memcpy(&h[8], &count, 4);
    return h;
}

std::string u16s(std::initializer_list<uint16_t> v) {
    return std::string(reinterpret_cast<const char*>(std::data(v)), v.size() * 2);
}

}  // namespace

TEST_CASE("shard: write and read back llmc uint16, llmc uint32 and raw uint16") {
    ScratchDir dir("shard_rw");
    const std::vector<uint32_t> tokens{0, 1, 50256, 65535, 7, 42};
    for (TokenFormat f : {TokenFormat::llmc_u16, TokenFormat::llmc_u32, TokenFormat::raw_u16}) {
        INFO(token_format_name(f));
        const std::string path = dir.file("s.bin");
        write_shard(path, tokens, f);
        CHECK(int64_t(std::filesystem::file_size(path)) == shard_file_bytes(f, 6));
        const Shard s(path, f);
        CHECK(s.num_tokens() == 6);
        for (int64_t i = 0; i < 6; ++i) CHECK(s.token(i) == tokens[size_t(i)]);
        std::vector<int32_t> out(4);
        s.read(2, 4, out.data());
        CHECK(out == std::vector<int32_t>{50256, 65535, 7, 42});
        CHECK_THROWS_CONTAINING(s.read(3, 4, out.data()), "outside the shard's 6 tokens");
        s.check_tokens(65536);
        const std::string want = fmt::format(
            "byte {}: token 65535 (index 3) is outside the vocabulary of 50257", token_byte_offset(f, 3));
        CHECK_THROWS_CONTAINING(s.check_tokens(50257), want.c_str());
    }
    // uint32 tokens above 65535, and the header the llm.c readers expect.
    write_shard(dir.file("big.bin"), std::vector<uint32_t>{128000, 5}, TokenFormat::llmc_u32);
    CHECK(Shard::open_llmc(dir.file("big.bin")).token(0) == 128000);
    CHECK(Shard::open_llmc(dir.file("big.bin")).format() == TokenFormat::llmc_u32);
    const std::string bytes = lumen::test::read_bytes(dir.file("big.bin"));
    CHECK(bytes.substr(0, 12) == header(20240801, 7, 2).substr(0, 12));
    CHECK(bytes.substr(12, 1012) == std::string(1012, '\0'));
    CHECK_THROWS_CONTAINING(write_shard(dir.file("x.bin"), std::vector<uint32_t>{70000}, TokenFormat::llmc_u16),
                            "token 70000 at index 0 does not fit uint16");
    CHECK_THROWS_CONTAINING(write_shard(dir.file("x.bin"), std::vector<uint32_t>{}, TokenFormat::raw_u16),
                            "no tokens");
    CHECK_FALSE(std::filesystem::exists(dir.file("x.bin")));
}

TEST_CASE("shard: offsets and sizes are 64-bit") {
    // Token 1.5e9 of a uint16 shard sits past 2^31 bytes; 2^31 - 1 uint32 tokens make an 8 GiB file.
    CHECK(token_byte_offset(TokenFormat::llmc_u16, 1'500'000'000) == 3'000'001'024);
    CHECK(token_byte_offset(TokenFormat::raw_u16, 1'500'000'000) == 3'000'000'000);
    CHECK(shard_file_bytes(TokenFormat::llmc_u32, (int64_t(1) << 31) - 1) == 1024 + 4 * ((int64_t(1) << 31) - 1));
    CHECK(shard_file_bytes(TokenFormat::raw_u16, 9'040'000'000) == 18'080'000'000);  // OpenWebText
}

TEST_CASE("shard: every header and size error names the file, offset, expected and found") {
    ScratchDir dir("shard_bad");
    const std::string p = dir.file("bad.bin");
    const auto open_as = [&](const std::string& bytes, TokenFormat f) {
        lumen::test::write_bytes(p, bytes);
        return Shard(p, f);
    };
    const auto u16 = TokenFormat::llmc_u16;
    CHECK_THROWS_CONTAINING(open_as("short", u16), "truncated header: an llm.c shard starts with 1024 header bytes, the file has 5");
    CHECK_THROWS_CONTAINING(open_as(header(123, 1, 1) + u16s({1}), u16), "bad.bin: byte 0: unknown magic 123");
    CHECK_THROWS_CONTAINING(open_as(header(20240520, 2, 1) + u16s({1}), u16), "byte 4: magic 20240520 needs version 1, found 2");
    CHECK_THROWS_CONTAINING(open_as(header(20240520, 1, 0), u16), "byte 8: the token count must be > 0, found 0");
    CHECK_THROWS_CONTAINING(open_as(header(20240520, 1, 5) + u16s({1, 2}), u16),
                            "promises 5 tokens = 1034 bytes, the file has 1028: the last 3 tokens are missing");
    CHECK_THROWS_CONTAINING(open_as(header(20240520, 1, 2) + u16s({1, 2, 3}), u16),
                            "byte 1028: 2 trailing bytes");
    CHECK_THROWS_CONTAINING(open_as(header(20240801, 7, 1) + std::string(4, '\0'), u16),
                            "the header says llmc uint32 tokens but llmc uint16 tokens were expected");
    CHECK_THROWS_CONTAINING(open_as(u16s({1, 2}) + "x", TokenFormat::raw_u16), "5 bytes is an odd size");
    CHECK_THROWS_CONTAINING(open_as("", TokenFormat::raw_u16), "empty file");
    CHECK_THROWS_CONTAINING(open_as(header(20240520, 1, 2) + u16s({1, 2}), TokenFormat::raw_u16),
                            "declared raw uint16 but this is an llm.c shard");
    CHECK_THROWS_CONTAINING(Shard(dir.file("missing.bin"), u16), "missing.bin: cannot open");
    // A raw file read as llm.c gets a hint about token_format.
    CHECK_THROWS_CONTAINING(open_as(std::string(2048, '\x01'), u16), "token_format = \"raw_u16\"");
}
