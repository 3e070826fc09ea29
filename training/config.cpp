// training/config.cpp: the generic config engine (see config.h): key lookup and suggestions, value
// parsing and formatting, reading INI text through CLI11's ConfigINI, overrides, help and the resolved
// config.
#include "training/config.h"

#include "core/error.h"

#include <CLI/Config.hpp>
#include <fmt/format.h>

#include <algorithm>
#include <charconv>
#include <cmath>
#include <fstream>
#include <limits>
#include <optional>
#include <sstream>

namespace lumen::training {

namespace {

std::string trim(std::string_view s) {
    const size_t b = s.find_first_not_of(" \t\r\n");
    if (b == std::string_view::npos) return {};
    const size_t e = s.find_last_not_of(" \t\r\n");
    return std::string(s.substr(b, e - b + 1));
}

std::string unquote(std::string s) {
    if (s.size() >= 2 && (s.front() == '"' || s.front() == '\'') && s.back() == s.front())
        return s.substr(1, s.size() - 2);
    return s;
}

std::string tail(std::string_view name) {
    const size_t dot = name.rfind('.');
    return std::string(dot == std::string_view::npos ? name : name.substr(dot + 1));
}

std::string_view type_name(KeyType t) {
    switch (t) {
    case KeyType::integer: return "int";
    case KeyType::real: return "float";
    case KeyType::boolean: return "bool";
    case KeyType::string: return "string";
    case KeyType::choice: return "choice";
    }
    return "?";
}

// "int", "float | auto", "a | b | c".
std::string type_text(const Key& key) {
    std::string s;
    if (key.type == KeyType::choice) {
        for (const std::string& c : key.choices) s += (s.empty() ? "" : " | ") + c;
        return s;
    }
    s = std::string(type_name(key.type));
    for (const auto& [word, value] : key.words) s += " | " + word;
    return s;
}

bool same_value(const Value& a, const Value& b) {
    if (a.index() != b.index()) return false;
    if (const double* x = std::get_if<double>(&a)) {
        const double y = std::get<double>(b);
        return (std::isnan(*x) && std::isnan(y)) || *x == y;
    }
    return a == b;
}

// A value's type must match its key's (programmatic sets and default functions).
bool value_fits(const Key& key, const Value& v) {
    switch (key.type) {
    case KeyType::integer: return std::holds_alternative<int64_t>(v);
    case KeyType::real: return std::holds_alternative<double>(v);
    case KeyType::boolean: return std::holds_alternative<bool>(v);
    case KeyType::string:
    case KeyType::choice: return std::holds_alternative<std::string>(v);
    }
    return false;
}

// One key line of a config file as the line scan sees it.
struct KeyLine {
    std::string written;  // "section.key" or "key"
    int line;
    std::string value;    // the text after `=`, comment removed, trimmed and unquoted
};

// The light pass over the text: checks each line's shape, records where every key is written, and
// returns the text with section headers normalised ("[ model ]  # x" -> "[model]") for CLI11, which
// does not accept a comment after a header. The line count is unchanged.
std::string scan_lines(std::string_view text, std::string_view source, std::vector<KeyLine>& keys) {
    std::string out;
    std::string section;
    std::map<std::string, int> first_line;
    int number = 0;
    size_t pos = 0;
    while (pos <= text.size()) {
        size_t end = text.find('\n', pos);
        if (end == std::string_view::npos) end = text.size();
        const std::string raw(text.substr(pos, end - pos));
        pos = end + 1;
        ++number;
        const std::string line = trim(raw);
        const auto at = [&](const std::string& what) { return Error(fmt::format("{}:{}: {}", source, number, what)); };
        if (line.empty() || line.front() == '#' || line.front() == ';') {
            out += raw + '\n';
            continue;
        }
        if (line.front() == '[') {
            const size_t close = line.find(']');
            const std::string rest = close == std::string::npos ? "" : trim(line.substr(close + 1));
            if (close == std::string::npos || (!rest.empty() && rest.front() != '#' && rest.front() != ';'))
                throw at(fmt::format("a section header is `[name]` (got `{}`)", line));
            section = trim(line.substr(1, close - 1));
            if (section.empty()) throw at("empty section name `[]`");
            std::string lower = section;
            std::transform(lower.begin(), lower.end(), lower.begin(), ::tolower);
            if (lower == "default") section.clear();
            out += "[" + (section.empty() ? std::string("default") : section) + "]\n";
            continue;
        }
        const size_t eq = line.find('=');
        if (eq == std::string::npos)
            throw at(fmt::format("expected `key = value` (got `{}`)", line));
        const std::string name = unquote(trim(line.substr(0, eq)));
        if (name.empty()) throw at(fmt::format("no key before `=` in `{}`", line));
        std::string value = line.substr(eq + 1);
        if (const size_t hash = value.find('#'); hash != std::string::npos) value.erase(hash);
        if (trim(value).empty())
            throw at(fmt::format("{} has no value (an empty string is written \"\")", name));
        const std::string written = section.empty() ? name : section + "." + name;
        if (auto [it, fresh] = first_line.emplace(written, number); !fresh)
            throw at(fmt::format("{} is given twice (lines {} and {})", written, it->second, number));
        keys.push_back({written, number, unquote(trim(value))});
        // The comment goes here, not in CLI11: its versions disagree about '#' inside quotes
        // (2.4 keeps `"a#b"` whole), and '#' starts a comment even there.
        out += raw.substr(0, raw.find('#')) + '\n';
    }
    return out;
}

}  // namespace

// ---------------------------------------------------------------- Key

std::string Key::bare() const { return tail(name); }

std::string Key::section() const {
    const size_t dot = name.rfind('.');
    return dot == std::string::npos ? std::string() : name.substr(0, dot);
}

// ---------------------------------------------------------------- values

size_t edit_distance(std::string_view a, std::string_view b) {
    std::vector<size_t> row(b.size() + 1);
    for (size_t j = 0; j <= b.size(); ++j) row[j] = j;
    for (size_t i = 1; i <= a.size(); ++i) {
        size_t diagonal = row[0];
        row[0] = i;
        for (size_t j = 1; j <= b.size(); ++j) {
            const size_t up = row[j];
            row[j] = std::min({row[j] + 1, row[j - 1] + 1, diagonal + (a[i - 1] == b[j - 1] ? 0 : 1)});
            diagonal = up;
        }
    }
    return row[b.size()];
}

Value parse_value(const Key& key, std::string_view text_in) {
    const std::string text(text_in);
    const auto bad = [&](std::string_view expected) {
        return Error(fmt::format("{} = {}: expected {}", key.name, text.empty() ? "\"\"" : text, expected));
    };
    for (const auto& [word, value] : key.words)
        if (text == word) return value;
    std::string words_hint;
    for (const auto& [word, value] : key.words) words_hint += " or " + word;
    switch (key.type) {
    case KeyType::integer: {
        std::string_view digits = text;
        if (!digits.empty() && digits.front() == '+') digits.remove_prefix(1);
        int64_t v = 0;
        const auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), v);
        if (digits.empty() || ec != std::errc() || end != digits.data() + digits.size())
            throw bad(fmt::format("an integer{}{}", words_hint,
                                  ec == std::errc::result_out_of_range ? " (out of range)" : ""));
        return v;
    }
    case KeyType::real: {
        std::string_view digits = text;
        if (!digits.empty() && digits.front() == '+') digits.remove_prefix(1);
        double v = 0;
        const auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), v);
        if (digits.empty() || ec != std::errc() || end != digits.data() + digits.size() || !std::isfinite(v))
            throw bad(fmt::format("a finite number{}", words_hint));
        return v;
    }
    case KeyType::boolean:
        if (text == "true" || text == "True") return true;
        if (text == "false" || text == "False") return false;
        throw bad("true or false");
    case KeyType::string:
        if (!text.empty() && (text.front() == '"' || text.front() == '\'') &&
            (text.size() == 1 || text.back() != text.front()))
            throw bad("a string with balanced quotes ('#' starts a comment, even inside quotes)");
        if (text.find('#') != std::string::npos)
            throw bad("a string without '#' (it starts a comment in config files)");
        if (text.find('"') != std::string::npos && text.find('\'') != std::string::npos)
            throw bad("a string without both kinds of quote");
        if (std::any_of(text.begin(), text.end(), [](char c) { return c == '\n' || c == '\r'; }))
            throw bad("a one-line string");
        return text;
    case KeyType::choice:
        if (std::find(key.choices.begin(), key.choices.end(), text) == key.choices.end())
            throw bad(fmt::format("one of {}", type_text(key)));
        return text;
    }
    throw bad("?");
}

