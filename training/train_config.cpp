// training/train_config.cpp: ./train's key table (each key bound to its TrainConfig field) but the
// optimizer's (training/train_keys_optim.cpp), the legacy-key rejections, and the rules between keys.
#include "training/train_config.h"

#include "training/train_keys.h"

#include "training/optical_phase.h"

#include "core/device.h"
#include "core/error.h"

#include <fmt/format.h>

#include <charconv>
#include <cmath>
#include <limits>

namespace lumen::training {

namespace {

using namespace keys;

// ---------------------------------------------------------------- the sections but [optim]

void add_io_eval_data(Registry& r) {
    const IoConfig io;
    r.schema.add_section("io", "output, logging, checkpoints");
    r.schema.add(make("io.out_dir", KeyType::string, io.out_dir, "checkpoints, metrics.jsonl and the resolved config go here"));
    r.bindings["io.out_dir"] = field<std::string>([](auto& c) -> auto& { return c.io.out_dir; });
    {
        Key k = make("io.log_interval", KeyType::integer, io.log_interval, "a log line every this many iterations");
        k.check = int_at_least(1);
        r.schema.add(std::move(k));
        r.bindings["io.log_interval"] = field<int64_t>([](auto& c) -> auto& { return c.io.log_interval; });
    }
    r.schema.add(make("io.always_save_checkpoint", KeyType::boolean, io.always_save_checkpoint,
                      "checkpoint at every eval, not only on a new best val loss (the best is always kept)"));
    r.bindings["io.always_save_checkpoint"] = field<bool>([](auto& c) -> auto& { return c.io.always_save_checkpoint; });
    {
        Key k = make("io.init_from", KeyType::string, std::string("scratch"),
                     "scratch | resume (out_dir's latest checkpoint, exactly) | PATH (a checkpoint's weights only) | "
                     "hf:DIR (a Hugging Face model directory)");
        k.check = [](const Value& v) {
            const std::string& s = std::get<std::string>(v);
            if (s.empty()) return std::string("must be scratch, resume, a checkpoint path or hf:DIR");
            if (s.rfind("hf:", 0) == 0 && s.size() == 3) return std::string("hf: needs a directory (hf:DIR)");
            return std::string();
        };
        r.schema.add(std::move(k));
        r.bindings["io.init_from"] = {[](TrainConfig& c, const Value& v) {
                                          const std::string& s = std::get<std::string>(v);
                                          c.io.init_path.clear();
                                          if (s == "scratch") c.io.init_from = InitFrom::scratch;
                                          else if (s == "resume") c.io.init_from = InitFrom::resume;
                                          else if (s.rfind("hf:", 0) == 0) c.io.init_from = InitFrom::hf, c.io.init_path = s.substr(3);
                                          else c.io.init_from = InitFrom::path, c.io.init_path = s;
                                      },
                                      [](const TrainConfig& c) -> Value {
                                          switch (c.io.init_from) {
                                          case InitFrom::scratch: return std::string("scratch");
                                          case InitFrom::resume: return std::string("resume");
                                          case InitFrom::hf: return "hf:" + c.io.init_path;
                                          case InitFrom::path: break;
                                          }
                                          return c.io.init_path;
                                      }};
    }
    {
        Key k = make("io.keep_last", KeyType::integer, io.keep_last, "checkpoints kept besides the best one");
        k.check = int_at_least(1);
        r.schema.add(std::move(k));
        r.bindings["io.keep_last"] = field<int64_t>([](auto& c) -> auto& { return c.io.keep_last; });
    }
    {
        Key k = make("io.max_bad_steps", KeyType::integer, io.max_bad_steps,
                     "stop after this many non-finite (skipped) steps in a row");
        k.check = int_at_least(1);
        r.schema.add(std::move(k));
        r.bindings["io.max_bad_steps"] = field<int64_t>([](auto& c) -> auto& { return c.io.max_bad_steps; });
    }

    r.schema.add(make("io.export_hf", KeyType::string, io.export_hf,
                      "a directory: at the end of the run, write the model there as a Hugging Face folder "
                      "(config.json + model.safetensors, GPT-2 or Llama architecture); empty = none"));
    r.bindings["io.export_hf"] = field<std::string>([](auto& c) -> auto& { return c.io.export_hf; });
    {
        Key k = make("io.merge_lora", KeyType::boolean, io.merge_lora,
                     "export_hf of a LoRA run: write W + (B·A)·alpha/r as each adapted layer's weight");
        k.inactive = [](const Config& c) {
            return c.get_string("io.export_hf").empty() ? std::string("read only when io.export_hf is set") : std::string();
        };
        r.schema.add(std::move(k));
        r.bindings["io.merge_lora"] = field<bool>([](auto& c) -> auto& { return c.io.merge_lora; });
    }

    const EvalConfig ev;
    r.schema.add_section("eval", "evaluation on train and val");
    {
        Key k = make("eval.eval_interval", KeyType::integer, ev.eval_interval, "evaluate (and checkpoint) every this many iterations");
        k.check = int_at_least(1);
        r.schema.add(std::move(k));
        r.bindings["eval.eval_interval"] = field<int64_t>([](auto& c) -> auto& { return c.eval.eval_interval; });
    }
    {
        Key k = make("eval.eval_iters", KeyType::integer, ev.eval_iters, "batches per split and eval (the same windows every time)");
        k.check = int_at_least(1);
        r.schema.add(std::move(k));
        r.bindings["eval.eval_iters"] = field<int64_t>([](auto& c) -> auto& { return c.eval.eval_iters; });
    }
    r.schema.add(make("eval.eval_only", KeyType::boolean, ev.eval_only, "evaluate once at the start iteration and exit"));
    r.bindings["eval.eval_only"] = field<bool>([](auto& c) -> auto& { return c.eval.eval_only; });

    const DataConfig d;
    r.schema.add_section("data", "the dataset and the batches");
    r.schema.add(make("data.dataset", KeyType::string, d.dataset, "dataset directory (token shards + dataset.json, made by ./prepare)"));
    r.bindings["data.dataset"] = field<std::string>([](auto& c) -> auto& { return c.data.dataset; });
    {
        Key k = make("data.batch_size", KeyType::integer, d.batch_size, "sequences per micro-batch (per rank)");
        k.check = int_at_least(1);
        r.schema.add(std::move(k));
        r.bindings["data.batch_size"] = field<int64_t>([](auto& c) -> auto& { return c.data.batch_size; });
    }
    {
        Key k = make("data.gradient_accumulation_steps", KeyType::integer, d.gradient_accumulation_steps,
                     "micro-batches per optimizer step, global (split over ranks)");
        k.check = int_at_least(1);
        r.schema.add(std::move(k));
        r.bindings["data.gradient_accumulation_steps"] =
            field<int64_t>([](auto& c) -> auto& { return c.data.gradient_accumulation_steps; });
    }
    {
        Key k = make("data.loader", KeyType::choice, std::string("sequential"),
                     "sequential: every sample once per epoch, shuffled; random: nanoGPT's random windows");
        k.choices = {"sequential", "random"};
        r.schema.add(std::move(k));
        r.bindings["data.loader"] = {
            [](TrainConfig& c, const Value& v) {
                c.data.loader = std::get<std::string>(v) == "random" ? data::SampleMode::random : data::SampleMode::sequential;
            },
            [](const TrainConfig& c) -> Value { return std::string(data::mode_name(c.data.loader)); }};
    }
}

void add_model(Registry& r) {
    const nn::ModelConfig m;
    r.schema.add_section("model", "the model (nn::ModelConfig; defaults: GPT-2 124M)");
    const auto int_key = [&](std::string name, int64_t def, std::string help, int64_t at_least, auto ref,
                             bool auto_word = false) {
        Key k = make(name, KeyType::integer, def, std::move(help));
        k.check = int_at_least(at_least);
        if (auto_word) k.words = {{"auto", int64_t(0)}};
        r.schema.add(std::move(k));
        r.bindings[name] = field<int64_t>(ref);
    };
    int_key("model.n_layer", m.n_layer, "transformer blocks", 1, [](auto& c) -> auto& { return c.model.n_layer; });
    int_key("model.n_head", m.n_head, "attention heads", 1, [](auto& c) -> auto& { return c.model.n_head; });
    int_key("model.n_kv_head", 0, "key/value heads: auto = n_head (multi-head); fewer = grouped-query attention", 1,
            [](auto& c) -> auto& { return c.model.n_kv_head; }, true);
    int_key("model.n_embd", m.n_embd, "model width", 1, [](auto& c) -> auto& { return c.model.n_embd; });
    int_key("model.block_size", m.block_size, "context length in tokens", 1,
            [](auto& c) -> auto& { return c.model.block_size; });
    int_key("model.vocab_size", 0,
            "vocabulary size: auto = the dataset's (dataset.json; TrainConfig holds 0 until the trainer reads it)", 1,
            [](auto& c) -> auto& { return c.model.vocab_size; }, true);
    r.schema.add(make("model.bias", KeyType::boolean, m.bias, "biases in linear layers and norms"));
    r.bindings["model.bias"] = field<bool>([](auto& c) -> auto& { return c.model.bias; });
    {
        Key k = make("model.dropout", KeyType::real, m.dropout, "dropout probability");
        k.check = [](const Value& v) {
            const double x = std::get<double>(v);
            return x >= 0 && x < 1 ? std::string() : std::string("must be in [0, 1)");
        };
        r.schema.add(std::move(k));
        r.bindings["model.dropout"] = field<double>([](auto& c) -> auto& { return c.model.dropout; });
    }
    {
        Key k = make("model.norm", KeyType::choice, std::string(nn::norm_name(m.norm)), "normalisation");
        k.choices = {"layernorm", "rmsnorm"};
        r.schema.add(std::move(k));
        r.bindings["model.norm"] = choice_field<nn::NormKind>([](auto& c) -> auto& { return c.model.norm; },
                                                              nn::norm_name, nn::parse_norm);
    }
    {
        Key k = make("model.norm_eps", KeyType::real, 0.0, "norm epsilon: auto = 1e-5 (layernorm), 1e-6 (rmsnorm)");
        k.words = {{"auto", 0.0}};
        k.check = real_at_least(0, true);
        r.schema.add(std::move(k));
        r.bindings["model.norm_eps"] = field<double>([](auto& c) -> auto& { return c.model.norm_eps; });
    }
    {
        Key k = make("model.pos", KeyType::choice, std::string(nn::pos_name(m.pos)),
                     "positions: learned wpe, rope, or none (reproduces WiggleGPT v3's no-op RoPE)");
        k.choices = {"learned", "rope", "none"};
        r.schema.add(std::move(k));
        r.bindings["model.pos"] =
            choice_field<nn::PosKind>([](auto& c) -> auto& { return c.model.pos; }, nn::pos_name, nn::parse_pos);
    }
    const auto rope_only = [](const Config& c) {
        const std::string pos = c.get_string("model.pos");
        return pos == "rope" ? std::string() : fmt::format("read only when model.pos = rope; it is {}", pos);
    };
    {
        Key k = make("model.rope_theta", KeyType::real, m.rope_theta, "RoPE base θ");
        k.check = real_at_least(1, true);
        k.inactive = rope_only;
        r.schema.add(std::move(k));
        r.bindings["model.rope_theta"] = field<double>([](auto& c) -> auto& { return c.model.rope_theta; });
    }
    {
        Key k = make("model.rope_pairing", KeyType::choice, std::string(nn::rope_pairing_name(m.rope_pairing)),
                     "RoPE pairs: half (GPT-NeoX/Llama HF) or interleaved (Meta)");
        k.choices = {"half", "interleaved"};
        k.inactive = rope_only;
        r.schema.add(std::move(k));
        r.bindings["model.rope_pairing"] = choice_field<nn::RopePairingKind>(
            [](auto& c) -> auto& { return c.model.rope_pairing; }, nn::rope_pairing_name, nn::parse_rope_pairing);
    }
    {
        Key k = make("model.mlp", KeyType::choice, std::string(nn::mlp_name(m.mlp)),
                     "MLP: gelu (exact erf), gelu_tanh (GPT-2's gelu_new), bio (WiggleGPT v2), osc (v3) or swiglu");
        k.choices = {"gelu", "gelu_tanh", "bio", "osc", "swiglu"};
        r.schema.add(std::move(k));
        r.bindings["model.mlp"] =
            choice_field<nn::MlpKind>([](auto& c) -> auto& { return c.model.mlp; }, nn::mlp_name, nn::parse_mlp);
    }
    {
        Key k = make("model.mlp_ratio", KeyType::real, m.mlp_ratio, "MLP hidden width / n_embd");
        k.check = real_at_least(0, true);
        r.schema.add(std::move(k));
        r.bindings["model.mlp_ratio"] = field<double>([](auto& c) -> auto& { return c.model.mlp_ratio; });
    }
    int_key("model.mlp_hidden", 0, "MLP hidden width: auto = mlp_ratio · n_embd", 1,
            [](auto& c) -> auto& { return c.model.mlp_hidden; }, true);
    {
        Key k = make("model.bio_threshold", KeyType::real, m.bio_threshold,
                     "bio MLP gate threshold θ (WiggleGPT v2 ran 0.25; configs that omitted it, 0.3)");
        k.check = [](const Value& v) {
            const double x = std::get<double>(v);
            return x > 0 && x < 1 ? std::string() : std::string("must be in (0, 1)");
        };
        k.inactive = [](const Config& c) {
            const std::string mlp = c.get_string("model.mlp");
            return mlp == "bio" ? std::string() : fmt::format("read only when model.mlp = bio; it is {}", mlp);
        };
        r.schema.add(std::move(k));
        r.bindings["model.bio_threshold"] = field<double>([](auto& c) -> auto& { return c.model.bio_threshold; });
    }
    r.schema.add(make("model.tie_embeddings", KeyType::boolean, m.tie_embeddings, "lm_head shares wte's weights"));
    r.bindings["model.tie_embeddings"] = field<bool>([](auto& c) -> auto& { return c.model.tie_embeddings; });
    r.schema.add(make("model.gradient_checkpointing", KeyType::boolean, m.gradient_checkpointing,
                      "recompute each block's activations in backward (less memory, ~1/3 more compute)"));
    r.bindings["model.gradient_checkpointing"] =
        field<bool>([](auto& c) -> auto& { return c.model.gradient_checkpointing; });
    {
        Key k = make("model.init_seed", KeyType::integer, int64_t(0), "seed of the weight initialisation");
        k.check = int_at_least(0);
        k.default_fn = [](const Config& c) -> Value { return c.get_int("system.seed"); };
        k.default_text = "system.seed";
        r.schema.add(std::move(k));
        r.bindings["model.init_seed"] = field<int64_t>([](auto& c) -> auto& { return c.model.init_seed; });
    }
}

void add_schedule(Registry& r) {
    const ScheduleConfig s;
    r.schema.add_section("schedule", "iterations and the learning-rate schedule (specs/wiggle.md §7)");
    const auto relative_inactive = [](const Config& c) {
        return relative_step(c) ? std::string("optim.relative_step = true: Adafactor's relative step sets the rate")
                                : std::string();
    };
    {
        Key k = make("schedule.learning_rate", KeyType::real, 0.0, "peak learning rate of the optimizer's main group");
        k.check = real_at_least(0);
        k.inactive = relative_inactive;
        k.default_fn = [](const Config& c) -> Value {
            const Kind kind = kind_of(c);
            if (kind == Kind::sgd)
                throw Error(fmt::format("schedule.learning_rate must be set: optim.optimizer = sgd has no default "
                                        "rate (no sourced GPT recipe, specs/optimizers.md §9; optim.optimizer: {})",
                                        c.where("optim.optimizer")));
            return optim_config_defaults(kind).groups.main.lr;
        };
        OptimField lr{{},
                      [](const OptimConfig& o) -> Value { return o.groups.main.lr; },
                      [](OptimConfig&, const Value&) {}};
        std::vector<Kind> with_default(std::begin(kKinds), std::end(kKinds) - 1);  // all but sgd
        lr.kinds = with_default;
        k.default_text = per_kind_default_text(k, lr) + "; sgd: required";
        r.schema.add(std::move(k));
        r.bindings["schedule.learning_rate"] = {[](TrainConfig& c, const Value& v) {
                                                    c.optim.groups.main.lr = std::get<double>(v);
                                                    c.schedule.learning_rate = std::get<double>(v);
                                                },
                                                [](const TrainConfig& c) -> Value { return c.schedule.learning_rate; }};
    }
    {
        Key k = make("schedule.min_lr", KeyType::real, 0.0, "the rate after decay (≤ learning_rate)");
        k.check = real_at_least(0);
        k.inactive = relative_inactive;
        k.default_fn = [](const Config& c) -> Value {
            const double divisor = kind_of(c) == Kind::sophia ? 40.0 : 10.0;
            return round12(c.get_real("schedule.learning_rate") / divisor);
        };
        k.default_text = "learning_rate/10 (sophia: /40, its GPT-2 small recipe 6e-4 -> 1.5e-5)";
        r.schema.add(std::move(k));
        r.bindings["schedule.min_lr"] = field<double>([](auto& c) -> auto& { return c.schedule.min_lr; });
    }
    const auto iters = [&](std::string name, int64_t def, std::string help, auto ref) {
        Key k = make(name, KeyType::integer, def, std::move(help));
        k.check = int_at_least(0);
        r.schema.add(std::move(k));
        r.bindings[name] = field<int64_t>(ref);
    };
    iters("schedule.max_iters", s.max_iters, "optimizer steps in the run (exactly this many, then a final eval)",
          [](auto& c) -> auto& { return c.schedule.max_iters; });
    iters("schedule.warmup_iters", s.warmup_iters, "linear warmup W: lr·(it+1)/(W+1) for it < W",
          [](auto& c) -> auto& { return c.schedule.warmup_iters; });
    {
        Key k = make("schedule.lr_decay_iters", KeyType::integer, int64_t(0), "the rate reaches min_lr at this iteration D");
        k.check = int_at_least(0);
        k.default_fn = [](const Config& c) -> Value { return c.get_int("schedule.max_iters"); };
        k.default_text = "max_iters";
        r.schema.add(std::move(k));
        r.bindings["schedule.lr_decay_iters"] = field<int64_t>([](auto& c) -> auto& { return c.schedule.lr_decay_iters; });
    }
    {
        Key k = make("schedule.lr_schedule", KeyType::choice, std::string("cosine"),
                     "after warmup: cosine, wsd (stable then cosine decay), constant, linear");
        k.choices = {"cosine", "wsd", "constant", "linear"};
        r.schema.add(std::move(k));
        r.bindings["schedule.lr_schedule"] =
            choice_field<LrSchedule>([](auto& c) -> auto& { return c.schedule.schedule; }, schedule_name, parse_schedule);
    }
    iters("schedule.stable_iters", s.stable_iters, "wsd: iterations at learning_rate after warmup (ignored otherwise)",
          [](auto& c) -> auto& { return c.schedule.stable_iters; });
    r.schema.add(make("schedule.decay_lr", KeyType::boolean, s.decay_lr, "false: learning_rate at every iteration, no warmup"));
    r.bindings["schedule.decay_lr"] = field<bool>([](auto& c) -> auto& { return c.schedule.decay_lr; });
}

void add_system(Registry& r) {
    const SystemConfig s;
    r.schema.add_section("system", "precision, device, seeds, MFU");
    {
        Key k = make("system.dtype", KeyType::choice, std::string("bfloat16"),
                     "bfloat16 (f32 master weights), float16 (dynamic loss scaling) or float32");
        k.choices = {"bfloat16", "float16", "float32"};
        r.schema.add(std::move(k));
        r.bindings["system.dtype"] = {[](TrainConfig& c, const Value& v) { c.system.dtype = dtype_from_name(std::get<std::string>(v)); },
                                      [](const TrainConfig& c) -> Value {
                                          switch (c.system.dtype) {
                                          case DType::f16: return std::string("float16");
                                          case DType::f32: return std::string("float32");
                                          default: return std::string("bfloat16");
                                          }
                                      }};
    }
    {
        Key k = make("system.device", KeyType::string, s.device, "auto (the first GPU, else the CPU), cpu, cuda or cuda:N");
        k.check = [](const Value& v) {
            const std::string& d = std::get<std::string>(v);
            if (d == "auto") return std::string();
            try {
                (void)device_from_name(d);
            } catch (const Error&) {
                return std::string("expected auto, cpu, cuda or cuda:N");
            }
            return std::string();
        };
        r.schema.add(std::move(k));
        r.bindings["system.device"] = field<std::string>([](auto& c) -> auto& { return c.system.device; });
    }
    {
        Key k = make("system.seed", KeyType::integer, int64_t(s.seed),
                     "seed of the Philox streams (init, dropout, train data, eval data, sampling)");
        k.check = int_at_least(0);
        r.schema.add(std::move(k));
        r.bindings["system.seed"] = field<int64_t>([](auto& c) -> auto& { return c.system.seed; });
    }
    {
        Key k = make("system.peak_tflops", KeyType::real, 0.0,
                     "MFU denominator: auto = this device's dense peak for the dtype; 312 = nanoGPT's A100 figure");
        k.words = {{"auto", 0.0}};
        k.check = real_at_least(0, true);
        r.schema.add(std::move(k));
        r.bindings["system.peak_tflops"] = field<double>([](auto& c) -> auto& { return c.system.peak_tflops; });
    }
}

void add_rejections(Schema& s) {
    s.reject("use_bio_mlp", "use model.mlp = gelu | gelu_tanh | bio | osc | swiglu (use_bio_mlp = True meant bio in WiggleGPT v2 "
                            "and the optimized trainer, osc in v3)");
    s.reject("bio_compartments", "it was unused in the reference; lumen has no equivalent, delete the line");
    s.reject("use_rmsnorm", "use model.norm = layernorm | rmsnorm");
    s.reject("use_rope", "use model.pos = learned | rope | none (WiggleGPT v3's use_rope = True was a no-op: "
                         "model.pos = none reproduces it)");
    s.reject("optimizer_type", "use optim.optimizer = adamw | lion | adamw8bit | adafactor | sophia | muon | sgd");
    for (const char* name : {"wandb_log", "wandb_project", "wandb_run_name"})
        s.reject(name, "lumen has no wandb logging; metrics are JSON lines in out_dir/metrics.jsonl");
    for (const char* name : {"compile", "compile_mode"})
        s.reject(name, "torch.compile has no meaning in lumen; delete the line");
    s.reject("backend", "data-parallel runs use NCCL on GPUs and MPI on the CPU, started by mpirun or ./train --nproc N; "
                        "delete the line");
    s.reject("profile_memory", "memory is always reported (peak allocated memory in every log line); delete the line");
    for (const char* name : {"amsgrad", "maximize", "capturable", "fused", "foreach"})
        s.reject(name, "not offered by lumen's optimizers (specs/optimizers.md §3); delete the line");
    for (const char* name : {"percentile_clipping", "max_unorm"})
        s.reject(name, "not offered by lumen's 8-bit AdamW (specs/optimizers.md §5.4); delete the line");
    s.reject("betas", "use optim.beta1 and optim.beta2");
    s.reject("lr", "use schedule.learning_rate (Muon's auxiliary AdamW: optim.adamw_lr)");
    s.add_open_section("optical");
}

const Registry& registry() {
    static const Registry r = [] {
        Registry reg;
        add_io_eval_data(reg);
        add_model(reg);
        add_schedule(reg);
        add_optim_keys(reg);
        add_system(reg);
        add_lora_keys(reg);
        add_dist_keys(reg);
        add_rejections(reg.schema);
        for (const Key& k : reg.schema.keys())
            if (!reg.bindings.count(k.name)) throw Error(fmt::format("train config: {} has no binding", k.name));
        return reg;
    }();
    return r;
}

// ---------------------------------------------------------------- cross-key rules

bool whole_word_at(const std::string& text, size_t pos, size_t len) {
    const auto word = [](char ch) { return std::isalnum(static_cast<unsigned char>(ch)) || ch == '_' || ch == '.'; };
    return (pos == 0 || !word(text[pos - 1])) && (pos + len == text.size() || !word(text[pos + len]));
}

// `message` plus where each key it names was set: "... (schedule.min_lr: run.cfg:5)".
std::string located(const Config& cfg, const std::string& message) {
    std::string where;
    for (const Key& k : cfg.schema().keys()) {
        const size_t pos = message.find(k.name);
        if (pos == std::string::npos || !whole_word_at(message, pos, k.name.size())) continue;
        where += fmt::format("{}{}: {}", where.empty() ? "" : "; ", k.name,
                             cfg.is_set(k.name) ? cfg.where(k.name) : "default");
    }
    return where.empty() ? message : fmt::format("{} ({})", message, where);
}

// optim::validate names bare keys ("optimizer lion: weight_decay = 2 is out of range: ..."); name the
// config key and where it was set. `aux`: the message is about Muon's auxiliary AdamW.
[[noreturn]] void optim_error(const Config& cfg, const std::string& message, bool aux) {
    const size_t colon = message.find(": ");
    const size_t eq = message.find(" =", colon == std::string::npos ? 0 : colon + 2);
    std::string bare = colon != std::string::npos && eq != std::string::npos ? message.substr(colon + 2, eq - colon - 2) : "";
    if (aux && bare == "learning_rate") bare = "adamw_lr";
    if (aux && bare == "weight_decay") bare = "adamw_weight_decay";
    std::string key;
    for (const Key& k : cfg.schema().keys())
        if (k.bare() == bare) key = k.name;
    const std::string prefix = aux ? "Muon's auxiliary AdamW: " : "";
    if (key.empty()) throw Error(prefix + message);
    const std::string origin = cfg.is_set(key) ? "set at " + cfg.where(key)
                                               : fmt::format("the default for {}", cfg.get_string("optim.optimizer"));
    throw Error(fmt::format("{}: {}{} ({})", key, prefix, message, origin));
}

}  // namespace

// ---------------------------------------------------------------- public


const Schema& train_schema() { return registry().schema; }

std::string train_help() {
    return "usage: ./train CONFIG.cfg [--key=value ...] [--export_hf DIR] [--merge_lora] [--nproc N]\n"
           "       mpirun -np N ./train CONFIG.cfg [...]      (data parallel: N ranks, one GPU each)\n"
           "\n"
           "CONFIG.cfg is INI: `key = value` lines, `[section]` headers, `#` comments. A key is section.key;\n"
           "written bare (top level, or --key=value) it means its home section below. Command-line values\n"
           "override the file. The resolved config is printed at start and saved in out_dir. --nproc N starts\n"
           "N data-parallel ranks on this host through mpirun (NCCL on GPUs, MPI on the CPU; see [dist]).\n" +
           train_schema().help() + optical_help();
}

namespace {
std::string optical_where(const Config& cfg, const std::string& name) {
    for (const Config::OpenEntry& e : cfg.open_entries())
        if (e.name == name) return e.where;
    return "default";
}
}  // namespace

TrainConfig train_config_from(const Config& cfg) {
    const Registry& reg = registry();
    cfg.check_inactive();

    TrainConfig tc;
    // optim.optimizer first: its binding resets the optimizer section to that kind's defaults.
    reg.bindings.at("optim.optimizer").store(tc, cfg.get("optim.optimizer"));
    for (const Key& k : reg.schema.keys()) {
        if (k.name == "optim.optimizer") continue;
        if (k.inactive && !k.inactive(cfg).empty()) continue;
        reg.bindings.at(k.name).store(tc, cfg.get(k.name));
    }
    optim::GroupConfig& g = tc.optim.groups;
    if (relative_step(tc)) {
        g.main.lr = kNaN;  // HF: lr None
        tc.schedule.learning_rate = tc.schedule.min_lr = 1.0;
        tc.warnings.push_back("optim.relative_step = true: Adafactor's relative step ρ replaces the learning-rate "
                              "schedule (the trainer logs ρ as the lr)");
    }
    if (g.kind == Kind::sophia) g.main.tokens_per_step = double(tc.tokens_per_step());

    try {
        optim::validate(g.kind, g.main);
    } catch (const Error& e) {
        optim_error(cfg, e.what(), false);
    }
    if (g.kind == Kind::muon) try {
            optim::validate(Kind::adamw, g.aux_adamw);
        } catch (const Error& e) {
            optim_error(cfg, e.what(), true);
        }
    try {
        for (std::string& w : validate(tc.schedule)) tc.warnings.push_back(std::move(w));
    } catch (const Error& e) {
        throw Error(located(cfg, e.what()));
    }
    try {
        nn::ModelConfig m = tc.model;
        if (m.vocab_size == 0) m.vocab_size = 1;  // auto: checked when the dataset gives it
        nn::validate(m);
    } catch (const Error& e) {
        throw Error(located(cfg, e.what()));
    }
    if (!tc.io.export_hf.empty() && tc.lora.enabled() && !tc.io.merge_lora)
        throw Error(located(cfg, "io.export_hf of a run with lora.r > 0 needs io.merge_lora = true (--merge_lora): a "
                                 "Hugging Face folder holds plain weights, so the adapters are merged into them"));
    tc.optical = parse_optical(cfg);
    if (tc.lora.enabled() && tc.lora.dropout > 0 && tc.optical.enabled)
        throw Error(located(cfg, "lora.dropout must be 0 with [optical] enabled: an optical layer quantizes the merged "
                                 "weight W + (B·A)·alpha/r, which has no place for dropout on the adapter's input"));
    if (tc.optical.enabled && tc.optical.warmup_iters > 0 && !tc.schedule.decay_lr)
        tc.warnings.push_back("optical.warmup_iters is ignored: schedule.decay_lr = false keeps the rate constant");
    const bool phase_in_run = tc.optical.start_iter < tc.schedule.max_iters;
    if (tc.optical.enabled && !phase_in_run)  // a run split in parts may stop before its optical phase
        tc.warnings.push_back(fmt::format("optical.start_iter = {} ({}) is not below schedule.max_iters = {}: this run "
                                          "ends before the optical phase",
                                          tc.optical.start_iter, optical_where(cfg, "optical.start_iter"),
                                          tc.schedule.max_iters));
    if (const auto phase = optical_schedule(tc); phase && phase_in_run) try {
            validate(*phase);
        } catch (const Error& e) {
            throw Error(fmt::format("the optical phase's schedule (optical.learning_rate and optical.warmup_iters over "
                                    "[optical.start_iter, schedule.lr_decay_iters]) is invalid: {}",
                                    e.what()));
        }
    for (const Config::OpenEntry& e : cfg.open_entries()) tc.origins.emplace(e.name, e.where);
    tc.origins.merge(cfg.origins());
    return tc;
}

TrainConfig load_train_config(const std::string& path, const std::vector<std::string>& overrides) {
    Config cfg(train_schema());
    if (!path.empty()) cfg.read_file(path);
    for (const std::string& o : overrides) cfg.apply_override(o);
    return train_config_from(cfg);
}

std::string resolved_ini(const TrainConfig& c) {
    const Registry& reg = registry();
    Config cfg(reg.schema);
    const auto put = [&](const Key& k) { cfg.set_value(k.name, reg.bindings.at(k.name).load(c), "resolved"); };
    // The keys that decide which others are read go first.
    for (const char* name : {"optim.optimizer", "optim.relative_step", "model.mlp", "model.pos"}) {
        const Key& k = *reg.schema.find(name);
        if (!k.inactive || k.inactive(cfg).empty()) put(k);
    }
    for (const Key& k : reg.schema.keys())
        if (!cfg.is_set(k.name) && (!k.inactive || k.inactive(cfg).empty())) put(k);
    return cfg.resolved("lumen ./train resolved config: every key (a commented key is not read by this config)") +
           optical_ini(c.optical);
}

}  // namespace lumen::training
