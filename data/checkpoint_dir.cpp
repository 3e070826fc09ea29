// data/checkpoint_dir.cpp: atomic checkpoint saves, pointers, pruning, leftovers, and resume-side
// verification (shared/specs/formats.md §7.2). POSIX calls for fsync; std::filesystem for the rest.
#include "data/checkpoint_dir.h"

#include "core/error.h"
#include "data/crc32c.h"
#include "data/file_io.h"
#include "data/safetensors.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <set>

namespace lumen::data {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;

// fsync of a file or a directory (a directory's fsync makes renames inside it durable).
void fsync_path(const fs::path& path, bool directory) {
    const int fd = ::open(path.c_str(), directory ? (O_RDONLY | O_DIRECTORY) : O_RDONLY);
    if (fd < 0) throw Error(fmt::format("{}: cannot open to fsync: {}", path.string(), std::strerror(errno)));
    const int rc = ::fsync(fd);
    const int saved = errno;
    ::close(fd);
    if (rc != 0) throw Error(fmt::format("{}: fsync failed: {}", path.string(), std::strerror(saved)));
}

void rename_or_fail(const fs::path& from, const fs::path& to) {
    std::error_code ec;
    fs::rename(from, to, ec);
    if (ec) throw Error(fmt::format("cannot rename {} to {}: {}", from.string(), to.string(), ec.message()));
}

// Renames a directory to a .trash- name (so it vanishes atomically), then deletes it.
void remove_dir_via_trash(const fs::path& checkpoints_dir, const std::string& name) {
    const int64_t ns = std::chrono::duration_cast<std::chrono::nanoseconds>(
                           std::chrono::system_clock::now().time_since_epoch()).count();
    const fs::path trash = checkpoints_dir / fmt::format(".trash-{}-{}", name, ns);
    rename_or_fail(checkpoints_dir / name, trash);
    fsync_path(checkpoints_dir, true);
    fs::remove_all(trash);
}

bool is_plain_file_name(std::string_view name) {
    return !name.empty() && name.find('/') == std::string_view::npos && name != "." && name != "..";
}

// The name of a checkpoint directory given as a path (a trailing '/' allowed).
fs::path normalized_dir(const std::string& dir) {
    fs::path p(dir);
    return p.filename().empty() ? p.parent_path() : p;
}

// After the callback: trainer_state.json exists and its "files" are exactly the other files.
void check_written_files(const fs::path& tmp, const std::string& what) {
    const fs::path state_path = tmp / trainer_state_file;
    if (!fs::is_regular_file(state_path))
        throw Error(fmt::format("{}: the callback did not write {} (write it last, with write_trainer_state)", what,
                                trainer_state_file));
    const json state = parse_json_rejecting_duplicates(read_file(state_path.string()), state_path.string());
    if (!state.is_object() || !state.contains("files") || !state["files"].is_object())
        throw Error(fmt::format("{}: {} has no \"files\" object (write it with write_trainer_state)", what,
                                trainer_state_file));
    std::set<std::string> listed;
    for (const auto& [name, info] : state["files"].items()) listed.insert(name);
    for (const fs::directory_entry& entry : fs::directory_iterator(tmp)) {
        const std::string name = entry.path().filename().string();
        if (name == trainer_state_file) continue;
        if (!entry.is_regular_file())
            throw Error(fmt::format("{}: {} is not a regular file (a checkpoint holds plain files only)", what, name));
        if (!listed.contains(name))
            throw Error(fmt::format("{}: {} is not listed in {}'s \"files\" (pass it to write_trainer_state)", what,
                                    name, trainer_state_file));
        listed.erase(name);
    }
    if (!listed.empty())
        throw Error(fmt::format("{}: {} lists {}, which the checkpoint does not contain", what, trainer_state_file,
                                *listed.begin()));
}

// checkpoint_problem, also returning the parsed trainer state when there is no problem.
std::string find_problem(const std::string& checkpoint_dir, json* state_out) {
    const fs::path dir = normalized_dir(checkpoint_dir);
    if (!fs::is_directory(dir)) return "the directory does not exist";
    const fs::path state_path = dir / trainer_state_file;
    if (!fs::is_regular_file(state_path))
        return fmt::format("{} is missing (the save did not finish)", trainer_state_file);
    json state;
    try {
        state = parse_json_rejecting_duplicates(read_file(state_path.string()), std::string(trainer_state_file));
    } catch (const Error& e) {
        return e.what();
    }
    if (!state.is_object()) return fmt::format("{} is not a JSON object", trainer_state_file);
    if (state.value("format", json()) != trainer_state_format)
        return fmt::format("{}: \"format\" is {}, expected \"{}\"", trainer_state_file,
                           state.value("format", json()).dump(), trainer_state_format);
    if (state.value("version", json()) != trainer_state_version)
        return fmt::format("{}: \"version\" is {}, this lumen reads version {}", trainer_state_file,
                           state.value("version", json()).dump(), trainer_state_version);
    if (!state.contains("files") || !state["files"].is_object())
        return fmt::format("{} has no \"files\" object", trainer_state_file);
    const json& files = state["files"];
    if (!files.contains("model.safetensors"))
        return fmt::format("{} does not list model.safetensors", trainer_state_file);
    // Cheap checks first (names, presence, sizes), then the CRC32C pass, then safetensors validation.
    for (const auto& [name, info] : files.items()) {
        if (!is_plain_file_name(name))
            return fmt::format("{} lists \"{}\", which is not a plain file name", trainer_state_file, name);
        if (!info.is_object() || !info.contains("bytes") || !info["bytes"].is_number_unsigned() ||
            !info.contains("crc32c") || !info["crc32c"].is_string())
            return fmt::format("{}: files \"{}\" must be {{\"bytes\": <n>, \"crc32c\": \"<8 hex>\"}}, found {}",
                               trainer_state_file, name, info.dump());
        const fs::path p = dir / name;
        if (!fs::is_regular_file(p)) return fmt::format("{} is missing", name);
        const uint64_t want = info["bytes"].get<uint64_t>(), have = fs::file_size(p);
        if (have != want)
            return fmt::format("{} has {} bytes, {} records {} ({})", name, have, trainer_state_file, want,
                               have < want ? "truncated" : "longer than written");
    }
    for (const auto& [name, info] : files.items()) {
        const std::string want = info["crc32c"].get<std::string>();
        const FileDigest d = digest_file((dir / name).string());
        if (crc32c_hex(d.crc32c) != want)
            return fmt::format("{}: CRC32C {} does not match the {} that {} records (the file is corrupted)", name,
                               crc32c_hex(d.crc32c), want, trainer_state_file);
    }
    for (const auto& [name, info] : files.items()) {
        if (!name.ends_with(".safetensors")) continue;
        try {
            (void)open_safetensors((dir / name).string());
        } catch (const Error& e) {
            return e.what();
        }
    }
    if (state_out) *state_out = std::move(state);
    return "";
}

}  // namespace

