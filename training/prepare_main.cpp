// training/prepare_main.cpp: ./prepare: text files or folders in; a byte-level BPE tokenizer and
// llm.c-format train/val token shards out (data/prepare.h does the work). With no --input it builds
// data/default/ from Python's documentation sources (Debian package python3-doc).
//
//   ./prepare [--input PATH...] [--out DIR] [--vocab_size N] [--val_fraction F] [--tokenizer FILE]
//             [--shard_tokens N] [--seed N]
//
// On a terminal a progress bar shows each phase with its throughput; a summary follows. Errors
// print "error: " and the message, and exit 1.
#include "data/prepare.h"

#include <CLI/CLI.hpp>
#include <fmt/format.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <string>

namespace {

using Clock = std::chrono::steady_clock;

// A one-line progress bar on stderr, redrawn at most ten times a second.
class ProgressBar {
public:
    void update(std::string_view phase, int64_t done, int64_t total, std::string_view unit) {
        const auto now = Clock::now();
        if (phase != phase_) {
            if (!phase_.empty()) std::fputc('\n', stderr);
            phase_ = std::string(phase);
            start_ = now;
            last_ = {};
        }
        const bool finished = done >= total;
        if (!finished && now - last_ < std::chrono::milliseconds(100)) return;
        last_ = now;
        const double frac = total > 0 ? std::min(1.0, double(done) / double(total)) : 1.0;
        const int width = 30, filled = int(frac * width);
        const double secs = std::chrono::duration<double>(now - start_).count();
        const double scale = unit == "bytes" ? 1e6 : unit == "tokens" ? 1e6 : 1.0;
        const std::string_view shown = unit == "bytes" ? "MB" : unit == "tokens" ? "M tokens" : unit;
        const double rate = secs > 0 ? double(done) / scale / secs : 0.0;
        const std::string amount = scale > 1 ? fmt::format("{:.1f}/{:.1f}", done / scale, total / scale)
                                             : fmt::format("{}/{}", done, total);
        fmt::print(stderr, "\r{:<7} [{}{}] {:3.0f}% {} {} {:.1f} {}/s  ", phase_,
                   std::string(size_t(filled), '#'), std::string(size_t(width - filled), '.'),
                   100 * frac, amount, shown, rate, shown);
        std::fflush(stderr);
    }
    void finish() {
        if (!phase_.empty()) std::fputc('\n', stderr);
        phase_.clear();
    }

private:
    std::string phase_;
    Clock::time_point start_, last_;
};

double mb_per_s(int64_t bytes, double s) { return s > 0 ? double(bytes) / 1e6 / s : 0.0; }

void print_summary(const lumen::data::PrepareReport& r) {
    fmt::print("prepare: {} files, {:.1f} MB -> {}\n", r.files, r.bytes / 1e6, r.out_dir);
    if (r.trained)
        fmt::print("  tokenizer  trained: vocabulary {} ({} merges) from {} distinct words; count {:.2f} s "
                   "+ merge {:.2f} s = {:.1f} MB/s\n", r.vocab_size, r.merges, r.distinct_words,
                   r.count_s, r.merge_s, mb_per_s(r.bytes, r.count_s + r.merge_s));
    else
        fmt::print("  tokenizer  loaded: vocabulary {} ({} merges)\n", r.vocab_size, r.merges);
    fmt::print("  encode     {:.2f} s, {:.1f} MB/s, {:.2f} bytes per token\n", r.encode_s,
               mb_per_s(r.bytes, r.encode_s),
               double(r.bytes) / double(std::max<int64_t>(1, r.train_tokens + r.val_tokens)));
    fmt::print("  train      {} tokens in {} shard{} (train_*.bin)\n", r.train_tokens, r.train_shards,
               r.train_shards == 1 ? "" : "s");
    fmt::print("  val        {} tokens in {} shard{}{}\n", r.val_tokens, r.val_shards,
               r.val_shards == 1 ? "" : "s", r.val_shards ? " (val_*.bin)" : "");
    if (r.stale_removed) fmt::print("  removed    {} stale shards of an earlier run\n", r.stale_removed);
    fmt::print("  wrote      {}/dataset.json and {} (eot_id {}) in {:.2f} s\n", r.out_dir,
               r.tokenizer_file, r.eot_id, r.write_s);
}

}  // namespace

int main(int argc, char** argv) {
    lumen::data::PrepareOptions o;
    CLI::App app{"prepare: text in; a byte-level BPE tokenizer and train/val token shards out"};
    app.add_option("--input", o.inputs,
                   "text files or folders (default: Python's documentation sources, python3-doc)");
    app.add_option("--out", o.out_dir, "output directory")->capture_default_str();
    auto* vocab = app.add_option("--vocab_size", o.vocab_size,
                                 "vocabulary of the trained tokenizer (with 256 bytes and "
                                 "<|endoftext|>)")->capture_default_str();
    app.add_option("--val_fraction", o.val_fraction, "fraction of the tokens kept for validation")
        ->capture_default_str();
    app.add_option("--tokenizer", o.tokenizer,
                   "use this tokenizer (tokenizer.lumen.json, tokenizer.json, vocab.json) instead "
                   "of training one")->excludes(vocab);
    app.add_option("--shard_tokens", o.shard_tokens, "most tokens per shard")->capture_default_str();
    app.add_option("--seed", o.seed, "seed of the document order")->capture_default_str();
    try {
        app.parse(argc, argv);
    } catch (const CLI::CallForHelp& e) {
        return app.exit(e);
    } catch (const CLI::ParseError& e) {
        fmt::print(stderr, "error: {} (see ./prepare --help)\n", e.what());
        return 1;
    }
    const bool tty = ::isatty(STDERR_FILENO);
    ProgressBar bar;
    try {
        const auto report = lumen::data::prepare_dataset(
            o, tty ? lumen::data::PrepareProgress(
                         [&](std::string_view phase, int64_t done, int64_t total, std::string_view unit) {
                             bar.update(phase, done, total, unit);
                         })
                   : lumen::data::PrepareProgress());
        bar.finish();
        print_summary(report);
    } catch (const std::exception& e) {
        bar.finish();
        fmt::print(stderr, "error: {}\n", e.what());
        return 1;
    }
    return 0;
}
