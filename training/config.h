// training/config.h: a generic config engine: a schema of typed keys named `section.key`, values read
// from an INI file (CLI11's parser) and from `--key=value` overrides, `--help` text, and the resolved
// config as INI text that reads back to the same values. training/train_config.h defines lumen's keys.
//
//   # run.cfg                        a key under [S] is S.key; a bare key (top level or --key) resolves
//   n_layer = 4                      to its home section; `#` starts a comment (also after a value
//                                    or header, and even inside quotes); `;` only at a line's start
//   [schedule]
//   learning_rate = 1e-3
//
// Values: int keys reject fractions (1.5, 1e3), float keys accept integers, bools take true/false/True/
// False, strings may be quoted ("..." or '...'), a choice must be one of its names; expressions (5 * 8)
// are not evaluated. int/float keys may also accept named words (`vocab_size = auto` stored as 0).
// Every error is a lumen::Error whose message names the key and where it was given ("run.cfg:12",
// "command line '--n_layer=x'"); an unknown key also names the closest valid key, a rejected (legacy)
// key the lumen equivalent.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

namespace lumen::training {

// int64_t (integer), double (real), bool (boolean), std::string (string and choice).
using Value = std::variant<int64_t, double, bool, std::string>;

enum class KeyType { integer, real, boolean, string, choice };

class Config;

struct Key {
    std::string name;  // "section.key"; the bare "key" resolves to it
    KeyType type = KeyType::string;
    Value default_value;  // used when default_fn is empty
    std::string help;     // one line
    std::vector<std::string> choices;                  // KeyType::choice: the allowed values
    std::vector<std::pair<std::string, Value>> words;  // integer/real keys: named values ("auto" -> 0)
    std::string default_text;  // help's default when default_fn computes it ("" = default_value)
    // Optional hooks; each returns "" when fine, else the reason (sentence fragment).
    std::function<std::string(const Value&)> check;       // the value alone: ranges, formats
    std::function<Value(const Config&)> default_fn;       // a default that depends on other keys (may throw)
    std::function<std::string(const Config&)> inactive;   // why this config does not read the key ("" = read)
    bool dotted_only = false;  // reached only as section.key (its bare name belongs to another key: lora.dropout)

    std::string bare() const;     // "key"
    std::string section() const;  // "section"
};

// The registry: keys in sections (kept in order of registration), plus rejected names.
class Schema {
public:
    void add_section(std::string name, std::string help);
    // Registers a key in an existing section; bare names must be unique across sections (a
    // dotted_only key has none).
    Key& add(Key key);
    // A legacy or unsupported name, bare ("use_rope") or dotted: any key written with it, bare or
    // under any section, is an error with `message` (which names the lumen equivalent).
    void reject(std::string name, std::string message);
    // Every key under [prefix] or [prefix.*] (also written dotted) is an error with `message`.
    void reject_section(std::string prefix, std::string message);
    // Keys under [prefix] and [prefix.*] are not in the registry: the config keeps their text as
    // written (Config::open_entries) for a parser of their own (the optical sections, whose section
    // names and rule keys are the user's). Such keys are only reached dotted, never by a bare name.
    void add_open_section(std::string prefix);
    bool is_open(std::string_view written) const;

    const Key* find(std::string_view full_name) const;  // nullptr when absent
    // The key a written name ("n_layer", "model.n_layer") means; otherwise throws the unknown-key or
    // rejected-key error prefixed with `where`.
    const Key& resolve(std::string_view written, std::string_view where) const;
    // The valid key closest to `written` by edit distance (its full name).
    std::string closest(std::string_view written) const;

    // Every key with its type, default and meaning, by section (for --help).
    std::string help() const;

    const std::vector<Key>& keys() const { return keys_; }
    const std::vector<std::pair<std::string, std::string>>& sections() const { return sections_; }

private:
    std::vector<std::pair<std::string, std::string>> sections_;  // name, help
    std::vector<Key> keys_;
    std::map<std::string, size_t, std::less<>> by_full_, by_bare_;
    std::vector<std::pair<std::string, std::string>> rejected_, rejected_sections_;
    std::vector<std::string> open_sections_;
};

// The typed value as a config file writes it (words by name, strings quoted, reals shortest-exact).
std::string format_value(const Key& key, const Value& value);
// Parses text per the key's type; throws a message naming the key (no location).
Value parse_value(const Key& key, std::string_view text);
// Levenshtein distance (for "did you mean").
size_t edit_distance(std::string_view a, std::string_view b);

// Values set over a schema. Unset keys read their default. The schema must outlive the config.
class Config {
public:
    explicit Config(const Schema& schema) : schema_(&schema) {}

    // Reads an INI file / text (CLI11's ConfigINI with `#` comments). A key given twice in one file is
    // an error; `source` names the text in messages.
    void read_file(const std::string& path);
    void read_text(std::string_view text, std::string_view source);
    // "--key=value", "--section.key=value" (leading dashes optional); "--flag" alone sets a bool key
    // true. An override replaces the file's value.
    void apply_override(std::string_view arg);
    // One written name and value text, as a file or override gives them; `where` locates it in errors.
    void set(std::string_view written_name, std::string_view text, std::string_view where, bool from_file);
    // Programmatic: a typed value for a full name (checked like text).
    void set_value(std::string_view full_name, const Value& value, std::string_view where = "program");

    bool is_set(std::string_view full_name) const;
    Value get(std::string_view full_name) const;
    int64_t get_int(std::string_view full_name) const;
    double get_real(std::string_view full_name) const;
    bool get_bool(std::string_view full_name) const;
    std::string get_string(std::string_view full_name) const;  // string and choice keys
    // Where the key was set ("run.cfg:12", "command line '--lr=1'"), or "default".
    std::string where(std::string_view full_name) const;
    // The keys set explicitly, full name -> where.
    std::map<std::string, std::string> origins() const;

    // Throws for the first set key whose `inactive` hook gives a reason (the config does not read it).
    void check_inactive() const;
    // The full config as INI text: every key in its section with its value; keys this config does
    // not read appear as comments giving the reason. Reading it back gives the same values.
    std::string resolved(std::string_view header = "") const;

    const Schema& schema() const { return *schema_; }

    // A key of an open section (Schema::add_open_section) with its text as written: the value after
    // `=` with the comment and surrounding spaces removed and quotes taken off, backslashes kept.
    struct OpenEntry {
        std::string name;  // the full dotted name ("optical.rules.1")
        std::string text;
        std::string where;
        bool from_file = false;
    };
    // In the order first set (an override replaces the text in place).
    const std::vector<OpenEntry>& open_entries() const { return open_; }

private:
    struct Entry {
        Value value;
        std::string where;
        bool from_file = false;
    };
    const Key& key_of(std::string_view full_name) const;

    const Schema* schema_;
    std::map<std::string, Entry, std::less<>> values_;
    std::vector<OpenEntry> open_;
};

}  // namespace lumen::training
