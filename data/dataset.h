// data/dataset.h: a dataset directory: shards plus `dataset.json` (shared/specs/formats.md §3).
//
//   {"format": "lumen-dataset", "version": 1, "token_format": "llmc", "token_bytes": 2,
//    "vocab_size": 8192, "eot_id": 8191, "doc_separator": "prefix",
//    "tokenizer": "tokenizer.lumen.json", "train": "train_*.bin", "val": "val_*.bin",
//    "num_tokens": {"train": 2900000, "val": 14600}}
//
// Required: format, version, token_format, token_bytes, vocab_size, eot_id, train. Optional: bos_id,
// doc_separator ("prefix"), tokenizer, val (absent or "": no val split), num_tokens (checked against
// the shards when present). Unknown keys are ignored. A directory without dataset.json whose
// shards are named like llm.c's FineWeb ones (*_train_*.bin, *_val_*.bin) opens with GPT-2 defaults
// (vocabulary 50257, EOT 50256, prefix) and a one-line notice in `notice`.
#pragma once

#include "data/shard.h"

#include <cstdint>
#include <string>
#include <vector>

namespace lumen::data {

enum class Split { train, val };
std::string_view split_name(Split s);

struct DatasetInfo {
    std::string dir;
    TokenFormat token_format = TokenFormat::llmc_u16;
    int64_t vocab_size = 0;
    int64_t eot_id = -1;
    int64_t bos_id = -1;                      // -1: none
    std::string doc_separator = "prefix";     // "prefix" (llm.c) or "suffix" (nanoGPT)
    std::string tokenizer;                    // "gpt2", a path relative to dir, or ""
    std::string train_pattern, val_pattern;   // globs relative to dir
    int64_t train_tokens = -1, val_tokens = -1;  // num_tokens; -1: not recorded
    std::string notice;                       // set when defaults stood in for dataset.json
};

// Reads dir/dataset.json (or the FineWeb defaults); every bad value is an error naming the key.
DatasetInfo read_dataset_info(const std::string& dir);
// Writes dir/dataset.json atomically.
void write_dataset_info(const DatasetInfo& info);

// The split's shard paths, sorted; an error when the pattern matches nothing.
std::vector<std::string> find_shards(const DatasetInfo& info, Split split);
// Opens (maps and validates the header and size of) every shard of the split and checks the
// total against num_tokens.
std::vector<Shard> open_shards(const DatasetInfo& info, Split split);

}  // namespace lumen::data
