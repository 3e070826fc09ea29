// training/train_keys.h: the pieces ./train's key table is built from (training/train_config.cpp
// and training/train_keys_optim.cpp, not a public interface): the registry of keys with their
// bindings to TrainConfig fields, and small helpers for declaring keys.
#pragma once

#include "training/train_config.h"

#include <fmt/format.h>

#include <charconv>
#include <cmath>
#include <functional>
#include <limits>
#include <map>
#include <string>

namespace lumen::training::keys {

using optim::Kind;
constexpr Kind kKinds[] = {Kind::adamw, Kind::adamw8bit, Kind::lion, Kind::adafactor,
                           Kind::sophia, Kind::muon, Kind::sgd};
constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

// How a key moves between the Config and its TrainConfig field.
struct Binding {
    std::function<void(TrainConfig&, const Value&)> store;
    std::function<Value(const TrainConfig&)> load;
};

struct Registry {
    Schema schema;
    std::map<std::string, Binding> bindings;  // by full name
};

// A field of TrainConfig read and written as a T (int64_t, double, bool, std::string). `ref` is a
// generic lambda returning a reference to the field of a (const or not) TrainConfig.
template <typename T, typename Ref>
Binding field(Ref ref) {
    return {[ref](TrainConfig& c, const Value& v) { ref(c) = std::get<T>(v); },
            [ref](const TrainConfig& c) -> Value { return T(ref(c)); }};
}

// A choice key over an enum, through its name functions.
template <typename E, typename Ref, typename Name, typename Parse>
Binding choice_field(Ref ref, Name name, Parse parse) {
    return {[ref, parse](TrainConfig& c, const Value& v) { ref(c) = *parse(std::get<std::string>(v)); },
            [ref, name](const TrainConfig& c) -> Value { return std::string(name(ref(c))); }};
}

inline Key make(std::string name, KeyType type, Value def, std::string help) {
    Key k;
    k.name = std::move(name);
    k.type = type;
    k.default_value = std::move(def);
    k.help = std::move(help);
    return k;
}

inline std::function<std::string(const Value&)> int_at_least(int64_t n) {
    return [n](const Value& v) { return std::get<int64_t>(v) >= n ? std::string() : fmt::format("must be ≥ {}", n); };
}
inline std::function<std::string(const Value&)> real_at_least(double n, bool strict = false) {
    return [n, strict](const Value& v) {
        const double x = std::get<double>(v);
        return (strict ? x > n : x >= n) ? std::string() : fmt::format("must be {} {}", strict ? ">" : "≥", n);
    };
}

inline Kind kind_of(const Config& c) { return *optim::kind_from_name(c.get_string("optim.optimizer")); }
inline bool relative_step(const Config& c) {
    return kind_of(c) == Kind::adafactor && c.get_bool("optim.relative_step");
}
inline bool relative_step(const TrainConfig& c) {
    return c.optim.kind() == Kind::adafactor && c.optim.groups.main.relative_step;
}

// x rounded to 12 significant digits (so that 6e-4/10 is written 6e-05, not 6.000000000000001e-05).
inline double round12(double x) {
    if (!std::isfinite(x)) return x;
    const std::string s = fmt::format("{:.12g}", x);
    double y = x;
    std::from_chars(s.data(), s.data() + s.size(), y);
    return y;
}

// An optimizer key: which kinds read it and where it lives in an OptimConfig.
struct OptimField {
    std::vector<Kind> kinds;  // empty: every kind
    std::function<Value(const OptimConfig&)> get;
    std::function<void(OptimConfig&, const Value&)> put;
};

// Whether kind k reads the key.
bool reads(const OptimField& f, Kind k);
// "0.9 (adamw, adamw8bit, muon), 0.95 (lion)": the config default per optimizer that reads the key.
std::string per_kind_default_text(const Key& key, const OptimField& f);

// [optim]: the optimizer and every optimizer's keys (training/train_keys_optim.cpp).
void add_optim_keys(Registry& r);
// [lora]: the LoRA adapters (training/train_keys_lora.cpp).
void add_lora_keys(Registry& r);
// [dist]: data parallelism (training/train_keys_dist.cpp).
void add_dist_keys(Registry& r);

}  // namespace lumen::training::keys