std::string checkpoint_name(int64_t step) {
    check(step >= 0, "checkpoint_name", fmt::format("the step must be >= 0, given {}", step));
    return fmt::format("step_{:08d}", step);
}

std::optional<int64_t> parse_checkpoint_name(std::string_view name) {
    constexpr std::string_view prefix = "step_";
    if (!name.starts_with(prefix)) return std::nullopt;
    const std::string_view digits = name.substr(prefix.size());
    if (digits.size() < 8 || digits.size() > 18) return std::nullopt;
    int64_t step = 0;
    for (char c : digits) {
        if (c < '0' || c > '9') return std::nullopt;
        step = step * 10 + (c - '0');
    }
    if (checkpoint_name(step) != name) return std::nullopt;  // only the canonical spelling
    return step;
}

std::vector<CheckpointRef> list_checkpoints(const std::string& checkpoints_dir) {
    std::vector<CheckpointRef> out;
    std::error_code ec;
    if (!fs::is_directory(checkpoints_dir, ec)) return out;
    for (const fs::directory_entry& entry : fs::directory_iterator(checkpoints_dir)) {
        const std::string name = entry.path().filename().string();
        const std::optional<int64_t> step = parse_checkpoint_name(name);
        if (step && entry.is_directory()) out.push_back({name, entry.path().string(), *step});
    }
    std::sort(out.begin(), out.end(), [](const CheckpointRef& a, const CheckpointRef& b) { return a.step < b.step; });
    return out;
}

