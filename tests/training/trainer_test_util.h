// tests/training/trainer_test_util.h: fixtures of the trainer tests: a learnable token stream written as
// a dataset, a tiny CPU run's overrides, and the metrics records of one type.
#pragma once

#include "autograd/ops/ops.h"
#include "data/dataset.h"
#include "data/shard.h"
#include "training/trainer.h"

#include <string>
#include <vector>

namespace lumen::test::trainer {

// A learnable token stream over 64 ids: mostly "next = (3·prev + 1) mod 64", with some noise.
inline void make_dataset(const std::string& dir) {
    Generator gen(5);
    auto noise = ops::rand({40000}, gen, 0.0, 1.0, DType::f64).to_vector<double>();
    std::vector<uint32_t> tokens(40000);
    uint32_t t = 1;
    for (size_t i = 0; i < tokens.size(); ++i) {
        t = noise[i] < 0.1 ? uint32_t(noise[i] * 640) % 64 : (3 * t + 1) % 64;
        tokens[i] = t;
    }
    data::write_shard(dir + "/train_000000.bin", std::span(tokens).first(32000), data::TokenFormat::llmc_u16);
    data::write_shard(dir + "/val_000000.bin", std::span(tokens).subspan(32000), data::TokenFormat::llmc_u16);
    data::DatasetInfo info;
    info.dir = dir;
    info.vocab_size = 64;
    info.eot_id = 63;
    info.train_pattern = "train_*.bin";
    info.val_pattern = "val_*.bin";
    info.train_tokens = 32000;
    info.val_tokens = 8000;
    data::write_dataset_info(info);
}

inline std::vector<std::string> tiny_overrides(const std::string& data_dir, const std::string& out_dir) {
    return {"--dataset=" + data_dir, "--out_dir=" + out_dir, "--n_layer=2", "--n_head=2", "--n_embd=32",
            "--block_size=16", "--batch_size=4", "--gradient_accumulation_steps=2", "--eval_interval=4",
            "--eval_iters=2", "--log_interval=1", "--dtype=float32", "--device=cpu", "--warmup_iters=2",
            "--learning_rate=1e-2", "--lr_decay_iters=8", "--mlp=bio", "--dropout=0.1", "--pos=rope"};
}

inline training::TrainConfig config(std::vector<std::string> overrides, std::initializer_list<std::string> more) {
    for (const auto& m : more) overrides.push_back(m);
    return training::load_train_config("", overrides);
}

inline std::vector<nlohmann::json> of_type(const std::vector<nlohmann::json>& records, const std::string& type) {
    std::vector<nlohmann::json> out;
    for (const auto& r : records)
        if (r.at("type") == type) out.push_back(r);
    return out;
}

}  // namespace lumen::test::trainer
