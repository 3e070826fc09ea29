// data/loader.h: the batch loader: (B, T) inputs and targets from token shards, deterministic for
// a seed, sharded across data-parallel ranks, prepared ahead by a background thread, and exactly
// resumable from a small state (shared/specs/formats.md §4).
//
// Modes: `sequential` walks every global sample of every shard once per epoch (llm.c's geometry,
// with Philox shuffles of shards and samples when Shuffle::yes); `random` draws each row's start
// uniformly over all shards (nanoGPT's get_batch, made reproducible). Rank r of W reads slice r of
// each global sample, and all ranks share one order (data/sampling.h), so a run resumes under
// another W with the same W·B·T.
//
// Shards are opened (header and size checked) before the loader is made; each shard's tokens are
// range-checked against vocab_size once, in the prefetch thread, the first time it is used. An
// error there surfaces from next(). A batch is one host buffer of 2·B·T indices (inputs then
// targets, i32 or i64) from `allocator`: on a GPU, pass {cuda::pinned_allocate,
// cuda::pinned_release_storage} (page-locked memory) so the copy to the GPU can be asynchronous. The returned tensors own their buffer.
#pragma once

#include "core/storage.h"
#include "core/tensor.h"
#include "data/sampling.h"
#include "data/shard.h"

#include <nlohmann/json_fwd.hpp>

#include <condition_variable>
#include <deque>
#include <exception>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

namespace lumen::data {

enum class SampleMode : uint8_t { sequential, random };

struct HostAllocator {
    void* (*allocate)(size_t bytes) = cpu_allocate;
    void (*release)(void* ptr, Device device) = cpu_release;
};

struct LoaderConfig {
    SampleMode mode = SampleMode::sequential;
    int64_t B = 0, T = 0;            // rows per rank, tokens per row
    int64_t rank = 0, world = 1;     // data-parallel rank r of W
    uint64_t seed = 1337;
    Shuffle shuffle = Shuffle::yes;  // sequential mode: permute shards and samples each epoch
    int64_t vocab_size = 0;          // tokens must be below it (0: only below 2^31)
    int64_t prefetch = 2;            // batches prepared ahead (0: prepared inside next())
    DType index_dtype = DType::i32;  // i32 or i64
    HostAllocator allocator;
};

struct ShardRecord {
    std::string name;  // file name without the directory
    int64_t tokens;
};

// Where a loader stands: the position of the batch next() returns. Random mode keeps its count of
// global micro-batches drawn in sample_pos. Optional fields, when present, are checked on restore.
struct LoaderState {
    SampleMode mode = SampleMode::sequential;
    std::optional<uint64_t> seed;
    std::optional<int64_t> global_sample_tokens;  // W·B·T
    int64_t epoch = 0, shard_pos = 0, sample_pos = 0;
    std::vector<ShardRecord> shards;  // empty: not checked
};
// {"mode": "sequential", "seed": 1337, "global_sample_tokens": 16384, "epoch": 0, "shard_pos": 12,
//  "sample_pos": 3071, "shards": [{"name": "train_000000.bin", "tokens": 100000000}]}
std::string_view mode_name(SampleMode mode);  // "sequential" or "random"
nlohmann::json loader_state_to_json(const LoaderState& state);
// Requires mode, shard_pos and sample_pos; `where` names the source in errors.
LoaderState loader_state_from_json(const nlohmann::json& j, std::string_view where);

struct Batch {
    Tensor inputs;   // (B, T) index_dtype, CPU
    Tensor targets;  // (B, T): inputs shifted left by one token
};

class DataLoader {
public:
    DataLoader(std::vector<Shard> shards, LoaderConfig config);
    ~DataLoader();
    DataLoader(const DataLoader&) = delete;
    DataLoader& operator=(const DataLoader&) = delete;

    Batch next();
    LoaderState state() const;
    // Continues from `state`; a changed mode, seed, W·B·T or shard list is an error naming it.
    void restore(const LoaderState& state);
    const LoaderConfig& config() const { return config_; }
    int64_t global_sample_tokens() const { return config_.world * config_.B * config_.T; }
    // Sequential mode: global samples per epoch, over all shards.
    int64_t samples_per_epoch() const;

private:
    struct Cursor {
        int64_t epoch = 0, shard_pos = 0, sample_pos = 0;
    };
    struct Produced {
        Batch batch;
        Cursor after;
        std::exception_ptr error;
    };

    Batch produce(Cursor& cursor);  // builds the batch at `cursor` and advances it
    void write_row(Batch& batch, int64_t i, const int32_t* tokens) const;
    void check_shard(int64_t shard);
    Batch allocate_batch() const;
    void start();
    void stop();
    void worker();

    std::vector<Shard> shards_;
    LoaderConfig config_;
    std::vector<int64_t> samples_;        // per shard (sequential)
    std::vector<int64_t> position_ends_;  // running totals of start positions (random)
    std::vector<bool> checked_;           // token range checked (touched by the producer only)
    // The producer's cached orders: shard order of order_epoch_, sample order of one shard.
    int64_t order_epoch_ = -1, samples_epoch_ = -1, samples_shard_ = -1;
    std::vector<int64_t> shard_order_, sample_order_;

    Cursor consumed_;  // position of the batch next() returns
    Cursor produced_;  // position of the batch the producer makes next
    std::exception_ptr failed_;

    std::thread thread_;
    mutable std::mutex mutex_;
    std::condition_variable cv_;
    std::deque<Produced> queue_;
    bool stopping_ = false;
};

}  // namespace lumen::data
