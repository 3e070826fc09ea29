// data/tokenizer_io.cpp: lumen's tokenizer.lumen.json, llm.c's gpt2_tokenizer.bin, and telling the
// formats apart. The Hugging Face readers are in data/tokenizer_hf.cpp.
#include "data/tokenizer_io.h"

#include "core/error.h"
#include "data/byte_level.h"
#include "data/file_io.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <array>
#include <cstring>
#include <filesystem>
#include <map>
#include <optional>

namespace lumen::data {

using nlohmann::json;

void save_tokenizer(const Tokenizer& t, const std::string& path) {
    if (!t.can_encode())
        throw Error(fmt::format("{}: cannot save a decode-only tokenizer in lumen's format (it has "
                                "no merges)", path));
    json tokens = json::array(), merges = json::array(), specials = json::object();
    for (const std::string& bytes : t.tokens()) tokens.push_back(byte_level_encode(bytes));
    for (const auto& m : t.merges()) merges.push_back({m.left, m.right});
    for (int32_t id : t.special_ids()) specials[t.token_bytes(id)] = id;
    const json j = {{"format", "lumen-bpe"}, {"version", 1},
                    {"pretokenizer", std::string(pretokenizer_name(t.pretokenizer()))},
                    {"tokens", tokens}, {"merges", merges}, {"special_tokens", specials},
                    {"ignore_merges", t.ignore_merges() == IgnoreMerges::yes}};
    write_file_atomic(path, j.dump() + "\n");
}

namespace {

json parse_json(const std::string& path, const std::string& text) {
    try {
        return json::parse(text);
    } catch (const json::parse_error& e) {
        throw Error(fmt::format("{}: not valid JSON: {}", path, e.what()));
    }
}

template <typename T>
T get_key(const json& j, const std::string& path, const char* key) {
    if (!j.contains(key)) throw Error(fmt::format("{}: missing key '{}'", path, key));
    try {
        return j.at(key).get<T>();
    } catch (const json::exception& e) {
        throw Error(fmt::format("{}: key '{}' has the wrong type: {}", path, key, e.what()));
    }
}

}  // namespace

Tokenizer load_lumen_tokenizer(const std::string& path) {
    const json j = parse_json(path, read_file(path));
    if (!j.is_object() || j.value("format", "") != "lumen-bpe")
        throw Error(fmt::format("{}: not a lumen tokenizer (expected \"format\": \"lumen-bpe\")", path));
    if (const int v = get_key<int>(j, path, "version"); v != 1)
        throw Error(fmt::format("{}: version {} is not supported (expected 1)", path, v));
    const auto pre_name = get_key<std::string>(j, path, "pretokenizer");
    const std::optional<Pretokenizer> pre = pretokenizer_from_name(pre_name);
    if (!pre)
        throw Error(fmt::format("{}: pretokenizer '{}' is not supported (expected \"gpt2\", "
                                "\"digits+gpt2\" or \"digit_runs+gpt2\")", path, pre_name));
    std::vector<std::string> tokens;
    for (const auto& spelled : get_key<std::vector<std::string>>(j, path, "tokens")) {
        auto bytes = byte_level_decode(spelled);
        if (!bytes)
            throw Error(fmt::format("{}: token {} '{}' is not in GPT-2's byte-level spelling", path,
                                    tokens.size(), spelled));
        tokens.push_back(std::move(*bytes));
    }
    std::vector<Tokenizer::Merge> merges;
    for (const auto& m : get_key<std::vector<std::array<int32_t, 2>>>(j, path, "merges"))
        merges.push_back({m[0], m[1]});
    std::vector<int32_t> special_ids;
    for (const auto& [text, id] : get_key<std::map<std::string, int32_t>>(j, path, "special_tokens")) {
        if (id < 0 || id >= int32_t(tokens.size()) || tokens[size_t(id)] != text)
            throw Error(fmt::format("{}: special token '{}' does not match token {}", path, text, id));
        special_ids.push_back(id);
    }
    std::sort(special_ids.begin(), special_ids.end());  // by id, as the other readers give them
    const bool ignore = j.value("ignore_merges", false);
    return Tokenizer(std::move(tokens), std::move(merges), std::move(special_ids), path,
                     ignore ? IgnoreMerges::yes : IgnoreMerges::no, *pre);
}

Tokenizer load_llmc_tokenizer(const std::string& path) {
    const MappedFile f(path);
    const int64_t size = f.bytes();
    if (size < 1024)
        throw Error(fmt::format("{}: truncated header: gpt2_tokenizer.bin starts with 1024 header "
                                "bytes, the file has {}", path, size));
    uint32_t header[256];
    std::memcpy(header, f.data(), sizeof header);
    if (header[0] != llmc_tokenizer_magic)
        throw Error(fmt::format("{}: byte 0: magic {}, expected {} (llm.c gpt2_tokenizer.bin)", path,
                                header[0], llmc_tokenizer_magic));
    if (header[1] != 1 && header[1] != 2)
        throw Error(fmt::format("{}: byte 4: version {}, expected 1 or 2", path, header[1]));
    const int64_t n = header[2];
    int64_t eot = 50256;
    if (header[1] == 2) {
        eot = header[3];
    } else if (n != 50257) {
        throw Error(fmt::format("{}: byte 8: a version 1 file must hold 50257 tokens (its EOT id "
                                "50256 is implied), found {}", path, n));
    }
    if (eot >= n)
        throw Error(fmt::format("{}: byte 12: EOT id {} is outside the {} tokens", path, eot, n));
    std::vector<std::string> tokens;
    tokens.reserve(size_t(n));
    int64_t offset = 1024;
    for (int64_t i = 0; i < n; ++i) {
        if (offset >= size)
            throw Error(fmt::format("{}: byte {}: truncated: token {} of {} is missing", path,
                                    offset, i, n));
        const int64_t len = f.data()[offset];
        if (len == 0) throw Error(fmt::format("{}: byte {}: token {} has length 0", path, offset, i));
        if (offset + 1 + len > size)
            throw Error(fmt::format("{}: byte {}: truncated: token {} needs {} bytes, {} remain", path,
                                    offset, i, len, size - offset - 1));
        tokens.emplace_back(reinterpret_cast<const char*>(f.data() + offset + 1), size_t(len));
        offset += 1 + len;
    }
    if (offset != size)
        throw Error(fmt::format("{}: byte {}: {} trailing bytes after the last of {} tokens", path,
                                offset, size - offset, n));
    return Tokenizer::decode_only(std::move(tokens), {int32_t(eot)}, path);
}

void save_llmc_tokenizer(const Tokenizer& t, const std::string& path) {
    const int32_t eot = t.eot_id();
    if (eot < 0) throw Error(fmt::format("{}: the tokenizer has no <|endoftext|> token", path));
    uint32_t header[256] = {};
    header[0] = llmc_tokenizer_magic;
    header[1] = 2;
    header[2] = uint32_t(t.vocab_size());
    header[3] = uint32_t(eot);
    std::string out(reinterpret_cast<const char*>(header), sizeof header);
    for (int32_t id = 0; id < t.vocab_size(); ++id) {
        const std::string& bytes = t.token_bytes(id);
        if (bytes.empty() || bytes.size() > 255)
            throw Error(fmt::format("{}: token {} has {} bytes; the format stores 1 to 255", path, id,
                                    bytes.size()));
        out += char(uint8_t(bytes.size()));
        out += bytes;
    }
    write_file_atomic(path, out);
}

Tokenizer load_tokenizer(const std::string& path) {
    namespace fs = std::filesystem;
    std::error_code ec;
    if (fs::is_directory(path, ec)) {
        for (const char* name : {"tokenizer.lumen.json", "tokenizer.json", "vocab.json",
                                 "gpt2_tokenizer.bin"}) {
            const fs::path p = fs::path(path) / name;
            if (fs::exists(p, ec)) return load_tokenizer(p.string());
        }
        throw Error(fmt::format("{}: no tokenizer here (looked for tokenizer.lumen.json, "
                                "tokenizer.json, vocab.json + merges.txt, gpt2_tokenizer.bin)", path));
    }
    const std::string text = read_file(path);
    uint32_t magic = 0;
    if (text.size() >= 4) std::memcpy(&magic, text.data(), 4);
    if (magic == llmc_tokenizer_magic) return load_llmc_tokenizer(path);
    const json j = parse_json(path, text);
    if (j.is_object() && j.contains("format")) return load_lumen_tokenizer(path);
    if (j.is_object() && j.contains("model")) return load_hf_tokenizer_json(path);
    if (j.is_object() && !j.empty() && j.begin()->is_number_integer()) {
        const fs::path merges = fs::path(path).parent_path() / "merges.txt";
        if (!fs::exists(merges, ec))
            throw Error(fmt::format("{}: a vocab.json needs merges.txt beside it ({} is missing)",
                                    path, merges.string()));
        return load_hf_vocab_merges(path, merges.string());
    }
    throw Error(fmt::format("{}: not a tokenizer file (expected lumen's tokenizer.lumen.json, a "
                            "Hugging Face tokenizer.json or vocab.json + merges.txt, or llm.c's "
                            "gpt2_tokenizer.bin)", path));
}

}  // namespace lumen::data
