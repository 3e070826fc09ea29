// dist/zero1.h: ZeRO stage 1 over optim::Optimizer: the optimizer state is partitioned across the
// ranks by whole parameter tensors; each rank steps only the parameters it owns, then every
// parameter is broadcast from its owner, so all ranks hold the same weights again.
//
//   dist::ZeroPlan plan = dist::plan_shards(all_params, comm.world());   // all_params: the full groups' order
//   optim::Optimizer opt(dist::own_groups(full_groups, plan, comm.rank()));
//   reducer.finish();                                       // every rank: every summed gradient
//   opt.step({.lr_scale = s, .flags = optim::clip_flags(all_params, clip, loss)});  // flags: from ALL params
//   dist::broadcast_parameters(comm, all_params, plan);     // owners -> everyone
//   reducer.zero_grad();                                    // NOT opt.zero_grad(): that zeroes only its own
//   optim::StateDict sd = dist::gather_state_dict(comm, opt, plan);  // collective; full on rank 0
//   dist::load_own_state(opt, sd_from_file, plan, comm.rank());
//
// Plan (plan_shards): whole tensors, largest numel first (ties: earlier in the optimizer's order),
// each to the least-loaded rank so far by elements (ties: the lowest rank): deterministic, so every
// rank computes the same plan. A rank's optimizer keeps every group, possibly empty, so its group
// count, kinds, step counts and name equal the full optimizer's (the rules take empty groups).
//
// Checkpoints are interchangeable with a non-ZeRO run: gather_state_dict collects (broadcast from each
// owner) a StateDict whose tensor names, order and metadata equal what optim::Optimizer over the
// full groups saves; load_own_state takes each rank's own parameters' entries (and the
// shared ones, such as adamw8bit's qmaps) from such a StateDict.
#pragma once

#include "dist/communicator.h"
#include "optim/optimizer.h"

#include <string>
#include <vector>

namespace lumen::dist {

struct ZeroPlan {
    int world = 1;
    std::vector<std::string> names;      // every parameter, in the order plan_shards was given
    std::vector<int> owner;              // owner[i]: the rank that steps names[i]
    std::vector<int64_t> rank_numel;     // elements owned by each rank
    int owner_of(const std::string& name) const;  // throws naming an unknown parameter
};

// `params`: every trainable parameter, in the order the optimizer's groups list them within each
// group (the model's order: make_groups keeps it); the same list on every rank.
ZeroPlan plan_shards(const std::vector<nn::Parameter>& params, int world);

// The full groups restricted to `rank`'s parameters (every group kept, possibly empty). Throws
// when the rank owns nothing (more ranks than parameters).
std::vector<optim::Group> own_groups(const std::vector<optim::Group>& full, const ZeroPlan& plan, int rank);

// Every parameter from its owner to all ranks (in place), in the plan's order. Collective.
void broadcast_parameters(Communicator& comm, const std::vector<nn::Parameter>& params, const ZeroPlan& plan);

// Collective. On rank 0 (on every rank with every_rank): the StateDict a non-ZeRO optimizer over all
// the parameters would save (same tensor names in the same order, same metadata); elsewhere an
// empty one (no tensors, null meta). Each tensor travels by a broadcast from its owner; the full
// groups' lists come from the ranks' own groups, ordered as in the plan.
optim::StateDict gather_state_dict(Communicator& comm, const optim::Optimizer& local, const ZeroPlan& plan,
                                   bool every_rank = false);

// Loads `rank`'s parameters' entries (and the shared ones) of a full StateDict into `local`.
// Not collective: every rank reads the same full StateDict (e.g. from the checkpoint file).
void load_own_state(optim::Optimizer& local, const optim::StateDict& full, const ZeroPlan& plan, int rank);

// "zero1: optimizer state over 2 ranks by whole tensors; rank 0 steps 37 of 74 tensors (1.23M of 2.47M elements)"
std::string describe(const ZeroPlan& plan, int rank);

}  // namespace lumen::dist
