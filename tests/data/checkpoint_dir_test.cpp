// tests/data/checkpoint_dir_test.cpp: the checkpoint directory mechanics (formats.md §7.2): atomic
// saves through a temporary directory, trainer_state.json's sizes and CRC32C, latest and best,
// pruning that keeps best, leftovers of interrupted saves, and resume-side verification that refuses
// a damaged checkpoint and names the next older valid one.
#include "data/checkpoint_dir.h"
#include "data/crc32c.h"
#include "data/safetensors.h"
#include "tests/data/data_test_util.h"
#include "tests/harness.h"

#include <unistd.h>

using namespace lumen;
using namespace lumen::data;
using lumen::test::read_bytes;
using lumen::test::ScratchDir;
using lumen::test::write_bytes;
namespace fs = std::filesystem;

namespace {

const std::vector<std::string> checkpoint_files = {"model.safetensors", "optimizer.safetensors", "config.cfg"};

// The files a trainer writes, with `value` in the model's one parameter.
void write_trainer_files(const std::string& dir, int64_t step, float value) {
    write_safetensors(dir + "/model.safetensors", {{"w", Tensor::full({4}, value)}});
    write_safetensors(dir + "/optimizer.safetensors", {{"w.exp_avg", Tensor::zeros({4})}},
                      {{"lumen_optimizer", "adamw"}, {"step", std::to_string(step)}});
    write_file_atomic(dir + "/config.cfg", "n_layer = 2\n");
    write_trainer_state(dir, {{"iteration", step}, {"tokens_seen", step * 1000}}, checkpoint_files);
}

CheckpointWriteResult save(const std::string& checkpoints, int64_t step, float value,
                           CheckpointWriteOptions options = {}) {
    return write_checkpoint_dir(checkpoints, step,
                                [&](const std::string& tmp) { write_trainer_files(tmp, step, value); }, options);
}

std::vector<std::string> entries(const std::string& dir) {
    std::vector<std::string> out;
    for (const auto& e : fs::directory_iterator(dir)) out.push_back(e.path().filename().string());
    std::sort(out.begin(), out.end());
    return out;
}

float model_value(const std::string& checkpoint_dir) {
    return open_safetensors(checkpoint_dir + "/model.safetensors").load("w").to_vector<float>()[0];
}

}  // namespace

TEST_CASE("checkpoint_dir: step names") {
    CHECK(checkpoint_name(5000) == "step_00005000");
    CHECK(checkpoint_name(0) == "step_00000000");
    CHECK(checkpoint_name(123456789) == "step_123456789");
    CHECK(parse_checkpoint_name("step_00005000") == 5000);
    CHECK(parse_checkpoint_name("step_123456789") == 123456789);
    for (const char* bad : {"step_5000", "step_0000500x", "step_000005000", "Step_00005000", "step_", "best",
                            ".tmp-step_00005000-12", "step_00005000 "})
        CHECK_FALSE(parse_checkpoint_name(bad).has_value());
    CHECK_THROWS_CONTAINING(checkpoint_name(-1), "the step must be >= 0");
}

