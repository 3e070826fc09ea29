// data/prepare.cpp: the ./prepare pipeline: collect, read, train or load the tokenizer, encode
// (OpenMP over documents), order, cut into train/val, write shards, tokenizer and dataset.json.
#include "data/prepare.h"

#include "core/error.h"
#include "data/bpe_train.h"
#include "data/dataset.h"
#include "data/file_io.h"
#include "data/sampling.h"
#include "data/shard.h"
#include "data/tokenizer_io.h"

#include <omp.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <set>

namespace lumen::data {
namespace fs = std::filesystem;
namespace {

using Clock = std::chrono::steady_clock;
double seconds_since(Clock::time_point t0) {
    return std::chrono::duration<double>(Clock::now() - t0).count();
}

[[noreturn]] void fail(std::string_view what) { throw Error(fmt::format("prepare: {}", what)); }

void check_options(const PrepareOptions& o) {
    if (o.tokenizer.empty() && (o.vocab_size < 257 || o.vocab_size > INT32_MAX))
        fail(fmt::format("--vocab_size {} must be at least 257 (256 byte tokens + <|endoftext|>)",
                         o.vocab_size));
    if (!(o.val_fraction >= 0.0 && o.val_fraction <= 0.5))
        fail(fmt::format("--val_fraction {} must be in [0, 0.5]", o.val_fraction));
    if (o.shard_tokens < 1 || o.shard_tokens >= (int64_t(1) << 31))
        fail(fmt::format("--shard_tokens {} must be in [1, 2^31) (the llm.c header's int32 count)",
                         o.shard_tokens));
    if (o.out_dir.empty()) fail("--out must name a directory");
    std::error_code ec;
    if (fs::exists(o.out_dir, ec) && !fs::is_directory(o.out_dir, ec))
        fail(fmt::format("--out {} exists and is not a directory", o.out_dir));
}

// Writes a stream of `total` tokens as shards <prefix>_NNNNNN.bin: as few as hold at most `limit`
// tokens each, of equal size (within one token), so no tail shard is too short to sample from.
class ShardSink {
public:
    ShardSink(std::string dir, std::string prefix, int64_t total, int64_t limit, TokenFormat format)
        : dir_(std::move(dir)), prefix_(std::move(prefix)), format_(format) {
        const int64_t count = (total + limit - 1) / limit;
        for (int64_t i = 0; i < count; ++i) sizes_.push_back(total / count + (i < total % count ? 1 : 0));
    }
    void push(uint32_t token) {
        buffer_.push_back(token);
        if (int64_t(buffer_.size()) == sizes_[written_.size()]) flush();
    }
    const std::vector<std::string>& written() const { return written_; }

private:
    void flush() {
        const std::string name = fmt::format("{}_{:06d}.bin", prefix_, written_.size());
        write_shard((fs::path(dir_) / name).string(), buffer_, format_);
        written_.push_back(name);
        buffer_.clear();
    }

