// tests/dist/thread_group.h: a test-only in-process "job": W threads, each holding a Communicator
// whose collectives meet the other threads' at a shared barrier. CPU tensors only.
//
//   test::ThreadGroup group(2, test::AsyncMode::eager);
//   group.run([&](dist::Communicator& comm) { ... comm.all_reduce_sum(t); ... });  // one thread per rank
//
// Sums are taken in rank order in the tensor's own dtype (bf16 partial sums round to bf16, as the
// backends' bf16 sums do), so every rank gets the same bits. Every collective checks that all ranks
// issued the same operation with the same shape, dtype and label, so a rank that launches its
// buckets in another order fails loudly instead of summing the wrong buffers.
// Async operations: AsyncMode::eager runs the collective inside the *_async call (values are read
// at launch: launching before the gradients are final gives wrong sums); AsyncMode::at_wait runs
// it in wait() (values read late, results land late: reading the result before wait() is wrong).
// A thread that throws breaks the group: the others' pending collectives throw instead of hanging
// (so does a collective nobody else joins within 60 s). run() rethrows the first exception.
#pragma once

#include "dist/communicator.h"

#include <fmt/format.h>

#include <chrono>
#include <condition_variable>
#include <exception>
#include <functional>
#include <mutex>
#include <thread>

namespace lumen::test {

enum class AsyncMode { eager, at_wait };

class ThreadGroup {
public:
    ThreadGroup(int world, AsyncMode mode = AsyncMode::eager) : world_(world), mode_(mode) {}

    // Runs fn(comm) on `world` threads, rank r on thread r; returns when all are done.
    void run(const std::function<void(dist::Communicator&)>& fn);

    // Collectives each rank has issued (all equal after run()).
    int64_t collectives() const { return count_; }

private:
    friend class ThreadComm;
    struct Entry {
        std::string op;  // "all_reduce 'bucket 3'", ...
        Tensor tensor;
        const void* host = nullptr;  // a std::vector<double|int64_t> or std::string
        int root = 0;
    };

    // Every rank arrives; throws when the group broke or nobody came.
    void barrier() {
        std::unique_lock lock(mutex_);
        if (broken_) throw Error("ThreadGroup: another rank failed");
        const int64_t generation = generation_;
        if (++arrived_ == world_) {
            arrived_ = 0;
            ++generation_;
            cv_.notify_all();
            return;
        }
        if (!cv_.wait_for(lock, std::chrono::seconds(60), [&] { return generation_ != generation || broken_; })) {
            broken_ = true;
            cv_.notify_all();
            throw Error("ThreadGroup: a collective was not joined by every rank within 60 s (a rank hangs or skipped it)");
        }
        if (broken_) throw Error("ThreadGroup: another rank failed");
    }
    void set_broken() {
        std::lock_guard lock(mutex_);
        broken_ = true;
        cv_.notify_all();
    }
    // Phase 1 of every collective: publish this rank's entry, meet, check that all match rank 0's.
    void publish(int rank, Entry entry) {
        entries_[rank] = std::move(entry);
        barrier();
        const Entry& mine = entries_[rank];
        const Entry& first = entries_[0];
        bool same = mine.op == first.op && mine.root == first.root;
        if (same && mine.tensor.defined())
            same = first.tensor.defined() && mine.tensor.shape() == first.tensor.shape() &&
                   mine.tensor.dtype() == first.tensor.dtype();
        if (!same)
            throw Error(fmt::format("ThreadGroup: rank {} issued {} {} while rank 0 issued {} {}", rank, mine.op,
                                    mine.tensor.defined() ? describe(mine.tensor) : "", first.op,
                                    first.tensor.defined() ? describe(first.tensor) : ""));
    }

    int world_;
    AsyncMode mode_;
    std::mutex mutex_;
    std::condition_variable cv_;
    int arrived_ = 0;
    int64_t generation_ = 0;
    bool broken_ = false;
    std::vector<Entry> entries_;
    int64_t count_ = 0;
};

class ThreadComm : public dist::Communicator {
public:
    ThreadComm(ThreadGroup& group, int rank) : group_(group) {
        rank_ = rank;
        world_ = group.world_;
    }
    dist::Backend backend() const override { return dist::Backend::mpi; }
    Device device() const override { return Device::cpu(); }

