// training/data_parallel.h: what the trainer does differently when it is one rank of a data-parallel
// job (mpirun -np N ./train CONFIG, or ./train CONFIG --nproc N): the communicator (NCCL on a GPU,
// MPI on the CPU), the gradient reducer, ZeRO-1, and the small agreements between ranks (losses,
// counters, optical statistics, stop requests). A single-process run has no DataParallel at all.
//
// The rules (README "Data-parallel training"): gradient_accumulation_steps is global, each rank runs
// GA/W micro-steps on its slice of each global sample; each micro loss is scaled by 1/GA and the
// gradients are summed, so every rank holds the mean gradient of the global batch and steps the same
// optimizer identically. Rank 0 prints, writes metrics and checkpoints; every rank evaluates its slice.
#pragma once

#include "dist/communicator.h"
#include "nn/gpt.h"
#include "optim/optimizer.h"
#include "training/train_config.h"

#include <memory>
#include <string>
#include <vector>

namespace lumen::dist {
class GradReducer;
struct ZeroPlan;
}  // namespace lumen::dist

namespace lumen::training {

class DataParallel {
public:
    // Every rank calls it together (the communicator is built collectively).
    DataParallel(const dist::Launch& launch, Device device, const DistConfig& config);
    ~DataParallel();

    int rank() const { return comm_->rank(); }
    int world() const { return comm_->world(); }
    dist::Communicator& comm() { return *comm_; }

    // The optimizer this rank steps (ZeRO-1: over its own parameters only; every group kept, so the
    // state names match a single process's), and the gradient reducer over `params` (the trainable
    // parameters, all of them, in model order). Call again when the model's parameters change.
    std::unique_ptr<optim::Optimizer> make_optimizer(const std::vector<nn::Parameter>& params,
                                                     const optim::GroupConfig& groups);
    // Every trainable parameter in the full optimizer's order (the gradients to clip, summed in the
    // one-process order: under ZeRO-1 the optimizer holds only this rank's share).
    const std::vector<nn::Parameter>& parameters() const { return in_group_order_; }
    // Before the backward of the last micro-step: buckets start as their gradients are final.
    void arm();
    // Zeroes every gradient (in place: the gradients are views into the buckets); replaces
    // Optimizer::zero_grad, which under ZeRO-1 reaches only this rank's parameters.
    void zero_grad();
    // After it: every gradient is the sum over the ranks.
    void finish_gradients();
    // After optimizer.step: ZeRO-1 broadcasts each parameter from its owner; then the optical range
    // statistics are averaged over the ranks (specs/optical.md §4).
    void after_step(nn::GPT& model);

    // The optimizer state as one process would save it: a collective; under ZeRO-1 gathered into rank 0
    // (the other ranks get an empty one).
    optim::StateDict full_state(const optim::Optimizer& optimizer);
    // Loads this rank's part of a full state (from a checkpoint) into its optimizer.
    void load_state(optim::Optimizer& optimizer, const optim::StateDict& full);

    // In place: the sum over the ranks of a device tensor (f32, f64 or i64).
    void sum(Tensor& t) { comm_->all_reduce_sum(t); }
    void sum_host(std::vector<int64_t>& values) { comm_->all_reduce_sum_host(values); }
    // True on every rank when any rank asks to stop (a signal reached it).
    bool any(bool local);
    void set_iteration(int64_t iteration);

    // Lines for the start-up report: world, backend, buckets, ZeRO-1.
    std::vector<std::string> report() const;

private:
    DistConfig config_;
    std::unique_ptr<dist::Communicator> comm_;
    std::unique_ptr<dist::GradReducer> reducer_;
    std::unique_ptr<dist::ZeroPlan> zero_;  // ZeRO-1 only
    std::vector<nn::Parameter> params_;          // what the reducer covers, in model order
    std::vector<nn::Parameter> in_group_order_;  // the same in the optimizer groups' order
};

// Rank r of W under mpirun: stdout goes to /dev/null on every rank but 0 (errors still reach stderr,
// prefixed with the rank by train_main), and NCCL_NVLS_ENABLE=0 is set.
void quiet_other_ranks(const dist::Launch& launch);

// ./train CONFIG --nproc N: runs `mpirun -np N <this program> <args without --nproc>` in place of this
// process (execvp; returns only on failure, with the error). NCCL_NVLS_ENABLE=0 is exported.
[[noreturn]] void exec_mpirun(int nproc, int argc, char** argv);

}  // namespace lumen::training
