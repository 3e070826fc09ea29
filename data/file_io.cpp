// data/file_io.cpp: POSIX implementations (open/mmap/fsync/rename) of data/file_io.h.
#include "data/file_io.h"

#include "core/error.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <utility>

namespace lumen::data {
namespace {

[[noreturn]] void fail_errno(std::string_view what, const std::string& path) {
    throw Error(fmt::format("{}: {}: {}", path, what, std::strerror(errno)));
}

}  // namespace

std::string read_file(const std::string& path) {
    std::FILE* f = std::fopen(path.c_str(), "rb");
    if (!f) fail_errno("cannot open for reading", path);
    std::string out;
    char buf[1 << 16];
    size_t n;
    while ((n = std::fread(buf, 1, sizeof buf, f)) > 0) out.append(buf, n);
    const bool bad = std::ferror(f);
    std::fclose(f);
    if (bad) fail_errno("read error", path);
    return out;
}

void write_file_atomic(const std::string& path, std::string_view bytes) {
    AtomicFile f(path);
    f.write(bytes.data(), bytes.size());
    f.commit();
}

AtomicFile::AtomicFile(std::string path)
    : path_(std::move(path)), tmp_(fmt::format("{}.tmp-{}", path_, ::getpid())) {
    file_ = std::fopen(tmp_.c_str(), "wb");
    if (!file_) fail_errno("cannot open for writing", tmp_);
}

AtomicFile::~AtomicFile() {
    if (file_) {
        std::fclose(file_);
        std::remove(tmp_.c_str());
    }
}

void AtomicFile::write(const void* data, size_t bytes) {
    if (bytes > 0 && std::fwrite(data, 1, bytes, file_) != bytes) fail_errno("write error", tmp_);
}

void AtomicFile::commit() {
    if (std::fflush(file_) != 0 || ::fsync(::fileno(file_)) != 0) fail_errno("flush error", tmp_);
    const int rc = std::fclose(file_);
    file_ = nullptr;
    if (rc != 0) fail_errno("close error", tmp_);
    if (std::rename(tmp_.c_str(), path_.c_str()) != 0) {
        const int saved = errno;
        std::remove(tmp_.c_str());
        errno = saved;
        fail_errno("cannot rename the temporary file into place", path_);
    }
}

MappedFile::MappedFile(const std::string& path) : path_(path) {
    const int fd = ::open(path.c_str(), O_RDONLY);
    if (fd < 0) fail_errno("cannot open", path);
    struct stat st{};
    if (::fstat(fd, &st) != 0) {
        ::close(fd);
        fail_errno("cannot stat", path);
    }
    if (!S_ISREG(st.st_mode)) {
        ::close(fd);
        throw Error(fmt::format("{}: not a regular file", path));
    }
    bytes_ = int64_t(st.st_size);
    if (bytes_ > 0) {
        void* p = ::mmap(nullptr, size_t(bytes_), PROT_READ, MAP_SHARED, fd, 0);
        if (p == MAP_FAILED) {
            ::close(fd);
            fail_errno("cannot map", path);
        }
        data_ = static_cast<const uint8_t*>(p);
    }
    ::close(fd);
}

MappedFile::~MappedFile() {
    if (data_) ::munmap(const_cast<uint8_t*>(data_), size_t(bytes_));
}

MappedFile::MappedFile(MappedFile&& o) noexcept
    : path_(std::move(o.path_)), data_(std::exchange(o.data_, nullptr)),
      bytes_(std::exchange(o.bytes_, 0)) {}

MappedFile& MappedFile::operator=(MappedFile&& o) noexcept {
    if (this != &o) {
        if (data_) ::munmap(const_cast<uint8_t*>(data_), size_t(bytes_));
        path_ = std::move(o.path_);
        data_ = std::exchange(o.data_, nullptr);
        bytes_ = std::exchange(o.bytes_, 0);
    }
    return *this;
}

}  // namespace lumen::data
