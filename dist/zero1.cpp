// dist/zero1.cpp: ZeRO-1: the shard plan, the per-rank groups, the parameter broadcasts and the
// optimizer state gathered in the non-ZeRO format (see dist/zero1.h).
#include "dist/zero1.h"

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <map>
#include <numeric>
#include <set>

namespace lumen::dist {

int ZeroPlan::owner_of(const std::string& name) const {
    for (size_t i = 0; i < names.size(); ++i)
        if (names[i] == name) return owner[i];
    throw Error(fmt::format("zero1: parameter {} is not in the shard plan ({} parameters)", name, names.size()));
}

ZeroPlan plan_shards(const std::vector<nn::Parameter>& params, int world) {
    check(world >= 1, "zero1", fmt::format("world must be >= 1 (found {})", world));
    ZeroPlan plan;
    plan.world = world;
    plan.owner.assign(params.size(), 0);
    plan.rank_numel.assign(size_t(world), 0);
    std::set<std::string> seen;
    for (const nn::Parameter& p : params) {
        check(seen.insert(p.name).second, "zero1", fmt::format("two parameters are named {}", p.name));
        plan.names.push_back(p.name);
    }
    std::vector<size_t> order(params.size());
    std::iota(order.begin(), order.end(), size_t(0));
    std::stable_sort(order.begin(), order.end(),
                     [&](size_t a, size_t b) { return params[a].tensor.numel() > params[b].tensor.numel(); });
    for (size_t i : order) {
        // min_element returns the first of equals: the lowest rank wins ties.
        const auto least = std::min_element(plan.rank_numel.begin(), plan.rank_numel.end());
        plan.owner[i] = int(least - plan.rank_numel.begin());
        *least += params[i].tensor.numel();
    }
    return plan;
}

std::vector<optim::Group> own_groups(const std::vector<optim::Group>& full, const ZeroPlan& plan, int rank) {
    std::map<std::string, int> owner;
    for (size_t i = 0; i < plan.names.size(); ++i) owner[plan.names[i]] = plan.owner[i];
    std::vector<optim::Group> out;
    size_t total = 0, mine = 0;
    for (const optim::Group& g : full) {
        optim::Group local = g;
        local.params.clear();
        for (const nn::Parameter& p : g.params) {
            const auto it = owner.find(p.name);
            check(it != owner.end(), "zero1", fmt::format("parameter {} of group {} is not in the shard plan", p.name, g.label));
            if (it->second == rank) local.params.push_back(p);
            ++total;
        }
        mine += local.params.size();
        out.push_back(std::move(local));
    }
    check(total == plan.names.size(), "zero1",
          fmt::format("the groups hold {} parameters, the shard plan {}", total, plan.names.size()));
    check(mine > 0, "zero1",
          fmt::format("rank {} owns no parameter ({} parameters over {} ranks): use fewer ranks or no ZeRO-1", rank,
                      total, plan.world));
    return out;
}

void broadcast_parameters(Communicator& comm, const std::vector<nn::Parameter>& params, const ZeroPlan& plan) {
    check(params.size() == plan.names.size(), "zero1",
          fmt::format("{} parameters to broadcast, the shard plan has {}", params.size(), plan.names.size()));
    for (size_t i = 0; i < params.size(); ++i) {
        check(params[i].name == plan.names[i], "zero1",
              fmt::format("parameter {} is {} in the shard plan's order", params[i].name, plan.names[i]));
        Tensor t = params[i].tensor;  // same storage: the broadcast writes the parameter
        comm.broadcast(t, plan.owner[i]);
    }
}

namespace {

// One state tensor of a rank's optimizer: which group, which parameter ("" = shared by the group,
// such as adamw8bit's qmaps), its name and what a receiver must allocate.
struct Entry {
    size_t group = 0;
    std::string param, name;
    Shape shape;
    DType dtype = DType::f32;
    Tensor tensor;  // on the rank that has it
};

// The parameter whose "<name>." prefixes `state` (the longest), or "" for a shared entry.
std::string param_of(const std::string& state, const std::vector<nn::Parameter>& params) {
    std::string best;
    for (const nn::Parameter& p : params)
        if (state.size() > p.name.size() && state.compare(0, p.name.size(), p.name) == 0 &&
            state[p.name.size()] == '.' && p.name.size() > best.size())
            best = p.name;
    return best;
}

nlohmann::json entries_json(const std::vector<Entry>& entries) {
    nlohmann::json out = nlohmann::json::array();
    for (const Entry& e : entries)
        out.push_back({{"group", e.group}, {"param", e.param}, {"name", e.name}, {"shape", e.shape},
                       {"dtype", std::string(dtype_name(e.dtype))}});
    return out;
}

std::vector<Entry> entries_from_json(const nlohmann::json& j) {
    std::vector<Entry> out;
    for (const auto& e : j) {
        Entry x;
        x.group = e.at("group").get<size_t>();
        x.param = e.at("param").get<std::string>();
        x.name = e.at("name").get<std::string>();
        x.shape = e.at("shape").get<Shape>();
        x.dtype = dtype_from_name(e.at("dtype").get<std::string>());
        out.push_back(std::move(x));
    }
    return out;
}

}  // namespace

optim::StateDict gather_state_dict(Communicator& comm, const optim::Optimizer& local, const ZeroPlan& plan,
                                   bool every_rank) {
    const auto& groups = local.groups();
    std::map<std::string, size_t> plan_index;
    for (size_t i = 0; i < plan.names.size(); ++i) plan_index[plan.names[i]] = i;
    // This rank's groups and state entries, then everyone's (names, shapes, dtypes: JSON over MPI).
    nlohmann::json my_groups = nlohmann::json::array();
    std::vector<Entry> mine;
    for (size_t gi = 0; gi < groups.size(); ++gi) {
        nlohmann::json names = nlohmann::json::array();
        for (const nn::Parameter& p : groups[gi].params) {
            check(plan_index.count(p.name) && plan.owner[plan_index[p.name]] == comm.rank(), "zero1",
                  fmt::format("rank {} steps parameter {}, which the shard plan does not give it", comm.rank(), p.name));
            names.push_back(p.name);
        }
        my_groups.push_back(names);
        for (auto& [name, tensor] : local.rule(gi).state()) {
            Entry e;
            e.group = gi;
            e.param = param_of(name, groups[gi].params);
            e.name = name;
            e.shape = tensor.shape();
            e.dtype = tensor.dtype();
            e.tensor = tensor;
            mine.push_back(std::move(e));
        }
    }
    const std::string my_json = nlohmann::json{{"groups", my_groups}, {"entries", entries_json(mine)}}.dump();
    std::vector<std::vector<Entry>> by_rank(size_t(comm.world()));
    std::vector<std::vector<size_t>> full_groups(groups.size());  // plan indices per group
    for (int r = 0; r < comm.world(); ++r) {
        const nlohmann::json j = nlohmann::json::parse(r == comm.rank() ? comm.broadcast_host(my_json, r)
                                                                        : comm.broadcast_host(std::string(), r));
        check(j.at("groups").size() == groups.size(), "zero1",
              fmt::format("rank {} has {} optimizer groups, rank {} has {}", r, j.at("groups").size(), comm.rank(),
                          groups.size()));
        for (size_t gi = 0; gi < groups.size(); ++gi)
            for (const auto& name : j.at("groups")[gi]) full_groups[gi].push_back(plan_index.at(name.get<std::string>()));
        by_rank[r] = r == comm.rank() ? mine : entries_from_json(j.at("entries"));
    }

    // The non-ZeRO order: group by group, each parameter (in plan order) with its owner's entries,
    // then the group's shared entries (rank 0's); a name seen before is skipped, as
    // Optimizer::state_dict does.
    struct Pick {
        int rank;
        size_t index;
    };
    std::vector<Pick> picks;
    std::set<std::string> names;
    for (size_t gi = 0; gi < groups.size(); ++gi) {
        std::sort(full_groups[gi].begin(), full_groups[gi].end());
        for (size_t pi : full_groups[gi]) {
            const int r = plan.owner[pi];
            for (size_t k = 0; k < by_rank[r].size(); ++k) {
                const Entry& e = by_rank[r][k];
                if (e.group == gi && e.param == plan.names[pi] && names.insert(e.name).second) picks.push_back({r, k});
            }
        }
        for (size_t k = 0; k < by_rank[0].size(); ++k) {
            const Entry& e = by_rank[0][k];
            if (e.group == gi && e.param.empty() && names.insert(e.name).second) picks.push_back({0, k});
        }
    }

    // Rank 0 has its own entries; every other entry is broadcast from its owner (to every rank:
    // the communicator has no point-to-point send).
    const bool keep = every_rank || comm.rank() == 0;
    optim::StateDict out;
    for (const Pick& pick : picks) {
        const Entry& e = by_rank[pick.rank][pick.index];
        const bool travels = comm.world() > 1 && (every_rank || pick.rank != 0);
        Tensor t;
        if (pick.rank == comm.rank()) {
            t = e.tensor.clone();  // a snapshot, as Optimizer::state_dict takes
            if (travels) {
                // NOTE: an empty group's shared state may sit on the CPU in a CUDA run.
                Tensor d = t.device() == comm.device() ? t : t.to(comm.device());
                comm.broadcast(d, pick.rank);
            }
        } else if (travels) {
            t = Tensor::empty(e.shape, e.dtype, comm.device());
            comm.broadcast(t, pick.rank);
        }
        if (keep) out.tensors.emplace_back(e.name, t);
    }
    if (!keep) return out;
    // Metadata: this rank's (kinds, step counts and hyper-parameters are the same on every rank)
    // with the full groups' tensor counts.
    // NOTE: state_dict() also snapshots this rank's tensors, freed on return.
    out.meta = local.state_dict().meta;
    for (size_t gi = 0; gi < groups.size(); ++gi) out.meta["groups"][gi]["tensors"] = full_groups[gi].size();
    return out;
}

void load_own_state(optim::Optimizer& local, const optim::StateDict& full, const ZeroPlan& plan, int rank) {
    std::set<std::string> wanted;
    for (size_t gi = 0; gi < local.groups().size(); ++gi) {
        for (const nn::Parameter& p : local.groups()[gi].params)
            check(plan.owner_of(p.name) == rank, "zero1",
                  fmt::format("rank {} steps parameter {}, which the shard plan does not give it", rank, p.name));
        for (const auto& [name, tensor] : local.rule(gi).state()) wanted.insert(name);
    }
    optim::StateDict mine;
    mine.meta = full.meta;
    for (const auto& [name, tensor] : full.tensors)
        if (wanted.count(name)) mine.tensors.emplace_back(name, tensor);
    // NOTE: an entry this rank needs but the state lacks is reported by load_state_dict, by name.
    local.load_state_dict(mine);
}

std::string describe(const ZeroPlan& plan, int rank) {
    int64_t tensors = 0, total = 0;
    for (size_t i = 0; i < plan.owner.size(); ++i) tensors += plan.owner[i] == rank ? 1 : 0;
    for (int64_t n : plan.rank_numel) total += n;
    return fmt::format("zero1: optimizer state over {} ranks by whole tensors; rank {} steps {} of {} tensors "
                       "({:.2f}M of {:.2f}M elements)",
                       plan.world, rank, tensors, plan.owner.size(), double(plan.rank_numel.at(size_t(rank))) / 1e6,
                       double(total) / 1e6);
}

}  // namespace lumen::dist
