// dist/mpi_detail.h: what the two communicator backends share inside dist/ (not a public header):
// checked MPI calls, the watchdog registry that MPI_Finalize drains, the MPI channel that carries
// host values (and, for the CPU backend, the tensors themselves), and the backend factories.
//
// Every collective is started nonblocking (MPI_I*) and completed by polling MPI_Test, so that the
// watchdog thread can act while the main thread waits, and errors come back as lumen::Error
// (the communicators use MPI_ERRORS_RETURN).
#pragma once

#include "dist/communicator.h"
#include "dist/watchdog.h"

#include <mpi.h>

#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace lumen::dist {

// Throws "dist <op>: <call> failed: <MPI's error string>" unless rc is MPI_SUCCESS.
void check_mpi(int rc, std::string_view op, std::string_view call);

// Watchdogs alive in this process: the MPI_Finalize at exit stops them first (their threads call MPI).
void register_watchdog(Watchdog* dog);
void unregister_watchdog(Watchdog* dog);

// A duplicate of MPI_COMM_WORLD with MPI_ERRORS_RETURN (collective), and its release (no-op once
// MPI is finalised).
MPI_Comm duplicate_world(std::string_view op);
void free_comm(MPI_Comm& comm);

// One communicator's MPI side: its own duplicate of MPI_COMM_WORLD, the watchdog that every
// collective registers with, and the blocking collectives on host memory.
class MpiChannel {
public:
    MpiChannel(const CommOptions& options);
    ~MpiChannel();
    MpiChannel(const MpiChannel&) = delete;
    MpiChannel& operator=(const MpiChannel&) = delete;

    MPI_Comm comm() const { return comm_; }
    int rank() const { return rank_; }
    int world() const { return world_; }
    Watchdog& watchdog() { return *watchdog_; }

    // Polls MPI_Test over `requests` until all are done, then tells the watchdog `seq` is done.
    void wait(std::vector<MPI_Request>& requests, uint64_t seq, std::string_view op);

    void all_reduce_sum_host(void* values, int64_t count, MPI_Datatype type, std::string_view op);
    // Bytes from `root` into `data` on every rank, in chunks of at most INT_MAX bytes.
    void broadcast_bytes(void* data, int64_t bytes, int root, std::string_view op);
    std::string broadcast_host(const std::string& value, int root);
    void barrier();

private:
    MPI_Comm comm_ = MPI_COMM_NULL;
    int rank_ = 0, world_ = 1;
    std::unique_ptr<Watchdog> watchdog_;
};

// What both backends share: the MPI channel (rank, world, the watchdog) and the host-side collectives.
class ChannelCommunicator : public Communicator {
public:
    explicit ChannelCommunicator(const CommOptions& options) : channel_(options) {
        rank_ = channel_.rank();
        world_ = channel_.world();
    }
    void all_reduce_sum_host(std::vector<double>& values) override {
        channel_.all_reduce_sum_host(values.data(), int64_t(values.size()), MPI_DOUBLE, "all_reduce_sum_host");
    }
    void all_reduce_sum_host(std::vector<int64_t>& values) override {
        channel_.all_reduce_sum_host(values.data(), int64_t(values.size()), MPI_INT64_T, "all_reduce_sum_host");
    }
    std::string broadcast_host(const std::string& value, int root) override {
        return channel_.broadcast_host(value, root);
    }
    void set_context(std::string context) override { channel_.watchdog().set_context(std::move(context)); }

protected:
    MpiChannel channel_;
};

// "broadcast: root 3 is not a rank of this job (world 2)" unless 0 <= root < world.
void check_root(int root, int world, std::string_view op);

std::unique_ptr<Communicator> make_mpi_communicator(Device device, const CommOptions& options);
#if LUMEN_WITH_NCCL
std::unique_ptr<Communicator> make_nccl_communicator(Device device, const CommOptions& options);
#endif

}  // namespace lumen::dist
