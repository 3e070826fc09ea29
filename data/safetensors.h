// data/safetensors.h: safetensors files (shared/specs/formats.md §6): the writer, a validating
// memory-mapped reader, and transformers' sharded checkpoints (model.safetensors.index.json).
//
// The writer packs each tensor in C order, sorted by descending element size then name (so every
// tensor starts aligned to its element size), writes `__metadata__` first with "format": "pt",
// pads the header with spaces to a multiple of 8, and writes through a temporary name that is
// flushed, fsynced and renamed. The reader checks all seven rules of §6 when the file is opened,
// so a SafetensorsFile that exists is valid; each error names the file and the tensor. Loading
// always copies (a mapped tensor may sit at an unaligned offset and is never reinterpreted in
// place). F64 loads only when asked (AllowF64::yes); BOOL, I16, U32, U64, C64 and the F8/F6/F4
// types are listed but refused on load, naming the tensor and its dtype.
#pragma once

#include "core/tensor.h"
#include "data/file_io.h"

#include <nlohmann/json.hpp>

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace lumen::data {

// transformers' MAX_HEADER_SIZE: a longer header is refused (rule 1).
inline constexpr uint64_t safetensors_max_header_bytes = 100'000'000;

// lumen dtype -> safetensors name ("F32", "BF16", ...); throws for boolean, which lumen does not
// write (safetensors' BOOL is refused on read).
std::string_view safetensors_dtype_name(DType dtype);
// safetensors name -> lumen dtype: nullopt for a known name that lumen refuses (BOOL, F8_*, ...);
// F64 maps to DType::f64 (the loader still asks for AllowF64::yes). Throws for an unknown name.
std::optional<DType> lumen_dtype_of(std::string_view safetensors_dtype);
// Bits per element of a known safetensors dtype name (4 for F4, 6 for F6_*); 0 for an unknown one.
int safetensors_dtype_bits(std::string_view safetensors_dtype);

// Writes `tensors` (any device, any layout: copied to the host, packed row-major) to `path`
// atomically. `metadata` goes into `__metadata__` after "format": "pt" (a given "format" must be
// "pt"). Names must be unique, non-empty and not "__metadata__".
void write_safetensors(const std::string& path, const std::vector<std::pair<std::string, Tensor>>& tensors,
                       const std::map<std::string, std::string>& metadata = {});

// One tensor as the header describes it.
struct SafetensorsEntry {
    std::string name;
    std::string dtype;        // the file's name for it: "F32", "BF16", ... (maybe one lumen refuses)
    Shape shape;              // {} is a scalar
    uint64_t begin = 0;       // data_offsets [begin, end), relative to the data buffer
    uint64_t end = 0;
    uint64_t bytes() const { return end - begin; }
};

enum class AllowF64 : bool { no, yes };

class SafetensorsFile {
public:
    const std::string& path() const { return file_->path(); }
    // Every tensor, sorted by name.
    const std::vector<SafetensorsEntry>& entries() const { return entries_; }
    bool contains(std::string_view name) const;
    // Throws naming the file and the tensor when there is no such tensor.
    const SafetensorsEntry& entry(std::string_view name) const;
    // `__metadata__` (empty when the file has none).
    const std::map<std::string, std::string>& metadata() const { return metadata_; }
    uint64_t header_bytes() const { return header_bytes_; }          // N
    uint64_t data_offset() const { return 8 + header_bytes_; }       // file offset of the buffer
    // The tensor's bytes inside the mapping (packed, little-endian, possibly unaligned).
    std::span<const uint8_t> raw(std::string_view name) const;

    // A new contiguous tensor with the file's dtype and shape on `device`.
    Tensor load(std::string_view name, Device device = Device::cpu(), AllowF64 f64 = AllowF64::no) const;
    // Copies the tensor into `dst` (any device): shapes must be equal; dtypes equal, or both
    // floating point (converted by rounding to nearest even, as Tensor::copy_ does).
    void load_into(std::string_view name, const Tensor& dst, AllowF64 f64 = AllowF64::no) const;

private:
    friend SafetensorsFile open_safetensors(const std::string& path);
    std::shared_ptr<const MappedFile> file_;
    uint64_t header_bytes_ = 0;
    std::vector<SafetensorsEntry> entries_;
    std::map<std::string, size_t, std::less<>> index_;  // name -> position in entries_
    std::map<std::string, std::string> metadata_;
};

// Maps `path` and validates it (§6 rules 1-7); throws naming the file and the tensor.
SafetensorsFile open_safetensors(const std::string& path);

// A transformers sharded checkpoint: `dir`/model.safetensors.index.json and the files it names.
class ShardedSafetensors {
public:
    const std::string& dir() const { return dir_; }
    // Every tensor of every file, sorted by name.
    const std::vector<SafetensorsEntry>& entries() const { return entries_; }
    bool contains(std::string_view name) const;
    const SafetensorsEntry& entry(std::string_view name) const;
    // The index's "metadata" (values that are not strings, such as total_size, as JSON text).
    const std::map<std::string, std::string>& metadata() const { return metadata_; }
    // The file that holds a tensor, and the opened files in the index's (sorted) order.
    const SafetensorsFile& file_of(std::string_view name) const;
    const std::vector<SafetensorsFile>& files() const { return files_; }

    Tensor load(std::string_view name, Device device = Device::cpu(), AllowF64 f64 = AllowF64::no) const;
    void load_into(std::string_view name, const Tensor& dst, AllowF64 f64 = AllowF64::no) const;

private:
    friend ShardedSafetensors open_sharded(const std::string& dir);
    std::string dir_;
    std::vector<SafetensorsFile> files_;
    std::vector<SafetensorsEntry> entries_;
    std::map<std::string, size_t, std::less<>> file_index_;  // tensor name -> position in files_
    std::map<std::string, std::string> metadata_;
};

inline constexpr std::string_view safetensors_index_name = "model.safetensors.index.json";

// Reads `dir`/model.safetensors.index.json, opens (and validates) every file it names, and checks
// that each tensor is in exactly the file the weight_map names, and in no other.
ShardedSafetensors open_sharded(const std::string& dir);

// Parses one JSON value like nlohmann::json::parse, but a duplicate key in any object is an error
// (nlohmann keeps the last one silently). `where` starts each error message (a path); an error
// in a nested object also names the top-level key it sits under.
nlohmann::json parse_json_rejecting_duplicates(std::string_view text, const std::string& where);

}  // namespace lumen::data