    void all_reduce_sum(Tensor& t) override { reduce(t, "all_reduce"); }
    std::unique_ptr<dist::Work> all_reduce_sum_async(Tensor t, std::string_view what) override {
        std::string op = fmt::format("all_reduce '{}'", what);
        if (group_.mode_ == AsyncMode::eager) {
            reduce(t, op);
            return std::make_unique<Done>();
        }
        return std::make_unique<Deferred>(*this, std::move(t), std::move(op));
    }
    void broadcast(Tensor& t, int root) override {
        check(t.is_contiguous() && t.device().is_cpu(), "ThreadComm::broadcast", "contiguous CPU tensor", {{"t", t}});
        group_.publish(rank_, {"broadcast", t, nullptr, root});
        Tensor from_root = group_.entries_[root].tensor;
        if (rank_ != root) t.copy_(from_root);
        group_.barrier();  // the root's tensor stays untouched until everyone has copied it
        count();
    }
    void barrier() override {
        group_.publish(rank_, {"barrier", {}, nullptr, 0});
        group_.barrier();
        count();
    }
    void all_reduce_sum_host(std::vector<double>& values) override { reduce_host(values, "all_reduce_host f64"); }
    void all_reduce_sum_host(std::vector<int64_t>& values) override { reduce_host(values, "all_reduce_host i64"); }
    std::string broadcast_host(const std::string& value, int root) override {
        group_.publish(rank_, {"broadcast_host", {}, &value, root});
        std::string out = *static_cast<const std::string*>(group_.entries_[root].host);
        group_.barrier();
        count();
        return out;
    }
    void set_context(std::string context) override { context_ = std::move(context); }

private:
    struct Done : dist::Work {
        void wait() override {}
    };
    struct Deferred : dist::Work {
        Deferred(ThreadComm& c, Tensor t, std::string op) : comm(c), tensor(std::move(t)), op(std::move(op)) {}
        void wait() override {
            if (done) return;
            done = true;
            comm.reduce(tensor, op);
        }
        ThreadComm& comm;
        Tensor tensor;
        std::string op;
        bool done = false;
    };

    void reduce(Tensor& t, const std::string& op) {
        const DType dt = t.dtype();
        check(t.is_contiguous() && t.device().is_cpu(), "ThreadComm::all_reduce_sum", "contiguous CPU tensor", {{"t", t}});
        check(dt == DType::f32 || dt == DType::bf16 || dt == DType::f64 || dt == DType::i64,
              "ThreadComm::all_reduce_sum", "dtype must be f32, bf16, f64 or i64", {{"t", t}});
        group_.publish(rank_, {op, t, nullptr, 0});
        Tensor sum = group_.entries_[0].tensor.clone();  // rank order, in the dtype's own precision
        for (int r = 1; r < world_; ++r) sum.add_(group_.entries_[r].tensor);
        group_.barrier();  // everyone has read every buffer
        t.copy_(sum);
        count();
    }
    template <typename T>
    void reduce_host(std::vector<T>& values, const char* op) {
        group_.publish(rank_, {fmt::format("{} ({} values)", op, values.size()), {}, &values, 0});
        std::vector<T> sum(values.size(), T(0));
        for (int r = 0; r < world_; ++r) {
            const auto& v = *static_cast<const std::vector<T>*>(group_.entries_[r].host);
            for (size_t i = 0; i < sum.size(); ++i) sum[i] += v[i];
        }
        group_.barrier();
        values = sum;
        count();
    }
    void count() {
        if (rank_ == 0) ++group_.count_;
    }

    ThreadGroup& group_;
    std::string context_;
};

inline void ThreadGroup::run(const std::function<void(dist::Communicator&)>& fn) {
    entries_.assign(world_, {});
    broken_ = false;
    arrived_ = 0;
    std::vector<std::exception_ptr> errors(world_);
    std::vector<std::thread> threads;
    for (int r = 0; r < world_; ++r)
        threads.emplace_back([&, r] {
            try {
                ThreadComm comm(*this, r);
                fn(comm);
            } catch (...) {
                errors[r] = std::current_exception();
                set_broken();
            }
        });
    for (std::thread& t : threads) t.join();
    // The first real failure, rather than the "another rank failed" it caused on the other ranks.
    std::exception_ptr first, first_group;
    for (auto& e : errors) {
        if (!e) continue;
        try {
            std::rethrow_exception(e);
        } catch (const std::exception& ex) {
            const bool group_error = std::string_view(ex.what()).starts_with("ThreadGroup: another rank failed");
            std::exception_ptr& slot = group_error ? first_group : first;
            if (!slot) slot = e;
        } catch (...) {
            if (!first) first = e;
        }
    }
    if (!first) first = first_group;
    if (first) std::rethrow_exception(first);
}

}  // namespace lumen::test
