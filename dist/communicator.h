// dist/communicator.h: the collectives data-parallel training needs, behind one interface with two
// backends: NCCL for CUDA tensors (dist/nccl_communicator.cpp) and MPI for CPU tensors
// (dist/mpi_communicator.cpp). MPI also launches the processes and hands NCCL its unique id.
//
//   dist::Launch launch = dist::detect_launch();            // rank, world, local rank from mpirun
//   auto comm = dist::make_communicator(launch, Device::cuda(launch.local_rank), {.timeout_s = 300});
//   comm->all_reduce_sum(grads);                            // in place, every rank gets the sum
//   auto work = comm->all_reduce_sum_async(bucket, "bucket 3");
//   ...                                                     // more backward work
//   work->wait();                                           // the sum is in `bucket` from here on
//
// Ordering: on NCCL every call is ordered after the work already queued on the device's compute
// stream and before the work queued after it returns (async calls: after wait() returns); the host
// does not block. On MPI (CPU tensors) calls block the host, async calls block in wait().
//
// Every rank must issue the same collectives in the same order. A collective that has not finished
// after `timeout_s` seconds aborts the process with a message naming this rank, the operation and
// what is known of the other ranks' progress (dist/watchdog.h); mpirun then stops the whole job.
#pragma once

#include "core/tensor.h"

#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace lumen::dist {

// Where this process stands in the job, read from the launcher's environment (Open MPI's
// OMPI_COMM_WORLD_* variables, or MPI itself once initialised). world = 1 when not launched by mpirun.
struct Launch {
    int rank = 0, world = 1;
    int local_rank = 0, local_world = 1;  // among the ranks of this host: picks the GPU
    bool under_mpirun = false;            // started by mpirun (or ./train --nproc, which execs mpirun)
};
// From the environment alone (before MPI is initialised; no MPI call).
Launch detect_launch();

// MPI for the whole process: initialised (MPI_THREAD_MULTIPLE) on first use and finalised at exit.
// Safe to call many times. A singleton run (not under mpirun) initialises MPI as a world of one.
void ensure_mpi();

enum class Backend { mpi, nccl };
std::string_view backend_name(Backend b);  // "mpi" | "nccl"

struct CommOptions {
    double timeout_s = 300;  // a collective not done after this aborts the job (0 = never)
};

// An operation started by an *_async call. It must not outlive the communicator that made it; one
// dropped without wait() waits in its destructor (the buffer stays alive until then).
class Work {
public:
    virtual ~Work() = default;
    // NCCL: makes the compute stream wait for the operation (host does not block); MPI: blocks
    // until it is done. Calling wait() twice is allowed (the second does nothing).
    virtual void wait() = 0;
};

class Communicator {
public:
    virtual ~Communicator() = default;
    int rank() const { return rank_; }
    int world() const { return world_; }
    virtual Backend backend() const = 0;
    virtual Device device() const = 0;  // tensors passed in must live here

    // Sum over the ranks, in place. `t` is contiguous, f32, bf16, f64 or i64, on device().
    // bf16 is summed in bf16 precision by the backend (NCCL's native bf16; MPI through a user op).
    virtual void all_reduce_sum(Tensor& t) = 0;
    virtual std::unique_ptr<Work> all_reduce_sum_async(Tensor t, std::string_view what) = 0;
    // Rank `root`'s values into `t` on every rank (same shape and dtype everywhere), in place.
    virtual void broadcast(Tensor& t, int root) = 0;
    // Waits until every rank has arrived (also drains this rank's queued device work).
    virtual void barrier() = 0;
    // Host values (log lines, counters, small metadata): summed over the ranks through MPI, blocking.
    virtual void all_reduce_sum_host(std::vector<double>& values) = 0;
    virtual void all_reduce_sum_host(std::vector<int64_t>& values) = 0;
    // Rank `root`'s string on every rank (JSON metadata, e.g. optimizer state names), blocking.
    virtual std::string broadcast_host(const std::string& value, int root) = 0;

    // The iteration the collectives belong to, for the timeout message ("iteration 12").
    virtual void set_context(std::string context) = 0;

protected:
    int rank_ = 0, world_ = 1;
};

// The backend for `device`: NCCL for a CUDA device (this build must have NCCL), MPI for the CPU.
// Initialises MPI (ensure_mpi) and, for NCCL, exchanges the unique id through MPI and selects the
// GPU. Every rank of the job must call it together.
std::unique_ptr<Communicator> make_communicator(Device device, const CommOptions& options);

// Test and tool hook: the communicator for `backend` regardless of the device's kind; throws when
// the build lacks it ("this build has no NCCL support").
std::unique_ptr<Communicator> make_communicator(Backend backend, Device device, const CommOptions& options);

// True when this build has the NCCL backend.
bool built_with_nccl();

}  // namespace lumen::dist