TEST_CASE("checkpoint_dir: a save goes through .tmp-step-pid and records sizes and CRC32C") {
    ScratchDir scratch("ckpt_save");
    const std::string root = scratch.file("checkpoints");  // created by the first save
    std::string seen_tmp;
    const CheckpointWriteResult r = write_checkpoint_dir(root, 10, [&](const std::string& tmp) {
        seen_tmp = tmp;
        CHECK(fs::is_directory(tmp));
        CHECK_FALSE(fs::exists(root + "/step_00000010"));   // nothing under the final name yet
        CHECK_FALSE(fs::exists(root + "/latest"));
        write_trainer_files(tmp, 10, 1.5f);
    });
    CHECK(seen_tmp == root + "/.tmp-step_00000010-" + std::to_string(::getpid()));
    CHECK(r.checkpoint.name == "step_00000010");
    CHECK(r.checkpoint.path == root + "/step_00000010");
    CHECK(r.checkpoint.step == 10);
    CHECK(r.pruned.empty());
    CHECK(entries(root) == std::vector<std::string>{"latest", "step_00000010"});
    CHECK(read_bytes(root + "/latest") == "step_00000010\n");
    CHECK(entries(r.checkpoint.path) ==
          std::vector<std::string>{"config.cfg", "model.safetensors", "optimizer.safetensors", "trainer_state.json"});
    const nlohmann::json state = nlohmann::json::parse(read_bytes(r.checkpoint.path + "/trainer_state.json"));
    CHECK(state["format"] == "lumen-trainer-state");
    CHECK(state["version"] == 1);
    CHECK(state["iteration"] == 10);
    CHECK(state["tokens_seen"] == 10000);
    CHECK(state["files"].size() == 3);
    for (const std::string& name : checkpoint_files) {
        INFO(name);
        const std::string bytes = read_bytes(r.checkpoint.path + "/" + name);
        CHECK(state["files"][name]["bytes"] == bytes.size());
        CHECK(state["files"][name]["crc32c"] == fmt::format("{:08x}", crc32c(bytes)));
    }
    CHECK(verify_checkpoint(r.checkpoint.path)["iteration"] == 10);
    CHECK(checkpoint_problem(r.checkpoint.path).empty());
    CHECK(model_value(r.checkpoint.path) == 1.5f);
    const auto resume = find_resume_checkpoint(root);
    REQUIRE(resume.has_value());
    CHECK(resume->checkpoint.name == "step_00000010");
    CHECK(resume->note.empty());
}

TEST_CASE("checkpoint_dir: a failed save leaves nothing behind and the previous checkpoint in place") {
    ScratchDir scratch("ckpt_fail");
    const std::string root = scratch.str();
    save(root, 1, 1.0f);
    // The callback throws: its exception passes through, the temporary directory goes.
    CHECK_THROWS_WITH(write_checkpoint_dir(root, 2, [](const std::string& tmp) {
                          write_bytes(tmp + "/model.safetensors", "half");
                          throw std::runtime_error("out of disk");
                      }),
                      "out of disk");
    // No trainer_state.json, or a file it does not list, or one it lists that is missing: refused.
    CHECK_THROWS_CONTAINING(write_checkpoint_dir(root, 2, [](const std::string& tmp) {
                                write_safetensors(tmp + "/model.safetensors", {{"w", Tensor::ones({1})}});
                            }),
                            "checkpoint step_00000002 (" + root + "/.tmp-step_00000002-" + std::to_string(::getpid()) +
                                "): the callback did not write trainer_state.json (write it last, with "
                                "write_trainer_state)");
    CHECK_THROWS_CONTAINING(write_checkpoint_dir(root, 2, [](const std::string& tmp) {
                                write_safetensors(tmp + "/model.safetensors", {{"w", Tensor::ones({1})}});
                                write_file_atomic(tmp + "/config.cfg", "x = 1\n");
                                write_trainer_state(tmp, nlohmann::json::object(), {"model.safetensors"});
                            }),
                            "config.cfg is not listed in trainer_state.json's \"files\" (pass it to "
                            "write_trainer_state)");
    CHECK_THROWS_CONTAINING(write_checkpoint_dir(root, 2, [](const std::string& tmp) {
                                write_safetensors(tmp + "/model.safetensors", {{"w", Tensor::ones({1})}});
                                write_trainer_state(tmp, nlohmann::json::object(), {"model.safetensors"});
                                fs::remove(tmp + "/model.safetensors");
                            }),
                            "trainer_state.json lists model.safetensors, which the checkpoint does not contain");
    CHECK_THROWS_CONTAINING(write_checkpoint_dir(root, 2, [](const std::string& tmp) {
                                write_trainer_state(tmp, nlohmann::json::object(), {"missing.bin"});
                            }),
                            "missing.bin: cannot open for reading");
    CHECK_THROWS_CONTAINING(write_checkpoint_dir(root, 2, [](const std::string& tmp) {
                                write_trainer_state(tmp, nlohmann::json::object(), {"trainer_state.json"});
                            }),
                            "\"trainer_state.json\" cannot be listed in \"files\"");
    CHECK_THROWS_CONTAINING(write_checkpoint_dir(root, 2, [](const std::string& tmp) {
                                write_trainer_state(tmp, nlohmann::json::array(), {});
                            }),
                            "the trainer state must be a JSON object, given a array");
    CHECK(entries(root) == std::vector<std::string>{"latest", "step_00000001"});
    CHECK(read_bytes(root + "/latest") == "step_00000001\n");
    CHECK(model_value(root + "/step_00000001") == 1.0f);
}

