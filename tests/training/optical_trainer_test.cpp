// tests/training/optical_trainer_test.cpp: the optical phase in the trainer (specs/optical.md §7.3, §10
// T3, S5): a tiny optical GPT learns on the CPU; the digital → optical switch at start_iter with its own
// learning rate; resume bit for bit across and after the switch; weights-only starts calibrate on
// training data; a bypassed module does not block checkpoints; the optical phase's schedule.
#include "data/checkpoint_dir.h"
#include "nn/optical_linear.h"
#include "tests/data/data_test_util.h"
#include "tests/harness.h"
#include "tests/training/trainer_test_util.h"
#include "training/optical_phase.h"

#include <cmath>
#include <filesystem>
#include <limits>

using namespace lumen;
using lumen::test::ScratchDir;
using namespace lumen::test::trainer;

namespace {

std::vector<std::string> optical_overrides(const std::string& data_dir, const std::string& out_dir) {
    auto o = tiny_overrides(data_dir, out_dir);
    o.push_back("--dropout=0");
    o.push_back("--optical.enabled=true");
    return o;
}

double mean_loss(const std::vector<nlohmann::json>& iters, size_t from, size_t n) {
    double s = 0;
    for (size_t i = from; i < from + n; ++i) s += iters[i].at("loss").get<double>();
    return s / double(n);
}

int64_t optical_linears(nn::GPT& model) {
    int64_t n = 0;
    for (auto& [name, m] : model.modules()) n += dynamic_cast<nn::OpticalLinear*>(m) != nullptr;
    return n;
}

}  // namespace

TEST_CASE("optical trainer: a tiny optical GPT learns on the CPU (T3)") {
    ScratchDir dir("optical_trainer_learns");
    make_dataset(dir.str());
    training::Trainer t(config(optical_overrides(dir.str(), dir.file("out")),
                               {"--max_iters=50", "--lr_decay_iters=50", "--eval_interval=25", "--learning_rate=1e-2"}));
    // Transformed by the loop after iteration 0's eval, so the first calibration is a training batch.
    CHECK_FALSE(t.optical_active());
    t.run();
    CHECK(t.optical_active());
    // Per block: attn.c_attn, attn.c_proj, mlp.c_fc, mlp.sparse_gate.gate and .transform, mlp.c_proj.
    CHECK(optical_linears(t.model()) == 2 * 6);
    const auto iters = of_type(t.metrics(), "iter");
    REQUIRE(iters.size() == 50);
    for (const auto& r : iters) CHECK(std::isfinite(r.at("loss").get<double>()));
    CHECK(mean_loss(iters, 40, 10) < mean_loss(iters, 0, 10) - 0.2);
}

TEST_CASE("optical trainer: start_iter switches mid-run, calibrates there, and uses the optical phase's rate") {
    ScratchDir dir("optical_trainer_switch");
    make_dataset(dir.str());
    training::Trainer t(config(optical_overrides(dir.str(), dir.file("out")),
                               {"--max_iters=40", "--lr_decay_iters=40", "--eval_interval=10", "--optical.start_iter=20",
                                "--optical.learning_rate=2e-3", "--optical.warmup_iters=4"}));
    CHECK_FALSE(t.optical_active());
    CHECK(optical_linears(t.model()) == 0);
    t.run();
    CHECK(t.optical_active());
    CHECK(optical_linears(t.model()) > 0);
    const auto iters = of_type(t.metrics(), "iter");
    REQUIRE(iters.size() == 40);
    for (const auto& r : iters) CHECK(std::isfinite(r.at("loss").get<double>()));
    // The optical phase's warmup: lr·(k+1)/(W+1) for its k-th update.
    CHECK(iters[20].at("lr").get<double>() == doctest::Approx(2e-3 * 1.0 / 5.0).epsilon(1e-12));
    CHECK(iters[24].at("lr").get<double>() == doctest::Approx(2e-3).epsilon(1e-12));
    CHECK(iters[19].at("lr").get<double>() == doctest::Approx(training::lr_at(t.config().schedule, 19)).epsilon(1e-12));
    // Every optical layer calibrated when the switch happened (finite ranges).
    for (const auto& [name, b] : t.model().state_dict())
        if (nn::is_optical_range_name(name)) {
            INFO(name);
            for (double v : b.to(Device::cpu()).to_vector<double>()) CHECK(std::isfinite(v));
        }
}

TEST_CASE("optical trainer: the optical phase's schedule is the run's shape over [start_iter, max_iters]") {
    training::TrainConfig c = training::load_train_config(
        "", {"--max_iters=1000", "--lr_decay_iters=1000", "--warmup_iters=100", "--learning_rate=6e-4", "--min_lr=6e-5",
             "--optical.enabled=true", "--optical.start_iter=600", "--optical.learning_rate=1e-4",
             "--optical.warmup_iters=10"});
    const auto s = training::optical_schedule(c);
    REQUIRE(s.has_value());
    CHECK(s->learning_rate == 1e-4);
    CHECK(s->min_lr == doctest::Approx(1e-5).epsilon(1e-12));
    CHECK(s->lr_decay_iters == 400);
    CHECK(training::run_lr(c, 600, false) == training::lr_at(c.schedule, 600));
    CHECK(training::run_lr(c, 605, true) == doctest::Approx(1e-4 * 6.0 / 11.0).epsilon(1e-12));
    // Halfway through the decay the cosine sits at the middle: m + (lr − m)/2.
    CHECK(training::run_lr(c, 600 + 205, true) == doctest::Approx(1e-5 + 0.5 * (1e-4 - 1e-5)).epsilon(1e-9));
    CHECK(training::run_lr(c, 1000, true) == doctest::Approx(1e-5).epsilon(1e-12));
    // Without optical.learning_rate the run's schedule continues.
    c.optical.learning_rate.reset();
    CHECK(training::run_lr(c, 700, true) == training::lr_at(c.schedule, 700));
}

