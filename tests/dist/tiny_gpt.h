// tests/dist/tiny_gpt.h: the small GPT the data-parallel tests train on in-process ranks (2 layers, 8 wide,
// vocabulary 13, GELU, learned positions, no dropout).
#pragma once

#include "nn/config.h"

namespace lumen::test {

inline nn::ModelConfig tiny_dp_gpt() {
    nn::ModelConfig c;
    c.n_layer = 2;
    c.n_head = 2;
    c.n_embd = 8;
    c.block_size = 16;
    c.vocab_size = 13;
    c.mlp = nn::MlpKind::gelu;
    c.pos = nn::PosKind::learned;
    c.dropout = 0.0;
    return c;
}

}  // namespace lumen::test
