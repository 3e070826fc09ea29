// dist/mpi_channel.cpp: one communicator's MPI side (dist/mpi_detail.h): its duplicate of
// MPI_COMM_WORLD, its watchdog, the polled wait every collective ends in, and the host collectives
// both backends use (sums of log values and counters, string broadcast, barrier).
#include "dist/mpi_detail.h"

#include "core/error.h"

#include <fmt/format.h>

#include <algorithm>
#include <climits>
#include <cmath>
#include <thread>

namespace lumen::dist {

namespace {
constexpr int64_t max_chunk_bytes = int64_t(1) << 30;  // NOTE: MPI counts are int
}

void check_root(int root, int world, std::string_view op) {
    if (root < 0 || root >= world)
        throw Error(fmt::format("dist {}: root {} is not a rank of this job (world {})", op, root, world));
}

MpiChannel::MpiChannel(const CommOptions& options) {
    if (!(options.timeout_s >= 0) || !std::isfinite(options.timeout_s))
        throw Error(fmt::format("dist: timeout_s must be a finite number of seconds >= 0 (0 = no timeout), "
                                "found {}", options.timeout_s));
    ensure_mpi();
    comm_ = duplicate_world("make_communicator");
    check_mpi(MPI_Comm_rank(comm_, &rank_), "make_communicator", "MPI_Comm_rank");
    check_mpi(MPI_Comm_size(comm_, &world_), "make_communicator", "MPI_Comm_size");
    watchdog_ = std::make_unique<Watchdog>(rank_, world_, options.timeout_s);
}

MpiChannel::~MpiChannel() {
    watchdog_.reset();  // NOTE: its thread first: it may be using MPI
    free_comm(comm_);
}

void MpiChannel::wait(std::vector<MPI_Request>& requests, uint64_t seq, std::string_view op) {
    for (int spins = 0;; ++spins) {
        int finished = 0;
        int rc = MPI_Testall(int(requests.size()), requests.data(), &finished, MPI_STATUSES_IGNORE);
        if (rc != MPI_SUCCESS) {
            watchdog_->done(seq);
            check_mpi(rc, op, "MPI_Testall");
        }
        if (finished) break;
        // NOTE: spin briefly for short collectives, then sleep so a waiting rank leaves the core to others
        if (spins < 2000) std::this_thread::yield();
        else std::this_thread::sleep_for(std::chrono::microseconds(50));
    }
    watchdog_->done(seq);
}

void MpiChannel::all_reduce_sum_host(void* values, int64_t count, MPI_Datatype type, std::string_view op) {
    if (count > INT_MAX) throw Error(fmt::format("dist {}: {} values are too many for one host sum", op, count));
    uint64_t seq = watchdog_->start(std::string(op));
    std::vector<MPI_Request> requests(1, MPI_REQUEST_NULL);
    int rc = MPI_Iallreduce(MPI_IN_PLACE, values, int(count), type, MPI_SUM, comm_, &requests[0]);
    if (rc != MPI_SUCCESS) watchdog_->done(seq);
    check_mpi(rc, op, "MPI_Iallreduce");
    wait(requests, seq, op);
}

void MpiChannel::broadcast_bytes(void* data, int64_t bytes, int root, std::string_view op) {
    check_root(root, world_, op);
    uint64_t seq = watchdog_->start(fmt::format("{} from rank {}", op, root));
    std::vector<MPI_Request> requests;
    for (int64_t at = 0; at < bytes; at += max_chunk_bytes) {
        int n = int(std::min(max_chunk_bytes, bytes - at));
        requests.push_back(MPI_REQUEST_NULL);
        int rc = MPI_Ibcast(static_cast<char*>(data) + at, n, MPI_BYTE, root, comm_, &requests.back());
        if (rc != MPI_SUCCESS) {
            requests.pop_back();
            wait(requests, seq, op);  // NOTE: the chunks already started must finish before the throw
            check_mpi(rc, op, "MPI_Ibcast");
        }
    }
    wait(requests, seq, op);
}

std::string MpiChannel::broadcast_host(const std::string& value, int root) {
    int64_t length = int64_t(value.size());
    broadcast_bytes(&length, sizeof(length), root, "broadcast_host length");
    std::string out = rank_ == root ? value : std::string(size_t(length), '\0');
    broadcast_bytes(out.data(), length, root, "broadcast_host");
    return out;
}

void MpiChannel::barrier() {
    uint64_t seq = watchdog_->start("barrier");
    std::vector<MPI_Request> requests(1, MPI_REQUEST_NULL);
    int rc = MPI_Ibarrier(comm_, &requests[0]);
    if (rc != MPI_SUCCESS) watchdog_->done(seq);
    check_mpi(rc, "barrier", "MPI_Ibarrier");
    wait(requests, seq, "barrier");
}

}  // namespace lumen::dist