std::string format_value(const Key& key, const Value& value) {
    for (const auto& [word, v] : key.words)
        if (same_value(v, value)) return word;
    return std::visit(
        [&](const auto& v) -> std::string {
            using T = std::decay_t<decltype(v)>;
            if constexpr (std::is_same_v<T, bool>) {
                return v ? "true" : "false";
            } else if constexpr (std::is_same_v<T, std::string>) {
                if (key.type == KeyType::choice) return v;
                // Single quotes are literal in every CLI11; newer ones read escapes inside double
                // quotes, which would break a regex such as lora.targets = 'blocks\.\d+\..*'.
                const bool literal = v.find('"') != std::string::npos || v.find('\\') != std::string::npos;
                const char quote = literal ? '\'' : '"';
                return quote + v + quote;
            } else {
                return fmt::format("{}", v);  // reals: the shortest text that reads back exactly
            }
        },
        value);
}

// ---------------------------------------------------------------- Schema

void Schema::add_section(std::string name, std::string help) { sections_.emplace_back(std::move(name), std::move(help)); }

Key& Schema::add(Key key) {
    const std::string section = key.section(), bare = key.bare();
    const bool known_section = std::any_of(sections_.begin(), sections_.end(),
                                           [&](const auto& s) { return s.first == section; });
    if (section.empty() || !known_section)
        throw Error(fmt::format("config schema: {} is not in a registered section", key.name));
    if (by_full_.count(key.name) || (!key.dotted_only && by_bare_.count(bare)))
        throw Error(fmt::format("config schema: {} is registered twice (bare name {})", key.name, bare));
    if (!value_fits(key, key.default_value) && !key.default_fn)
        throw Error(fmt::format("config schema: {}'s default has the wrong type", key.name));
    by_full_.emplace(key.name, keys_.size());
    if (!key.dotted_only) by_bare_.emplace(bare, keys_.size());
    keys_.push_back(std::move(key));
    return keys_.back();
}

