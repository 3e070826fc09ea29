// dist/watchdog.h: the collective timeout. One per communicator: a thread that watches the
// collectives in flight and aborts the process when the oldest has not finished after timeout_s,
// with a message that says what is known of the other ranks' progress.
//
//   Watchdog dog(rank, world, timeout_s);              // collective: every rank builds one together
//   uint64_t seq = dog.start("all_reduce 'bucket 3'"); // the backend: an operation begins
//   ...                                                // MPI_Test until it completes
//   dog.done(seq);                                     // ...and it is known done
//   dog.start("all_reduce", [ev] { return cudaEventQuery(ev) != cudaErrorNotReady; });  // NCCL:
//                                                      // the thread polls the op's end event
//
// Heartbeat: every ~0.5 s each rank sends {last started #, last done #, label, context} to every
// other rank on the watchdog's own duplicate of MPI_COMM_WORLD (nonblocking), and drains what
// arrived. The timeout message then reads
//   "lumen dist: rank 0: all_reduce 'bucket 3' (#17, iteration 5) not done after 30 s
//    (dist.timeout_s); rank 1 last reported #12 started, #12 done (iteration 4) 29.1 s ago: it is
//    hung or dead; aborting the job"
// and the process ends with std::_Exit(3): mpirun then stops the other ranks.
//
// Every rank numbers its collectives 1, 2, ... in issue order, so equal numbers are the same
// collective on every rank. timeout_s = 0 disables the watchdog (no thread, no heartbeat).
// NOTE: the thread calls MPI while the main thread does: ensure_mpi() provides MPI_THREAD_MULTIPLE.
#pragma once

#include <mpi.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace lumen::dist {

class Watchdog {
public:
    using Clock = std::chrono::steady_clock;

    // Duplicates MPI_COMM_WORLD for the heartbeat (collective) unless timeout_s is 0.
    Watchdog(int rank, int world, double timeout_s);
    ~Watchdog();  // stops the thread; frees the heartbeat requests and communicator
    Watchdog(const Watchdog&) = delete;
    Watchdog& operator=(const Watchdog&) = delete;

    // Registers an operation that begins now; returns its sequence number (1, 2, ...).
    // `is_done`, when given, is polled by the thread (~every 50 ms) and the op ends when it
    // returns true; otherwise the caller ends it with done(seq).
    uint64_t start(std::string label, std::function<bool()> is_done = {});
    void done(uint64_t seq);
    // Ops registered with `is_done` that the thread has not yet seen finish.
    size_t pending() const;

    // "iteration 12": printed with this rank's ops and sent to the others.
    void set_context(std::string context);
    double timeout_s() const { return timeout_s_; }
    bool enabled() const { return timeout_s_ > 0; }

    // Ends the thread and releases the MPI resources (idempotent; also run before MPI_Finalize).
    void stop();

private:
    struct Pending {
        std::string label;
        Clock::time_point started;
        std::function<bool()> is_done;
    };
    // What a peer last said about itself (fixed size: sent as bytes).
    struct Beat {
        int64_t started = 0, done = 0;
        char label[64] = {};
        char context[96] = {};
    };
    struct Peer {
        Beat beat;
        bool heard = false;
        Clock::time_point when;
    };
    struct Outgoing {
        Beat beat;
        MPI_Request request = MPI_REQUEST_NULL;  // the send in flight, if any
    };

    void run();
    void poll_pending();
    void check_timeout();
    void send_heartbeats();
    void drain_heartbeats();
    void release_mpi();
    std::string message_locked(uint64_t seq, const Pending& op, Clock::time_point now) const;
    int64_t done_through_locked() const;  // every op up to this number is done

    int rank_, world_;
    double timeout_s_;
    MPI_Comm comm_ = MPI_COMM_NULL;  // the heartbeat's own duplicate of MPI_COMM_WORLD

    mutable std::mutex mutex_;
    std::condition_variable wake_;
    std::map<uint64_t, Pending> pending_;
    uint64_t next_seq_ = 1;
    uint64_t last_started_ = 0;
    std::string last_label_, context_;
    std::vector<Peer> peers_;
    std::vector<Outgoing> outgoing_;
    bool stopping_ = false;
    std::atomic<bool> stopped_{false};
    std::thread thread_;
};

}  // namespace lumen::dist
