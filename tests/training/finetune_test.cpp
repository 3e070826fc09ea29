// tests/training/finetune_test.cpp: ./train around a pretrained model (training/finetune.h) on the
// CPU: init_from = hf:DIR takes the folder's architecture and weights (the golden fixtures, written by
// transformers); conflicting [model] keys are refused; LoRA trains only the adapters, resumes bit for
// bit and exports merged (the export computes the LoRA model's logits and carries the source's side
// files); an unmerged export is refused.
#include "autograd/ops/ops.h"
#include "core/error.h"
#include "data/dataset.h"
#include "data/shard.h"
#include "nn/hf_model.h"
#include "tests/data/data_test_util.h"
#include "tests/harness.h"
#include "tests/training/trainer_test_util.h"
#include "training/trainer.h"

#include <filesystem>
#include <fstream>
#include <map>

using namespace lumen;
using lumen::test::ScratchDir;
using namespace lumen::test::trainer;

namespace {

std::string golden(const std::string& family) { return std::string(LUMEN_SOURCE_DIR) + "/tests/fixtures/golden/" + family; }

// A tiny CPU run over the 64-token dataset, started from a golden Hugging Face folder.
std::vector<std::string> hf_overrides(const ScratchDir& dir, const std::string& out, const std::string& family) {
    return {"--dataset=" + dir.str(), "--out_dir=" + dir.file(out), "--init_from=hf:" + golden(family),
            "--block_size=16", "--batch_size=4", "--gradient_accumulation_steps=1", "--eval_interval=2",
            "--eval_iters=1", "--log_interval=1", "--dtype=float32", "--device=cpu", "--warmup_iters=0",
            "--learning_rate=1e-2", "--lr_decay_iters=4", "--max_iters=4"};
}

std::map<std::string, Tensor> state_of(const nn::Module& m) {
    std::map<std::string, Tensor> out;
    for (auto& [name, t] : m.state_dict()) out[name] = t;
    return out;
}

bool same_bits(const Tensor& a, const Tensor& b) {
    return a.shape() == b.shape() && a.to_vector<float>() == b.to_vector<float>();
}

// (1, 16) tokens of the dataset's range.
Tensor probe_tokens() {
    std::vector<int64_t> ids(16);
    for (size_t i = 0; i < ids.size(); ++i) ids[i] = int64_t((7 * i + 3) % 64);
    return Tensor::from(ids, {1, 16});
}

}  // namespace

TEST_CASE("finetune: init_from = hf:DIR builds the folder's architecture with its weights") {
    ScratchDir dir("finetune_hf");
    make_dataset(dir.str());
    for (const char* family : {"llama", "gpt2"}) {
        CAPTURE(family);
        training::Trainer t(config(hf_overrides(dir, std::string("out_") + family, family), {"--max_iters=0"}));
        auto ref = nn::load_hf_model(golden(family));
        const nn::ModelConfig& c = t.model().config();
        CHECK(c.n_layer == ref->config().n_layer);
        CHECK(c.vocab_size == ref->config().vocab_size);
        CHECK(c.block_size == 16);  // the run's context; GPT-2's wpe is cropped to it
        const auto theirs = state_of(*ref);
        for (const auto& [name, tensor] : state_of(t.model())) {
            CAPTURE(name);
            REQUIRE(theirs.count(name));
            Tensor expect = theirs.at(name);
            if (name == "wpe.weight") expect = expect.narrow(0, 0, 16).contiguous();
            CHECK(same_bits(tensor, expect));
        }
    }
}

TEST_CASE("finetune: [model] keys that contradict the Hugging Face config are refused, naming each") {
    ScratchDir dir("finetune_conflict");
    make_dataset(dir.str());
    CHECK_THROWS_WITH_AS(training::Trainer(config(hf_overrides(dir, "a", "llama"), {"--n_layer=3", "--norm=layernorm"})),
                         doctest::Contains("model.n_layer = 3"), Error);
    CHECK_THROWS_WITH_AS(training::Trainer(config(hf_overrides(dir, "b", "llama"), {"--norm=layernorm"})),
                         doctest::Contains("model.norm = layernorm"), Error);
    CHECK_THROWS_WITH_AS(training::Trainer(config(hf_overrides(dir, "c", "llama"), {"--block_size=128"})),
                         doctest::Contains("exceeds the checkpoint's context 64"), Error);
    // `auto` agrees with the file's value; the run's own keys are not the checkpoint's business.
    CHECK_NOTHROW(training::Trainer(config(hf_overrides(dir, "e", "llama"), {"--vocab_size=auto", "--max_iters=0"})));
    CHECK_NOTHROW(training::Trainer(config(hf_overrides(dir, "d", "llama"), {"--dropout=0.1", "--max_iters=0"})));
}

