// data/loader_state.cpp: LoaderState <-> JSON, the "loader" object of trainer_state.json
// (shared/specs/formats.md §7.3). Unknown keys are ignored; missing required keys are errors.
#include "core/error.h"
#include "data/loader.h"

#include <nlohmann/json.hpp>

namespace lumen::data {

using nlohmann::json;

std::string_view mode_name(SampleMode m) { return m == SampleMode::sequential ? "sequential" : "random"; }

json loader_state_to_json(const LoaderState& s) {
    json j = {{"mode", mode_name(s.mode)}};
    if (s.seed) j["seed"] = *s.seed;
    if (s.global_sample_tokens) j["global_sample_tokens"] = *s.global_sample_tokens;
    j["epoch"] = s.epoch;
    j["shard_pos"] = s.shard_pos;
    j["sample_pos"] = s.sample_pos;
    if (!s.shards.empty()) {
        json shards = json::array();
        for (const ShardRecord& r : s.shards) shards.push_back({{"name", r.name}, {"tokens", r.tokens}});
        j["shards"] = std::move(shards);
    }
    return j;
}

LoaderState loader_state_from_json(const json& j, std::string_view where) {
    const auto bad = [&](std::string_view key, std::string_view expected) {
        throw Error(fmt::format("{}: loader state key '{}': expected {}, found {}", where, key,
                                expected, j.is_object() && j.contains(key) ? j[std::string(key)].dump()
                                                                            : "nothing (missing)"));
    };
    if (!j.is_object()) throw Error(fmt::format("{}: the loader state must be a JSON object", where));
    const auto count = [&](const char* key, bool required, int64_t fallback) -> int64_t {
        if (!j.contains(key)) {
            if (required) bad(key, "a non-negative integer");
            return fallback;
        }
        if (!j[key].is_number_integer() || j[key].get<int64_t>() < 0) bad(key, "a non-negative integer");
        return j[key].get<int64_t>();
    };
    LoaderState s;
    const std::string mode = j.contains("mode") && j["mode"].is_string() ? j["mode"].get<std::string>() : "";
    if (mode == "sequential") s.mode = SampleMode::sequential;
    else if (mode == "random") s.mode = SampleMode::random;
    else bad("mode", "\"sequential\" or \"random\"");
    if (j.contains("seed")) {
        if (!j["seed"].is_number_unsigned()) bad("seed", "a non-negative integer");
        s.seed = j["seed"].get<uint64_t>();
    }
    if (j.contains("global_sample_tokens")) s.global_sample_tokens = count("global_sample_tokens", true, 0);
    s.epoch = count("epoch", false, 0);
    s.shard_pos = count("shard_pos", true, 0);
    s.sample_pos = count("sample_pos", true, 0);
    if (j.contains("shards")) {
        if (!j["shards"].is_array()) bad("shards", "an array of {\"name\", \"tokens\"}");
        for (const json& r : j["shards"]) {
            if (!r.is_object() || !r.contains("name") || !r["name"].is_string() || !r.contains("tokens") ||
                !r["tokens"].is_number_integer())
                bad("shards", "an array of {\"name\": string, \"tokens\": integer}");
            s.shards.push_back({r["name"].get<std::string>(), r["tokens"].get<int64_t>()});
        }
    }
    return s;
}

}  // namespace lumen::data
