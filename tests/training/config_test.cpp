// tests/training/config_test.cpp: ./train's config (specs/wiggle.md §6, §11 row 11): sections, bare keys
// and overrides, value types, legacy rejections, unknown-key suggestions with file and line,
// optimizer-dependent defaults (specs/optimizers.md §§3–9), cross-key rules, the resolved config's round
// trip and the help text. Config files are written to a scratch directory.
#include "training/train_config.h"

#include "tests/data/data_test_util.h"
#include "tests/harness.h"

#include <cmath>
#include <string>
#include <vector>

using namespace lumen;
using namespace lumen::training;
using lumen::test::ScratchDir;

namespace {

// Writes `text` to dir/name and loads it with the overrides.
TrainConfig load(const ScratchDir& dir, const std::string& text, const std::vector<std::string>& overrides = {},
                 const std::string& name = "run.cfg") {
    lumen::test::write_bytes(dir.file(name), text);
    return load_train_config(dir.file(name), overrides);
}

bool contains(const std::string& text, const std::string& part) { return text.find(part) != std::string::npos; }

}  // namespace

TEST_CASE("config: [model] n_layer = 4, bare n_layer = 4, model.n_layer = 4 and --model.n_layer=4 agree") {
    ScratchDir dir("config_sections");
    const TrainConfig sectioned = load(dir, "[model]\nn_layer = 4\n");
    const TrainConfig bare = load(dir, "n_layer = 4\n");
    const TrainConfig dotted = load(dir, "model.n_layer = 4\n");
    const TrainConfig override_full = load_train_config("", {"--model.n_layer=4"});
    const TrainConfig override_bare = load_train_config("", {"--n_layer=4"});
    const TrainConfig defaults = load_train_config("");
    CHECK(defaults.model.n_layer == 12);
    for (const TrainConfig* c : {&sectioned, &bare, &dotted, &override_full, &override_bare}) {
        CHECK(c->model.n_layer == 4);
        CHECK(resolved_ini(*c) == resolved_ini(sectioned));
    }
    CHECK(sectioned.origins.at("model.n_layer") == dir.file("run.cfg") + ":2");
    CHECK(override_full.origins.at("model.n_layer") == "command line '--model.n_layer=4'");
}

TEST_CASE("config: value types: float keys accept integers, int keys reject fractions, bools, strings") {
    ScratchDir dir("config_types");
    const TrainConfig c = load(dir, "learning_rate = 1\nmin_lr = 0\nmax_iters = 7\nwarmup_iters = 2\neval_only = True\n"
                                    "always_save_checkpoint = false\nout_dir = \"my out\"\ndataset = 'data/x'\n"
                                    "dtype = float16\n");
    CHECK(c.schedule.learning_rate == 1.0);
    CHECK(c.optim.groups.main.lr == 1.0);
    CHECK(c.schedule.min_lr == 0.0);
    CHECK(c.schedule.max_iters == 7);
    CHECK(c.eval.eval_only);
    CHECK(!c.io.always_save_checkpoint);
    CHECK(c.io.out_dir == "my out");
    CHECK(c.data.dataset == "data/x");
    CHECK(c.system.dtype == DType::f16);

    const std::string file = dir.file("run.cfg");
    CHECK_THROWS_CONTAINING(load(dir, "# a comment\nmax_iters = 1.5\n"),
                            file + ":2: schedule.max_iters = 1.5: expected an integer");
    CHECK_THROWS_CONTAINING(load(dir, "batch_size = 1e3\n"), "data.batch_size = 1e3: expected an integer");
    CHECK_THROWS_CONTAINING(load(dir, "eval_only = yes\n"), "eval.eval_only = yes: expected true or false");
    CHECK_THROWS_CONTAINING(load(dir, "learning_rate = fast\n"), "expected a finite number");
    CHECK_THROWS_CONTAINING(load(dir, "batch_size = 5 * 8\n"), "expressions are not evaluated");
    CHECK_THROWS_CONTAINING(load(dir, "dtype = fp16\n"), "expected one of bfloat16 | float16 | float32");
    CHECK_THROWS_CONTAINING(load_train_config("", {"--max_iters=1.5"}),
                            "command line '--max_iters=1.5': schedule.max_iters = 1.5: expected an integer");
    CHECK_THROWS_CONTAINING(load(dir, "batch_size = 0\n"), "data.batch_size = 0: must be ≥ 1");
    CHECK_THROWS_CONTAINING(load(dir, "device = gpu\n"), "expected auto, cpu, cuda or cuda:N");
    CHECK(load(dir, "device = cuda:1\n").system.device == "cuda:1");
    CHECK_THROWS_CONTAINING(load(dir, "out_dir = \"a#b\"\n"), "balanced quotes");
    CHECK_THROWS_CONTAINING(load_train_config("", {"--out_dir=a#b"}), "a string without '#'");
}