TEST_CASE("optical trainer: resume is bit for bit after the switch and across it (S5)") {
    ScratchDir dir("optical_trainer_resume");
    make_dataset(dir.str());
    const std::vector<std::string> common = {"--max_iters=12", "--lr_decay_iters=12", "--optical.start_iter=6",
                                             "--optical.learning_rate=5e-3"};
    auto with = [&](std::vector<std::string> o, std::initializer_list<std::string> more) {
        for (const auto& c : common) o.push_back(c);
        return config(o, more);
    };
    training::Trainer straight(with(optical_overrides(dir.str(), dir.file("straight")), {}));
    straight.run();
    const auto a = of_type(straight.metrics(), "iter");
    REQUIRE(a.size() == 12);

    // Stopped at 8 (after the switch): the checkpoint is optical; resume rebuilds the transform first.
    const auto out = optical_overrides(dir.str(), dir.file("split"));
    training::Trainer first(with(out, {"--max_iters=8"}));
    first.run();
    training::Trainer second(with(out, {"--init_from=resume"}));
    CHECK(second.optical_active());
    second.run();
    const auto b = of_type(second.metrics(), "iter");
    REQUIRE(b.size() == 4);
    for (size_t i = 0; i < 4; ++i) {
        INFO("iteration " << b[i].at("iter"));
        CHECK(b[i].at("loss").get<double>() == a[i + 8].at("loss").get<double>());
        CHECK(b[i].at("gnorm").get<double>() == a[i + 8].at("gnorm").get<double>());
    }

    // Stopped at 4 (before the switch): the checkpoint is digital; the resumed run switches at 6.
    const auto out2 = optical_overrides(dir.str(), dir.file("split2"));
    training::Trainer early(with(out2, {"--max_iters=4"}));
    early.run();
    training::Trainer late(with(out2, {"--init_from=resume"}));
    CHECK_FALSE(late.optical_active());
    late.run();
    const auto c = of_type(late.metrics(), "iter");
    REQUIRE(c.size() == 8);
    for (size_t i = 0; i < 8; ++i) {
        INFO("iteration " << c[i].at("iter"));
        CHECK(c[i].at("loss").get<double>() == a[i + 4].at("loss").get<double>());
    }
}

TEST_CASE("optical trainer: init_from = PATH takes weights only; the optical layers start uncalibrated") {
    ScratchDir dir("optical_trainer_path");
    make_dataset(dir.str());
    training::Trainer source(config(optical_overrides(dir.str(), dir.file("source")), {"--max_iters=4"}));
    source.run();
    const std::string ckpt = dir.file("source") + "/checkpoints/step_00000004";
    REQUIRE(data::verify_checkpoint(ckpt).at("optical").get<bool>());

    // Into a digital run: the ranges and counters in the file are left out.
    auto digital = tiny_overrides(dir.str(), dir.file("digital"));
    training::Trainer d(config(digital, {"--max_iters=2", "--dropout=0", "--init_from=" + ckpt}));
    CHECK(optical_linears(d.model()) == 0);
    d.run();

    // Into an optical run: the weights load into the digital model (the file's ranges left out), the
    // transform follows after iteration 0's eval, and training calibrates the new layers.
    training::Trainer o(config(optical_overrides(dir.str(), dir.file("optical")), {"--max_iters=2", "--init_from=" + ckpt}));
    CHECK_FALSE(o.optical_active());
    o.run();
    CHECK(o.optical_active());
    int64_t ranges = 0;
    for (const auto& [name, b] : o.model().state_dict())
        if (nn::is_optical_range_name(name)) {
            for (double v : b.to(Device::cpu()).to_vector<double>()) CHECK(std::isfinite(v));
            ++ranges;
        }
    CHECK(ranges > 0);
}

TEST_CASE("optical trainer: a bypassed module (never calibrated) does not stop checkpoints") {
    ScratchDir dir("optical_trainer_bypass");
    make_dataset(dir.str());
    training::Trainer t(config(optical_overrides(dir.str(), dir.file("out")),
                               {"--max_iters=4", "--optical.mine.q_bypass=true",
                                "--optical.rules.1=blocks\\.0\\.attn -> mine", "--optical.rules.2=default -> fc"}));
    t.run();
    CHECK(std::filesystem::exists(dir.file("out") + "/checkpoints/step_00000004/model.safetensors"));
    const auto v = t.model().state_dict();
    bool found = false;
    for (const auto& [name, b] : v)
        if (name == "blocks.0.attn.qk_min_max") {
            found = true;
            CHECK(b.to(Device::cpu()).to_vector<double>()[0] == std::numeric_limits<double>::infinity());
        }
    CHECK(found);
}