TEST_CASE("checkpoint_dir: saving an existing step replaces it whole, never writing into it") {
    ScratchDir scratch("ckpt_replace");
    const std::string root = scratch.str();
    save(root, 7, 1.0f);
    write_bytes(root + "/step_00000007/stale.txt", "from the old save");
    save(root, 7, 2.0f);
    CHECK(entries(root) == std::vector<std::string>{"latest", "step_00000007"});  // no .trash- left
    CHECK_FALSE(fs::exists(root + "/step_00000007/stale.txt"));
    CHECK(model_value(root + "/step_00000007") == 2.0f);
    CHECK(verify_checkpoint(root + "/step_00000007")["iteration"] == 7);
}

TEST_CASE("checkpoint_dir: latest and best pointers, and pruning that never removes best") {
    ScratchDir scratch("ckpt_prune");
    const std::string root = scratch.str();
    const CheckpointWriteOptions keep2{2, MarkBest::no};
    CHECK(save(root, 100, 1.0f, {2, MarkBest::yes}).pruned.empty());
    CHECK(read_checkpoint_pointer(root, "best") == "step_00000100");
    CHECK(save(root, 200, 2.0f, keep2).pruned.empty());
    CHECK(save(root, 300, 3.0f, keep2).pruned.empty());  // 3 kept: the newest 2 and best
    CHECK(save(root, 400, 4.0f, keep2).pruned == std::vector<std::string>{"step_00000200"});
    CHECK(entries(root) == std::vector<std::string>{"best", "latest", "step_00000100", "step_00000300",
                                                    "step_00000400"});
    CHECK(read_checkpoint_pointer(root, "latest") == "step_00000400");
    CHECK(read_checkpoint_pointer(root, "best") == "step_00000100");
    // A new best moves the pointer; the old best is then an ordinary old checkpoint.
    CHECK(save(root, 500, 5.0f, {2, MarkBest::yes}).pruned ==
          std::vector<std::string>{"step_00000100", "step_00000300"});
    CHECK(entries(root) == std::vector<std::string>{"best", "latest", "step_00000400", "step_00000500"});
    CHECK(read_bytes(root + "/best") == "step_00000500\n");
    // keep_last 0 keeps everything.
    save(root, 600, 6.0f);
    CHECK(list_checkpoints(root).size() == 3);
    // Saving an older step (a rerun from an earlier checkpoint) keeps it, as `latest` names it; the
    // newest K by step number stay too, and best.
    CHECK(save(root, 50, 0.5f, {1, MarkBest::no}).pruned == std::vector<std::string>{"step_00000400"});
    CHECK(entries(root) == std::vector<std::string>{"best", "latest", "step_00000050", "step_00000500",
                                                    "step_00000600"});
    const std::vector<CheckpointRef> all = list_checkpoints(root);
    REQUIRE(all.size() == 3);
    CHECK(all[0].step == 50);
    CHECK(all[1].path == root + "/step_00000500");
    CHECK(all[2].name == "step_00000600");
    CHECK_FALSE(read_checkpoint_pointer(scratch.file("nowhere"), "latest").has_value());
    CHECK(list_checkpoints(scratch.file("nowhere")).empty());
    CHECK_THROWS_CONTAINING(save(root, 700, 7.0f, {-1, MarkBest::no}), "keep_last must be >= 0");
}

