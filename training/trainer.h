// training/trainer.h: the training loop of ./train (DESIGN.md §10, specs/wiggle.md §8).
//
//   Trainer trainer(load_train_config("configs/tiny.cfg", overrides));
//   trainer.run();
//
// Per iteration: gradient accumulation over GA micro-batches (each loss / GA), mixed precision
// (f32 master weights with bf16 or f16 activations; f16 with dynamic loss scaling), the global
// gradient norm, clip factor and "bad step" flag computed on the device, the optimizer step,
// zeroed gradients. Exactly max_iters updates; an eval (train and val, eval_iters batches each)
// every eval_interval and at the end; a log line every log_interval. Nothing in the step reads a
// device value back: losses, norms, bad-step counts and gate counters are read when a line is
// printed. Checkpoints are saved at evals (specs/formats.md §7); init_from = resume continues
// exactly (bit for bit on the CPU). With [optical] enabled the model is transformed at
// optical.start_iter (after that iteration's eval, before its first micro-batch) and the optical
// phase's learning rate applies from then on (training/optical_phase.h). After every eval the loss
// curve is re-rendered into out_dir/loss.svg (training/loss_plot.h). Under mpirun the trainer is one
// rank of a data-parallel job (training/data_parallel.h): rank 0 prints and writes, all ranks train.
#pragma once

#include "data/dataset.h"
#include "data/loader.h"
#include "dist/communicator.h"
#include "nn/gpt.h"
#include "nn/hf_model.h"
#include "optim/optimizer.h"
#include "training/train_config.h"

#include <functional>
#include <memory>
#include <optional>
#include <nlohmann/json.hpp>
#include <string>

namespace lumen::training {

class DataParallel;

class Trainer {
public:
    explicit Trainer(TrainConfig config);
    ~Trainer();

    // Trains from the start iteration to max_iters (or evaluates once with eval_only). SIGINT or
    // SIGTERM while it runs: the current step finishes, a checkpoint is saved, and it returns with
    // interrupted() true.
    void run();
    bool interrupted() const { return interrupted_; }

    // Test hook: applied to each micro-batch loss before backward (e.g. inject a NaN).
    std::function<Tensor(const Tensor& loss, int64_t iteration)> loss_hook;

    const TrainConfig& config() const { return cfg_; }
    nn::GPT& model() { return *model_; }
    bool optical_active() const { return optical_active_; }
    int64_t iteration() const { return iteration_; }
    Device device() const { return device_; }
    // Data parallelism (training/data_parallel.h): this process's rank and the job's size (0 and 1 alone).
    int rank() const;
    int world() const;
    // The JSON lines written to metrics.jsonl so far in this process.
    const std::vector<nlohmann::json>& metrics() const { return metrics_; }

private:
    std::optional<std::string> reconcile_resume();  // the checkpoint to resume, model keys taken from it
    void build(const std::optional<std::string>& resume_dir);
    void restore_state(const nlohmann::json& state);
    nlohmann::json trainer_state();
    bool lead() const { return rank() == 0; }  // rank 0 prints, writes metrics and checkpoints
    bool progress_bar() const;
    // The optimizer over the model's trainable parameters (a data-parallel run's: through DataParallel).
    void make_optimizer();
    // Gate counters summed over the ranks (specs/wiggle.md §8 item 3); empty reducer when alone.
    nn::GPT::CounterReducer counter_reducer();
    std::vector<int64_t> gate_counters();  // the training counters, summed (a collective under mpirun)
    void train_step();
    void hessian_hook();
    void evaluate(bool save_after);
    double split_loss(data::Split split);
    void log_iteration(double seconds, int64_t iterations);
    void save(double val_loss, bool final_step);
    // out_dir/loss.svg from the metrics so far (training/loss_plot.h); run after every eval.
    void plot_losses();
    // Transforms the model (histogram and energy report printed); with `reset_optimizer` the optimizer
    // starts afresh (optical.reset_optimizer at start_iter).
    void go_optical(bool reset_optimizer);
    void emit(const nlohmann::json& record, const std::string& line);
    Tensor on_device(const Tensor& host) const;
    data::LoaderConfig loader_config(uint64_t seed, data::Shuffle shuffle) const;

    TrainConfig cfg_;
    dist::Launch launch_;
    Device device_;
    std::unique_ptr<DataParallel> dp_;  // under mpirun only
    data::DatasetInfo dataset_;
    std::unique_ptr<nn::HfModel> hf_;          // init_from = hf:DIR (or a resumed run's first init_from)
    std::vector<std::string> lora_modules_;    // the modules with LoRA adapters
    std::unique_ptr<nn::GPT> model_;
    std::unique_ptr<optim::Optimizer> optimizer_;
    std::unique_ptr<data::DataLoader> train_loader_, hessian_loader_;
    Generator hessian_gen_;
    int64_t iteration_ = 0, start_iteration_ = 0;
    bool interrupted_ = false;
    bool optical_active_ = false;     // the model has been transformed (specs/optical.md §7.3)
    bool plot_note_printed_ = false;  // "gnuplot missing" is said once
    double best_val_loss_ = 1e30;
    int64_t best_iteration_ = -1;
    int64_t tokens_seen_ = 0;
    int64_t bad_total_seen_ = 0;  // bad_total_ at the last line
    // Device scalars of the step, read only at log lines: (1,) f32 each.
    Tensor last_loss_, last_flags_, bad_run_, bad_total_;
    Tensor loss_scale_, clean_steps_;  // f16: dynamic loss scale and clean steps since it changed
    double flops_per_token_ = 0, peak_flops_ = 0;
    double hook_seconds_ = 0, hook_window_seconds_ = 0;  // SophiaG's Hessian hook: in all, since the last line
    std::string metrics_path_, checkpoints_dir_;
    std::vector<nlohmann::json> metrics_;
};

// The run's device from the `system.device` key ("auto": the first GPU if there is one); under mpirun
// the GPU of the rank's local rank.
Device resolve_device(const std::string& key, const dist::Launch& launch = {});

}  // namespace lumen::training
