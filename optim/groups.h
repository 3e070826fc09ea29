// optim/groups.h: routing a model's parameters into optimizer groups by role and shape, never by
// name (specs/optimizers.md §2).
//
//   G1  weight decay iff dim >= 2 and the role is not norm or osc; embeddings (incl. a tied
//       wte = lm_head) are decayed unless decay_embeddings = false.
//   G2  muon: role matrix -> the "muon" group (cfg.main); everything else -> AdamW "decay" /
//       "no_decay" groups built from cfg.aux_adamw, G1 deciding decay.
//   G3  a fused attention weight's row_parts ride along on its Parameter (Muon reads them).
//   G4  adamw8bit's f32-state choice is the rule's (Hyper::min_8bit_size, embed_fp32_state).
//   G5  every trainable parameter in exactly one group; frozen ones (requires_grad false) in none.
// Groups come out as [decay, no_decay] ([muon, decay, no_decay] for muon), empty ones dropped;
// a no_decay group is the decay group's hyper-parameters with weight_decay = 0.
#pragma once

#include "optim/optimizer.h"

#include <vector>

namespace lumen::optim {

struct GroupConfig {
    Kind kind = Kind::adamw;
    Hyper main;
    Hyper aux_adamw;  // muon only: the auxiliary AdamW's hyper-parameters
    bool decay_embeddings = true;
};

// Whether G1 decays `p`.
bool decays(const nn::Parameter& p, bool decay_embeddings);

std::vector<Group> make_groups(const std::vector<nn::Parameter>& params, const GroupConfig& cfg);

}  // namespace lumen::optim