TEST_CASE("config: comments, headers and file structure") {
    ScratchDir dir("config_structure");
    const TrainConfig c = load(dir, "# run\n; also a comment\n\n[model]   # the shape\nn_layer = 3  # small\n"
                                    "[ schedule ]\nwarmup_iters = 10 # short\nmax_iters = 100\n[default]\nbatch_size = 2\n");
    CHECK(c.model.n_layer == 3);
    CHECK(c.schedule.warmup_iters == 10);
    CHECK(c.data.batch_size == 2);
    const std::string file = dir.file("run.cfg");
    CHECK_THROWS_CONTAINING(load(dir, "n_layer = 4\n\nn_layer = 5\n"), file + ":3: n_layer is given twice (lines 1 and 3)");
    CHECK_THROWS_CONTAINING(load(dir, "n_layer = 4\n[model]\nn_layer = 5\n"), "model.n_layer is given twice");
    CHECK_THROWS_CONTAINING(load(dir, "[model]\nn_layer\n"), file + ":2: expected `key = value`");
    CHECK_THROWS_CONTAINING(load(dir, "n_layer =   # nothing\n"), file + ":1: n_layer has no value");
    CHECK_THROWS_CONTAINING(load_train_config(dir.file("missing.cfg")), "cannot open");
}

TEST_CASE("config: overrides beat the file; a bare bool override is true") {
    ScratchDir dir("config_overrides");
    const std::string text = "[schedule]\nlearning_rate = 3e-4\nmax_iters = 100\nwarmup_iters = 10\n";
    const TrainConfig file_only = load(dir, text);
    CHECK(file_only.schedule.learning_rate == 3e-4);
    const TrainConfig c = load(dir, text, {"--learning_rate=1e-3", "--schedule.max_iters=200", "--eval_only"});
    CHECK(c.schedule.learning_rate == 1e-3);
    CHECK(c.schedule.max_iters == 200);
    CHECK(c.schedule.lr_decay_iters == 200);  // default: max_iters
    CHECK(c.eval.eval_only);
    CHECK(c.origins.at("schedule.learning_rate") == "command line '--learning_rate=1e-3'");
    const TrainConfig last = load(dir, text, {"--n_layer=2", "--n_layer=3"});
    CHECK(last.model.n_layer == 3);
    CHECK_THROWS_CONTAINING(load(dir, text, {"--n_layer"}), "model.n_layer needs a value: --n_layer=VALUE");
}

TEST_CASE("config: unknown keys name the file, the line and the closest valid key") {
    ScratchDir dir("config_unknown");
    const std::string file = dir.file("run.cfg");
    CHECK_THROWS_CONTAINING(load(dir, "# x\n\nlerning_rate = 1e-3\n"),
                            file + ":3: unknown key 'lerning_rate'; did you mean 'learning_rate' (schedule.learning_rate)?");
    CHECK_THROWS_CONTAINING(load(dir, "[schedule]\nn_layer = 4\n"),
                            file + ":2: unknown key 'schedule.n_layer'; did you mean 'model.n_layer'?");
    CHECK_THROWS_CONTAINING(load(dir, "[model]\nn_layers = 4\n"), "did you mean 'n_layer' (model.n_layer)?");
    CHECK_THROWS_CONTAINING(load_train_config("", {"--bach_size=4"}),
                            "command line '--bach_size=4': unknown key 'bach_size'; did you mean 'batch_size'");
}