TEST_CASE("finetune: LoRA trains only the adapters, and the merged export computes the same logits") {
    ScratchDir dir("finetune_lora");
    make_dataset(dir.str());
    const std::string exported = dir.file("exported");
    training::Trainer t(config(hf_overrides(dir, "out", "llama"),
                               {"--lora.r=4", "--lora.alpha=8", "--export_hf=" + exported, "--merge_lora=true"}));
    auto base = nn::load_hf_model(golden("llama"));
    const auto before = state_of(*base);
    t.run();
    int adapters = 0;
    for (const auto& [name, tensor] : state_of(t.model())) {
        CAPTURE(name);
        if (name.ends_with(".lora_A") || name.ends_with(".lora_B")) {
            ++adapters;
            if (name.ends_with(".lora_B")) CHECK(ops::max(ops::abs(tensor)).item() > 0);  // trained away from 0
            continue;
        }
        REQUIRE(before.count(name));
        CHECK(same_bits(tensor, before.at(name)));  // frozen
        CHECK(!tensor.grad().defined());
    }
    CHECK(adapters == 2 * 2 * 5);  // 2 layers × (c_attn, c_proj, c_gate, c_fc, mlp.c_proj) × (A, B)

    REQUIRE(std::filesystem::exists(exported + "/config.json"));
    // The source folder's side files and ids travel with the export; Llama keeps its context (64, not 16).
    CHECK(std::filesystem::exists(exported + "/generation_config.json"));
    {
        std::ifstream in(exported + "/config.json");
        const nlohmann::json j = nlohmann::json::parse(in);
        CHECK(j.at("bos_token_id") == 1);
        CHECK(j.at("eos_token_id") == 2);
        CHECK(j.at("max_position_embeddings") == 64);
    }
    auto merged = nn::load_hf_model(exported);
    t.model().eval();
    merged->eval();
    autograd::NoGradGuard no_grad;
    const Tensor x = probe_tokens();
    const std::vector<float> want = t.model().forward(x).to_vector<float>(), got = merged->forward(x).to_vector<float>();
    REQUIRE(want.size() == got.size());
    double worst = 0, scale = 0;
    for (size_t i = 0; i < want.size(); ++i) {
        worst = std::max(worst, double(std::abs(want[i] - got[i])));
        scale = std::max(scale, double(std::abs(want[i])));
    }
    CHECK(worst <= 1e-5 * scale);
    // And the merge matters: the base model's logits differ.
    base->eval();
    const std::vector<float> plain = base->forward(x).to_vector<float>();
    double moved = 0;
    for (size_t i = 0; i < want.size(); ++i) moved = std::max(moved, double(std::abs(want[i] - plain[i])));
    CHECK(moved > 100 * worst);
}

TEST_CASE("finetune: a LoRA run resumes bit for bit") {
    ScratchDir dir("finetune_lora_resume");
    make_dataset(dir.str());
    const std::vector<std::string> lora = {"--lora.r=4", "--lora.dropout=0.1"};
    auto straight_cfg = hf_overrides(dir, "straight", "llama");
    straight_cfg.insert(straight_cfg.end(), lora.begin(), lora.end());
    training::Trainer straight(config(straight_cfg, {}));
    straight.run();
    auto split_cfg = hf_overrides(dir, "split", "llama");
    split_cfg.insert(split_cfg.end(), lora.begin(), lora.end());
    {
        training::Trainer first(config(split_cfg, {"--max_iters=2"}));
        first.run();
    }
    const std::string exported = dir.file("exported");  // a resumed run still exports with the source's files
    training::Trainer second(config(split_cfg, {"--init_from=resume", "--export_hf=" + exported, "--merge_lora=true"}));
    CHECK(second.iteration() == 2);
    // Other adapters than the checkpoint's are refused on resume, naming the key.
    CHECK_THROWS_WITH_AS(training::Trainer(config(split_cfg, {"--init_from=resume", "--lora.r=8"})),
                         doctest::Contains("lora.r"), Error);
    second.run();
    CHECK(std::filesystem::exists(exported + "/generation_config.json"));
    const auto a = state_of(straight.model()), b = state_of(second.model());
    REQUIRE(a.size() == b.size());
    for (const auto& [name, tensor] : a) {
        CAPTURE(name);
        CHECK(same_bits(tensor, b.at(name)));
    }
}