std::vector<std::string> remove_checkpoint_leftovers(const std::string& checkpoints_dir) {
    std::vector<std::string> removed;
    std::error_code ec;
    if (!fs::is_directory(checkpoints_dir, ec)) return removed;
    for (const fs::directory_entry& entry : fs::directory_iterator(checkpoints_dir)) {
        const std::string name = entry.path().filename().string();
        if (name.starts_with(".tmp-") || name.starts_with(".trash-") || name == "latest.tmp" || name == "best.tmp")
            removed.push_back(name);
    }
    std::sort(removed.begin(), removed.end());
    for (const std::string& name : removed) fs::remove_all(fs::path(checkpoints_dir) / name);
    return removed;
}

void write_trainer_state(const std::string& dir, json state, const std::vector<std::string>& files) {
    const fs::path path = fs::path(dir) / trainer_state_file;
    if (!state.is_object())
        throw Error(fmt::format("{}: the trainer state must be a JSON object, given a {}", path.string(),
                                state.type_name()));
    json listed = json::object();
    for (const std::string& name : files) {
        if (!is_plain_file_name(name) || name == trainer_state_file)
            throw Error(fmt::format("{}: \"{}\" cannot be listed in \"files\" (a plain file name other than {})",
                                    path.string(), name, trainer_state_file));
        const FileDigest d = digest_file((fs::path(dir) / name).string());
        listed[name] = {{"bytes", d.bytes}, {"crc32c", crc32c_hex(d.crc32c)}};
    }
    if (!state.contains("format")) state["format"] = trainer_state_format;
    if (!state.contains("version")) state["version"] = trainer_state_version;
    state["files"] = std::move(listed);
    write_file_atomic(path.string(), state.dump(2) + "\n");
}

CheckpointWriteResult write_checkpoint_dir(const std::string& checkpoints_dir, int64_t step,
                                           const std::function<void(const std::string& tmp_dir)>& write_files,
                                           const CheckpointWriteOptions& options) {
    check(options.keep_last >= 0, "write_checkpoint_dir",
          fmt::format("keep_last must be >= 0 (0 keeps all), given {}", options.keep_last));
    const fs::path root(checkpoints_dir);
    fs::create_directories(root);
    const std::string name = checkpoint_name(step);
    const fs::path final_dir = root / name;
    const fs::path tmp = root / fmt::format(".tmp-{}-{}", name, ::getpid());
    const std::string what = fmt::format("checkpoint {} ({})", name, tmp.string());
    fs::remove_all(tmp);
    fs::create_directory(tmp);
    try {
        write_files(tmp.string());
        check_written_files(tmp, what);
        for (const fs::directory_entry& entry : fs::directory_iterator(tmp)) fsync_path(entry.path(), false);
        fsync_path(tmp, true);
    } catch (...) {
        std::error_code ec;
        fs::remove_all(tmp, ec);
        throw;
    }
    // An existing step_N is never written into: it moves aside and goes once the new one is in place.
    std::optional<fs::path> trash;
    if (fs::exists(final_dir)) {
        const int64_t ns = std::chrono::duration_cast<std::chrono::nanoseconds>(
                               std::chrono::system_clock::now().time_since_epoch()).count();
        trash = root / fmt::format(".trash-{}-{}", name, ns);
        rename_or_fail(final_dir, *trash);
    }
    try {
        rename_or_fail(tmp, final_dir);
    } catch (...) {
        std::error_code ec;
        if (trash) fs::rename(*trash, final_dir, ec);
        fs::remove_all(tmp, ec);
        throw;
    }
    fsync_path(root, true);
    if (trash) fs::remove_all(*trash);

    set_checkpoint_pointer(checkpoints_dir, "latest", name);
    if (options.best == MarkBest::yes) set_checkpoint_pointer(checkpoints_dir, "best", name);

    CheckpointWriteResult result{{name, final_dir.string(), step}, {}};
    if (options.keep_last > 0) {
        std::set<std::string> kept{name};
        for (const char* pointer : {"latest", "best"})
            if (const auto named = read_checkpoint_pointer(checkpoints_dir, pointer)) kept.insert(*named);
        std::vector<CheckpointRef> all = list_checkpoints(checkpoints_dir);  // lowest step first
        const int64_t excess = int64_t(all.size()) - options.keep_last;
        for (int64_t i = 0; i < excess; ++i) {
            if (kept.contains(all[size_t(i)].name)) continue;  // never the one `best` (or `latest`) names
            remove_dir_via_trash(root, all[size_t(i)].name);
            result.pruned.push_back(all[size_t(i)].name);
        }
    }
    return result;
}

