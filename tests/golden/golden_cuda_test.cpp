// tests/golden/golden_cuda_test.cpp: the golden parity tests on the GPU (shared/specs/formats.md §9).
// The committed families (tests/fixtures/golden) in f32 (TF32 off, lumen's default: the CPU bounds)
// and in bf16 compute with f32 master weights (§9's bf16 row: logits 1e-2, gradients 3e-2 relative
// Frobenius, loss 1e-2, step losses 5e-2), 10 AdamW steps, and save -> load -> continue bit for bit.
// A device-only case checks full-size models against transformers when LUMEN_HF_PARITY_DIR names
// the folder written by `make_golden.py --logits-only` (GPT-2 124M and a SmolLM-135M-like Llama),
// and exports each through nn::export_hf to <folder>_export for tests/reference/check_hf_export.py.
#include "tests/golden/golden_testing.h"

#include "training/checkpointing.h"

#include <algorithm>
#include <cstdlib>
#include <filesystem>

#include <unistd.h>

using namespace lumen;
using golden::Bound;
using golden::Golden;
using golden::Report;

namespace {

const char* dtype_label(DType dt) { return dt == DType::f32 ? "f32" : "bf16"; }

Bound tensor_bound(DType dt, bool logits) {
    if (dt == DType::f32) return golden::f32_bound;
    return logits ? golden::bf16_logits_bound : golden::bf16_grad_bound;
}

void check_report(const Report& r) {
    MESSAGE(r.text());
    CHECK_MESSAGE(r.failures() == 0, r.title << ": " << r.failures() << " tensors outside their bounds");
}

// The golden model on `device`, computing in `dt`.
std::unique_ptr<nn::GPT> model_on(const Golden& g, Device device, DType dt) {
    auto model = golden::build_model(g);
    model->to(device);
    model->set_compute_dtype(dt);
    return model;
}

Tensor host_f32(const Tensor& t) { return t.to(Device::cpu()).to(DType::f32); }

}  // namespace

LUMEN_CUDA_TEST("golden cuda: f32 and bf16 logits, loss and every gradient match PyTorch") {
    for (const std::string& family : golden::families()) {
        const Golden g = golden::load(family);
        const Tensor ids = g.input_ids.to(device), targets = g.targets.to(device);
        for (DType dt : {DType::f32, DType::bf16}) {
            INFO("family " << family << ", " << dtype_label(dt));
            auto model = model_on(g, device, dt);
            Report r{fmt::format("{} {} {} vs torch f32", family, device.str(), dtype_label(dt))};
            r.add(golden::compare("logits", host_f32(model->forward(ids)), g.logits, tensor_bound(dt, true)));
            Tensor loss = model->loss(ids, targets);
            r.add(golden::compare_scalar("loss", loss.item(), g.loss,
                                         dt == DType::f32 ? golden::f32_loss_bound : golden::bf16_loss_bound));
            loss.backward();
            for (const auto& [name, grad] : golden::gradients(*model)) {
                auto it = g.grads.find(name);
                REQUIRE_MESSAGE(it != g.grads.end(), "no grad." << name << " in the golden file");
                r.add(golden::compare("grad." + name, grad, it->second, tensor_bound(dt, false)));
            }
            check_report(r);
        }
    }
}

LUMEN_CUDA_TEST("golden cuda: f32 and bf16 AdamW step losses match torch's; save -> load -> continue is bit-identical") {
    for (const std::string& family : golden::families()) {
        const Golden g = golden::load(family);
        const Tensor ids = g.input_ids.to(device), targets = g.targets.to(device);
        const double clip = g.hyper.at("grad_clip").get<double>();
        const int steps = int(g.step_losses.size());
        REQUIRE(steps == 10);
        for (DType dt : {DType::f32, DType::bf16}) {
            INFO("family " << family << ", " << dtype_label(dt));
            auto model = model_on(g, device, dt);
            optim::Optimizer opt = golden::make_optimizer(*model, g.hyper);  // after the move
            const golden::StepRun full = golden::run_steps(*model, opt, ids, targets, clip, steps);
            Report r{fmt::format("{} {} {}: AdamW step losses vs torch", family, device.str(), dtype_label(dt))};
            const double bound = dt == DType::f32 ? golden::f32_step_loss_bound : golden::bf16_step_loss_bound;
            for (int k = 0; k < steps; ++k)
                r.add(golden::compare_scalar(fmt::format("step {} loss", k), full.losses[size_t(k)],
                                             g.step_losses[size_t(k)], bound));
            check_report(r);

            const int half = steps / 2;
            const std::filesystem::path tmp = std::filesystem::temp_directory_path() /
                fmt::format("lumen_golden_cuda_{}_{}_{}", family, dtype_label(dt), ::getpid());
            std::filesystem::remove_all(tmp);
            std::filesystem::create_directories(tmp);
            {
                auto first = model_on(g, device, dt);
                optim::Optimizer opt1 = golden::make_optimizer(*first, g.hyper);
                const golden::StepRun a = golden::run_steps(*first, opt1, ids, targets, clip, half);
                for (int k = 0; k < half; ++k) CHECK(a.losses[size_t(k)] == full.losses[size_t(k)]);
                training::save_checkpoint(tmp.string(), half, *first, opt1, {{"iteration", half}}, "", {});
            }
            const std::string ckpt = (tmp / data::checkpoint_name(half)).string();
            nn::GPT second(golden::model_config(g));
            second.to(device);
            second.set_compute_dtype(dt);
            training::load_model_weights(ckpt, second);
            optim::Optimizer opt2 = golden::make_optimizer(second, g.hyper);
            training::load_optimizer_state(ckpt, opt2);
            const golden::StepRun b = golden::run_steps(second, opt2, ids, targets, clip, steps - half);
            for (int k = half; k < steps; ++k) {
                INFO("step " << k);
                CHECK(b.losses[size_t(k - half)] == full.losses[size_t(k)]);  // bit for bit
            }
            std::error_code ec;
            std::filesystem::remove_all(tmp, ec);
        }
    }
}

