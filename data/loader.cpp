// data/loader.cpp: batch production (sequential and random), the prefetch thread, and restore.
//
// The producer owns a cursor (epoch, shard position, sample position) and the cached orders; each
// batch leaves the queue with the cursor after it, which becomes the consumer's state, so state()
// never counts batches that were prepared but not yet returned.
#include "data/loader.h"

#include "core/error.h"

#include <cstring>
#include <filesystem>

namespace lumen::data {
namespace {

[[noreturn]] void config_error(std::string_view what) {
    throw Error(fmt::format("data loader: {}", what));
}


}  // namespace

DataLoader::DataLoader(std::vector<Shard> shards, LoaderConfig config)
    : shards_(std::move(shards)), config_(config) {
    const LoaderConfig& c = config_;
    if (shards_.empty()) config_error("no shards to read");
    if (c.B <= 0 || c.T <= 0) config_error(fmt::format("B = {} and T = {} must be positive", c.B, c.T));
    if (c.world <= 0 || c.rank < 0 || c.rank >= c.world)
        config_error(fmt::format("rank {} is not in [0, world = {})", c.rank, c.world));
    if (c.index_dtype != DType::i32 && c.index_dtype != DType::i64)
        config_error(fmt::format("index_dtype {} must be i32 or i64", dtype_name(c.index_dtype)));
    if (c.prefetch < 0) config_error(fmt::format("prefetch = {} must be >= 0", c.prefetch));
    if (c.vocab_size < 0) config_error(fmt::format("vocab_size = {} must be >= 0", c.vocab_size));
    const int64_t G = global_sample_tokens();
    for (const Shard& s : shards_) {
        if (c.mode == SampleMode::sequential) {
            samples_.push_back(samples_in_shard(s.num_tokens(), G));
            if (samples_.back() < 1)
                throw Error(fmt::format("{}: {} tokens: sequential batches need at least one global "
                                        "sample of W·B·T + 1 = {}·{}·{} + 1 = {} tokens per shard",
                                        s.path(), s.num_tokens(), c.world, c.B, c.T, G + 1));
        } else {
            const int64_t before = position_ends_.empty() ? 0 : position_ends_.back();
            position_ends_.push_back(before + std::max<int64_t>(0, s.num_tokens() - c.T));
        }
    }
    if (c.mode == SampleMode::random && position_ends_.back() == 0)
        config_error(fmt::format("random batches of T + 1 = {} tokens: no shard is that long", c.T + 1));
    checked_.assign(shards_.size(), false);
    start();
}

DataLoader::~DataLoader() { stop(); }

int64_t DataLoader::samples_per_epoch() const {
    int64_t total = 0;
    for (int64_t s : samples_) total += s;
    return total;
}

Batch DataLoader::allocate_batch() const {
    const int64_t B = config_.B, T = config_.T;
    const size_t bytes = size_t(2 * B * T) * dtype_size(config_.index_dtype);
    void* data = config_.allocator.allocate(bytes);
    auto storage = std::make_shared<Storage>(data, bytes, Device::cpu(), config_.allocator.release);
    Layout inputs = Layout::contiguous({B, T}), targets = Layout::contiguous({B, T});
    targets.offset = B * T;
    return {Tensor::over(storage, inputs, config_.index_dtype),
            Tensor::over(storage, targets, config_.index_dtype)};
}

void DataLoader::check_shard(int64_t k) {
    if (checked_[size_t(k)]) return;
    shards_[size_t(k)].check_tokens(config_.vocab_size > 0 ? config_.vocab_size : int64_t(INT32_MAX) + 1);
    checked_[size_t(k)] = true;
}

// Writes row i of the batch from T + 1 consecutive tokens: inputs get t[0..T-1], targets t[1..T].
void DataLoader::write_row(Batch& batch, int64_t i, const int32_t* tokens) const {
    const int64_t B = config_.B, T = config_.T;
    void* base = batch.inputs.storage()->data();
    if (config_.index_dtype == DType::i64) {
        int64_t* in = static_cast<int64_t*>(base) + i * T;
        int64_t* out = static_cast<int64_t*>(base) + B * T + i * T;
        for (int64_t t = 0; t < T; ++t) {
            in[t] = tokens[t];
            out[t] = tokens[t + 1];
        }
    } else {
        std::memcpy(static_cast<int32_t*>(base) + i * T, tokens, size_t(T) * 4);
        std::memcpy(static_cast<int32_t*>(base) + B * T + i * T, tokens + 1, size_t(T) * 4);
    }
}

Batch DataLoader::produce(Cursor& cur) {
    const LoaderConfig& c = config_;
    Batch batch = allocate_batch();
    if (c.mode == SampleMode::random) {
        std::vector<int32_t> row(static_cast<size_t>(c.T + 1));
        for (int64_t i = 0; i < c.B; ++i) {  // global row rank·B + i of global micro-batch sample_pos
            const Position p = random_position(c.seed, cur.sample_pos, c.rank * c.B + i, position_ends_);
            check_shard(p.shard);
            shards_[size_t(p.shard)].read(p.offset, c.T + 1, row.data());
            write_row(batch, i, row.data());
        }
        ++cur.sample_pos;
        return batch;
    }
    const int64_t n = int64_t(shards_.size());
    if (order_epoch_ != cur.epoch) {
        shard_order_ = shard_order(n, c.seed, cur.epoch, c.shuffle);
        order_epoch_ = cur.epoch;
    }
    const int64_t k = shard_order_[size_t(cur.shard_pos)];
    if (samples_epoch_ != cur.epoch || samples_shard_ != k) {
        sample_order_ = sample_order(samples_[size_t(k)], c.seed, cur.epoch, k, c.shuffle);
        samples_epoch_ = cur.epoch;
        samples_shard_ = k;
    }
    check_shard(k);
    const int64_t s = sample_order_[size_t(cur.sample_pos)];
    const int64_t start = sequential_token_offset(s, global_sample_tokens(), c.rank, c.B, c.T);
    std::vector<int32_t> span(static_cast<size_t>(c.B * c.T + 1));  // this rank's B·T + 1 tokens
    shards_[size_t(k)].read(start, c.B * c.T + 1, span.data());
    for (int64_t i = 0; i < c.B; ++i) write_row(batch, i, span.data() + i * c.T);
    if (++cur.sample_pos == samples_[size_t(k)]) {
        cur.sample_pos = 0;
        if (++cur.shard_pos == n) {
            cur.shard_pos = 0;
            ++cur.epoch;
        }
    }
    return batch;
}

// ---------------------------------------------------------------- the prefetch thread

void DataLoader::start() {
    stopping_ = false;
    if (config_.prefetch > 0) thread_ = std::thread(&DataLoader::worker, this);
}

void DataLoader::stop() {
    {
        std::lock_guard lock(mutex_);
        stopping_ = true;
    }
    cv_.notify_all();
    if (thread_.joinable()) thread_.join();
    queue_.clear();
}

void DataLoader::worker() {
    Cursor cursor = produced_;
    for (;;) {
        {
            std::unique_lock lock(mutex_);
            cv_.wait(lock, [&] { return stopping_ || int64_t(queue_.size()) < config_.prefetch; });
            if (stopping_) return;
        }
        Produced p;
        try {
            p.batch = produce(cursor);
            p.after = cursor;
        } catch (...) {
            p.error = std::current_exception();
        }
        const bool failed = bool(p.error);
        {
            std::lock_guard lock(mutex_);
            queue_.push_back(std::move(p));
        }
        cv_.notify_all();
        if (failed) return;
    }
}

Batch DataLoader::next() {
    if (failed_) std::rethrow_exception(failed_);
    if (config_.prefetch == 0) {
        Cursor cursor = consumed_;
        try {
            Batch batch = produce(cursor);
            consumed_ = cursor;
            return batch;
        } catch (...) {
            failed_ = std::current_exception();
            throw;
        }
    }
    std::unique_lock lock(mutex_);
    cv_.wait(lock, [&] { return !queue_.empty(); });
    Produced p = std::move(queue_.front());
    queue_.pop_front();
    lock.unlock();
    cv_.notify_all();
    if (p.error) {
        failed_ = p.error;
        std::rethrow_exception(p.error);
    }
    consumed_ = p.after;
    return std::move(p.batch);
}

// ---------------------------------------------------------------- state

LoaderState DataLoader::state() const {
    LoaderState s;
    s.mode = config_.mode;
    s.seed = config_.seed;
    s.global_sample_tokens = global_sample_tokens();
    s.epoch = consumed_.epoch;
    s.shard_pos = consumed_.shard_pos;
    s.sample_pos = consumed_.sample_pos;
    for (const Shard& shard : shards_)
        s.shards.push_back({std::filesystem::path(shard.path()).filename().string(), shard.num_tokens()});
    return s;
}

void DataLoader::restore(const LoaderState& s) {
    const auto refuse = [](std::string_view what) {
        throw Error(fmt::format("data loader: cannot resume: {}", what));
    };
    if (s.mode != config_.mode)
        refuse(fmt::format("the saved state is {} mode, this loader is {}", mode_name(s.mode),
                           mode_name(config_.mode)));
    if (s.seed && *s.seed != config_.seed)
        refuse(fmt::format("the saved state has seed {}, this loader {}", *s.seed, config_.seed));
    if (s.global_sample_tokens && *s.global_sample_tokens != global_sample_tokens())
        refuse(fmt::format("the saved state has W·B·T = {} tokens per global sample, this loader "
                           "{}·{}·{} = {}", *s.global_sample_tokens, config_.world, config_.B,
                           config_.T, global_sample_tokens()));
    if (!s.shards.empty()) {
        const LoaderState now = state();
        if (s.shards.size() != now.shards.size())
            refuse(fmt::format("the saved state lists {} shards, the dataset has {}", s.shards.size(),
                               now.shards.size()));
        for (size_t i = 0; i < s.shards.size(); ++i)
            if (s.shards[i].name != now.shards[i].name || s.shards[i].tokens != now.shards[i].tokens)
                refuse(fmt::format("shard {} was {} ({} tokens), now {} ({} tokens)", i,
                                   s.shards[i].name, s.shards[i].tokens, now.shards[i].name,
                                   now.shards[i].tokens));
    }
    const int64_t n = int64_t(shards_.size());
    if (s.epoch < 0 || s.sample_pos < 0 || s.shard_pos < 0 ||
        (config_.mode == SampleMode::sequential &&
         (s.shard_pos >= n ||
          s.sample_pos >= samples_[size_t(shard_order(n, config_.seed, s.epoch, config_.shuffle)
                                              [size_t(s.shard_pos)])])))
        refuse(fmt::format("position epoch {}, shard_pos {}, sample_pos {} is outside the dataset",
                           s.epoch, s.shard_pos, s.sample_pos));
    stop();
    consumed_ = produced_ = Cursor{s.epoch, s.shard_pos, s.sample_pos};
    failed_ = nullptr;
    start();
}

}  // namespace lumen::data