void Schema::reject(std::string name, std::string message) { rejected_.emplace_back(std::move(name), std::move(message)); }

void Schema::reject_section(std::string prefix, std::string message) {
    rejected_sections_.emplace_back(std::move(prefix), std::move(message));
}

void Schema::add_open_section(std::string prefix) { open_sections_.push_back(std::move(prefix)); }

bool Schema::is_open(std::string_view written) const {
    for (const std::string& prefix : open_sections_)
        if (written.size() > prefix.size() && written.substr(0, prefix.size()) == prefix && written[prefix.size()] == '.')
            return true;
    return false;
}

const Key* Schema::find(std::string_view full_name) const {
    const auto it = by_full_.find(full_name);
    return it == by_full_.end() ? nullptr : &keys_[it->second];
}

std::string Schema::closest(std::string_view written) const {
    const std::string t = tail(written);
    size_t best = std::numeric_limits<size_t>::max();
    std::string name;
    for (const Key& k : keys_) {
        const size_t d = std::min(edit_distance(written, k.name), edit_distance(t, k.bare()));
        if (d < best) best = d, name = k.name;
    }
    return name;
}

const Key& Schema::resolve(std::string_view written, std::string_view where) const {
    if (const Key* k = find(written)) return *k;
    const std::string bare = tail(written);
    const bool dotted = bare.size() != written.size();
    if (!dotted)
        if (const auto it = by_bare_.find(bare); it != by_bare_.end()) return keys_[it->second];
    for (const auto& [prefix, message] : rejected_sections_)
        if (written == prefix || (written.size() > prefix.size() && written.substr(0, prefix.size()) == prefix &&
                                  written[prefix.size()] == '.'))
            throw Error(fmt::format("{}: {}: {}", where, written, message));
    for (const auto& [name, message] : rejected_)
        if (written == name || (name.find('.') == std::string::npos && bare == name))
            throw Error(fmt::format("{}: {} is not a lumen key: {}", where, written, message));
    // A known bare name under the wrong section: point at its home.
    if (dotted)
        if (const auto it = by_bare_.find(bare); it != by_bare_.end())
            throw Error(fmt::format("{}: unknown key '{}'; did you mean '{}'? ({} lives in [{}])", where, written,
                                    keys_[it->second].name, bare, keys_[it->second].section()));
    const Key& near = *find(closest(written));
    throw Error(fmt::format("{}: unknown key '{}'; did you mean '{}' ({})?", where, written, near.bare(), near.name));
}

