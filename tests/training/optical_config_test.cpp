// tests/training/optical_config_test.cpp: the [optical*] sections of ./train's config (specs/optical.md
// §7.2, §10 T2): settings sets, ordered literal rules, the phase keys, the energy keys, errors naming the
// key and where it was written, overrides, and the resolved config's round trip.
#include "training/train_config.h"

#include "tests/data/data_test_util.h"
#include "tests/harness.h"

#include <string>
#include <vector>

using namespace lumen;
using namespace lumen::training;
using lumen::test::ScratchDir;

namespace {

TrainConfig load(const ScratchDir& dir, const std::string& text, const std::vector<std::string>& overrides = {}) {
    lumen::test::write_bytes(dir.file("run.cfg"), text);
    return load_train_config(dir.file("run.cfg"), overrides);
}

const char* kFull = R"(
[optical]
enabled = true
start_iter = 40
learning_rate = 1e-4
warmup_iters = 5
reset_optimizer = false

[optical.attention]
q_levels = 128
q_lut_min = none
q_quantiles = 0.001, 0.999   # quantile ranges
dither = scalar

[optical.fc]
q_smooth_factor = 0.5
q_init_seed = 7
out_stats = quantized

[optical.mine]
q_bypass = true

[optical.rules]
10 = default -> fc
2 = blocks\.[0-9]+\.attn   -> attention
1 = blocks\.0\..*          -> none
3 = blocks\.1\.mlp\.c_fc -> mine

[optical.energy]
photons_per_output = 100
e_adc_pj = 0.5
context = 512
)";

}  // namespace

TEST_CASE("optical config: defaults are the reference's; attention and fc always exist") {
    const TrainConfig c = load_train_config("");
    CHECK_FALSE(c.optical.enabled);
    CHECK(c.optical.start_iter == 0);
    CHECK_FALSE(c.optical.learning_rate.has_value());
    CHECK(c.optical.reset_optimizer);
    REQUIRE(c.optical.plan.settings.size() == 2);
    const nn::OpticalSettings& fc = c.optical.plan.settings.at("fc");
    CHECK(fc.q_levels == 256);
    CHECK(*fc.q_lut_min == 0.020040);
    CHECK_FALSE(fc.q_quantiles.has_value());
    CHECK(fc.q_smooth_factor == 0.9);
    CHECK(fc.q_init_seed == 0);
    CHECK_FALSE(fc.q_bypass);
    CHECK(fc.dither == nn::DitherMode::element);
    CHECK(fc.out_stats == nn::OutStats::product);
    CHECK(c.optical.plan.implied());
    CHECK(c.optical.energy.wavelength_nm == 1550);
    CHECK(c.optical.energy.digital_fj_per_mac == 300);
}

TEST_CASE("optical config: every section is read; rules are ordered by key and kept literal") {
    ScratchDir dir("optical_config_full");
    const TrainConfig c = load(dir, kFull);
    const OpticalConfig& o = c.optical;
    CHECK(o.enabled);
    CHECK(o.start_iter == 40);
    CHECK(*o.learning_rate == 1e-4);
    CHECK(o.warmup_iters == 5);
    CHECK_FALSE(o.reset_optimizer);
    const nn::OpticalSettings& a = o.plan.settings.at("attention");
    CHECK(a.q_levels == 128);
    CHECK_FALSE(a.q_lut_min.has_value());
    REQUIRE(a.q_quantiles.has_value());
    CHECK(a.q_quantiles->first == 0.001);
    CHECK(a.q_quantiles->second == 0.999);
    CHECK(a.dither == nn::DitherMode::scalar);
    const nn::OpticalSettings& fc = o.plan.settings.at("fc");
    CHECK(fc.q_smooth_factor == 0.5);
    CHECK(fc.q_init_seed == 7);
    CHECK(fc.out_stats == nn::OutStats::quantized);
    CHECK(o.plan.settings.at("mine").q_bypass);
    CHECK(o.plan.settings.at("mine").q_levels == 256);
    REQUIRE(o.plan.rules.size() == 4);
    CHECK(o.plan.rules[0].pattern == "blocks\\.0\\..*");
    CHECK(o.plan.rules[0].settings.empty());
    CHECK(o.plan.rules[1].pattern == "blocks\\.[0-9]+\\.attn");
    CHECK(o.plan.rules[1].settings == "attention");
    CHECK(o.plan.rules[2].settings == "mine");
    CHECK(o.plan.rules[3].pattern == "default");
    CHECK(o.plan.rules[3].where.find("run.cfg:") != std::string::npos);
    CHECK(*o.energy.photons_per_output == 100);
    CHECK_FALSE(o.energy.photons_per_mac.has_value());
    CHECK(*o.energy.e_adc_pj == 0.5);
    CHECK_FALSE(o.energy.e_dac_pj.has_value());
    CHECK(o.energy.context == 512);
}

TEST_CASE("optical config: the resolved config reads back to the same optical config") {
    ScratchDir dir("optical_config_resolved");
    const TrainConfig c = load(dir, kFull);
    const std::string ini = resolved_ini(c);
    lumen::test::write_bytes(dir.file("resolved.cfg"), ini);
    const TrainConfig back = load_train_config(dir.file("resolved.cfg"));
    CHECK(optical_ini(back.optical) == optical_ini(c.optical));
    CHECK(back.optical.plan.rules.size() == 4);
    CHECK(back.optical.plan.settings.at("attention").q_quantiles->second == 0.999);
}

