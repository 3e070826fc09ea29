// data/file_io.h: the file access data/ needs: read a whole file, map one read-only, and write one
// atomically (a temporary name beside the target, flushed and fsynced, then renamed), so a reader
// never sees half a shard or half a dataset.json. Sizes and offsets are 64-bit. Errors name the
// path and the system's reason.
#pragma once

#include <cstdint>
#include <cstdio>
#include <string>
#include <string_view>

namespace lumen::data {

std::string read_file(const std::string& path);
void write_file_atomic(const std::string& path, std::string_view bytes);

// A file being written: bytes go to "<path>.tmp-<pid>" until commit() renames it to `path`.
// Destroyed without commit(), it removes the temporary file.
class AtomicFile {
public:
    explicit AtomicFile(std::string path);
    ~AtomicFile();
    AtomicFile(const AtomicFile&) = delete;
    AtomicFile& operator=(const AtomicFile&) = delete;
    void write(const void* data, size_t bytes);
    void commit();

private:
    std::string path_, tmp_;
    std::FILE* file_ = nullptr;
};

// A whole file mapped read-only (an empty file maps to no memory). Move-only.
class MappedFile {
public:
    MappedFile() = default;
    explicit MappedFile(const std::string& path);
    ~MappedFile();
    MappedFile(MappedFile&& o) noexcept;
    MappedFile& operator=(MappedFile&& o) noexcept;
    MappedFile(const MappedFile&) = delete;
    MappedFile& operator=(const MappedFile&) = delete;

    const uint8_t* data() const { return data_; }
    int64_t bytes() const { return bytes_; }
    const std::string& path() const { return path_; }

private:
    std::string path_;
    const uint8_t* data_ = nullptr;
    int64_t bytes_ = 0;
};

}  // namespace lumen::data
