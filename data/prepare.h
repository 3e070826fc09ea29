// data/prepare.h: what ./prepare does, as a library call: text files in, a dataset directory out
// (tokenizer.lumen.json, train_NNNNNN.bin / val_NNNNNN.bin llm.c shards, dataset.json).
//
// Each input file is one document. The tokenizer is trained on all of them (or loaded from
// `tokenizer`), every document is encoded and prefixed with <|endoftext|> (llm.c's convention),
// the documents are put in a seeded Philox order, and the concatenated stream is cut once: the last
// `val_fraction` of its tokens are val, the rest train. Each split is cut into the fewest shards of
// at most `shard_tokens` tokens, all of one size (within a token), uint16 when the vocabulary fits,
// else uint32. dataset.json is written last, so a directory with
// one is complete. The corpus and its tokens are held in memory (fine up to a few GB of text).
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

namespace lumen::data {

struct PrepareOptions {
    std::vector<std::string> inputs;  // files or folders (recursive, sorted; hidden entries and
                                      // symlinked subfolders skipped)
    std::string out_dir = "data/default";
    int64_t vocab_size = 8192;        // when training; includes the 256 bytes and <|endoftext|>
    double val_fraction = 0.02;       // in [0, 0.5]; 0 writes no val split
    std::string tokenizer;            // an existing tokenizer file: used instead of training
    int64_t shard_tokens = 100'000'000;
    uint64_t seed = 1337;             // the document order
};

// phase: "read", "count", "merge", "encode", "write"; done and total in `unit`s.
using PrepareProgress =
    std::function<void(std::string_view phase, int64_t done, int64_t total, std::string_view unit)>;

struct PrepareReport {
    std::string out_dir, tokenizer_file;
    int64_t files = 0, bytes = 0;
    int64_t vocab_size = 0, merges = 0, eot_id = 0;
    bool trained = false;
    int64_t distinct_words = 0;
    int64_t train_tokens = 0, val_tokens = 0, train_shards = 0, val_shards = 0;
    int64_t stale_removed = 0;       // old shards of ours that the new dataset no longer has
    double read_s = 0, count_s = 0, merge_s = 0, encode_s = 0, write_s = 0;
};

// The folder of .rst.txt sources that Debian's python3-doc installs; an error saying how to get
// it (scripts/install-deps.sh) or to pass --input when it is absent.
std::string default_corpus();
// The files of the inputs, in order (folders: sorted, recursive); errors name a bad input.
std::vector<std::string> collect_input_files(const std::vector<std::string>& inputs);

PrepareReport prepare_dataset(const PrepareOptions& options, const PrepareProgress& progress = {});

}  // namespace lumen::data