TEST_CASE("finetune: export_hf of a LoRA run needs merge_lora; LoRA dropout is refused with optical layers; an architecture transformers lacks is refused early") {
    ScratchDir dir("finetune_export_rules");
    make_dataset(dir.str());
    CHECK_THROWS_WITH_AS(config(hf_overrides(dir, "a", "llama"), {"--lora.r=4", "--export_hf=" + dir.file("x")}),
                         doctest::Contains("io.merge_lora = true"), Error);
    CHECK_THROWS_WITH_AS(config(hf_overrides(dir, "a", "llama"), {"--lora.r=4", "--lora.dropout=0.1", "--optical.enabled=true"}),
                         doctest::Contains("lora.dropout must be 0"), Error);
    auto scratch = tiny_overrides(dir.str(), dir.file("b"));  // mlp = bio: no transformers equivalent
    CHECK_THROWS_WITH_AS(training::Trainer(config(scratch, {"--export_hf=" + dir.file("y")})),
                         doctest::Contains("io.export_hf"), Error);
}

TEST_CASE("finetune: a scratch run's padded vocabulary is exported unpadded, with the same logits") {
    ScratchDir dir("finetune_unpad");
    std::vector<uint32_t> tokens(6000);
    for (size_t i = 0; i < tokens.size(); ++i) tokens[i] = uint32_t((7 * i + i / 13) % 50);  // ids < 50
    data::write_shard(dir.file("train_000000.bin"), std::span(tokens).first(5000), data::TokenFormat::llmc_u16);
    data::write_shard(dir.file("val_000000.bin"), std::span(tokens).subspan(5000), data::TokenFormat::llmc_u16);
    data::DatasetInfo info;
    info.dir = dir.str();
    info.vocab_size = 50;  // the model pads it to 64
    info.eot_id = 49;
    info.train_pattern = "train_*.bin";
    info.val_pattern = "val_*.bin";
    info.train_tokens = 5000;
    info.val_tokens = 1000;
    data::write_dataset_info(info);
    const std::string exported = dir.file("exported");
    training::Trainer t(config({"--dataset=" + dir.str(), "--out_dir=" + dir.file("out"), "--n_layer=1", "--n_head=2",
                                "--n_embd=16", "--block_size=16", "--batch_size=2", "--gradient_accumulation_steps=1",
                                "--max_iters=2", "--eval_interval=2", "--eval_iters=1", "--dtype=float32", "--device=cpu",
                                "--warmup_iters=0", "--lr_decay_iters=2", "--learning_rate=1e-2",
                                "--mlp=gelu_tanh", "--bias=true", "--export_hf=" + exported},
                               {}));
    REQUIRE(t.model().config().vocab_size == 64);
    t.run();
    auto back = nn::load_hf_model(exported);
    REQUIRE(back->config().vocab_size == 50);
    t.model().eval();
    back->eval();
    autograd::NoGradGuard no_grad;
    std::vector<int64_t> ids(16);
    for (size_t i = 0; i < ids.size(); ++i) ids[i] = int64_t((5 * i + 1) % 50);
    const Tensor x = Tensor::from(ids, {1, 16});
    const Tensor want = t.model().forward(x).narrow(2, 0, 50).contiguous();  // (1, 16, 50) of (1, 16, 64)
    const std::vector<float> a = want.to_vector<float>(), b = back->forward(x).to_vector<float>();
    REQUIRE(a.size() == b.size());
    for (size_t i = 0; i < a.size(); ++i) CHECK(a[i] == doctest::Approx(b[i]).epsilon(1e-5));
}
