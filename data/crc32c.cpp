// data/crc32c.cpp: the CRC32C tables (built at compile time) and the slicing-by-8 loop.
#include "data/crc32c.h"

#include "core/error.h"

#include <array>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <vector>

namespace lumen::data {
namespace {

constexpr uint32_t castagnoli_reflected = 0x82F63B78u;

// tables[0][b] is the CRC of byte b; tables[k][b] is the CRC of byte b followed by k zero bytes,
// so eight table lookups advance the CRC by eight bytes at once.
using Tables = std::array<std::array<uint32_t, 256>, 8>;

constexpr Tables make_tables() {
    Tables t{};
    for (uint32_t b = 0; b < 256; ++b) {
        uint32_t c = b;
        for (int bit = 0; bit < 8; ++bit) c = (c & 1u) ? (c >> 1) ^ castagnoli_reflected : c >> 1;
        t[0][b] = c;
    }
    for (size_t k = 1; k < 8; ++k)
        for (uint32_t b = 0; b < 256; ++b) t[k][b] = (t[k - 1][b] >> 8) ^ t[0][t[k - 1][b] & 0xffu];
    return t;
}

constexpr Tables tables = make_tables();

}  // namespace

uint32_t crc32c(const void* data, size_t bytes, uint32_t crc) {
    const auto* p = static_cast<const uint8_t*>(data);
    uint32_t c = ~crc;
    for (; bytes >= 8; bytes -= 8, p += 8) {
        // NOTE: bytes are combined one by one, so the loop is the same on any endianness.
        const uint32_t lo = c ^ (uint32_t(p[0]) | uint32_t(p[1]) << 8 | uint32_t(p[2]) << 16 |
                                 uint32_t(p[3]) << 24);
        c = tables[7][lo & 0xffu] ^ tables[6][(lo >> 8) & 0xffu] ^ tables[5][(lo >> 16) & 0xffu] ^
            tables[4][lo >> 24] ^ tables[3][p[4]] ^ tables[2][p[5]] ^ tables[1][p[6]] ^ tables[0][p[7]];
    }
    for (; bytes > 0; --bytes, ++p) c = (c >> 8) ^ tables[0][(c ^ *p) & 0xffu];
    return ~c;
}

FileDigest digest_file(const std::string& path) {
    std::FILE* f = std::fopen(path.c_str(), "rb");
    if (!f) throw Error(fmt::format("{}: cannot open for reading: {}", path, std::strerror(errno)));
    FileDigest d;
    std::vector<uint8_t> buf(size_t(1) << 20);
    size_t n;
    while ((n = std::fread(buf.data(), 1, buf.size(), f)) > 0) {
        d.crc32c = crc32c(buf.data(), n, d.crc32c);
        d.bytes += n;
    }
    const bool bad = std::ferror(f);
    std::fclose(f);
    if (bad) throw Error(fmt::format("{}: read error", path));
    return d;
}

std::string crc32c_hex(uint32_t crc) { return fmt::format("{:08x}", crc); }

}  // namespace lumen::data