std::optional<std::string> read_checkpoint_pointer(const std::string& checkpoints_dir, std::string_view pointer) {
    const fs::path path = fs::path(checkpoints_dir) / pointer;
    if (!fs::is_regular_file(path)) return std::nullopt;
    std::string text = read_file(path.string());
    const size_t first = text.find_first_not_of(" \t\r\n");
    if (first == std::string::npos) return std::string();
    return text.substr(first, text.find_last_not_of(" \t\r\n") - first + 1);
}

void set_checkpoint_pointer(const std::string& checkpoints_dir, std::string_view pointer,
                            const std::string& checkpoint_name) {
    check(is_plain_file_name(pointer) && is_plain_file_name(checkpoint_name), "set_checkpoint_pointer",
          fmt::format("pointer \"{}\" and checkpoint \"{}\" must be plain names", pointer, checkpoint_name));
    const fs::path root(checkpoints_dir);
    const fs::path tmp = root / fmt::format("{}.tmp", pointer);
    {
        const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
        if (fd < 0) throw Error(fmt::format("{}: cannot open for writing: {}", tmp.string(), std::strerror(errno)));
        const std::string text = checkpoint_name + "\n";
        const bool ok = ::write(fd, text.data(), text.size()) == ssize_t(text.size()) && ::fsync(fd) == 0;
        const int saved = errno;
        ::close(fd);
        if (!ok) throw Error(fmt::format("{}: write failed: {}", tmp.string(), std::strerror(saved)));
    }
    rename_or_fail(tmp, root / pointer);
    fsync_path(root, true);
}

std::optional<ResumeChoice> find_resume_checkpoint(const std::string& checkpoints_dir) {
    const std::optional<std::string> latest = read_checkpoint_pointer(checkpoints_dir, "latest");
    std::string reason;
    if (!latest) {
        reason = fmt::format("{}/latest is missing", checkpoints_dir);
    } else if (const auto step = parse_checkpoint_name(*latest);
               step && fs::is_directory(fs::path(checkpoints_dir) / *latest)) {
        return ResumeChoice{{*latest, (fs::path(checkpoints_dir) / *latest).string(), *step}, ""};
    } else {
        reason = fmt::format("{}/latest names \"{}\", which is not a checkpoint directory", checkpoints_dir, *latest);
    }
    const std::vector<CheckpointRef> all = list_checkpoints(checkpoints_dir);
    if (all.empty()) return std::nullopt;
    return ResumeChoice{all.back(), fmt::format("{}; taking the highest checkpoint, {}", reason, all.back().name)};
}

std::string checkpoint_problem(const std::string& checkpoint_dir) { return find_problem(checkpoint_dir, nullptr); }

json verify_checkpoint(const std::string& checkpoint_dir) {
    json state;
    const std::string problem = find_problem(checkpoint_dir, &state);
    if (problem.empty()) return state;
    const fs::path dir = normalized_dir(checkpoint_dir);
    const fs::path parent = dir.parent_path().empty() ? fs::path(".") : dir.parent_path();
    const std::optional<int64_t> own_step = parse_checkpoint_name(dir.filename().string());
    std::string older = fmt::format("There is no older valid checkpoint in {}.", parent.string());
    const std::vector<CheckpointRef> all = list_checkpoints(parent.string());
    for (auto it = all.rbegin(); it != all.rend(); ++it) {
        if (it->name == dir.filename().string() || (own_step && it->step >= *own_step)) continue;
        if (find_problem(it->path, nullptr).empty()) {
            older = fmt::format("The next older valid checkpoint is {}; it is untouched and can be resumed "
                                "explicitly.", it->path);
            break;
        }
    }
    throw Error(fmt::format("checkpoint {} cannot be resumed: {}. {}", dir.string(), problem, older));
}

}  // namespace lumen::data
