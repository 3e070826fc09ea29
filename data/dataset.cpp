// data/dataset.cpp: dataset.json reading and writing, and shard discovery by glob.
#include "data/dataset.h"

#include "core/error.h"
#include "data/file_io.h"

#include <glob.h>

#include <nlohmann/json.hpp>

#include <filesystem>

namespace lumen::data {
namespace {

using nlohmann::json;

std::vector<std::string> glob_sorted(const std::string& pattern) {
    glob_t g{};
    std::vector<std::string> out;
    if (::glob(pattern.c_str(), 0, nullptr, &g) == 0)
        for (size_t i = 0; i < g.gl_pathc; ++i) out.emplace_back(g.gl_pathv[i]);
    ::globfree(&g);
    return out;  // glob() sorts
}

DatasetInfo fineweb_defaults(const std::string& dir) {
    DatasetInfo info;
    info.dir = dir;
    info.vocab_size = 50257;
    info.eot_id = 50256;
    info.tokenizer = "gpt2";
    info.train_pattern = "*_train_*.bin";
    info.val_pattern = "*_val_*.bin";
    const bool have = !glob_sorted(dir + "/" + info.train_pattern).empty();
    if (!have) {
        std::string hint;
        if (std::filesystem::exists(std::filesystem::path(dir) / "train.bin"))
            hint = "; nanoGPT's train.bin / val.bin need one, e.g. {\"format\": \"lumen-dataset\", "
                   "\"version\": 1, \"token_format\": \"raw_u16\", \"token_bytes\": 2, "
                   "\"vocab_size\": 50257, \"eot_id\": 50256, \"doc_separator\": \"suffix\", "
                   "\"train\": \"train.bin\", \"val\": \"val.bin\"}";
        throw Error(fmt::format("{}: no dataset.json and no llm.c shards named *_train_*.bin (run "
                                "./prepare, or write a dataset.json){}", dir, hint));
    }
    info.notice = fmt::format("{}: no dataset.json: reading llm.c GPT-2 shards with the defaults "
                              "(vocab_size 50257, eot_id 50256, doc_separator prefix)", dir);
    return info;
}

}  // namespace

std::string_view split_name(Split s) { return s == Split::train ? "train" : "val"; }

DatasetInfo read_dataset_info(const std::string& dir) {
    const std::string path = (std::filesystem::path(dir) / "dataset.json").string();
    if (!std::filesystem::is_directory(dir))
        throw Error(fmt::format("{}: not a directory (a dataset is a directory with dataset.json "
                                "and shards)", dir));
    if (!std::filesystem::exists(path)) return fineweb_defaults(dir);
    json j;
    try {
        j = json::parse(read_file(path));
    } catch (const json::parse_error& e) {
        throw Error(fmt::format("{}: not valid JSON: {}", path, e.what()));
    }
    if (!j.is_object()) throw Error(fmt::format("{}: expected a JSON object", path));
    const auto bad = [&](const char* key, std::string_view expected) {
        throw Error(fmt::format("{}: key '{}': expected {}, found {}", path, key, expected,
                                j.contains(key) ? j[key].dump() : "nothing (the key is missing)"));
    };
    const auto get_int = [&](const char* key, int64_t lo, int64_t hi, std::string_view expected) {
        if (!j.contains(key) || !j[key].is_number_integer()) bad(key, expected);
        const int64_t v = j[key].get<int64_t>();
        if (v < lo || v > hi) bad(key, expected);
        return v;
    };
    const auto get_str = [&](const char* key, bool required, std::string fallback) {
        if (!j.contains(key)) {
            if (required) bad(key, "a string");
            return fallback;
        }
        if (!j[key].is_string()) bad(key, "a string");
        return j[key].get<std::string>();
    };
    DatasetInfo info;
    info.dir = dir;
    if (get_str("format", true, "") != "lumen-dataset") bad("format", "\"lumen-dataset\"");
    get_int("version", 1, 1, "1");
    const std::string token_format = get_str("token_format", true, "");
    const int64_t token_bytes = get_int("token_bytes", 2, 4, "2 or 4");
    if (token_bytes == 3) bad("token_bytes", "2 or 4");
    if (token_format == "llmc") {
        info.token_format = token_bytes == 2 ? TokenFormat::llmc_u16 : TokenFormat::llmc_u32;
    } else if (token_format == "raw_u16") {
        if (token_bytes != 2) bad("token_bytes", "2 (raw_u16 tokens are 2 bytes)");
        info.token_format = TokenFormat::raw_u16;
    } else {
        bad("token_format", "\"llmc\" or \"raw_u16\"");
    }
    const int64_t type_max = token_bytes == 2 ? 65536 : int64_t(INT32_MAX);
    info.vocab_size = get_int("vocab_size", 1, type_max,
                              fmt::format("an integer in [1, {}] (what {}-byte tokens can hold)",
                                          type_max, token_bytes));
    info.eot_id = get_int("eot_id", 0, info.vocab_size - 1,
                          fmt::format("an id in [0, vocab_size = {})", info.vocab_size));
    if (j.contains("bos_id"))
        info.bos_id = get_int("bos_id", 0, info.vocab_size - 1,
                              fmt::format("an id in [0, vocab_size = {})", info.vocab_size));
    info.doc_separator = get_str("doc_separator", false, "prefix");
    if (info.doc_separator != "prefix" && info.doc_separator != "suffix")
        bad("doc_separator", "\"prefix\" or \"suffix\"");
    info.tokenizer = get_str("tokenizer", false, "");
    info.train_pattern = get_str("train", true, "");
    if (info.train_pattern.empty()) bad("train", "a glob pattern such as \"train_*.bin\"");
    info.val_pattern = get_str("val", false, "");
    if (j.contains("num_tokens")) {
        const json& n = j["num_tokens"];
        if (!n.is_object()) bad("num_tokens", "{\"train\": n, \"val\": n}");
        const std::pair<const char*, int64_t*> fields[] = {{"train", &info.train_tokens},
                                                            {"val", &info.val_tokens}};
        for (const auto& [split, field] : fields) {
            if (!n.contains(split)) continue;
            if (!n[split].is_number_integer() || n[split].get<int64_t>() < 0)
                bad("num_tokens", "non-negative integer token counts");
            *field = n[split].get<int64_t>();
        }
    }
    return info;
}

void write_dataset_info(const DatasetInfo& info) {
    const bool raw = info.token_format == TokenFormat::raw_u16;
    json j = {{"format", "lumen-dataset"}, {"version", 1},
              {"token_format", raw ? "raw_u16" : "llmc"},
              {"token_bytes", token_bytes(info.token_format)},
              {"vocab_size", info.vocab_size}, {"eot_id", info.eot_id},
              {"doc_separator", info.doc_separator}, {"tokenizer", info.tokenizer},
              {"train", info.train_pattern}, {"val", info.val_pattern}};
    if (info.bos_id >= 0) j["bos_id"] = info.bos_id;
    j["num_tokens"] = {{"train", info.train_tokens}, {"val", info.val_tokens}};
    write_file_atomic((std::filesystem::path(info.dir) / "dataset.json").string(), j.dump(1) + "\n");
}

std::vector<std::string> find_shards(const DatasetInfo& info, Split split) {
    const std::string& pattern = split == Split::train ? info.train_pattern : info.val_pattern;
    if (pattern.empty())
        throw Error(fmt::format("{}: the dataset has no {} split (dataset.json key '{}' is empty)",
                                info.dir, split_name(split), split_name(split)));
    std::vector<std::string> paths = glob_sorted(info.dir + "/" + pattern);
    if (paths.empty())
        throw Error(fmt::format("{}: no {} shards match '{}'", info.dir, split_name(split), pattern));
    return paths;
}

std::vector<Shard> open_shards(const DatasetInfo& info, Split split) {
    std::vector<Shard> shards;
    int64_t total = 0;
    for (const std::string& path : find_shards(info, split)) {
        shards.emplace_back(path, info.token_format);
        total += shards.back().num_tokens();
    }
    const int64_t recorded = split == Split::train ? info.train_tokens : info.val_tokens;
    if (recorded >= 0 && recorded != total)
        throw Error(fmt::format("{}/dataset.json: num_tokens.{} = {} but the {} shards matching '{}' "
                                "hold {} tokens (a shard is missing, extra or stale)", info.dir,
                                split_name(split), recorded, shards.size(),
                                split == Split::train ? info.train_pattern : info.val_pattern, total));
    return shards;
}

}  // namespace lumen::data