TEST_CASE("config: legacy keys are rejected naming the lumen equivalent") {
    ScratchDir dir("config_legacy");
    const std::string file = dir.file("run.cfg");
    CHECK_THROWS_CONTAINING(load(dir, "use_bio_mlp = True\n"), file + ":1: use_bio_mlp is not a lumen key: use model.mlp");
    CHECK_THROWS_CONTAINING(load(dir, "[model]\nuse_rope = True\n"), "model.use_rope is not a lumen key: use model.pos");
    CHECK_THROWS_CONTAINING(load(dir, "use_rmsnorm = True\n"), "use model.norm");
    CHECK_THROWS_CONTAINING(load(dir, "compile = False\n"), "compile is not a lumen key: torch.compile has no meaning");
    CHECK_THROWS_CONTAINING(load(dir, "optimizer_type = lion\n"), "use optim.optimizer");
    CHECK_THROWS_CONTAINING(load(dir, "wandb_log = False\n"), "metrics are JSON lines in out_dir");
    CHECK_THROWS_CONTAINING(load(dir, "bio_compartments = 4\n"), "bio_compartments is not a lumen key");
    CHECK_THROWS_CONTAINING(load(dir, "backend = nccl\n"), "NCCL");
    CHECK_THROWS_CONTAINING(load_train_config("", {"--compile=False"}), "command line '--compile=False'");
}