// Device only: `python3 tests/reference/make_golden.py --logits-only --out DIR` writes DIR/<name>/
// (a save_pretrained folder plus golden.safetensors: input_ids, logits from torch f32, logits_bf16
// from the same model cast to bf16 on the GPU). Run with LUMEN_HF_PARITY_DIR=DIR.
LUMEN_CUDA_TEST("golden cuda: full-size Hugging Face parity (LUMEN_HF_PARITY_DIR)") {
    const char* env = std::getenv("LUMEN_HF_PARITY_DIR");
    if (!env || !*env) {
        MESSAGE("LUMEN_HF_PARITY_DIR is not set: no full-size parity check (see tests/reference/make_golden.py "
                "--logits-only)");
        return;
    }
    std::vector<std::filesystem::path> dirs;
    for (const auto& entry : std::filesystem::directory_iterator(env))
        if (entry.is_directory() && std::filesystem::exists(entry.path() / "golden.safetensors"))
            dirs.push_back(entry.path());
    std::sort(dirs.begin(), dirs.end());
    REQUIRE_MESSAGE(!dirs.empty(), env << " holds no folder with a golden.safetensors");
    for (const std::filesystem::path& dir : dirs) {
        const std::string name = dir.filename().string();
        INFO("model " << name);
        const data::SafetensorsFile f = data::open_safetensors((dir / "golden.safetensors").string());
        if (!f.contains("logits_bf16")) {  // a small family's golden file, not --logits-only output
            MESSAGE(dir.string() << ": no logits_bf16, skipped");
            continue;
        }
        const Tensor ids = f.load("input_ids").to(DType::i64).to(device);
        const Tensor ref = f.load("logits"), ref16 = f.load("logits_bf16");
        // torch's own bf16 error: the yardstick for lumen's bf16 run.
        const double torch_bf16 = golden::compare("torch bf16", ref16, ref, Bound{1.0}).rel_frobenius;

        auto model = nn::load_hf_model(dir.string());
        model->to(device);
        Report r{fmt::format("{} on {} vs transformers (torch bf16 vs f32: {:.3e})", name, device.str(), torch_bf16)};
        r.add(golden::compare("f32 logits vs torch f32", host_f32(model->forward(ids)), ref, golden::f32_bound));
        model->set_compute_dtype(DType::bf16);
        const Tensor logits16 = host_f32(model->forward(ids));
        model->set_compute_dtype(DType::f32);
        // NOTE: two bf16 runs round at independent points, so lumen's bf16 logits sit about √2 times
        // torch's own bf16 error from torch's (1.7e-2 for the 30-layer Llama in a CPU trial): 1e-2 is
        // the bound where torch's error is below 5e-3, else 2x torch's error. The second line asks
        // that lumen's bf16 be about as close to the f32 answer as torch's bf16 is.
        r.add(golden::compare("bf16 logits vs torch bf16", logits16, ref16, Bound{std::max(1e-2, 2.0 * torch_bf16)}));
        r.add(golden::compare("bf16 logits vs torch f32", logits16, ref, Bound{1.5 * torch_bf16 + 1e-3}));
        check_report(r);

        model->to(Device::cpu());
        const std::string out = dir.string() + "_export";
        std::filesystem::remove_all(out);
        nn::export_hf(model->config(), model->state_dict(), out);
        CHECK(std::filesystem::exists(std::filesystem::path(out) / "config.json"));
        MESSAGE("exported " << out << ": python3 tests/reference/check_hf_export.py " << out << " "
                            << (dir / "golden.safetensors").string() << " --bf16");
    }
}