std::string Schema::help() const {
    std::string out;
    size_t width = 0;
    for (const Key& k : keys_) width = std::max(width, k.bare().size());
    for (const auto& [section, section_help] : sections_) {
        out += fmt::format("\n[{}]  {}\n", section, section_help);
        for (const Key& k : keys_) {
            if (k.section() != section) continue;
            const std::string def = !k.default_text.empty() ? k.default_text : format_value(k, k.default_value);
            out += fmt::format("  {:<{}}  {}  (default {}; {})\n", k.bare(), width, k.help, def, type_text(k));
        }
    }
    return out;
}

// ---------------------------------------------------------------- Config

const Key& Config::key_of(std::string_view full_name) const {
    const Key* k = schema_->find(full_name);
    if (!k) throw Error(fmt::format("config: no key named {}", full_name));
    return *k;
}

void Config::read_file(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    if (!in) throw Error(fmt::format("config: cannot open {}", path));
    std::stringstream text;
    text << in.rdbuf();
    read_text(text.str(), path);
}

void Config::read_text(std::string_view text, std::string_view source) {
    std::vector<KeyLine> lines;
    std::istringstream normalised(scan_lines(text, source, lines));
    CLI::ConfigINI ini;
    ini.comment('#');
    const std::vector<CLI::ConfigItem> items = ini.from_config(normalised);
    size_t cursor = 0;
    for (const CLI::ConfigItem& item : items) {
        if (item.name == "++" || item.name == "--") continue;  // CLI11's section open/close markers
        const std::string written = item.fullname();
        // The line of this key: the scan saw the same keys in the same order.
        int line = 0;
        for (size_t i = cursor; i < lines.size(); ++i)
            if (lines[i].written == written) {
                line = lines[i].line;
                cursor = i + 1;
                break;
            }
        const std::string where = line ? fmt::format("{}:{}", source, line) : std::string(source);
        if (schema_->is_open(written)) {  // CLI11 splits at spaces and commas: keep the line's text
            set(written, line ? lines[cursor - 1].value : std::string(), where, /*from_file=*/true);
            continue;
        }
        if (item.inputs.size() != 1) {
            std::string joined;
            for (const std::string& s : item.inputs) joined += (joined.empty() ? "" : " ") + s;
            throw Error(fmt::format("{}: {} = {}: expected one value, got {} (expressions are not evaluated; "
                                    "quote a string that holds spaces or commas)",
                                    where, written, joined, item.inputs.size()));
        }
        set(written, item.inputs[0], where, /*from_file=*/true);
    }
}

void Config::apply_override(std::string_view arg) {
    const std::string where = fmt::format("command line '{}'", arg);
    std::string_view body = arg;
    while (!body.empty() && body.front() == '-') body.remove_prefix(1);
    const size_t eq = body.find('=');
    const std::string name = trim(body.substr(0, eq));
    if (name.empty()) throw Error(fmt::format("{}: expected --key=value", where));
    if (eq == std::string_view::npos) {
        if (schema_->is_open(name)) return set(name, "true", where, false);  // a flag; its parser checks the type
        const Key& key = schema_->resolve(name, where);
        if (key.type != KeyType::boolean) throw Error(fmt::format("{}: {} needs a value: --{}=VALUE", where, key.name, name));
        set(name, "true", where, false);
        return;
    }
    set(name, unquote(trim(body.substr(eq + 1))), where, false);
}