TEST_CASE("config: optimizer keys default per optimizer (specs/optimizers.md config columns)") {
    ScratchDir dir("config_optim");
    const TrainConfig adamw = load_train_config("");
    CHECK(adamw.optim.kind() == optim::Kind::adamw);
    CHECK(adamw.schedule.learning_rate == 6e-4);
    CHECK(adamw.schedule.min_lr == 6e-5);
    CHECK(adamw.optim.groups.main.beta1 == 0.9);
    CHECK(adamw.optim.groups.main.beta2 == 0.95);
    CHECK(adamw.optim.groups.main.eps == 1e-8);
    CHECK(adamw.optim.groups.main.weight_decay == 0.1);
    CHECK(adamw.optim.grad_clip == 1.0);
    CHECK(adamw.warnings.empty());

    const TrainConfig lion = load(dir, "optimizer = lion\n");
    CHECK(lion.schedule.learning_rate == 1e-4);
    CHECK(lion.optim.groups.main.lr == 1e-4);
    CHECK(lion.schedule.min_lr == 1e-5);
    CHECK(lion.optim.groups.main.beta1 == 0.95);
    CHECK(lion.optim.groups.main.beta2 == 0.98);
    CHECK(lion.optim.groups.main.weight_decay == 0.6);

    const TrainConfig sophia = load(dir, "[optim]\noptimizer = sophia\n[data]\nbatch_size = 4\n"
                                         "gradient_accumulation_steps = 8\n[model]\nblock_size = 256\n");
    CHECK(sophia.schedule.learning_rate == 6e-4);
    CHECK(sophia.schedule.min_lr == 1.5e-5);
    CHECK(sophia.optim.groups.main.rho == 0.05);
    CHECK(sophia.optim.groups.main.weight_decay == 0.2);
    CHECK(sophia.optim.groups.main.beta1 == 0.965);
    CHECK(sophia.optim.groups.main.hess_interval == 10);
    CHECK(sophia.optim.groups.main.tokens_per_step == 4.0 * 256 * 8);

    const TrainConfig muon = load(dir, "optimizer = muon\nbeta1 = 0.8\n");
    CHECK(muon.schedule.learning_rate == 0.02);
    CHECK(muon.optim.groups.main.weight_decay == 0.01);
    CHECK(muon.optim.groups.main.momentum == 0.95);
    CHECK(muon.optim.groups.main.nesterov);
    CHECK(muon.optim.groups.main.ns_steps == 5);
    CHECK(muon.optim.groups.aux_adamw.lr == 3e-4);
    CHECK(muon.optim.groups.aux_adamw.beta1 == 0.8);  // beta1 is the auxiliary AdamW's under muon
    CHECK(muon.optim.groups.aux_adamw.beta2 == 0.95);
    CHECK(muon.optim.groups.aux_adamw.eps == 1e-10);
    CHECK(muon.optim.groups.aux_adamw.weight_decay == 0.01);

    const TrainConfig eight = load(dir, "optimizer = adamw8bit\nmin_8bit_size = 0\n");
    CHECK(eight.optim.groups.main.lr == 6e-4);
    CHECK(eight.optim.groups.main.min_8bit_size == 0);
    CHECK(!eight.optim.groups.main.embed_fp32_state);

    const TrainConfig ada = load(dir, "optimizer = adafactor\n");
    CHECK(ada.optim.groups.main.lr == 6e-4);
    CHECK(!ada.optim.groups.main.relative_step);
    CHECK(!ada.optim.groups.main.scale_parameter);
    CHECK(!ada.optim.groups.main.use_beta1);
    CHECK(ada.optim.groups.main.weight_decay == 0.1);
    CHECK(load(dir, "optimizer = adafactor\nbeta1 = 0.9\n").optim.groups.main.use_beta1);

    // Adafactor's relative step: learning_rate is not read, and giving it is an error (HF raises).
    const TrainConfig rel = load(dir, "optimizer = adafactor\nrelative_step = true\n");
    CHECK(std::isnan(rel.optim.groups.main.lr));
    CHECK(!rel.warnings.empty());
    CHECK_THROWS_CONTAINING(load(dir, "optimizer = adafactor\nrelative_step = true\nlearning_rate = 1e-3\n"),
                            "schedule.learning_rate is not read by this config: optim.relative_step = true");

    // sgd has no sourced rate: learning_rate is required.
    CHECK_THROWS_CONTAINING(load(dir, "optimizer = sgd\n"), "schedule.learning_rate must be set");
    const TrainConfig sgd = load(dir, "optimizer = sgd\nlearning_rate = 0.1\n");
    CHECK(sgd.optim.groups.main.lr == 0.1);
    CHECK(sgd.schedule.min_lr == 0.01);
    CHECK(sgd.optim.groups.main.momentum == 0.9);
    CHECK(sgd.optim.groups.main.nesterov);
    CHECK(sgd.optim.groups.main.weight_decay == 0.0);

    // A key the chosen optimizer does not read is an error, never ignored.
    CHECK_THROWS_CONTAINING(load(dir, "rho = 0.05\n"),
                            "optim.rho is not read by this config: read only when optim.optimizer = sophia; it is adamw");
    CHECK_THROWS_CONTAINING(load(dir, "optimizer = lion\neps = 1e-6\n"), "optim.eps is not read by this config");
    CHECK_THROWS_CONTAINING(load(dir, "optimizer = adamw\nadamw_lr = 1e-3\n"), "optim.adamw_lr is not read");
}

