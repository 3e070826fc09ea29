// dist/grad_reducer.h: data-parallel gradient reduction: the trainable parameters' gradients live
// in flat f32 buckets, and each bucket is all-reduced (summed over the ranks) as soon as every
// gradient in it is final in the last micro-step's backward, overlapping communication with the
// rest of backward.
//
//   dist::GradReducer reducer(*comm, optimizer.parameters(), {.wire = DType::bf16, .bucket_mb = 25});
//   for (micro ...) {
//       if (last micro-step) reducer.arm();   // installs the leaf-gradient listener (this thread)
//       (loss * (1.0 / ga_global)).backward();  // earlier micro-steps just accumulate into the buckets
//   }
//   reducer.finish();                         // every param.grad = the sum over the ranks
//   optimizer.step(...); optimizer.zero_grad();
//
// Buckets: the parameters in REVERSE registration order (gradients become final roughly from the
// last layer back), each bucket at most bucket_mb MiB of f32 (a larger tensor gets a bucket of its
// own). Each bucket is one contiguous f32 buffer on the parameters' device, and every parameter's
// .grad is a contiguous view into it (gradient as bucket view), so the engine's += and the
// optimizer's in-place zero_grad work on the bucket itself and an f32 all-reduce needs no copy.
// bf16 wire: the bucket is cast into a preallocated bf16 buffer, that is summed (in bf16), and the
// sum is cast back into the f32 bucket in finish(). arm() re-attaches a view whose parameter's
// .grad was replaced or dropped since (copying the replacement's values in, or zeroing).
//
// A bucket is launched (Communicator::all_reduce_sum_async) from inside backward when the engine
// reports its last parameter's gradient final (autograd/node.h, LeafGradListener); finish()
// launches the buckets still waiting (parameters that got no gradient send their zeros) in bucket
// order, then waits for all in launch order. Every rank must launch the same buckets in the same
// order, which holds when every rank runs the same graph. A parameter reported final twice in
// one armed backward, or after its bucket was launched, is an error naming it: its contribution
// would be missing from the sum.
//
// Host/device ordering (dist/communicator.h): on NCCL an async call is ordered after the work
// already queued on the compute stream, so the engine's += into the bucket (queued before the
// listener runs) is part of what is sent; later backward kernels run while the bucket is in
// flight (they never touch a launched bucket: its gradients are final); wait() makes the compute
// stream wait, so the bf16 cast back and the optimizer step queued after finish() see the sum. On
// MPI the calls block the host in wait(). The host never reads gradient values here.
#pragma once

#include "autograd/node.h"
#include "dist/communicator.h"
#include "nn/parameter.h"

#include <memory>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

namespace lumen::dist {

struct ReducerOptions {
    DType wire = DType::f32;  // f32 | bf16: the dtype the ranks exchange
    double bucket_mb = 25;    // MiB of f32 gradient per bucket (> 0)
};

class GradReducer : private autograd::LeafGradListener {
public:
    // `params`: the optimizer's parameters (trainable, f32, on comm.device(), each once). Sets
    // every .grad to its bucket view (keeping the values of a gradient already there).
    GradReducer(Communicator& comm, std::vector<nn::Parameter> params, ReducerOptions options = {});
    ~GradReducer() override;
    GradReducer(const GradReducer&) = delete;
    GradReducer& operator=(const GradReducer&) = delete;

    // Before the last micro-step's backward, on the thread that runs it.
    void arm();
    // After that backward, on the same thread: launches the rest, waits for all, disarms.
    void finish();
    bool armed() const { return listening_.has_value(); }
    // Zeroes every bucket (every parameter's gradient) in place: one fill per bucket. With ZeRO-1
    // this replaces Optimizer::zero_grad, which reaches only the rank's own parameters.
    void zero_grad();

    // "gradient buckets: 7 (25 MB), f32 on the wire"
    std::vector<std::string> report() const;

    size_t num_buckets() const { return buckets_.size(); }
    // Parameter names of bucket b, in bucket order (tests, reports).
    std::vector<std::string> bucket_names(size_t b) const;
    // Buckets the last armed backward launched from inside backward (the rest: by finish()).
    size_t launched_in_backward() const { return launched_in_backward_; }

private:
    struct Slot {
        nn::Parameter param;
        size_t bucket = 0;
        Tensor view;  // the .grad this parameter must have: a view into its bucket
        bool fired = false;
    };
    struct Bucket {
        std::vector<size_t> slots;
        Tensor flat;  // (numel,) f32
        Tensor wire;  // (numel,) bf16 (bf16 wire only)
        size_t fired = 0;
        bool launched = false;
        std::unique_ptr<Work> work;
    };

    void gradient_final(TensorImpl& leaf) override;
    void launch(size_t b);

    Communicator& comm_;
    ReducerOptions options_;
    std::vector<Slot> slots_;
    std::vector<Bucket> buckets_;
    std::unordered_map<const TensorImpl*, size_t> slot_of_;
    std::vector<size_t> launch_order_;
    size_t launched_in_backward_ = 0;
    std::optional<autograd::ListenLeafGradients> listening_;
};

}  // namespace lumen::dist