TEST_CASE("optical config: overrides, also as a bare flag") {
    const TrainConfig c = load_train_config("", {"--optical.enabled", "--optical.fc.q_levels=16",
                                                 "--optical.rules.1=blocks\\.0\\.attn -> none"});
    CHECK(c.optical.enabled);
    CHECK(c.optical.plan.settings.at("fc").q_levels == 16);
    REQUIRE(c.optical.plan.rules.size() == 1);
    CHECK(c.optical.plan.rules[0].pattern == "blocks\\.0\\.attn");
    ScratchDir dir("optical_config_override");
    const TrainConfig o = load(dir, "[optical.fc]\nq_levels = 64\n", {"--optical.fc.q_levels=32"});
    CHECK(o.optical.plan.settings.at("fc").q_levels == 32);
}

TEST_CASE("optical config: bad keys and values are refused naming the key and the line (T2)") {
    ScratchDir dir("optical_config_errors");
    CHECK_THROWS_CONTAINING(load(dir, "[optical.fc]\nq_level = 256\n"), "run.cfg:2: optical.fc.q_level is not an optical key (did you mean optical.fc.q_levels?)");
    CHECK_THROWS_CONTAINING(load(dir, "[optical.attention]\nq_quantiles = 0.9, 0.1\n"), "optical.attention.q_quantiles = 0.9, 0.1: expected 0 < a < b < 1");
    CHECK_THROWS_CONTAINING(load(dir, "[optical.attention]\nq_quantiles = 0.5\n"), "expected none or two quantiles");
    CHECK_THROWS_CONTAINING(load(dir, "[optical.fc]\nq_lut_min = -1\n"), "run.cfg:2: optical.fc.q_lut_min = -1: expected a number in [0, 1) or none");
    CHECK_THROWS_CONTAINING(load(dir, "[optical.fc]\nq_levels = 1\n"), "expected an integer in 2..65536");
    CHECK_THROWS_CONTAINING(load(dir, "[optical.fc]\nq_levels = 2.5\n"), "expected an integer");
    CHECK_THROWS_CONTAINING(load(dir, "[optical.fc]\nq_smooth_factor = 1.5\n"), "expected a number in [0, 1]");
    CHECK_THROWS_CONTAINING(load(dir, "[optical.fc]\nq_init_seed = 4294967296\n"), "[0, 2^32)");
    CHECK_THROWS_CONTAINING(load(dir, "[optical.fc]\ndither = gaussian\n"), "expected element or scalar");
    CHECK_THROWS_CONTAINING(load(dir, "[optical.rules]\n1 = blocks.* -> optics\n"), "names the settings set optics, which is not defined");
    CHECK_THROWS_CONTAINING(load(dir, "[optical.rules]\n1 = blocks.( -> fc\n"), "run.cfg:2: optical.rules.1 = blocks.( -> fc: the pattern is not a valid regular expression");
    CHECK_THROWS_CONTAINING(load(dir, "[optical.rules]\n1 = blocks.*\n"), "expected `PATTERN -> SETTINGS`");
    CHECK_THROWS_CONTAINING(load(dir, "[optical]\nenabled = yes\n"), "optical.enabled = yes: expected true or false");
    CHECK_THROWS_CONTAINING(load(dir, "[optical]\nstart_iters = 3\n"), "did you mean optical.start_iter?");
    CHECK_THROWS_CONTAINING(load(dir, "[optical.energy]\nphotons_per_mac = 1\nphotons_per_output = 10\n"), "run.cfg:3)");
    CHECK_THROWS_CONTAINING(load(dir, "[optical.energy]\nefficiency = 2\n"), "expected an efficiency in (0, 1]");
    CHECK_THROWS_CONTAINING(load(dir, "[optical.fc]\nq_levels = 8\nq_levels = 9\n"), "given twice");
    CHECK_THROWS_CONTAINING(load(dir, "[optical.a.b]\nq_levels = 8\n"), "one level deep");
}

TEST_CASE("optical config: a run that stops before start_iter is warned about; a bad optical schedule is refused") {
    ScratchDir dir("optical_config_phase");
    const TrainConfig c = load(dir, "[optical]\nenabled = true\nstart_iter = 600000\n");
    REQUIRE(!c.warnings.empty());
    CHECK(c.warnings.back().find("optical.start_iter = 600000 (") != std::string::npos);
    CHECK(c.warnings.back().find("run.cfg:3) is not below schedule.max_iters = 600000") != std::string::npos);
    CHECK_THROWS_CONTAINING(load(dir, "max_iters = 5000\nlr_decay_iters = 5000\n[optical]\nenabled = true\n"
                                      "start_iter = 4000\nlearning_rate = 1e-4\nwarmup_iters = 2000\n"),
                            "the optical phase's schedule");
}

TEST_CASE("optical config: an optical warmup under decay_lr = false is warned about") {
    const TrainConfig c = load_train_config("", {"--optical.enabled", "--optical.warmup_iters=10", "--decay_lr=false"});
    bool warned = false;
    for (const std::string& w : c.warnings) warned = warned || w.find("optical.warmup_iters is ignored") != std::string::npos;
    CHECK(warned);
}

TEST_CASE("optical config: ./train --help lists the optical keys") {
    const std::string help = train_help();
    for (const char* key : {"start_iter", "q_lut_min", "q_quantiles", "[optical.rules]", "photons_per_output"})
        CHECK(help.find(key) != std::string::npos);
}
