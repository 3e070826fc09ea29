// dist/watchdog.cpp: the collective timeout thread and its heartbeat (see dist/watchdog.h).
#include "dist/watchdog.h"

#include "dist/mpi_detail.h"

#include <fmt/format.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>

namespace lumen::dist {

namespace {

constexpr auto poll_interval = std::chrono::milliseconds(50);
constexpr auto beat_interval = std::chrono::milliseconds(500);
constexpr double silent_after_s = 3.0;  // a peer not heard from for this long is hung or dead
constexpr int beat_tag = 7;
constexpr size_t listed_peers = 16;     // the message names at most this many ranks one by one

template <size_t N>
void copy_text(char (&dst)[N], const std::string& src) {
    size_t n = std::min(src.size(), N - 1);
    std::memcpy(dst, src.data(), n);
    dst[n] = '\0';
}

double seconds(Watchdog::Clock::duration d) { return std::chrono::duration<double>(d).count(); }

}  // namespace

Watchdog::Watchdog(int rank, int world, double timeout_s) : rank_(rank), world_(world), timeout_s_(timeout_s) {
    if (!enabled()) return;
    comm_ = duplicate_world("watchdog");
    peers_.resize(size_t(world_));
    outgoing_.resize(size_t(world_));
    register_watchdog(this);
    thread_ = std::thread([this] { run(); });
}

Watchdog::~Watchdog() {
    stop();
    if (enabled()) unregister_watchdog(this);
}

uint64_t Watchdog::start(std::string label, std::function<bool()> is_done) {
    std::lock_guard lock(mutex_);
    uint64_t seq = next_seq_++;
    last_started_ = seq;
    last_label_ = label;
    if (enabled() && !stopping_) pending_.emplace(seq, Pending{std::move(label), Clock::now(), std::move(is_done)});
    return seq;
}

void Watchdog::done(uint64_t seq) {
    std::lock_guard lock(mutex_);
    pending_.erase(seq);
}

size_t Watchdog::pending() const {
    std::lock_guard lock(mutex_);
    return pending_.size();
}

void Watchdog::set_context(std::string context) {
    std::lock_guard lock(mutex_);
    context_ = std::move(context);
}

int64_t Watchdog::done_through_locked() const {
    return pending_.empty() ? int64_t(last_started_) : int64_t(pending_.begin()->first) - 1;
}

void Watchdog::stop() {
    if (stopped_.exchange(true) || !enabled()) return;
    {
        std::lock_guard lock(mutex_);
        stopping_ = true;
    }
    wake_.notify_all();
    if (thread_.joinable()) thread_.join();
    release_mpi();
}

void Watchdog::run() {
    auto next_beat = Clock::now();
    for (;;) {
        poll_pending();
        drain_heartbeats();
        if (Clock::now() >= next_beat) {
            send_heartbeats();
            next_beat = Clock::now() + beat_interval;
        }
        check_timeout();
        std::unique_lock lock(mutex_);
        if (wake_.wait_for(lock, poll_interval, [this] { return stopping_; })) return;
    }
}

void Watchdog::poll_pending() {
    std::lock_guard lock(mutex_);
    for (auto it = pending_.begin(); it != pending_.end();) {
        bool finished = false;
        if (it->second.is_done) {
            try {
                finished = it->second.is_done();
            } catch (...) {
                finished = true;  // NOTE: the error belongs to the main thread, which meets it at its next call
            }
        }
        it = finished ? pending_.erase(it) : std::next(it);
    }
}

void Watchdog::check_timeout() {
    std::string message;
    {
        std::lock_guard lock(mutex_);
        if (pending_.empty()) return;
        auto now = Clock::now();
        const auto& [seq, op] = *pending_.begin();  // the lowest number started first
        if (seconds(now - op.started) < timeout_s_) return;
        message = message_locked(seq, op, now);
    }
    std::fflush(stdout);
    std::fprintf(stderr, "%s\n", message.c_str());
    std::fflush(stderr);
    std::_Exit(3);  // NOTE: no unwinding: the main thread is stuck in the collective; mpirun stops the rest
}

std::string Watchdog::message_locked(uint64_t seq, const Pending& op, Clock::time_point now) const {
    std::string text = fmt::format("lumen dist: rank {}: {} (#{}{}{}) not done after {:.1f} s (dist.timeout_s = {:g})",
                                   rank_, op.label, seq, context_.empty() ? "" : ", ", context_,
                                   seconds(now - op.started), timeout_s_);
    std::vector<std::string> notes;
    int waiting_too = 0, finished = 0;
    for (int p = 0; p < world_; ++p) {
        if (p == rank_) continue;
        const Peer& peer = peers_[size_t(p)];
        if (!peer.heard) {
            notes.push_back(fmt::format("rank {} never reported: it is hung, dead or never started", p));
            continue;
        }
        const Beat& b = peer.beat;
        double age = seconds(now - peer.when);
        std::string verdict;
        if (age > silent_after_s) verdict = "it is hung or dead";
        else if (b.started < int64_t(seq)) verdict = fmt::format("it is behind (has not started #{})", seq);
        else if (b.done < int64_t(seq)) { ++waiting_too; continue; }
        else { ++finished; continue; }
        std::string label = b.label[0] ? fmt::format(" {}", b.label) : "";
        std::string context = b.context[0] ? fmt::format(" ({})", b.context) : "";
        notes.push_back(fmt::format("rank {} last reported: #{}{} started, #{} done{}, {:.1f} s ago: {}", p,
                                    b.started, label, b.done, context, age, verdict));
    }
    if (notes.size() > listed_peers) {
        size_t more = notes.size() - listed_peers;
        notes.resize(listed_peers);
        notes.push_back(fmt::format("and {} more ranks alike", more));
    }
    if (waiting_too > 0) notes.push_back(fmt::format("{} other rank(s) are waiting in #{} too", waiting_too, seq));
    if (finished > 0) notes.push_back(fmt::format("{} other rank(s) have finished #{}", finished, seq));
    if (world_ == 1) notes.push_back("this is a world of one: nothing to wait for");
    for (const auto& note : notes) text += "; " + note;
    return text + "; aborting the job";
}

void Watchdog::send_heartbeats() {
    Beat beat;
    {
        std::lock_guard lock(mutex_);
        beat.started = int64_t(last_started_);
        beat.done = done_through_locked();
        copy_text(beat.label, last_label_);
        copy_text(beat.context, context_);
    }
    for (int p = 0; p < world_; ++p) {
        if (p == rank_) continue;
        Outgoing& out = outgoing_[size_t(p)];
        if (out.request != MPI_REQUEST_NULL) {
            int finished = 0;
            MPI_Test(&out.request, &finished, MPI_STATUS_IGNORE);
            if (!finished) continue;  // NOTE: the last beat to this rank is still in flight: skip this one
        }
        out.beat = beat;
        if (MPI_Isend(&out.beat, int(sizeof(Beat)), MPI_BYTE, p, beat_tag, comm_, &out.request) != MPI_SUCCESS)
            out.request = MPI_REQUEST_NULL;
    }
}

void Watchdog::drain_heartbeats() {
    for (int i = 0; i < 4 * world_; ++i) {
        int arrived = 0;
        MPI_Status status;
        if (MPI_Iprobe(MPI_ANY_SOURCE, beat_tag, comm_, &arrived, &status) != MPI_SUCCESS || !arrived) return;
        Beat beat;
        if (MPI_Recv(&beat, int(sizeof(Beat)), MPI_BYTE, status.MPI_SOURCE, beat_tag, comm_, MPI_STATUS_IGNORE) !=
            MPI_SUCCESS)
            return;
        beat.label[sizeof(beat.label) - 1] = beat.context[sizeof(beat.context) - 1] = '\0';
        int source = status.MPI_SOURCE;
        if (source < 0 || source >= world_) continue;
        std::lock_guard lock(mutex_);
        peers_[size_t(source)] = Peer{beat, true, Clock::now()};
    }
}

void Watchdog::release_mpi() {
    int finalized = 0;
    MPI_Finalized(&finalized);
    if (finalized) return;
    // Sends still in flight: cancel them, give each a moment to settle, else let MPI finish them.
    auto deadline = Clock::now() + std::chrono::milliseconds(500);
    for (Outgoing& out : outgoing_) {
        if (out.request == MPI_REQUEST_NULL) continue;
        int finished = 0;
        MPI_Test(&out.request, &finished, MPI_STATUS_IGNORE);
        if (finished) continue;
        MPI_Cancel(&out.request);
        while (!finished && Clock::now() < deadline) MPI_Test(&out.request, &finished, MPI_STATUS_IGNORE);
        if (!finished) MPI_Request_free(&out.request);
    }
    drain_heartbeats();  // NOTE: receives are posted only after a probe found a message: none is pending
    free_comm(comm_);
}

}  // namespace lumen::dist
