// data/checkpoint_dir.h: the mechanics of lumen's checkpoint directory (shared/specs/formats.md
// §7.2): atomic saves, the `latest` and `best` pointers, pruning, leftovers of interrupted saves,
// and the resume-side choice and verification. What goes into the files is the trainer's.
//
// A save: write_checkpoint_dir makes checkpoints/.tmp-step_XXXXXXXX-<pid>, the caller's callback
// writes its files there and, last, trainer_state.json through write_trainer_state (which records
// each file's byte size and CRC32C). Then every file and the directory are fsynced, an existing
// step_XXXXXXXX is renamed to .trash-step_XXXXXXXX-<ns> (never written into), the temporary
// directory is renamed into place, the parent is fsynced, `latest` (and `best` when asked) are
// replaced atomically, and old checkpoints beyond keep_last are removed, never the one `best` or
// `latest` names. A crash at any point leaves either the old or the new checkpoint whole.
//
// One process writes a checkpoints directory (rank 0); the temporary names carry its pid.
//
// A resume: find_resume_checkpoint reads `latest` (falling back to the highest step_* with a
// note), and verify_checkpoint checks files, sizes, CRC32C and safetensors validity; a checkpoint
// that fails is refused with the reason and the next older valid checkpoint, never skipped.
#pragma once

#include <nlohmann/json.hpp>

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace lumen::data {

inline constexpr std::string_view trainer_state_file = "trainer_state.json";
inline constexpr std::string_view trainer_state_format = "lumen-trainer-state";
inline constexpr int trainer_state_version = 1;

// "step_00005000" (at least 8 digits); parse returns nullopt for any other name.
std::string checkpoint_name(int64_t step);
std::optional<int64_t> parse_checkpoint_name(std::string_view name);

struct CheckpointRef {
    std::string name;   // "step_00005000"
    std::string path;   // checkpoints_dir/step_00005000
    int64_t step = 0;
};

// The step_* directories under checkpoints_dir, lowest step first (none when it does not exist).
std::vector<CheckpointRef> list_checkpoints(const std::string& checkpoints_dir);

// Deletes what interrupted saves left: .tmp-*, .trash-*, latest.tmp and best.tmp. Returns the
// names removed, for the trainer's log line. Call once at start, before the first save.
std::vector<std::string> remove_checkpoint_leftovers(const std::string& checkpoints_dir);

// Writes dir/trainer_state.json (write, flush, fsync): `state` plus "files", the byte size and
// CRC32C of each of `files` (names inside dir, already written and closed), plus "format" and
// "version" when `state` lacks them. Call it last in the write_checkpoint_dir callback, listing
// every other file the callback wrote.
void write_trainer_state(const std::string& dir, nlohmann::json state, const std::vector<std::string>& files);

enum class MarkBest : bool { no, yes };

struct CheckpointWriteOptions {
    int64_t keep_last = 0;          // keep the newest K step_* directories; 0 keeps all
    MarkBest best = MarkBest::no;   // also point `best` at this checkpoint
};

struct CheckpointWriteResult {
    CheckpointRef checkpoint;        // the directory written
    std::vector<std::string> pruned; // names of the checkpoints removed by keep_last
};

// Saves checkpoint `step` atomically (see the top of this file). `write_files` gets the
// temporary directory's path and must write trainer_state.json last, via write_trainer_state,
// listing every other file it wrote; otherwise nothing is renamed into place and this throws.
// If the callback throws, the temporary directory is removed and the exception passes through.
CheckpointWriteResult write_checkpoint_dir(const std::string& checkpoints_dir, int64_t step,
                                           const std::function<void(const std::string& tmp_dir)>& write_files,
                                           const CheckpointWriteOptions& options = {});

// `latest` / `best`: the checkpoint name a pointer file holds (nullopt when the file is missing),
// and replacing one atomically (pointer.tmp, fsync, rename, fsync of checkpoints_dir).
std::optional<std::string> read_checkpoint_pointer(const std::string& checkpoints_dir, std::string_view pointer);
void set_checkpoint_pointer(const std::string& checkpoints_dir, std::string_view pointer,
                            const std::string& checkpoint_name);

struct ResumeChoice {
    CheckpointRef checkpoint;
    std::string note;   // empty when `latest` named it; else why the highest step_* was taken (log it)
};

// The checkpoint init_from = resume starts from: the one `latest` names, or, when `latest` is
// missing or names no step_* directory, the highest step_* (with a note). nullopt: no checkpoint.
// It does not verify; call verify_checkpoint on the result.
std::optional<ResumeChoice> find_resume_checkpoint(const std::string& checkpoints_dir);

// Why a checkpoint directory cannot be resumed ("" when it can): trainer_state.json is missing
// or invalid, a listed file (model.safetensors must be one) is missing, has another size or
// CRC32C, or a .safetensors file fails validation.
std::string checkpoint_problem(const std::string& checkpoint_dir);

// Verifies a checkpoint and returns its trainer_state.json. A checkpoint that fails throws an
// error giving the reason and naming the next older valid checkpoint in the same directory (or
// saying there is none); that one is left untouched.
nlohmann::json verify_checkpoint(const std::string& checkpoint_dir);

}  // namespace lumen::data
