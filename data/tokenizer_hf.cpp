// data/tokenizer_hf.cpp: Hugging Face byte-level BPE files: vocab.json + merges.txt (GPT-2's own
// release format) and tokenizer.json (the `tokenizers` library). Both spell tokens in GPT-2's
// byte-to-unicode alphabet; added tokens (tokenizer.json `added_tokens`, or "<|endoftext|>" in a
// vocab.json) are raw text and become lumen special tokens. tokenizer.json's pre-tokenizer picks
// lumen's (data/pretokenize.h); settings lumen does not implement are refused with the key named.
#include "core/error.h"
#include "data/byte_level.h"
#include "data/file_io.h"
#include "data/tokenizer_io.h"

#include <nlohmann/json.hpp>

#include <map>
#include <sstream>

namespace lumen::data {
namespace {

using nlohmann::json;

struct SpelledMerge {
    std::string left, right;
    std::string where;  // "merges.txt:12" or "tokenizer.json: model.merges[11]"
};

struct Added {
    int32_t id;
    std::string content;
};

json parse(const std::string& path) {
    try {
        return json::parse(read_file(path));
    } catch (const json::parse_error& e) {
        throw Error(fmt::format("{}: not valid JSON: {}", path, e.what()));
    }
}

Tokenizer build(const std::string& source, const json& vocab, const std::vector<SpelledMerge>& spelled,
                const std::vector<Added>& added, IgnoreMerges ignore,
                Pretokenizer pretokenizer = Pretokenizer::gpt2) {
    if (!vocab.is_object()) throw Error(fmt::format("{}: the vocabulary must be a JSON object", source));
    std::map<int64_t, std::string> by_id;
    std::map<std::string, int32_t> id_of;
    for (const auto& [token, id] : vocab.items()) {
        if (!id.is_number_integer() || id.get<int64_t>() < 0 || id.get<int64_t>() > INT32_MAX)
            throw Error(fmt::format("{}: token '{}' has id {}, expected an integer >= 0", source,
                                    token, id.dump()));
        if (!by_id.emplace(id.get<int64_t>(), token).second)
            throw Error(fmt::format("{}: id {} is given to '{}' and '{}'", source, id.get<int64_t>(),
                                    by_id[id.get<int64_t>()], token));
        id_of[token] = int32_t(id.get<int64_t>());
    }
    std::map<int64_t, std::string> special;  // id -> raw text
    for (const Added& a : added) {
        const auto it = by_id.find(a.id);
        if (it != by_id.end() && it->second != a.content)
            throw Error(fmt::format("{}: added token {} '{}' differs from vocabulary entry '{}'",
                                    source, a.id, a.content, it->second));
        by_id[a.id] = a.content;
        special[a.id] = a.content;
    }
    std::vector<std::string> tokens;
    std::vector<int32_t> special_ids;
    for (const auto& [id, text] : by_id) {
        if (id != int64_t(tokens.size()))
            throw Error(fmt::format("{}: ids must run 0..{} without gaps; id {} is missing", source,
                                    by_id.rbegin()->first, tokens.size()));
        if (special.count(id)) {
            special_ids.push_back(int32_t(id));
            tokens.push_back(text);
            continue;
        }
        auto bytes = byte_level_decode(text);
        if (!bytes)
            throw Error(fmt::format("{}: token {} '{}' is not in GPT-2's byte-level spelling (is this "
                                    "a byte-level BPE vocabulary?)", source, id, text));
        tokens.push_back(std::move(*bytes));
    }
    std::vector<Tokenizer::Merge> merges;
    merges.reserve(spelled.size());
    for (const SpelledMerge& m : spelled) {
        const auto l = id_of.find(m.left), r = id_of.find(m.right);
        if (l == id_of.end() || r == id_of.end())
            throw Error(fmt::format("{}: merge '{} {}' names a token that is not in the vocabulary",
                                    m.where, m.left, m.right));
        merges.push_back({l->second, r->second});
    }
    return Tokenizer(std::move(tokens), std::move(merges), std::move(special_ids), source, ignore,
                     pretokenizer);
}

SpelledMerge split_merge(const std::string& line, std::string where) {
    const size_t space = line.find(' ');
    if (space == std::string::npos || space == 0 || space + 1 >= line.size() ||
        line.find(' ', space + 1) != std::string::npos)
        throw Error(fmt::format("{}: expected two tokens separated by one space, found '{}'", where, line));
    return {line.substr(0, space), line.substr(space + 1), std::move(where)};
}

// Throws "<path>: <key> = <value> is not supported (lumen reads byte-level BPE: <expected>)".
struct Refuse {
    const std::string& path;
    [[noreturn]] void operator()(const std::string& key, const json& value,
                                 std::string_view expected) const {
        throw Error(fmt::format("{}: {} = {} is not supported (lumen reads byte-level BPE: {})", path,
                                key, value.dump(), expected));
    }
};

// obj[key] as a bool: false when absent or null, refused when not a bool.
bool flag(const json& obj, const char* key, const std::string& where, const Refuse& refuse) {
    if (!obj.contains(key) || obj[key].is_null()) return false;
    if (!obj[key].is_boolean()) refuse(where, obj[key], "true or false");
    return obj[key].get<bool>();
}

void check_byte_level(const json& b, const std::string& where, const Refuse& refuse) {
    if (flag(b, "add_prefix_space", where + ".add_prefix_space", refuse))
        refuse(where + ".add_prefix_space", true, "false");
    if (b.contains("use_regex") && b["use_regex"] != true) refuse(where + ".use_regex", b["use_regex"], "true");
}

// `pre_tokenizer`: ByteLevel (GPT-2), or a Sequence of Digits then ByteLevel (SmolLM / cosmo2).
Pretokenizer read_pretokenizer(const json& pre, const Refuse& refuse) {
    const auto type_of = [](const json& p) { return p.is_object() ? p.value("type", json()) : p; };
    if (type_of(pre) == "ByteLevel") {
        check_byte_level(pre, "pre_tokenizer", refuse);
        return Pretokenizer::gpt2;
    }
    if (type_of(pre) != "Sequence")
        refuse("pre_tokenizer", type_of(pre), "\"ByteLevel\", or a \"Sequence\" of \"Digits\" and \"ByteLevel\"");
    const json steps = pre.is_object() ? pre.value("pretokenizers", json()) : json();
    if (!steps.is_array() || steps.empty() || type_of(steps.back()) != "ByteLevel")
        refuse("pre_tokenizer.pretokenizers", steps, "a list ending with \"ByteLevel\"");
    Pretokenizer result = Pretokenizer::gpt2;
    for (size_t i = 0; i < steps.size(); ++i) {
        const json& step = steps[i];
        const std::string where = fmt::format("pre_tokenizer.pretokenizers[{}]", i);
        if (i + 1 == steps.size()) {
            check_byte_level(step, where, refuse);
        } else if (i == 0 && type_of(step) == "Digits") {
            for (const auto& [key, value] : step.items())
                if (key != "type" && key != "individual_digits")
                    refuse(where + "." + key, value, "Digits has only \"individual_digits\"");
            if (!step.contains("individual_digits") || !step["individual_digits"].is_boolean())
                refuse(where + ".individual_digits", step.value("individual_digits", json()), "true or false");
            result = step["individual_digits"].get<bool>() ? Pretokenizer::digits_gpt2
                                                           : Pretokenizer::digit_runs_gpt2;
        } else {
            refuse(where + ".type", type_of(step), "\"Digits\" (first) or \"ByteLevel\" (last)");
        }
    }
    return result;
}

bool null_or_empty(const json& model, const char* key) {
    if (!model.contains(key) || model[key].is_null()) return true;
    return model[key].is_string() && model[key].get<std::string>().empty();
}

}  // namespace

Tokenizer load_hf_vocab_merges(const std::string& vocab_json, const std::string& merges_txt) {
    const json vocab = parse(vocab_json);
    std::vector<SpelledMerge> merges;
    std::istringstream lines(read_file(merges_txt));
    std::string line;
    for (int64_t number = 1; std::getline(lines, line); ++number) {
        if (!line.empty() && line.back() == '\r') line.pop_back();
        if (line.empty() || (number == 1 && line.rfind("#version", 0) == 0)) continue;
        merges.push_back(split_merge(line, fmt::format("{}:{}", merges_txt, number)));
    }
    std::vector<Added> added;
    if (vocab.is_object() && vocab.contains(std::string(end_of_text)) &&
        vocab[std::string(end_of_text)].is_number_integer())
        added.push_back({vocab[std::string(end_of_text)].get<int32_t>(), std::string(end_of_text)});
    return build(vocab_json, vocab, merges, added, IgnoreMerges::no);
}

Tokenizer load_hf_tokenizer_json(const std::string& path) {
    const json j = parse(path);
    const Refuse refuse{path};
    if (!j.is_object() || !j.contains("model") || !j["model"].is_object())
        throw Error(fmt::format("{}: missing key 'model'", path));
    const json& model = j["model"];
    if (model.value("type", "BPE") != "BPE") refuse("model.type", model["type"], "\"BPE\"");
    if (j.contains("normalizer") && !j["normalizer"].is_null())
        refuse("normalizer", j["normalizer"], "null");
    const Pretokenizer pretokenizer = read_pretokenizer(j.value("pre_tokenizer", json()), refuse);
    if (j.contains("post_processor") && !j["post_processor"].is_null() &&
        (!j["post_processor"].is_object() || j["post_processor"].value("type", "") != "ByteLevel"))
        refuse("post_processor", j["post_processor"], "null or \"ByteLevel\"");
    // Another decoder (or none: tokens joined by spaces) would not give back the bytes.
    const json decoder = j.value("decoder", json());
    if (!decoder.is_object() || decoder.value("type", "") != "ByteLevel")
        refuse("decoder", decoder.is_object() ? decoder.value("type", json()) : decoder, "\"ByteLevel\"");
    if (flag(model, "byte_fallback", "model.byte_fallback", refuse))
        refuse("model.byte_fallback", true, "false");
    for (const char* key : {"continuing_subword_prefix", "end_of_word_suffix"})
        if (!null_or_empty(model, key)) refuse(std::string("model.") + key, model[key], "null");
    if (model.contains("dropout") && !model["dropout"].is_null())
        refuse("model.dropout", model["dropout"], "null");
    const IgnoreMerges ignore =
        flag(model, "ignore_merges", "model.ignore_merges", refuse) ? IgnoreMerges::yes : IgnoreMerges::no;

    std::vector<SpelledMerge> merges;
    const json ms = model.value("merges", json::array());
    for (size_t i = 0; i < ms.size(); ++i) {
        std::string where = fmt::format("{}: model.merges[{}]", path, i);
        if (ms[i].is_string()) {
            merges.push_back(split_merge(ms[i].get<std::string>(), std::move(where)));
        } else if (ms[i].is_array() && ms[i].size() == 2 && ms[i][0].is_string() && ms[i][1].is_string()) {
            merges.push_back({ms[i][0].get<std::string>(), ms[i][1].get<std::string>(), std::move(where)});
        } else {
            throw Error(fmt::format("{}: expected \"a b\" or [\"a\", \"b\"], found {}", where, ms[i].dump()));
        }
    }
    // Added tokens are cut out of the text before pre-tokenization (leftmost, then longest), as
    // lumen does with special tokens; one asking for a wider match (lstrip, rstrip, single_word) is
    // refused below.
    std::vector<Added> added;
    const json added_tokens = j.value("added_tokens", json::array());
    for (size_t i = 0; i < added_tokens.size(); ++i) {
        const json& a = added_tokens[i];
        if (!a.is_object() || !a.contains("id") || !a["id"].is_number_integer() ||
            !a.contains("content") || !a["content"].is_string())
            throw Error(fmt::format("{}: added_tokens[{}] = {} needs an integer 'id' and a string "
                                    "'content'", path, i, a.dump()));
        for (const char* key : {"single_word", "lstrip", "rstrip"}) {
            const std::string where = fmt::format("added_tokens[{}].{}", i, key);
            if (flag(a, key, where, refuse)) refuse(where, true, "false");
        }
        added.push_back({a["id"].get<int32_t>(), a["content"].get<std::string>()});
    }
    return build(path, model.value("vocab", json::object()), merges, added, ignore, pretokenizer);
}

}  // namespace lumen::data