void Config::set(std::string_view written_name, std::string_view text, std::string_view where, bool from_file) {
    if (schema_->is_open(written_name)) {
        const auto it = std::find_if(open_.begin(), open_.end(),
                                     [&](const OpenEntry& e) { return e.name == written_name; });
        if (it == open_.end()) {
            open_.push_back({std::string(written_name), std::string(text), std::string(where), from_file});
        } else {
            if (from_file && it->from_file)
                throw Error(fmt::format("{}: {} is given twice ({} and {})", where, written_name, it->where, where));
            *it = OpenEntry{std::string(written_name), std::string(text), std::string(where), from_file};
        }
        return;
    }
    const Key& key = schema_->resolve(written_name, where);
    if (const auto it = values_.find(key.name); it != values_.end() && from_file && it->second.from_file)
        throw Error(fmt::format("{}: {} is given twice ({} and {})", where, key.name, it->second.where, where));
    Value value;
    try {
        value = parse_value(key, text);
    } catch (const Error& e) {
        throw Error(fmt::format("{}: {}", where, e.what()));
    }
    set_value(key.name, value, where);
    values_[key.name].from_file = from_file;
}

void Config::set_value(std::string_view full_name, const Value& value, std::string_view where) {
    const Key& key = key_of(full_name);
    if (!value_fits(key, value))
        throw Error(fmt::format("{}: {}: a value of the wrong type (expected {})", where, key.name, type_text(key)));
    if (key.type == KeyType::choice &&
        std::find(key.choices.begin(), key.choices.end(), std::get<std::string>(value)) == key.choices.end())
        throw Error(fmt::format("{}: {} = {}: expected one of {}", where, key.name, std::get<std::string>(value),
                                type_text(key)));
    if (key.check) {
        bool is_word = false;
        for (const auto& [word, v] : key.words) is_word = is_word || same_value(v, value);
        if (!is_word)
            if (const std::string why = key.check(value); !why.empty())
                throw Error(fmt::format("{}: {} = {}: {}", where, key.name, format_value(key, value), why));
    }
    values_[key.name] = Entry{value, std::string(where), false};
}

bool Config::is_set(std::string_view full_name) const { return values_.count(full_name) != 0; }

Value Config::get(std::string_view full_name) const {
    const Key& key = key_of(full_name);
    if (const auto it = values_.find(full_name); it != values_.end()) return it->second.value;
    if (!key.default_fn) return key.default_value;
    Value v = key.default_fn(*this);
    if (!value_fits(key, v)) throw Error(fmt::format("config: {}'s computed default has the wrong type", key.name));
    return v;
}

int64_t Config::get_int(std::string_view n) const { return std::get<int64_t>(get(n)); }
double Config::get_real(std::string_view n) const { return std::get<double>(get(n)); }
bool Config::get_bool(std::string_view n) const { return std::get<bool>(get(n)); }
std::string Config::get_string(std::string_view n) const { return std::get<std::string>(get(n)); }

std::string Config::where(std::string_view full_name) const {
    const auto it = values_.find(full_name);
    return it == values_.end() ? "default" : it->second.where;
}

std::map<std::string, std::string> Config::origins() const {
    std::map<std::string, std::string> out;
    for (const auto& [name, entry] : values_) out.emplace(name, entry.where);
    return out;
}

void Config::check_inactive() const {
    for (const Key& key : schema_->keys()) {
        if (!key.inactive || !is_set(key.name)) continue;
        if (const std::string why = key.inactive(*this); !why.empty())
            throw Error(fmt::format("{}: {} is not read by this config: {}", where(key.name), key.name, why));
    }
}

std::string Config::resolved(std::string_view header) const {
    std::string out;
    if (!header.empty()) out += fmt::format("# {}\n", header);
    for (const auto& [section, section_help] : schema_->sections()) {
        out += fmt::format("\n[{}]\n", section);
        for (const Key& key : schema_->keys()) {
            if (key.section() != section) continue;
            const std::string why = key.inactive ? key.inactive(*this) : std::string();
            if (!why.empty())
                out += fmt::format("# {}: not read ({})\n", key.bare(), why);
            else
                out += fmt::format("{} = {}\n", key.bare(), format_value(key, get(key.name)));
        }
    }
    return out;
}

}  // namespace lumen::training