TEST_CASE("checkpoint_dir: leftovers of interrupted saves are removed and reported") {
    ScratchDir scratch("ckpt_leftovers");
    const std::string root = scratch.str();
    save(root, 3, 3.0f);
    fs::create_directory(root + "/.tmp-step_00000005-999");
    write_bytes(root + "/.tmp-step_00000005-999/model.safetensors", "partial");
    fs::create_directory(root + "/.trash-step_00000003-1715000000000000000");
    write_bytes(root + "/latest.tmp", "step_00000005\n");
    write_bytes(root + "/best.tmp", "");
    write_bytes(root + "/notes.txt", "the user's own file");
    CHECK(remove_checkpoint_leftovers(root) ==
          std::vector<std::string>{".tmp-step_00000005-999", ".trash-step_00000003-1715000000000000000", "best.tmp",
                                   "latest.tmp"});
    CHECK(entries(root) == std::vector<std::string>{"latest", "notes.txt", "step_00000003"});
    CHECK(remove_checkpoint_leftovers(root).empty());
    CHECK(remove_checkpoint_leftovers(scratch.file("nowhere")).empty());
}

TEST_CASE("checkpoint_dir: resume reads latest, or takes the highest step with a note") {
    ScratchDir scratch("ckpt_resume");
    const std::string root = scratch.str();
    CHECK_FALSE(find_resume_checkpoint(root).has_value());
    CHECK_FALSE(find_resume_checkpoint(scratch.file("nowhere")).has_value());
    save(root, 1, 1.0f);
    save(root, 3, 3.0f);
    save(root, 2, 2.0f);  // latest names step 2, not the highest
    auto choice = find_resume_checkpoint(root);
    REQUIRE(choice.has_value());
    CHECK(choice->checkpoint.name == "step_00000002");
    CHECK(choice->checkpoint.step == 2);
    CHECK(choice->note.empty());
    fs::remove(root + "/latest");
    choice = find_resume_checkpoint(root);
    REQUIRE(choice.has_value());
    CHECK(choice->checkpoint.name == "step_00000003");
    CHECK(choice->note == root + "/latest is missing; taking the highest checkpoint, step_00000003");
    write_bytes(root + "/latest", "step_00000009\n");
    choice = find_resume_checkpoint(root);
    REQUIRE(choice.has_value());
    CHECK(choice->checkpoint.path == root + "/step_00000003");
    CHECK(choice->note == root + "/latest names \"step_00000009\", which is not a checkpoint directory; taking the "
                                 "highest checkpoint, step_00000003");
    write_bytes(root + "/latest", "../elsewhere\n");
    CHECK(find_resume_checkpoint(root)->note.starts_with(root + "/latest names \"../elsewhere\""));
}

TEST_CASE("checkpoint_dir: a damaged newest checkpoint is refused, naming the next older valid one") {
    ScratchDir scratch("ckpt_verify");
    const std::string root = scratch.str();
    for (int64_t step : {1, 2, 3}) save(root, step, float(step));
    const std::string s1 = root + "/step_00000001", s2 = root + "/step_00000002", s3 = root + "/step_00000003";

    // Truncated model.safetensors in the newest.
    const uintmax_t full = fs::file_size(s3 + "/model.safetensors");
    fs::resize_file(s3 + "/model.safetensors", full - 5);
    CHECK_THROWS_CONTAINING(verify_checkpoint(s3),
                            fmt::format("checkpoint {} cannot be resumed: model.safetensors has {} bytes, "
                                        "trainer_state.json records {} (truncated). The next older valid checkpoint "
                                        "is {}; it is untouched and can be resumed explicitly.",
                                        s3, full - 5, full, s2));
    CHECK(checkpoint_problem(s3).starts_with("model.safetensors has"));

    // Same size, one byte flipped in the older one: a CRC32C mismatch; the newest now names step 1.
    std::string bytes = read_bytes(s2 + "/optimizer.safetensors");
    bytes.back() ^= 0x40;
    write_bytes(s2 + "/optimizer.safetensors", bytes);
    CHECK_THROWS_CONTAINING(verify_checkpoint(s2),
                            fmt::format("checkpoint {} cannot be resumed: optimizer.safetensors: CRC32C {} does not "
                                        "match the {} that trainer_state.json records (the file is corrupted). The "
                                        "next older valid checkpoint is {};",
                                        s2, crc32c_hex(crc32c(bytes)),
                                        nlohmann::json::parse(read_bytes(s2 + "/trainer_state.json"))
                                            ["files"]["optimizer.safetensors"]["crc32c"].get<std::string>(),
                                        s1));
    CHECK_THROWS_CONTAINING(verify_checkpoint(s3), "The next older valid checkpoint is " + s1 + ";");
    CHECK(verify_checkpoint(s1 + "/")["iteration"] == 1);  // untouched; a trailing '/' is fine

    // Nothing older is valid.
    fs::remove(s1 + "/trainer_state.json");
    CHECK_THROWS_CONTAINING(verify_checkpoint(s1),
                            fmt::format("checkpoint {} cannot be resumed: trainer_state.json is missing (the save did "
                                        "not finish). There is no older valid checkpoint in {}.", s1, root));
    CHECK_THROWS_CONTAINING(verify_checkpoint(s3), "There is no older valid checkpoint in " + root);
    CHECK_THROWS_CONTAINING(verify_checkpoint(root + "/step_00000099"), "the directory does not exist");
    fs::remove(s3 + "/config.cfg");
    CHECK(checkpoint_problem(s3) == "config.cfg is missing");
}

