// dist/nccl_communicator.cpp: the CUDA backend of dist/communicator.h: NCCL collectives on the
// communicator's own stream, ordered against the device's compute stream by events. Built only
// when CMake finds NCCL (LUMEN_WITH_NCCL).
//
// One collective:   compute stream ──record ready──▶ comm stream waits on ready
//                   comm stream: ncclAllReduce / ncclBroadcast ──record done──▶
//                   sync call: compute stream waits on done before the call returns;
//                   async call: Work::wait() makes the compute stream wait on done.
// The host never blocks on the GPU (barrier aside). Host values and the NCCL unique id go through
// MPI (dist/mpi_channel.cpp), on the same watchdog, so every rank numbers its collectives alike.
#include "dist/mpi_detail.h"

#include "core/error.h"
#include "cuda/runtime.h"

#include <nccl.h>

#include <fmt/format.h>

#include <atomic>
#include <cstdlib>
#include <exception>

namespace lumen::dist {

namespace {

void check_nccl(ncclResult_t result, std::string_view op, std::string_view call, ncclComm_t comm = nullptr) {
    if (result == ncclSuccess) [[likely]] return;
    const char* detail = ncclGetLastError(comm);
    throw Error(fmt::format("dist {}: {} failed: {}{}{}", op, call, ncclGetErrorString(result),
                            detail && *detail ? ": " : "", detail ? detail : ""));
}

ncclDataType_t nccl_type(const Tensor& t, std::string_view op, std::string_view name) {
    switch (t.dtype()) {
        case DType::f32: return ncclFloat32;
        case DType::bf16: return ncclBfloat16;
        case DType::f64: return ncclFloat64;
        case DType::i64: return ncclInt64;
        default: fail(op, "sums f32, bf16, f64 or i64 tensors", {{name, t}});
    }
}

// A CUDA event that the watchdog may still poll after the op's Work is gone.
struct OpEvent {
    cudaEvent_t event = nullptr;
    std::atomic<bool> recorded{false};  // NOTE: an event never recorded reads as done: poll only once it is
    int device = 0;
    OpEvent(int device_index) : device(device_index) {
        LUMEN_CUDA_CHECK(cudaEventCreateWithFlags(&event, cudaEventDisableTiming));
    }
    ~OpEvent() { cudaEventDestroy(event); }
    OpEvent(const OpEvent&) = delete;
    OpEvent& operator=(const OpEvent&) = delete;
};

class NcclWork final : public Work {
public:
    NcclWork(Tensor t, std::shared_ptr<OpEvent> done) : tensor_(std::move(t)), done_(std::move(done)) {}
    ~NcclWork() override {
        if (waited_) return;
        try {
            wait();
        } catch (...) {  // NOTE: the compute stream must still be ordered after the op; nobody to report to
        }
    }
    void wait() override {
        if (waited_) return;
        waited_ = true;
        cuda::set_device(done_->device);
        LUMEN_CUDA_CHECK(cudaStreamWaitEvent(cuda::compute_stream(done_->device), done_->event, 0));
        tensor_ = Tensor();  // NOTE: freed blocks are reused on the compute stream, now ordered after the op
    }

private:
    Tensor tensor_;  // keeps the buffer alive until the compute stream is ordered after the op
    std::shared_ptr<OpEvent> done_;
    bool waited_ = false;
};

class NcclCommunicator final : public ChannelCommunicator {
public:
    NcclCommunicator(Device device, const CommOptions& options) : ChannelCommunicator(options), device_(device) {
        cuda::set_device(device_.index);
        // NOTE: NVLink multicast (NVLS) stays off, whatever the environment says: see the README, "Data-parallel training"
        setenv("NCCL_NVLS_ENABLE", "0", 1);
        ncclUniqueId id{};
        if (rank_ == 0) check_nccl(ncclGetUniqueId(&id), "make_communicator", "ncclGetUniqueId");
        channel_.broadcast_bytes(&id, sizeof(id), 0, "make_communicator (NCCL unique id)");
        uint64_t seq = channel_.watchdog().start("ncclCommInitRank");
        ncclResult_t result = ncclCommInitRank(&comm_, world_, id, rank_);
        channel_.watchdog().done(seq);
        check_nccl(result, "make_communicator", fmt::format("ncclCommInitRank (rank {} of {}, {})", rank_, world_,
                                                            device_.str()));
        LUMEN_CUDA_CHECK(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking));
    }

    ~NcclCommunicator() override {
        if (comm_) {
            cuda::set_device(device_.index);
            if (std::uncaught_exceptions() > 0) {
                // NOTE: unwinding from an error: the other ranks may never join the ops in flight
                ncclCommAbort(comm_);
            } else {
                cudaStreamSynchronize(stream_);  // the watchdog (still running) aborts if a peer never comes
                ncclCommDestroy(comm_);
            }
        }
        if (stream_) cudaStreamDestroy(stream_);
    }

