// data/crc32c.h: CRC32C (Castagnoli, reflected polynomial 0x82F63B78), the checksum lumen's
// trainer_state.json records for each checkpoint file (shared/specs/formats.md §7.2).
//
// Written by hand, table-driven (slicing by 8). crc32c("123456789") == 0xE3069283. The running
// value is the finished CRC of the bytes so far, so crc32c(b, crc32c(a)) == crc32c(a + b).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace lumen::data {

uint32_t crc32c(const void* data, size_t bytes, uint32_t crc = 0);
inline uint32_t crc32c(std::string_view bytes, uint32_t crc = 0) {
    return crc32c(bytes.data(), bytes.size(), crc);
}

// A file's size and CRC32C, read in one pass. Errors name the path and the system's reason.
struct FileDigest {
    uint64_t bytes = 0;
    uint32_t crc32c = 0;
};
FileDigest digest_file(const std::string& path);

// "e3069283": eight lowercase hex digits, as trainer_state.json writes a CRC32C.
std::string crc32c_hex(uint32_t crc);

}  // namespace lumen::data