TEST_CASE("checkpoint_dir: verification checks trainer_state.json and each safetensors file") {
    ScratchDir scratch("ckpt_verify_state");
    const std::string root = scratch.str();
    save(root, 1, 1.0f);
    const std::string s1 = root + "/step_00000001";
    // A safetensors file whose size and CRC32C were recorded as they are, but which is invalid.
    write_checkpoint_dir(root, 2, [](const std::string& tmp) {
        write_bytes(tmp + "/model.safetensors", std::string("\x02\0\0\0\0\0\0\0{}zz", 12));
        write_trainer_state(tmp, {{"iteration", 2}}, {"model.safetensors"});
    });
    const std::string s2 = root + "/step_00000002";
    CHECK_THROWS_CONTAINING(verify_checkpoint(s2),
                            "cannot be resumed: " + s2 + "/model.safetensors: 2 trailing bytes: the tensors end at "
                            "byte 0 of the data buffer, which holds 2 bytes. The next older valid checkpoint is " + s1);
    // trainer_state.json problems.
    const auto with_state = [&](const std::string& text) {
        write_bytes(s2 + "/trainer_state.json", text);
        return checkpoint_problem(s2);
    };
    CHECK(with_state("{").starts_with("trainer_state.json: not valid UTF-8 JSON"));
    CHECK(with_state(R"({"format":"lumen-trainer-state","format":"x"})") ==
          "trainer_state.json: duplicate key \"format\"");
    CHECK(with_state(R"({"format":"other","version":1,"files":{}})") ==
          "trainer_state.json: \"format\" is \"other\", expected \"lumen-trainer-state\"");
    CHECK(with_state(R"({"format":"lumen-trainer-state","version":2,"files":{}})") ==
          "trainer_state.json: \"version\" is 2, this lumen reads version 1");
    CHECK(with_state(R"({"format":"lumen-trainer-state","version":1})") == "trainer_state.json has no \"files\" object");
    CHECK(with_state(R"({"format":"lumen-trainer-state","version":1,"files":{}})") ==
          "trainer_state.json does not list model.safetensors");
    CHECK(with_state(R"({"format":"lumen-trainer-state","version":1,"files":{"model.safetensors":{"bytes":-1,)"
                     R"("crc32c":"0"}}})").starts_with("trainer_state.json: files \"model.safetensors\" must be"));
    CHECK(with_state(R"({"format":"lumen-trainer-state","version":1,"files":{"model.safetensors":{"bytes":12,)"
                     R"("crc32c":"0"},"../x":{"bytes":1,"crc32c":"0"}}})") ==
          "trainer_state.json lists \"../x\", which is not a plain file name");
    CHECK(with_state(R"({"format":"lumen-trainer-state","version":1,"files":{"model.safetensors":{"bytes":12,)"
                     R"("crc32c":"0"},"gone.bin":{"bytes":1,"crc32c":"0"}}})") == "gone.bin is missing");
}