    Backend backend() const override { return Backend::nccl; }
    Device device() const override { return device_; }

    void all_reduce_sum(Tensor& t) override { order_compute_after(sum(t, "all_reduce_sum", "tensor")); }

    std::unique_ptr<Work> all_reduce_sum_async(Tensor t, std::string_view what) override {
        auto done = sum(t, "all_reduce_sum_async", what.empty() ? std::string_view("tensor") : what);
        return std::make_unique<NcclWork>(std::move(t), std::move(done));
    }

    void broadcast(Tensor& t, int root) override {
        check_tensor(t, "dist broadcast", "tensor");
        check_root(root, world_, "broadcast");
        const size_t bytes = size_t(t.numel()) * dtype_size(t.dtype());
        auto done = launch(fmt::format("broadcast from rank {}", root), [&] {
            check_nccl(ncclBroadcast(t.data_ptr(), t.data_ptr(), bytes, ncclUint8, root, comm_, stream_), "broadcast",
                       "ncclBroadcast", comm_);
        });
        order_compute_after(done);
    }

    void barrier() override {
        cuda::set_device(device_.index);
        LUMEN_CUDA_CHECK(cudaStreamSynchronize(cuda::compute_stream(device_.index)));
        LUMEN_CUDA_CHECK(cudaStreamSynchronize(stream_));
        channel_.barrier();
    }

private:
    void check_tensor(const Tensor& t, std::string_view op, std::string_view name) const {
        check(t.defined(), op, fmt::format("{} is an undefined tensor", name));
        check(t.device() == device_, op,
              fmt::format("the NCCL communicator takes tensors on {} (MPI takes CPU ones)", device_.str()),
              {{name, t}});
        check(t.is_contiguous(), op, "the tensor must be contiguous (collectives work in place on its storage)",
              {{name, t}});
    }

    std::shared_ptr<OpEvent> sum(const Tensor& t, std::string_view op, std::string_view name) {
        std::string where = fmt::format("dist {}", op);
        check_tensor(t, where, name);
        ncclDataType_t type = nccl_type(t, where, name);
        return launch(fmt::format("all_reduce '{}'", name), [&] {
            check_nccl(ncclAllReduce(t.data_ptr(), t.data_ptr(), size_t(t.numel()), type, ncclSum, comm_, stream_),
                       op, "ncclAllReduce", comm_);
        });
    }

    // Orders `enqueue` (an NCCL call on stream_) after the compute stream's work; returns the event
    // recorded after it, which the watchdog polls from now on.
    template <typename Enqueue>
    std::shared_ptr<OpEvent> launch(std::string label, Enqueue&& enqueue) {
        const int index = device_.index;
        cuda::set_device(index);
        cudaStream_t compute = cuda::compute_stream(index);
        OpEvent ready(index);
        LUMEN_CUDA_CHECK(cudaEventRecord(ready.event, compute));
        LUMEN_CUDA_CHECK(cudaStreamWaitEvent(stream_, ready.event, 0));
        auto done = std::make_shared<OpEvent>(index);
        // NOTE: registered before the NCCL call, which can block the host (connection setup with peers)
        uint64_t seq = channel_.watchdog().start(std::move(label), [done] {
            if (!done->recorded.load()) return false;
            cuda::set_device(done->device);
            return cudaEventQuery(done->event) != cudaErrorNotReady;
        });
        try {
            enqueue();
            LUMEN_CUDA_CHECK(cudaEventRecord(done->event, stream_));
        } catch (...) {
            channel_.watchdog().done(seq);
            throw;
        }
        done->recorded = true;
        return done;
    }

    void order_compute_after(const std::shared_ptr<OpEvent>& done) {
        LUMEN_CUDA_CHECK(cudaStreamWaitEvent(cuda::compute_stream(device_.index), done->event, 0));
    }

    Device device_;
    ncclComm_t comm_ = nullptr;
    cudaStream_t stream_ = nullptr;
};

}  // namespace

std::unique_ptr<Communicator> make_nccl_communicator(Device device, const CommOptions& options) {
    if (!device.is_cuda())
        throw Error(fmt::format("dist make_communicator: the NCCL backend takes CUDA tensors, asked for {} "
                                "(CPU tensors need the MPI backend)", device.str()));
    if (device.index < 0 || device.index >= cuda::device_count())
        throw Error(fmt::format("dist make_communicator: {} does not exist ({} CUDA devices visible)", device.str(),
                                cuda::device_count()));
    return std::make_unique<NcclCommunicator>(device, options);
}

}  // namespace lumen::dist