    std::string dir_, prefix_;
    TokenFormat format_;
    std::vector<int64_t> sizes_;
    std::vector<uint32_t> buffer_;
    std::vector<std::string> written_;
};

}  // namespace

std::string default_corpus() {
    for (const char* dir : {"/usr/share/doc/python3/html/_sources",
                            "/usr/share/doc/python3-doc/html/_sources"}) {
        std::error_code ec;
        if (fs::is_directory(dir, ec)) return dir;
    }
    fail("no --input given and the default corpus, Python's documentation sources "
         "(/usr/share/doc/python3/html/_sources, Debian package python3-doc), is not installed: "
         "run scripts/install-deps.sh (or apt-get install python3-doc), or pass --input PATH");
}

std::vector<std::string> collect_input_files(const std::vector<std::string>& inputs) {
    std::vector<std::string> files;
    for (const std::string& input : inputs) {
        std::error_code ec;
        const fs::file_status st = fs::status(input, ec);
        if (!fs::exists(st)) fail(fmt::format("--input {}: no such file or directory", input));
        if (fs::is_regular_file(st)) {
            files.push_back(input);
            continue;
        }
        if (!fs::is_directory(st)) fail(fmt::format("--input {}: not a file or directory", input));
        std::vector<std::string> found;
        auto it = fs::recursive_directory_iterator(input, ec);
        if (ec) fail(fmt::format("--input {}: cannot list: {}", input, ec.message()));
        for (; it != fs::recursive_directory_iterator(); it.increment(ec)) {
            if (ec) fail(fmt::format("--input {}: cannot list: {}", input, ec.message()));
            const std::string name = it->path().filename().string();
            if (!name.empty() && name[0] == '.') {
                if (it->is_directory()) it.disable_recursion_pending();
                continue;
            }
            if (it->is_regular_file()) found.push_back(it->path().string());
        }
        if (found.empty()) fail(fmt::format("--input {}: the folder holds no files", input));
        std::sort(found.begin(), found.end());
        files.insert(files.end(), found.begin(), found.end());
    }
    if (files.empty()) fail("no input files");
    return files;
}

PrepareReport prepare_dataset(const PrepareOptions& o, const PrepareProgress& progress) {
    check_options(o);
    const auto report_progress = [&](std::string_view phase, int64_t done, int64_t total,
                                     std::string_view unit) {
        if (progress) progress(phase, done, total, unit);
    };
    PrepareReport r;
    r.out_dir = o.out_dir;
    const std::vector<std::string> files =
        collect_input_files(o.inputs.empty() ? std::vector<std::string>{default_corpus()} : o.inputs);

    // Read. A NUL byte means the file is not text (a stray binary in a folder, most likely).
    auto t0 = Clock::now();
    int64_t total_bytes = 0;
    for (const auto& f : files) total_bytes += int64_t(fs::file_size(f));
    std::vector<std::string> texts;
    for (const auto& f : files) {
        std::string text = read_file(f);
        if (const size_t nul = text.find('\0'); nul != std::string::npos)
            fail(fmt::format("{}: byte {}: a NUL byte: this does not look like a text file (pass "
                             "text files, or folders of them)", f, nul));
        r.bytes += int64_t(text.size());
        if (!text.empty()) texts.push_back(std::move(text));
        report_progress("read", r.bytes, total_bytes, "bytes");
    }
    r.files = int64_t(files.size());
    r.read_s = seconds_since(t0);
    if (texts.empty()) fail(fmt::format("the {} input files are all empty", files.size()));
    const std::vector<std::string_view> docs(texts.begin(), texts.end());

    // Tokenizer: load, or train.
    Tokenizer tok;
    if (!o.tokenizer.empty()) {
        tok = load_tokenizer(o.tokenizer);
        if (!tok.can_encode())
            fail(fmt::format("--tokenizer {}: this file can only decode; pass one with merges "
                             "(tokenizer.lumen.json, tokenizer.json, vocab.json + merges.txt)",
                             o.tokenizer));
        if (tok.eot_id() < 0) fail(fmt::format("--tokenizer {}: it has no <|endoftext|> token", o.tokenizer));
    } else {
        BpeTrainOptions train;
        train.vocab_size = o.vocab_size;
        train.progress = [&](std::string_view phase, int64_t done, int64_t total) {
            report_progress(phase, done, total, phase == "count" ? "bytes" : "merges");
        };
        BpeTrainStats stats;
        tok = train_bpe(docs, train, &stats);
        r.trained = true;
        r.count_s = stats.count_s;
        r.merge_s = stats.merge_s;
        r.distinct_words = stats.distinct_words;
    }
    r.vocab_size = tok.vocab_size();
    r.merges = int64_t(tok.merges().size());
    r.eot_id = tok.eot_id();

    // Encode, OpenMP over documents; each thread keeps its own cache of encoded pieces.
    t0 = Clock::now();
    std::vector<std::vector<int32_t>> ids(docs.size());
    std::atomic<int64_t> encoded{0};
    std::exception_ptr error;
#pragma omp parallel
    {
        EncodeCache cache;
#pragma omp for schedule(dynamic, 1)
        for (int64_t d = 0; d < int64_t(docs.size()); ++d) {
            try {
                tok.encode_ordinary(docs[size_t(d)], ids[size_t(d)], cache);
            } catch (...) {
#pragma omp critical
                error = std::current_exception();
            }
            const int64_t now = encoded += int64_t(docs[size_t(d)].size());
            if (omp_get_thread_num() == 0) report_progress("encode", now, r.bytes, "bytes");
        }
    }
    if (error) std::rethrow_exception(error);
    report_progress("encode", r.bytes, r.bytes, "bytes");
    r.encode_s = seconds_since(t0);

    // Order the documents, cut the stream, write the shards.
    t0 = Clock::now();
    std::error_code ec;
    fs::create_directories(o.out_dir, ec);
    if (ec) fail(fmt::format("--out {}: cannot create the directory: {}", o.out_dir, ec.message()));
    fs::remove(fs::path(o.out_dir) / "dataset.json", ec);  // until the new one: not a dataset
    int64_t total = 0;
    for (const auto& d : ids) total += 1 + int64_t(d.size());
    const int64_t val = int64_t(std::ceil(o.val_fraction * double(total)));
    if (total - val < 1) fail("the corpus is too small to leave any training tokens");
    const TokenFormat format = tok.vocab_size() <= 65536 ? TokenFormat::llmc_u16 : TokenFormat::llmc_u32;
    ShardSink train_sink(o.out_dir, "train", total - val, o.shard_tokens, format);
    ShardSink val_sink(o.out_dir, "val", val, o.shard_tokens, format);
    const std::vector<int64_t> order =
        philox_permutation(int64_t(ids.size()), o.seed, 0, 0, tag_documents);
    int64_t pos = 0;
    const auto emit = [&](int32_t token) {
        (pos < total - val ? train_sink : val_sink).push(uint32_t(token));
        if (++pos % (int64_t(1) << 20) == 0) report_progress("write", pos, total, "tokens");
    };
    for (int64_t d : order) {
        emit(r.eot_id);
        for (int32_t t : ids[size_t(d)]) emit(t);
    }
    report_progress("write", total, total, "tokens");
    r.train_tokens = total - val;
    r.val_tokens = val;
    r.train_shards = int64_t(train_sink.written().size());
    r.val_shards = int64_t(val_sink.written().size());

    // Shards of an earlier run that this one did not overwrite would match the globs: remove them.
    std::set<std::string> fresh(train_sink.written().begin(), train_sink.written().end());
    fresh.insert(val_sink.written().begin(), val_sink.written().end());
    for (const auto& entry : fs::directory_iterator(o.out_dir)) {
        const std::string name = entry.path().filename().string();
        const bool ours = (name.rfind("train_", 0) == 0 || name.rfind("val_", 0) == 0) &&
                          name.size() > 4 && name.substr(name.size() - 4) == ".bin";
        if (ours && !fresh.count(name) && fs::remove(entry.path(), ec)) ++r.stale_removed;
    }

    r.tokenizer_file = (fs::path(o.out_dir) / "tokenizer.lumen.json").string();
    save_tokenizer(tok, r.tokenizer_file);
    DatasetInfo info;
    info.dir = o.out_dir;
    info.token_format = format;
    info.vocab_size = tok.vocab_size();
    info.eot_id = r.eot_id;
    info.doc_separator = "prefix";
    info.tokenizer = "tokenizer.lumen.json";
    info.train_pattern = "train_*.bin";
    info.val_pattern = val > 0 ? "val_*.bin" : "";
    info.train_tokens = r.train_tokens;
    info.val_tokens = r.val_tokens;
    write_dataset_info(info);
    r.write_s = seconds_since(t0);
    return r;
}

}  // namespace lumen::data
