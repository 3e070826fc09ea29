// dist/mpi_communicator.cpp: the CPU backend of dist/communicator.h: collectives over MPI on the
// communicator's own duplicate of MPI_COMM_WORLD, in place on contiguous CPU tensors.
//
// f32, f64 and i64 sum with MPI's own MPI_SUM; bf16 travels as 2-byte elements through a user op
// that adds each pair in f32 and rounds to bf16 (nearest even), as NCCL's bf16 sum does. Async sums
// are MPI_Iallreduce; Work::wait() polls MPI_Test so the watchdog can act meanwhile.
#include "dist/mpi_detail.h"

#include "core/error.h"

#include <fmt/format.h>

#include <climits>

namespace lumen::dist {

namespace {

constexpr int64_t max_chunk = int64_t(1) << 30;  // elements per MPI call (counts are int)

// MPI_User_function: inout[i] = bf16(float(in[i]) + float(inout[i])).
void bf16_sum(void* in, void* inout, int* length, MPI_Datatype*) {
    const auto* a = static_cast<const uint16_t*>(in);
    auto* b = static_cast<uint16_t*>(inout);
    for (int i = 0; i < *length; ++i)
        b[i] = bf16::from_float(float(bf16::from_bits(a[i])) + float(bf16::from_bits(b[i])));
}

void check_tensor(const Tensor& t, std::string_view op, std::string_view name) {
    check(t.defined(), op, fmt::format("{} is an undefined tensor", name));
    check(t.device().is_cpu(), op, "the MPI backend takes CPU tensors (NCCL takes CUDA ones)", {{name, t}});
    check(t.is_contiguous(), op, "the tensor must be contiguous (collectives work in place on its storage)",
          {{name, t}});
}

class MpiWork final : public Work {
public:
    MpiWork(MpiChannel& channel, Tensor t, std::vector<MPI_Request> requests, uint64_t seq, std::string op)
        : channel_(channel), tensor_(std::move(t)), requests_(std::move(requests)), seq_(seq), op_(std::move(op)) {}
    ~MpiWork() override {
        if (waited_) return;
        try {
            wait();
        } catch (...) {  // NOTE: the buffer must not be freed under MPI; an error here has nobody to go to
        }
    }
    void wait() override {
        if (waited_) return;
        waited_ = true;
        channel_.wait(requests_, seq_, op_);
        tensor_ = Tensor();
    }

private:
    MpiChannel& channel_;
    Tensor tensor_;  // keeps the storage alive while MPI writes it
    std::vector<MPI_Request> requests_;
    uint64_t seq_;
    std::string op_;
    bool waited_ = false;
};

class MpiCommunicator final : public ChannelCommunicator {
public:
    explicit MpiCommunicator(const CommOptions& options) : ChannelCommunicator(options) {
        check_mpi(MPI_Op_create(&bf16_sum, 1, &bf16_sum_), "make_communicator", "MPI_Op_create(bf16 sum)");
    }
    ~MpiCommunicator() override {
        int finalized = 0;
        MPI_Finalized(&finalized);
        if (!finalized && bf16_sum_ != MPI_OP_NULL) MPI_Op_free(&bf16_sum_);
    }

    Backend backend() const override { return Backend::mpi; }
    Device device() const override { return Device::cpu(); }

    void all_reduce_sum(Tensor& t) override { start_sum(t, "all_reduce_sum", "tensor")->wait(); }

    std::unique_ptr<Work> all_reduce_sum_async(Tensor t, std::string_view what) override {
        return start_sum(t, "all_reduce_sum_async", what.empty() ? std::string_view("tensor") : what);
    }

    void broadcast(Tensor& t, int root) override {
        check_tensor(t, "dist broadcast", "tensor");
        channel_.broadcast_bytes(t.data_ptr(), t.numel() * int64_t(dtype_size(t.dtype())), root, "broadcast");
    }

    void barrier() override { channel_.barrier(); }

private:
    // Starts the in-place sum of `t` (one MPI_Iallreduce per 2^30 elements).
    std::unique_ptr<MpiWork> start_sum(const Tensor& t, std::string_view op, std::string_view name) {
        std::string where = fmt::format("dist {}", op);
        check_tensor(t, where, name);
        MPI_Datatype type = MPI_DATATYPE_NULL;
        MPI_Op sum = MPI_SUM;
        switch (t.dtype()) {
            case DType::f32: type = MPI_FLOAT; break;
            case DType::f64: type = MPI_DOUBLE; break;
            case DType::i64: type = MPI_INT64_T; break;
            case DType::bf16: type = MPI_UINT16_T; sum = bf16_sum_; break;
            default:
                fail(where, "sums f32, bf16, f64 or i64 tensors", {{name, t}});
        }
        std::string label = fmt::format("all_reduce '{}'", name);
        uint64_t seq = channel_.watchdog().start(label);
        std::vector<MPI_Request> requests;
        auto* data = static_cast<char*>(t.data_ptr());
        const int64_t element = int64_t(dtype_size(t.dtype()));
        for (int64_t at = 0; at < t.numel(); at += max_chunk) {
            int n = int(std::min(max_chunk, t.numel() - at));
            requests.push_back(MPI_REQUEST_NULL);
            int rc = MPI_Iallreduce(MPI_IN_PLACE, data + at * element, n, type, sum, channel_.comm(), &requests.back());
            if (rc != MPI_SUCCESS) {
                requests.pop_back();
                channel_.wait(requests, seq, label);
                check_mpi(rc, op, "MPI_Iallreduce");
            }
        }
        return std::make_unique<MpiWork>(channel_, t, std::move(requests), seq, label);
    }

    MPI_Op bf16_sum_ = MPI_OP_NULL;
};

}  // namespace

std::unique_ptr<Communicator> make_mpi_communicator(Device device, const CommOptions& options) {
    if (!device.is_cpu())
        throw Error(fmt::format("dist make_communicator: the MPI backend takes CPU tensors, asked for {} "
                                "(CUDA tensors need the NCCL backend)", device.str()));
    return std::make_unique<MpiCommunicator>(options);
}

}  // namespace lumen::dist
