// tests/data/data_test_util.h: helpers shared by the data tests: a scratch directory removed at the
// end of the test, small file writers, the tokenizer fixture folder, and hex decoding.
#pragma once

#include <nlohmann/json.hpp>

#include <cstdint>
#include <filesystem>
#include <fstream>
#include <string>
#include <unistd.h>

namespace lumen::test {

// A fresh directory under the system temp dir, removed with everything in it on destruction.
class ScratchDir {
public:
    explicit ScratchDir(const std::string& name)
        : path_(std::filesystem::temp_directory_path() /
                ("lumen_" + name + "_" + std::to_string(::getpid()))) {
        std::filesystem::remove_all(path_);
        std::filesystem::create_directories(path_);
    }
    ~ScratchDir() {
        std::error_code ec;
        std::filesystem::remove_all(path_, ec);
    }
    std::string file(const std::string& name) const { return (path_ / name).string(); }
    std::string str() const { return path_.string(); }

private:
    std::filesystem::path path_;
};

inline void write_bytes(const std::string& path, const std::string& bytes) {
    std::ofstream(path, std::ios::binary).write(bytes.data(), std::streamsize(bytes.size()));
}

inline std::string read_bytes(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    return std::string(std::istreambuf_iterator<char>(in), {});
}

// tests/fixtures/tokenizer/<name>, found from this header's own path.
inline std::string tokenizer_fixture(const std::string& name) {
    return (std::filesystem::path(__FILE__).parent_path().parent_path() / "fixtures" / "tokenizer" / name)
        .string();
}

inline std::string from_hex(const std::string& hex) {
    std::string out;
    for (size_t i = 0; i + 1 < hex.size(); i += 2) out += char(std::stoi(hex.substr(i, 2), nullptr, 16));
    return out;
}

inline nlohmann::json fixture_cases() {
    return nlohmann::json::parse(read_bytes(tokenizer_fixture("cases.json")));
}

}  // namespace lumen::test