TEST_CASE("config: cross-key rules name the keys and where they were set") {
    ScratchDir dir("config_rules");
    const std::string file = dir.file("run.cfg");
    CHECK_THROWS_CONTAINING(load(dir, "learning_rate = 1e-4\nmin_lr = 1e-3\n"),
                            "schedule.min_lr (0.001) must not exceed schedule.learning_rate (0.0001)");
    CHECK_THROWS_CONTAINING(load(dir, "learning_rate = 1e-4\nmin_lr = 1e-3\n"), "schedule.min_lr: " + file + ":2");
    CHECK_THROWS_CONTAINING(load(dir, "max_iters = 100\nwarmup_iters = 100\n"),
                            "schedule.lr_decay_iters (100) must exceed schedule.warmup_iters (100)");
    CHECK_THROWS_CONTAINING(load(dir, "lr_schedule = wsd\nwarmup_iters = 10\nstable_iters = 90\nlr_decay_iters = 100\n"),
                            "schedule.stable_iters");
    CHECK_THROWS_CONTAINING(load(dir, "beta1 = 1.5\n"), "optim.beta1: optimizer adamw: beta1 = 1.5 is out of range");
    CHECK_THROWS_CONTAINING(load(dir, "optimizer = muon\nadamw_weight_decay = 1e4\n"),
                            "optim.adamw_weight_decay: Muon's auxiliary AdamW");
    CHECK_THROWS_CONTAINING(load(dir, "[model]\nn_embd = 384\nn_head = 5\n"), "model.n_head");
    CHECK_THROWS_CONTAINING(load(dir, "[model]\nn_embd = 384\nn_head = 5\n"), file + ":3");
    CHECK_THROWS_CONTAINING(load(dir, "mlp = gelu\nbio_threshold = 0.3\n"),
                            "model.bio_threshold is not read by this config: read only when model.mlp = bio");
    CHECK_THROWS_CONTAINING(load(dir, "rope_theta = 500000\n"), "read only when model.pos = rope");
    CHECK(load(dir, "pos = rope\nrope_theta = 500000\n").model.rope_theta == 500000.0);
}

TEST_CASE("config: stable_iters under cosine is a warning, not an error") {
    ScratchDir dir("config_stable");
    const TrainConfig c = load(dir, "lr_schedule = cosine\nstable_iters = 10000\n");
    REQUIRE(c.warnings.size() == 1);
    CHECK(contains(c.warnings[0], "schedule.stable_iters = 10000 is ignored"));
    CHECK(c.schedule.stable_iters == 10000);
    CHECK(load(dir, "lr_schedule = wsd\nstable_iters = 10000\n").warnings.empty());
}

TEST_CASE("config: model keys, auto words, init_from") {
    ScratchDir dir("config_model");
    const TrainConfig d = load_train_config("");
    CHECK(d.model.vocab_size == 0);  // auto
    CHECK(d.model.n_kv_head == 0);
    CHECK(d.model.init_seed == 1337);
    CHECK(d.io.init_from == InitFrom::scratch);
    CHECK(d.system.peak_tflops == 0.0);
    const TrainConfig c =
        load(dir, "[model]\nn_layer = 4\nn_head = 6\nn_embd = 384\nmlp = bio\nbio_threshold = 0.25\nvocab_size = 8192\n"
                  "norm = rmsnorm\nnorm_eps = 1e-6\ngradient_checkpointing = true\n[system]\nseed = 7\npeak_tflops = 312\n"
                  "[io]\ninit_from = hf:weights/gpt2\n");
    CHECK(c.model.mlp == nn::MlpKind::bio);
    CHECK(c.model.vocab_size == 8192);
    CHECK(c.model.norm == nn::NormKind::rmsnorm);
    CHECK(c.model.norm_eps == 1e-6);
    CHECK(c.model.gradient_checkpointing);
    CHECK(c.model.init_seed == 7);  // default: system.seed
    CHECK(c.system.seed == 7);
    CHECK(c.system.peak_tflops == 312.0);
    CHECK(c.io.init_from == InitFrom::hf);
    CHECK(c.io.init_path == "weights/gpt2");
    CHECK(c.tokens_per_step() == 12 * 1024 * 40);
    const TrainConfig p = load(dir, "init_from = out/ckpt_000100\n");
    CHECK(p.io.init_from == InitFrom::path);
    CHECK(p.io.init_path == "out/ckpt_000100");
    CHECK(load(dir, "init_from = resume\n").io.init_from == InitFrom::resume);
    CHECK(load(dir, "loader = random\n").data.loader == data::SampleMode::random);
    CHECK(load(dir, "vocab_size = auto\n").model.vocab_size == 0);
}

