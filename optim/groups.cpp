// optim/groups.cpp: make_groups (see optim/groups.h).
#include "optim/groups.h"

#include <fmt/format.h>

#include <map>
#include <numeric>

namespace lumen::optim {

bool decays(const nn::Parameter& p, bool decay_embeddings) {
    if (p.tensor.dim() < 2) return false;
    if (p.role == nn::Role::norm || p.role == nn::Role::osc) return false;
    if (p.role == nn::Role::embedding && !decay_embeddings) return false;
    return true;
}

namespace {

// Muon needs a 2-D matrix and, when given, a row partition of its rows (G3).
void check_muon_matrix(const nn::Parameter& p) {
    check(p.tensor.dim() == 2, "make_groups",
          fmt::format("parameter {} has role matrix but is not 2-D: Muon orthogonalises matrices", p.name),
          {{p.name, p.tensor}});
    if (p.row_parts.empty()) return;
    bool positive = true;
    for (int64_t part : p.row_parts) positive = positive && part > 0;
    const int64_t rows = std::accumulate(p.row_parts.begin(), p.row_parts.end(), int64_t(0));
    check(positive && rows == p.tensor.size(0), "make_groups",
          fmt::format("parameter {}: row_parts must be positive and sum to its {} rows", p.name, p.tensor.size(0)),
          {{p.name, p.tensor}});
}

Group make_group(std::string label, Kind kind, const Hyper& hyper) {
    Group g;
    g.label = std::move(label);
    g.kind = kind;
    g.hyper = hyper;
    return g;
}

}  // namespace

std::vector<Group> make_groups(const std::vector<nn::Parameter>& params, const GroupConfig& cfg) {
    const bool muon = cfg.kind == Kind::muon;
    const Kind element_kind = muon ? Kind::adamw : cfg.kind;
    const Hyper& element_hyper = muon ? cfg.aux_adamw : cfg.main;
    Group muon_group = make_group("muon", Kind::muon, cfg.main);
    Group decay = make_group("decay", element_kind, element_hyper);
    Hyper no_decay_hyper = element_hyper;
    no_decay_hyper.weight_decay = 0.0;
    Group no_decay = make_group("no_decay", element_kind, no_decay_hyper);

    std::map<const TensorImpl*, std::string> seen;
    for (const nn::Parameter& p : params) {
        check(p.tensor.defined(), "make_groups", fmt::format("parameter {} is undefined", p.name));
        const auto [it, fresh] = seen.emplace(&p.tensor.impl(), p.name);
        check(fresh, "make_groups",
              fmt::format("parameter {} is the same tensor as {}: list a shared (tied) weight once", p.name,
                          it->second));
        if (!p.tensor.requires_grad()) continue;  // frozen: no group
        if (muon && p.role == nn::Role::matrix) {
            check_muon_matrix(p);
            muon_group.params.push_back(p);
        } else if (decays(p, cfg.decay_embeddings)) {
            decay.params.push_back(p);
        } else {
            no_decay.params.push_back(p);
        }
    }
    std::vector<Group> groups;
    for (Group* g : {&muon_group, &decay, &no_decay})
        if (!g->params.empty() && (muon || g != &muon_group)) groups.push_back(std::move(*g));
    check_one_group_each(groups, params);
    return groups;
}

}  // namespace lumen::optim
