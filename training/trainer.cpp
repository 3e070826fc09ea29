// training/trainer.cpp: the training loop: set-up, the step, eval, log lines and checkpoints.
// The numbers in the log follow specs/wiggle.md §8.2 (reference fields first, then lumen's).
#include "training/trainer.h"

#include "autograd/node.h"
#include "autograd/ops/ops.h"
#include "core/error.h"
#include "optim/clip.h"
#include "optim/groups.h"
#include "optim/sophia.h"
#include "training/checkpointing.h"
#include "training/data_parallel.h"
#include "training/finetune.h"
#include "training/log_format.h"
#include "training/loss_plot.h"
#include "training/optical_phase.h"
#include "training/schedule.h"

#ifdef LUMEN_WITH_CUDA
#include "cuda/allocator.h"
#include "cuda/runtime.h"
#endif

#include <fmt/format.h>
#include <unistd.h>

#include <chrono>
#include <csignal>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <limits>

namespace lumen::training {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

namespace {

constexpr uint64_t kEvalStream = 0x6576616c, kHessianStream = 0x68657373;  // "eval", "hess"

// SIGINT/SIGTERM during run(): the current step finishes, a checkpoint is saved, run() returns.
volatile std::sig_atomic_t stop_signal = 0;

class StopOnSignals {
public:
    StopOnSignals() {
        stop_signal = 0;
        previous_int_ = std::signal(SIGINT, [](int sig) { stop_signal = sig; });
        previous_term_ = std::signal(SIGTERM, [](int sig) { stop_signal = sig; });
    }
    ~StopOnSignals() {
        std::signal(SIGINT, previous_int_);
        std::signal(SIGTERM, previous_term_);
    }

private:
    void (*previous_int_)(int);
    void (*previous_term_)(int);
};

double seconds_since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

// The scalar element i of a small device tensor, as a (1,) view.
Tensor element(const Tensor& t, int64_t i) { return t.narrow(0, i, 1); }

// A (1,) f32 device scalar.
Tensor device_scalar(double v, Device d) { return Tensor::full({1}, v, DType::f32, d); }

}  // namespace

Device resolve_device(const std::string& key, const dist::Launch& launch) {
    const int n = cuda_device_count();
    if (launch.under_mpirun && key != "cpu") {  // each rank takes the GPU of its local rank
        check(!key.starts_with("cuda:"), "train",
              fmt::format("system.device = {}: under mpirun each rank uses the GPU of its local rank; write "
                          "system.device = cuda (or auto)", key));
        if (key == "auto" && n == 0) return Device::cpu();
        check(launch.local_rank < n, "train",
              fmt::format("rank {} is local rank {} of {} on its host, but the host has {} GPU(s){}: start at most {} "
                          "ranks per host", launch.rank, launch.local_rank, launch.local_world, n,
                          built_with_cuda() ? "" : " (this build has no CUDA support)", n));
        return Device::cuda(launch.local_rank);
    }
    if (key == "auto") return n > 0 ? Device::cuda(0) : Device::cpu();
    const Device d = device_from_name(key);
    check(d.is_cpu() || d.index < n, "train", fmt::format("system.device = {}: this machine has {} GPU(s){}", key, n,
                                                          built_with_cuda() ? "" : " (this build has no CUDA support)"));
    return d;
}

Trainer::Trainer(TrainConfig config)
    : cfg_(std::move(config)), launch_(dist::detect_launch()), device_(resolve_device(cfg_.system.device, launch_)),
      hessian_gen_(cfg_.system.seed, kHessianStream) {
    if (launch_.under_mpirun) {
        check(cfg_.data.gradient_accumulation_steps % launch_.world == 0, "train",
              fmt::format("data.gradient_accumulation_steps = {} is global and must divide by the {} ranks (each rank "
                          "runs GA/{} micro-steps)", cfg_.data.gradient_accumulation_steps, launch_.world,
                          launch_.world));
        dp_ = std::make_unique<DataParallel>(launch_, device_, cfg_.dist);
    } else {
        for (const auto& [key, where] : cfg_.origins)
            if (key.starts_with("dist."))
                fmt::print("note: {} ({}) is read only by data-parallel runs (mpirun -np N or --nproc N); this run "
                           "is one process\n", key, where);
    }
    dataset_ = data::read_dataset_info(cfg_.data.dataset);
    if (cfg_.io.init_from == InitFrom::hf) {
        hf_ = std::make_unique<nn::HfModel>(adopt_hf_architecture(cfg_));
        check(dataset_.vocab_size <= cfg_.model.vocab_size, "train",
              fmt::format("{} has a vocabulary of {} tokens, more than the model's {} ({}/config.json): the dataset was "
                          "not tokenized with this model's tokenizer",
                          cfg_.data.dataset, dataset_.vocab_size, cfg_.model.vocab_size, hf_->dir));
    }
    if (cfg_.model.vocab_size == 0) {  // auto: the dataset's vocabulary, padded to a multiple of 64
        check(dataset_.vocab_size > 0, "train",
              fmt::format("model.vocab_size = auto, but {} records no vocab_size", cfg_.data.dataset));
        cfg_.model.vocab_size = (dataset_.vocab_size + 63) / 64 * 64;
    }
    nn::validate(cfg_.model);
    checkpoints_dir_ = cfg_.io.out_dir + "/checkpoints";
    fs::create_directories(checkpoints_dir_);
    metrics_path_ = cfg_.io.out_dir + "/metrics.jsonl";
    for (const std::string& w : cfg_.warnings) fmt::print("warning: {}\n", w);
    if (lead())
        for (const std::string& name : data::remove_checkpoint_leftovers(checkpoints_dir_))
            fmt::print("removed leftover {}/{}\n", checkpoints_dir_, name);
    if (dp_) dp_->comm().barrier();  // the other ranks look for a checkpoint once rank 0 has tidied
    const std::optional<std::string> resume_dir = reconcile_resume();
    check_exportable(cfg_);  // against the model this run trains (a resumed run's is the checkpoint's)
    build(resume_dir);
}

Trainer::~Trainer() = default;

int Trainer::rank() const { return dp_ ? dp_->rank() : 0; }
// On a terminal only; never under mpirun, which forwards the ranks' output through a pseudo-terminal even
// when mpirun's own output goes to a file.
bool Trainer::progress_bar() const { return isatty(STDOUT_FILENO) && !launch_.under_mpirun; }
int Trainer::world() const { return dp_ ? dp_->world() : 1; }

data::LoaderConfig Trainer::loader_config(uint64_t seed, data::Shuffle shuffle) const {
    data::LoaderConfig lc;
    lc.mode = cfg_.data.loader;
    lc.B = cfg_.data.batch_size;
    lc.T = cfg_.model.block_size;
    lc.seed = seed;
    lc.shuffle = shuffle;
    lc.rank = dp_ ? dp_->rank() : 0;
    lc.world = dp_ ? dp_->world() : 1;
    lc.vocab_size = cfg_.model.vocab_size;
    lc.index_dtype = DType::i64;
#ifdef LUMEN_WITH_CUDA
    if (device_.is_cuda()) lc.allocator = {cuda::pinned_allocate, cuda::pinned_release_storage};
#endif
    return lc;
}

void Trainer::build(const std::optional<std::string>& resume_dir) {
    // Weights come in on the CPU, in this order: a Hugging Face folder or a checkpoint's weights
    // (init_from = PATH), then the LoRA adapters (fresh, or about to be loaded by a resume), then the
    // move to the device; a resumed optical run is transformed before its weights (and range
    // statistics) are loaded; any other run is transformed by the loop at optical.start_iter, after its
    // weights are in (a weights-only start from an optical checkpoint leaves the file's statistics behind).
    {
        std::optional<nn::NoInitGuard> no_init;  // weights about to be loaded: skip the random draws
        if (resume_dir || cfg_.io.init_from != InitFrom::scratch) no_init.emplace();
        model_ = std::make_unique<nn::GPT>(cfg_.model);
    }
    if (hf_ && !resume_dir) nn::load_hf_weights(*hf_, *model_);
    if (cfg_.io.init_from == InitFrom::path) load_model_weights(cfg_.io.init_path, *model_, true);
    if (cfg_.lora.enabled()) lora_modules_ = apply_run_lora(cfg_, *model_);
    model_->to(device_);
    model_->set_compute_dtype(cfg_.system.dtype);
    if (dp_) {  // rank r draws the dropout masks and dither of its rows of the global batch
        model_->set_data_parallel(dp_->rank(), dp_->world());
        hessian_gen_.set_slice(dp_->rank(), dp_->world());
    }
    model_->set_gate_counting(true);
    const bool resume_optical = resume_dir && data::verify_checkpoint(*resume_dir).value("optical", false);
    if (resume_optical) go_optical(false);
    if (resume_dir) load_model_weights(*resume_dir, *model_);
    // Optical from the start: the run loop transforms after iteration 0's eval (so the first
    // calibration comes from a training batch, §7.3); an eval-only run is transformed here.
    if (!optical_active_ && cfg_.optical.enabled && cfg_.eval.eval_only) go_optical(false);
    make_optimizer();
    train_loader_ = std::make_unique<data::DataLoader>(data::open_shards(dataset_, data::Split::train),
                                                       loader_config(cfg_.system.seed, data::Shuffle::yes));
    if (cfg_.optim.kind() == optim::Kind::sophia)
        hessian_loader_ = std::make_unique<data::DataLoader>(
            data::open_shards(dataset_, data::Split::train), loader_config(cfg_.system.seed ^ kHessianStream, data::Shuffle::yes));
    last_loss_ = device_scalar(0, device_);
    last_flags_ = Tensor::zeros({3}, DType::f32, device_);
    bad_run_ = device_scalar(0, device_);
    bad_total_ = device_scalar(0, device_);
    loss_scale_ = device_scalar(65536.0, device_);
    clean_steps_ = device_scalar(0, device_);
    if (resume_dir) {
        if (dp_) dp_->load_state(*optimizer_, read_optimizer_state(*resume_dir, device_));
        else load_optimizer_state(*resume_dir, *optimizer_);
        restore_state(data::verify_checkpoint(*resume_dir));
        fmt::print("resumed from {} at iteration {}\n", *resume_dir, iteration_);
    }
    start_iteration_ = iteration_;

    const int64_t reported = model_->num_parameters_reported();
    const int64_t input_embedding = cfg_.model.tie_embeddings ? 0 : cfg_.model.vocab_size * cfg_.model.n_embd;
    flops_per_token_ = flops_per_token(cfg_.model, reported, input_embedding);
    if (cfg_.lora.enabled()) flops_per_token_ -= 2.0 * double(frozen_matmul_parameters(*model_));  // no weight gradients
    peak_flops_ = cfg_.system.peak_tflops * 1e12;
#ifdef LUMEN_WITH_CUDA
    if (peak_flops_ <= 0 && device_.is_cuda() && cfg_.system.dtype != DType::f32)
        peak_flops_ = cuda::properties(device_.index).peak_bf16_flops_per_s;
#endif
    const std::string ini = resolved_ini(cfg_);
    fmt::print("{}\n", ini);
    if (lead()) std::ofstream(cfg_.io.out_dir + "/config.cfg") << ini;
    fmt::print("device: {}, dtype {}\n", device_.str(), dtype_name(cfg_.system.dtype));
    fmt::print("tokens per iteration will be: {}\n", fmt::group_digits(cfg_.tokens_per_step()));
    fmt::print("number of parameters: {:.2f}M\n", double(reported) / 1e6);
    for (const std::string& line : optimizer_->report()) fmt::print("{}\n", line);
    if (dp_)
        for (const std::string& line : dp_->report()) fmt::print("{}\n", line);
    if (cfg_.lora.enabled())
        for (const std::string& line : lora_report(*model_, *optimizer_, lora_modules_)) fmt::print("{}\n", line);
    if (peak_flops_ <= 0) fmt::print("mfu: no peak known for this device and dtype (set system.peak_tflops)\n");
}

nn::GPT::CounterReducer Trainer::counter_reducer() {
    if (!dp_) return {};
    return [this](std::vector<int64_t>& counters) { dp_->sum_host(counters); };
}

std::vector<int64_t> Trainer::gate_counters() {
    std::vector<int64_t> counters = model_->gate_counters(true);
    if (dp_) dp_->sum_host(counters);
    return counters;
}

void Trainer::make_optimizer() {
    if (dp_) optimizer_ = dp_->make_optimizer(model_->parameters(), cfg_.optim.groups);
    else optimizer_ = std::make_unique<optim::Optimizer>(optim::make_groups(model_->parameters(), cfg_.optim.groups));
}

Tensor Trainer::on_device(const Tensor& host) const { return device_.is_cuda() ? host.to(device_) : host; }

void Trainer::train_step() {
    // GA is global: each of the W ranks runs GA/W micro-steps; the summed gradients are the mean.
    const int64_t GA = cfg_.data.gradient_accumulation_steps, micro_steps = GA / world();
    if (dp_) dp_->set_iteration(iteration_);
    const bool f16 = cfg_.system.dtype == DType::f16;
    Tensor loss_sum = device_scalar(0, device_);
    for (int64_t micro = 0; micro < micro_steps; ++micro) {
        data::Batch b = train_loader_->next();
        Tensor loss = model_->loss(on_device(b.inputs), on_device(b.targets));     // () f32
        if (loss_hook) loss = loss_hook(loss, iteration_);
        loss_sum = loss_sum + loss.detach();
        Tensor scaled = loss * (1.0 / double(GA));
        if (f16) scaled = scaled * loss_scale_.reshape({});
        if (dp_ && micro == micro_steps - 1) dp_->arm();
        scaled.backward();
    }
    if (dp_) {
        dp_->finish_gradients();
        dp_->sum(loss_sum);
    }
    const auto params = dp_ ? dp_->parameters() : optimizer_->parameters();  // ZeRO-1: all, not this rank's
    Tensor flags;
    if (f16) {  // unscale through γ; the scale halves on overflow and doubles after 2000 clean steps
        Tensor raw = optim::clip_flags(params, 0.0, loss_sum);
        Tensor bad = element(raw, 1), norm = element(raw, 2) / loss_scale_;
        Tensor gamma = cfg_.optim.grad_clip > 0
                           ? ops::minimum(device_scalar(1, device_), cfg_.optim.grad_clip / (norm + 1e-6))
                           : device_scalar(1, device_);
        flags = ops::cat({gamma / loss_scale_, bad, norm}, 0);
        clean_steps_ = (clean_steps_ + 1.0) * (1.0 - bad);
        Tensor grow = ops::cast(clean_steps_ >= 2000.0, DType::f32);
        loss_scale_ = loss_scale_ * (1.0 - bad * 0.5) * (1.0 + grow);
        clean_steps_ = clean_steps_ * (1.0 - grow);
    } else {
        flags = optim::clip_flags(params, cfg_.optim.grad_clip, loss_sum);
    }
    const double peak = cfg_.schedule.learning_rate;
    optimizer_->step({peak > 0 ? run_lr(cfg_, iteration_, optical_active_) / peak : 0.0, flags});
    if (dp_) {
        dp_->zero_grad();
        dp_->after_step(*model_);
    } else {
        optimizer_->zero_grad();
    }
    const Tensor bad = element(flags, 1);
    bad_run_ = (bad_run_ + 1.0) * bad;
    bad_total_ = bad_total_ + bad;
    last_loss_ = loss_sum / double(GA);
    last_flags_ = flags;
    tokens_seen_ += cfg_.tokens_per_step();
    if (hessian_loader_) {
        auto* rule = dynamic_cast<optim::SophiaRule*>(&optimizer_->rule(0));
        if (rule && iteration_ % rule->hess_interval() == rule->hess_interval() - 1) hessian_hook();
    }
}

// SophiaG's Gauss–Newton–Bartlett estimate (specs/optimizers.md §7.2): labels sampled from the
// model's own logits (Gumbel-max: argmax(z + G) with G = −log(−log u) is a draw from softmax(z)),
// the gradient of their mean cross-entropy, clipped, into the Hessian EMA.
void Trainer::hessian_hook() {
    // Timed between two synchronisations so the logged cost is the GPU's too (once per k steps).
    auto sync = [this] {
#ifdef LUMEN_WITH_CUDA
        if (device_.is_cuda()) cuda::synchronize(device_.index);
#endif
    };
    sync();
    const auto start = Clock::now();
    const int64_t GA = cfg_.data.gradient_accumulation_steps, micro_steps = GA / world();
    model_->set_gate_counting(false);
    for (int64_t micro = 0; micro < micro_steps; ++micro) {
        data::Batch b = hessian_loader_->next();
        Tensor logits = model_->forward(on_device(b.inputs));                       // (B, T, V)
        Tensor labels;
        {
            autograd::NoGradGuard no_grad;
            Tensor u = ops::rand(logits.shape(), hessian_gen_, 0.0, 1.0, DType::f32, device_);
            Tensor gumbel = -ops::log(-ops::log(u + 1e-20));
            labels = ops::argmax(logits.detach().to(DType::f32) + gumbel, -1);    // (B, T)
        }
        if (dp_ && micro == micro_steps - 1) dp_->arm();
        (ops::cross_entropy(logits, labels) * (1.0 / double(GA))).backward();
    }
    if (dp_) dp_->finish_gradients();
    Tensor flags = optim::clip_flags(dp_ ? dp_->parameters() : optimizer_->parameters(), cfg_.optim.grad_clip);
    for (size_t g = 0; g < optimizer_->groups().size(); ++g)
        if (auto* rule = dynamic_cast<optim::SophiaRule*>(&optimizer_->rule(g))) rule->update_hessian(flags);
    if (dp_) dp_->zero_grad();
    else optimizer_->zero_grad();
    model_->set_gate_counting(true);
    sync();
    hook_seconds_ += seconds_since(start);
    hook_window_seconds_ += seconds_since(start);
}

double Trainer::split_loss(data::Split split) {
    // The same windows at every eval: a fresh loader on its own stream, never the training one.
    const uint64_t seed = cfg_.system.seed ^ (kEvalStream + uint64_t(split));
    data::DataLoader loader(data::open_shards(dataset_, split), loader_config(seed, data::Shuffle::no));
    Tensor total = device_scalar(0, device_);
    for (int64_t i = 0; i < cfg_.eval.eval_iters; ++i) {
        data::Batch b = loader.next();
        total = total + model_->loss(on_device(b.inputs), on_device(b.targets));
    }
    if (dp_) dp_->sum(total);  // every rank evaluated its slice of the same windows
    return total.item() / double(cfg_.eval.eval_iters * world());
}

void Trainer::evaluate(bool save_after) {
    EvalLine line;
    line.iteration = iteration_;
    {
        autograd::NoGradGuard no_grad;
        model_->eval();
        line.train_loss = split_loss(data::Split::train);
        line.val_loss = split_loss(data::Split::val);
        model_->train();
    }
    if (model_->has_gate_stats()) {
        const nn::SparsityReading r = model_->read_sparsity(false, true, counter_reducer());
        line.sparsity = r.mean;
        line.sparsity_layers = r.per_layer;
    }
    emit(eval_json(line), format_eval_line(line));
    plot_losses();
    if (save_after) save(line.val_loss, iteration_ == cfg_.schedule.max_iters);
}

void Trainer::plot_losses() {
    if (!lead()) return;
    std::optional<int64_t> mark;
    if (cfg_.optical.enabled && cfg_.optical.start_iter > 0) mark = cfg_.optical.start_iter;
    const LossPlot plot = write_loss_plot(cfg_.io.out_dir, mark, "optical");
    if (!plot.rendered && !plot_note_printed_) fmt::print("loss plot: {}\n", plot.note);
    plot_note_printed_ = plot_note_printed_ || !plot.rendered;
}

void Trainer::log_iteration(double seconds, int64_t iterations) {
    IterLine line;
    line.iteration = iteration_;
    line.loss = last_loss_.item();
    const std::vector<float> flags = last_flags_.to_vector<float>();
    line.grad_norm = flags[2];
    line.time_ms = 1e3 * seconds / double(iterations);
    line.lr = run_lr(cfg_, iteration_, optical_active_);
    line.tokens_per_s = double(cfg_.tokens_per_step()) * double(iterations) / seconds;
    if (iteration_ - start_iteration_ >= 5)
        line.mfu = mfu(flops_per_token_, cfg_.tokens_per_step() / world() * iterations, seconds, peak_flops_);  // per GPU
#ifdef LUMEN_WITH_CUDA
    if (device_.is_cuda()) line.mem_gib = double(cuda::allocator_stats(device_.index).peak_allocated_bytes) / double(1ull << 30);
#endif
    if (model_->has_gate_stats()) {
        const nn::SparsityReading r = model_->read_sparsity(true, true, counter_reducer());
        line.sparsity = r.mean;
        line.sparsity_layers = r.per_layer;
    }
    if (hessian_loader_) {
        line.hessian_ms = 1e3 * hook_window_seconds_;
        hook_window_seconds_ = 0;
    }
    const int64_t total = int64_t(bad_total_.item());
    line.bad_steps = total - bad_total_seen_;
    bad_total_seen_ = total;
    emit(iter_json(line), format_iter_line(line));
    const int64_t run = int64_t(bad_run_.item());
    check(run < cfg_.io.max_bad_steps, "train",
          fmt::format("{} non-finite steps in a row (io.max_bad_steps = {}): stopping; the last checkpoint is "
                      "untouched", run, cfg_.io.max_bad_steps));
}

void Trainer::emit(const nlohmann::json& record, const std::string& line) {
    if (progress_bar()) fmt::print("\r\033[K");
    fmt::print("{}\n", line);
    std::fflush(stdout);
    metrics_.push_back(record);
    if (lead()) std::ofstream(metrics_path_, std::ios::app) << record.dump() << "\n";
}

void Trainer::go_optical(bool reset_optimizer) {
    fmt::print("{}", make_model_optical(*model_, cfg_));
    optical_active_ = true;
    if (reset_optimizer && optimizer_) {
        make_optimizer();
        fmt::print("optimizer state reset for the optical phase (optical.reset_optimizer = true)\n");
    }
}

void Trainer::run() {
    const int64_t max_iters = cfg_.schedule.max_iters;
    if (cfg_.eval.eval_only) {
        evaluate(false);
        if (!cfg_.io.export_hf.empty() && lead()) export_run(cfg_, *model_, hf_.get(), dataset_.vocab_size);
        return;
    }
    StopOnSignals signals;
    auto window_start = Clock::now();
    double excluded = 0;  // eval and checkpoint seconds inside the window
    int64_t window_iters = 0;
    const auto run_start = Clock::now();
    for (;; ++iteration_) {
        if (iteration_ % cfg_.eval.eval_interval == 0 || iteration_ == max_iters) {
            const auto t = Clock::now();
            evaluate(iteration_ > 0 && iteration_ != start_iteration_);
            excluded += seconds_since(t);
        }
        if (iteration_ >= max_iters) break;
        if (!optical_active_ && cfg_.optical.enabled && iteration_ >= cfg_.optical.start_iter) {
            fmt::print("iter {}: entering the optical phase\n", iteration_);
            go_optical(cfg_.optical.reset_optimizer);
        }
        train_step();
        ++window_iters;
        if (iteration_ % cfg_.io.log_interval == 0) {
            const double secs = std::max(1e-9, seconds_since(window_start) - excluded);
            log_iteration(secs, window_iters);  // reads the device: the window's work is done
            window_start = Clock::now();
            excluded = 0;
            window_iters = 0;
        }
        if (progress_bar()) {
            const double done = double(iteration_ + 1 - start_iteration_), left = double(max_iters - iteration_ - 1);
            const double eta = seconds_since(run_start) / done * left;
            const int filled = int(30.0 * double(iteration_ + 1) / double(max_iters));
            fmt::print("\r[{}{}] {}/{} ETA {:02d}:{:02d}", std::string(size_t(filled), '#'),
                       std::string(size_t(30 - filled), '.'), iteration_ + 1, max_iters, int(eta) / 60, int(eta) % 60);
            std::fflush(stdout);
        }
        // Ranks stop together: a signal that reached any of them stops all after this step.
        if (dp_ ? dp_->any(stop_signal != 0) : stop_signal != 0) {
            ++iteration_;  // the step just taken
            const char* what = stop_signal == SIGTERM ? "SIGTERM received" : stop_signal == SIGINT ? "SIGINT received"
                                                                                               : "another rank was signalled";
            fmt::print("\n{}: saving a checkpoint at iteration {} and stopping\n", what, iteration_);
            save(std::numeric_limits<double>::infinity(), true);
            interrupted_ = true;
            return;
        }
    }
    if (hook_seconds_ > 0) fmt::print("sophia hessian hook: {:.1f}s in all\n", hook_seconds_);
    if (!cfg_.io.export_hf.empty() && lead()) export_run(cfg_, *model_, hf_.get(), dataset_.vocab_size);
}

}  // namespace lumen::training