TEST_CASE("config: the resolved config reads back to the same config") {
    ScratchDir dir("config_resolved");
    const std::vector<std::string> configs = {
        "",
        "[model]\nn_layer = 4\nn_head = 6\nn_embd = 384\nmlp = bio\nbio_threshold = 0.25\ndropout = 0.1\n"
        "[schedule]\nmax_iters = 200000\nlr_schedule = wsd\nstable_iters = 10000\n[io]\nout_dir = \"out v2\"\n"
        "[system]\ndtype = float16\ndevice = cuda:0\n[data]\nloader = random\n",
        "optimizer = lion\npos = rope\nrope_pairing = interleaved\nn_kv_head = 4\ninit_from = hf:x\n",
        "optimizer = sgd\nlearning_rate = 0.1\nnesterov = false\n",
        "optimizer = adafactor\nrelative_step = true\nbeta1 = 0.9\n",
        "optimizer = adafactor\nclip_threshold = 0.5\n",
        "optimizer = muon\nadamw_lr = 1e-3\nmuon_scale = match_rms_adamw\n",
        "optimizer = sophia\nrho = 0.08\n",
        "optimizer = adamw8bit\nembed_fp32_state = true\n",
        "lr_schedule = cosine\nstable_iters = 5\ndecay_lr = false\n",
    };
    for (size_t i = 0; i < configs.size(); ++i) {
        CAPTURE(i);
        lumen::test::write_bytes(dir.file("a.cfg"), configs[i]);
        Config raw(train_schema());
        raw.read_file(dir.file("a.cfg"));
        const TrainConfig a = train_config_from(raw);
        const std::string text = resolved_ini(a);
        CHECK(raw.resolved("lumen ./train resolved config: every key (a commented key is not read by this config)") +
                  optical_ini(a.optical) ==
              text);
        lumen::test::write_bytes(dir.file("b.cfg"), text);
        const TrainConfig b = load_train_config(dir.file("b.cfg"));
        CHECK(resolved_ini(b) == text);
        CHECK(b.warnings == a.warnings);
        CHECK(b.optim.kind() == a.optim.kind());
        CHECK(b.schedule.learning_rate == a.schedule.learning_rate);
        CHECK(b.model.n_layer == a.model.n_layer);
        CHECK(b.io.out_dir == a.io.out_dir);
    }
    // Every key appears, commented or not.
    const std::string text = resolved_ini(load_train_config(""));
    for (const Key& k : train_schema().keys()) {
        CAPTURE(k.name);
        CHECK((contains(text, "\n" + k.bare() + " = ") || contains(text, "\n# " + k.bare() + ": not read")));
    }
    // A field changed after loading (vocab_size resolved from the dataset) shows in the text.
    TrainConfig edited = load_train_config("");
    edited.model.vocab_size = 8192;
    CHECK(contains(resolved_ini(edited), "\nvocab_size = 8192\n"));
    CHECK(contains(text, "\nvocab_size = auto\n"));
    CHECK(contains(text, "\nlearning_rate = 0.0006\n"));
    CHECK(contains(text, "\nmin_lr = 6e-05\n"));
}

TEST_CASE("config: --help lists every key with its default and meaning") {
    const std::string help = train_help();
    CHECK(contains(help, "usage: ./train CONFIG.cfg"));
    for (const auto& [section, meaning] : train_schema().sections()) CHECK(contains(help, "[" + section + "]"));
    for (const Key& k : train_schema().keys()) {
        CAPTURE(k.name);
        CHECK(contains(help, "  " + k.bare() + " "));
        CHECK(contains(help, k.help));
    }
    CHECK(contains(help, "0.0006 (adamw, adamw8bit, adafactor, sophia), 0.0001 (lion), 0.02 (muon); sgd: required"));
    CHECK(contains(help, "(default auto; int | auto)"));
}

TEST_CASE("config: edit distance") {
    CHECK(edit_distance("lerning_rate", "learning_rate") == 1);
    CHECK(edit_distance("", "abc") == 3);
    CHECK(edit_distance("kitten", "sitting") == 3);
    CHECK(train_schema().closest("lerning_rate") == "schedule.learning_rate");
    CHECK(train_schema().closest("batchsize") == "data.batch_size");
}
