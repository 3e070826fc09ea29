// data/safetensors.cpp: the safetensors writer, the validating reader (§6 rules 1-7, checked in
// open_safetensors), loading, and sharded checkpoints.
#include "data/safetensors.h"

#include "core/error.h"

#include <fmt/ranges.h>

#include <algorithm>
#include <bit>
#include <cstring>
#include <filesystem>
#include <set>

namespace lumen::data {

static_assert(std::endian::native == std::endian::little,
              "safetensors is little-endian and lumen copies its bytes unchanged");

namespace {

using json = nlohmann::json;

// ---------------------------------------------------------------- dtypes

struct SafetensorsDType {
    std::string_view name;
    int bits;
    std::optional<DType> lumen;  // nullopt: refused
};

constexpr SafetensorsDType safetensors_dtypes[] = {
    {"F64", 64, DType::f64},  {"F32", 32, DType::f32},  {"F16", 16, DType::f16},
    {"BF16", 16, DType::bf16}, {"I64", 64, DType::i64}, {"I32", 32, DType::i32},
    {"U16", 16, DType::u16},  {"U8", 8, DType::u8},     {"I8", 8, DType::i8},
    {"BOOL", 8, std::nullopt}, {"I16", 16, std::nullopt}, {"U32", 32, std::nullopt},
    {"U64", 64, std::nullopt}, {"C64", 64, std::nullopt}, {"F8_E4M3", 8, std::nullopt},
    {"F8_E5M2", 8, std::nullopt}, {"F8_E8M0", 8, std::nullopt}, {"F8_E4M3FNUZ", 8, std::nullopt},
    {"F8_E5M2FNUZ", 8, std::nullopt}, {"F4", 4, std::nullopt}, {"F6_E2M3", 6, std::nullopt},
    {"F6_E3M2", 6, std::nullopt},
};

const SafetensorsDType* find_dtype(std::string_view name) {
    for (const SafetensorsDType& d : safetensors_dtypes)
        if (d.name == name) return &d;
    return nullptr;
}

std::string known_dtype_names() {
    std::string out;
    for (const SafetensorsDType& d : safetensors_dtypes) out += (out.empty() ? "" : ", ") + std::string(d.name);
    return out;
}

// ---------------------------------------------------------------- errors

[[noreturn]] void fail_file(const std::string& path, std::string_view what) {
    throw Error(fmt::format("{}: {}", path, what));
}

[[noreturn]] void fail_tensor(const std::string& path, std::string_view name, std::string_view what) {
    throw Error(fmt::format("{}: tensor \"{}\": {}", path, name, what));
}

std::string dims_str(const Shape& shape) { return fmt::format("[{}]", fmt::join(shape, ", ")); }

// A JSON string literal for `s`; names `what` when s is not valid UTF-8.
std::string json_string(std::string_view s, std::string_view what) {
    try {
        return json(std::string(s)).dump();
    } catch (const json::exception&) {
        throw Error(fmt::format("{} is not valid UTF-8", what));
    }
}

// ---------------------------------------------------------------- header checks

// A non-negative integer that fits in 64 bits (rule 3); `what` names the field.
uint64_t header_u64(const json& v, const std::string& path, std::string_view name, std::string_view what) {
    if (!v.is_number_unsigned())
        fail_tensor(path, name, fmt::format("{} must be a non-negative integer that fits in 64 bits, found {}",
                                            what, v.dump()));
    return v.get<uint64_t>();
}

SafetensorsEntry parse_entry(const std::string& path, const std::string& name, const json& v) {
    if (name.empty()) fail_file(path, "header: a tensor has an empty name");  // rule 7
    if (!v.is_object())
        fail_tensor(path, name, fmt::format("expected an object with dtype, shape and data_offsets, found {}",
                                            v.dump()));
    for (const char* field : {"dtype", "shape", "data_offsets"})
        if (!v.contains(field)) fail_tensor(path, name, fmt::format("missing \"{}\"", field));
    SafetensorsEntry e;
    e.name = name;
    const json& dtype = v["dtype"];
    if (!dtype.is_string()) fail_tensor(path, name, fmt::format("dtype must be a string, found {}", dtype.dump()));
    e.dtype = dtype.get<std::string>();
    const SafetensorsDType* known = find_dtype(e.dtype);
    if (!known)
        fail_tensor(path, name, fmt::format("unknown dtype \"{}\" (known: {})", e.dtype, known_dtype_names()));
    const json& shape = v["shape"];
    if (!shape.is_array()) fail_tensor(path, name, fmt::format("shape must be an array, found {}", shape.dump()));
    for (const json& d : shape) {
        const uint64_t size = header_u64(d, path, name, "every shape element");
        if (size > uint64_t(INT64_MAX))
            fail_tensor(path, name, fmt::format("shape element {} is larger than lumen's int64 sizes", size));
        e.shape.push_back(int64_t(size));
    }
    const json& offsets = v["data_offsets"];
    if (!offsets.is_array() || offsets.size() != 2)
        fail_tensor(path, name, fmt::format("data_offsets must be [begin, end], found {}", offsets.dump()));
    e.begin = header_u64(offsets[0], path, name, "data_offsets begin");
    e.end = header_u64(offsets[1], path, name, "data_offsets end");
    if (e.end < e.begin)
        fail_tensor(path, name, fmt::format("data_offsets [{}, {}] end before they begin", e.begin, e.end));
    // Rule 5: end - begin == numel · bits / 8, with overflow checks.
    uint64_t numel = 1;
    for (int64_t d : e.shape)
        if (__builtin_mul_overflow(numel, uint64_t(d), &numel))
            fail_tensor(path, name, fmt::format("shape {} has more elements than fit in 64 bits", dims_str(e.shape)));
    uint64_t bits = 0;
    if (__builtin_mul_overflow(numel, uint64_t(known->bits), &bits))
        fail_tensor(path, name, fmt::format("shape {} of {} has more bits than fit in 64 bits", dims_str(e.shape),
                                            e.dtype));
    if (bits % 8 != 0)
        fail_tensor(path, name, fmt::format("{} elements of {} ({} bits each) are {} bits, not whole bytes", numel,
                                            e.dtype, known->bits, bits));
    if (e.end - e.begin != bits / 8)
        fail_tensor(path, name, fmt::format("data_offsets [{}, {}] hold {} bytes, but {} with shape {} needs {} "
                                            "({} elements of {} bits)", e.begin, e.end, e.end - e.begin, e.dtype,
                                            dims_str(e.shape), bits / 8, numel, known->bits));
    return e;
}

// Rules 4 and 6: sorted by begin, the tensors tile the data buffer exactly.
void check_tiling(const std::string& path, const std::vector<SafetensorsEntry>& entries, uint64_t buffer_bytes) {
    std::vector<const SafetensorsEntry*> sorted;
    for (const SafetensorsEntry& e : entries) sorted.push_back(&e);
    // NOTE: ties on begin put empty tensors first, so [0, 0) and [0, 8) tile.
    std::sort(sorted.begin(), sorted.end(), [](const SafetensorsEntry* a, const SafetensorsEntry* b) {
        return a->begin != b->begin ? a->begin < b->begin : a->end < b->end;
    });
    uint64_t end = 0;
    const SafetensorsEntry* previous = nullptr;
    for (const SafetensorsEntry* e : sorted) {
        if (e->begin > end) {
            fail_tensor(path, e->name, previous
                ? fmt::format("data_offsets begin at {}, but the previous tensor \"{}\" ends at {}: a gap of {} "
                              "bytes (the tensors must tile the data buffer)", e->begin, previous->name, end,
                              e->begin - end)
                : fmt::format("is the first tensor in the data buffer but begins at {}, not 0: a gap of {} bytes",
                              e->begin, e->begin));
        }
        if (e->begin < end)
            fail_tensor(path, e->name, fmt::format("data_offsets [{}, {}] overlap the tensor \"{}\" [{}, {})",
                                                   e->begin, e->end, previous->name, previous->begin, end));
        end = e->end;
        previous = e;
    }
    if (end > buffer_bytes)
        fail_tensor(path, previous->name, fmt::format("data_offsets end at {}, past the end of the {}-byte data "
                                                      "buffer: the file is truncated", end, buffer_bytes));
    if (end < buffer_bytes)
        fail_file(path, fmt::format("{} trailing bytes: the tensors end at byte {} of the data buffer, which holds "
                                    "{} bytes", buffer_bytes - end, end, buffer_bytes));
}

// ---------------------------------------------------------------- loading

DType loadable_dtype(const std::string& path, const SafetensorsEntry& e, AllowF64 f64) {
    const std::optional<DType> dt = lumen_dtype_of(e.dtype);
    if (!dt)
        fail_tensor(path, e.name, fmt::format("dtype {} is refused: lumen loads F32, BF16, F16, I64, I32, U16, U8, "
                                              "I8 (and F64 when asked)", e.dtype));
    if (*dt == DType::f64 && f64 != AllowF64::yes)
        fail_tensor(path, e.name, "dtype F64 loads only when asked explicitly (AllowF64::yes); convert it with "
                                  ".to(DType::f32) after loading");
    return *dt;
}

Tensor load_entry(const MappedFile& file, uint64_t data_offset, const SafetensorsEntry& e, Device device,
                  AllowF64 f64) {
    const DType dt = loadable_dtype(file.path(), e, f64);
    Tensor host = Tensor::empty(e.shape, dt, Device::cpu());
    // NOTE: always a byte copy: the mapped bytes may sit at an offset unaligned for the dtype.
    if (e.bytes() > 0) std::memcpy(host.data_ptr(), file.data() + data_offset + e.begin, e.bytes());
    return device.is_cpu() ? host : host.to(device);
}

void check_destination(const std::string& path, const SafetensorsEntry& e, const Tensor& dst, AllowF64 f64) {
    if (!dst.defined()) fail_tensor(path, e.name, "the destination tensor is undefined");
    const DType dt = loadable_dtype(path, e, f64);
    if (Shape(e.shape) != dst.shape())
        fail_tensor(path, e.name, fmt::format("the file's shape {} differs from the destination's {}",
                                              dims_str(e.shape), dims_str(dst.shape())));
    if (dt != dst.dtype() && !(is_floating(dt) && is_floating(dst.dtype())))
        fail_tensor(path, e.name, fmt::format("the file's dtype {} cannot be loaded into a {} tensor", e.dtype,
                                              dtype_name(dst.dtype())));
}

}  // namespace

// ---------------------------------------------------------------- dtype names

std::string_view safetensors_dtype_name(DType dtype) {
    for (const SafetensorsDType& d : safetensors_dtypes)
        if (d.lumen == dtype) return d.name;
    throw Error(fmt::format("safetensors: lumen does not write {} tensors (safetensors' BOOL is refused on read)",
                            dtype_name(dtype)));
}

std::optional<DType> lumen_dtype_of(std::string_view safetensors_dtype) {
    const SafetensorsDType* d = find_dtype(safetensors_dtype);
    if (!d) throw Error(fmt::format("unknown safetensors dtype \"{}\" (known: {})", safetensors_dtype,
                                    known_dtype_names()));
    return d->lumen;
}

int safetensors_dtype_bits(std::string_view safetensors_dtype) {
    const SafetensorsDType* d = find_dtype(safetensors_dtype);
    return d ? d->bits : 0;
}

// ---------------------------------------------------------------- strict JSON

json parse_json_rejecting_duplicates(std::string_view text, const std::string& where) {
    std::vector<std::set<std::string>> open_objects;  // the keys seen in each object being parsed
    std::string top_key;
    const json::parser_callback_t callback = [&](int depth, json::parse_event_t event, json& value) {
        switch (event) {
        case json::parse_event_t::object_start: open_objects.emplace_back(); break;
        case json::parse_event_t::object_end: open_objects.pop_back(); break;
        case json::parse_event_t::key: {
            const std::string& key = value.get_ref<const std::string&>();
            if (!open_objects.back().insert(key).second)
                throw Error(depth <= 1 ? fmt::format("{}: duplicate key \"{}\"", where, key)
                                       : fmt::format("{}: duplicate key \"{}\" in the entry \"{}\"", where, key,
                                                     top_key));
            if (depth == 1) top_key = key;
            break;
        }
        default: break;
        }
        return true;
    };
    try {
        return json::parse(text.begin(), text.end(), callback);
    } catch (const json::parse_error& e) {
        throw Error(fmt::format("{}: not valid UTF-8 JSON (at byte {} of the text): {}", where, e.byte, e.what()));
    }
}

// ---------------------------------------------------------------- writer

void write_safetensors(const std::string& path, const std::vector<std::pair<std::string, Tensor>>& tensors,
                       const std::map<std::string, std::string>& metadata) {
    std::set<std::string_view> names;
    for (const auto& [name, t] : tensors) {
        if (name.empty()) fail_file(path, "cannot write a tensor with an empty name");
        if (name == "__metadata__") fail_file(path, "\"__metadata__\" is reserved and cannot name a tensor");
        if (!names.insert(name).second) fail_tensor(path, name, "the name is given twice");
        if (!t.defined()) fail_tensor(path, name, "the tensor is undefined");
        if (t.dtype() == DType::boolean)
            fail_tensor(path, name, "lumen does not write bool tensors (safetensors' BOOL is refused on read)");
    }
    // Descending element size, then name: every tensor starts aligned to its element size.
    std::vector<size_t> order(tensors.size());
    for (size_t i = 0; i < order.size(); ++i) order[i] = i;
    std::sort(order.begin(), order.end(), [&](size_t a, size_t b) {
        const size_t sa = dtype_size(tensors[a].second.dtype()), sb = dtype_size(tensors[b].second.dtype());
        return sa != sb ? sa > sb : tensors[a].first < tensors[b].first;
    });

    std::string header = R"({"__metadata__":{"format":"pt")";
    for (const auto& [key, value] : metadata) {
        if (key == "format") {
            if (value != "pt")
                fail_file(path, fmt::format("__metadata__ format must be \"pt\" (transformers refuses others), "
                                            "given \"{}\"", value));
            continue;
        }
        header += "," + json_string(key, fmt::format("{}: __metadata__ key", path)) + ":" +
                  json_string(value, fmt::format("{}: __metadata__ value of \"{}\"", path, key));
    }
    header += "}";
    uint64_t offset = 0;
    for (size_t i : order) {
        const auto& [name, t] = tensors[i];
        const uint64_t bytes = uint64_t(t.numel()) * dtype_size(t.dtype());
        header += fmt::format(",{}:{{\"dtype\":\"{}\",\"shape\":{},\"data_offsets\":[{},{}]}}",
                              json_string(name, fmt::format("{}: tensor name \"{}\"", path, name)),
                              safetensors_dtype_name(t.dtype()), json(t.shape()).dump(), offset, offset + bytes);
        offset += bytes;
    }
    header += "}";
    header.append((8 - header.size() % 8) % 8, ' ');  // the data buffer starts 8-byte aligned
    if (header.size() > safetensors_max_header_bytes)
        fail_file(path, fmt::format("the header would be {} bytes, over the {}-byte limit readers accept",
                                    header.size(), safetensors_max_header_bytes));

    AtomicFile file(path);
    const uint64_t header_bytes = header.size();
    file.write(&header_bytes, 8);
    file.write(header.data(), header.size());
    for (size_t i : order) {
        const Tensor& t = tensors[i].second;
        const size_t bytes = size_t(t.numel()) * dtype_size(t.dtype());
        if (bytes == 0) continue;
        if (t.device().is_cpu() && t.is_contiguous()) {
            file.write(t.data_ptr(), bytes);
        } else {  // another device or a strided view: packed row-major on the host first
            std::vector<uint8_t> host(bytes);
            tensor_to_host(t, host.data(), t.dtype());
            file.write(host.data(), bytes);
        }
    }
    file.commit();
}

// ---------------------------------------------------------------- reader

SafetensorsFile open_safetensors(const std::string& path) {
    SafetensorsFile out;
    out.file_ = std::make_shared<const MappedFile>(path);
    const MappedFile& file = *out.file_;
    const uint64_t size = uint64_t(file.bytes());
    // Rule 1.
    if (size < 8)
        fail_file(path, fmt::format("truncated: a safetensors file starts with an 8-byte header length, the file "
                                    "has {} bytes", size));
    uint64_t n = 0;
    std::memcpy(&n, file.data(), 8);
    if (n > safetensors_max_header_bytes)
        fail_file(path, fmt::format("byte 0: the header length {} is over the {}-byte limit (is this a safetensors "
                                    "file?)", n, safetensors_max_header_bytes));
    if (8 + n > size)
        fail_file(path, fmt::format("truncated: the header length is {} bytes but only {} bytes follow the 8-byte "
                                    "length", n, size - 8));
    out.header_bytes_ = n;
    // Rules 2, 3, 5 and 7, entry by entry.
    const std::string_view text(reinterpret_cast<const char*>(file.data()) + 8, size_t(n));
    const json header = parse_json_rejecting_duplicates(text, path + ": header");
    if (!header.is_object())
        fail_file(path, fmt::format("header: expected one JSON object, found a {}", header.type_name()));
    for (const auto& [key, value] : header.items()) {
        if (key == "__metadata__") {
            if (!value.is_object())
                fail_file(path, fmt::format("__metadata__ must be an object of strings, found {}", value.dump()));
            for (const auto& [mkey, mvalue] : value.items()) {
                if (!mvalue.is_string())
                    fail_file(path, fmt::format("__metadata__ \"{}\" must be a string, found {}", mkey, mvalue.dump()));
                out.metadata_[mkey] = mvalue.get<std::string>();
            }
            continue;
        }
        out.index_[key] = out.entries_.size();
        out.entries_.push_back(parse_entry(path, key, value));  // NOTE: items() of nlohmann's map is name-sorted
    }
    // Rules 4 and 6.
    check_tiling(path, out.entries_, size - 8 - n);
    return out;
}

bool SafetensorsFile::contains(std::string_view name) const { return index_.find(name) != index_.end(); }

const SafetensorsEntry& SafetensorsFile::entry(std::string_view name) const {
    const auto it = index_.find(name);
    if (it == index_.end()) fail_tensor(path(), name, fmt::format("not in this file ({} tensors)", entries_.size()));
    return entries_[it->second];
}

std::span<const uint8_t> SafetensorsFile::raw(std::string_view name) const {
    const SafetensorsEntry& e = entry(name);
    return {file_->data() + data_offset() + e.begin, size_t(e.bytes())};
}

Tensor SafetensorsFile::load(std::string_view name, Device device, AllowF64 f64) const {
    return load_entry(*file_, data_offset(), entry(name), device, f64);
}

void SafetensorsFile::load_into(std::string_view name, const Tensor& dst, AllowF64 f64) const {
    const SafetensorsEntry& e = entry(name);
    check_destination(path(), e, dst, f64);
    Tensor target = dst;
    target.copy_(load_entry(*file_, data_offset(), e, Device::cpu(), f64));
}

// ---------------------------------------------------------------- sharded

ShardedSafetensors open_sharded(const std::string& dir) {
    namespace fs = std::filesystem;
    const std::string index_path = (fs::path(dir) / safetensors_index_name).string();
    const json index = parse_json_rejecting_duplicates(read_file(index_path), index_path);
    if (!index.is_object() || !index.contains("weight_map") || !index["weight_map"].is_object())
        fail_file(index_path, "expected an object with a \"weight_map\" object (tensor name -> file name)");
    ShardedSafetensors out;
    out.dir_ = dir;
    if (index.contains("metadata")) {
        if (!index["metadata"].is_object())
            fail_file(index_path, fmt::format("\"metadata\" must be an object, found {}", index["metadata"].dump()));
        for (const auto& [key, value] : index["metadata"].items())
            out.metadata_[key] = value.is_string() ? value.get<std::string>() : value.dump();
    }
    std::map<std::string, std::string, std::less<>> weight_map;  // tensor -> file
    std::set<std::string> file_names;
    for (const auto& [tensor, file] : index["weight_map"].items()) {
        if (!file.is_string())
            fail_file(index_path, fmt::format("weight_map \"{}\": the file name must be a string, found {}", tensor,
                                              file.dump()));
        const std::string name = file.get<std::string>();
        if (name.empty() || name.find('/') != std::string::npos || name.find("..") != std::string::npos)
            fail_file(index_path, fmt::format("weight_map \"{}\": file name \"{}\" is refused: it must name a file "
                                              "in the same directory (no '/' or '..')", tensor, name));
        weight_map[tensor] = name;
        file_names.insert(name);
    }
    std::map<std::string, size_t> file_position;
    for (const std::string& name : file_names) {
        const fs::path p = fs::path(dir) / name;
        if (!fs::is_regular_file(p)) {
            const auto it = std::find_if(weight_map.begin(), weight_map.end(),
                                         [&](const auto& kv) { return kv.second == name; });
            fail_file(index_path, fmt::format("weight_map \"{}\" names {}, which does not exist in {}", it->first,
                                              name, dir));
        }
        file_position[name] = out.files_.size();
        out.files_.push_back(open_safetensors(p.string()));
    }
    std::map<std::string, std::string, std::less<>> found_in;  // tensor -> the file that holds it
    for (const SafetensorsFile& f : out.files_) {
        const std::string name = fs::path(f.path()).filename().string();
        for (const SafetensorsEntry& e : f.entries()) {
            if (const auto seen = found_in.find(e.name); seen != found_in.end())
                fail_tensor(index_path, e.name, fmt::format("appears in two files, {} and {}", seen->second, name));
            found_in[e.name] = name;
            const auto listed = weight_map.find(e.name);
            if (listed == weight_map.end())
                fail_tensor(index_path, e.name, fmt::format("is in {} but not in the weight_map", name));
            if (listed->second != name)
                fail_tensor(index_path, e.name, fmt::format("is in {}, but the weight_map puts it in {}", name,
                                                            listed->second));
        }
    }
    for (const auto& [tensor, file] : weight_map) {
        if (!found_in.contains(tensor))
            fail_tensor(index_path, tensor, fmt::format("the weight_map puts it in {}, which does not hold it", file));
        const size_t position = file_position.at(file);
        out.file_index_[tensor] = position;
        out.entries_.push_back(out.files_[position].entry(tensor));
    }
    return out;
}

bool ShardedSafetensors::contains(std::string_view name) const { return file_index_.find(name) != file_index_.end(); }

const SafetensorsFile& ShardedSafetensors::file_of(std::string_view name) const {
    const auto it = file_index_.find(name);
    if (it == file_index_.end())
        fail_tensor(dir_, name, fmt::format("not in this sharded checkpoint ({} tensors in {} files)", entries_.size(),
                                            files_.size()));
    return files_[it->second];
}

const SafetensorsEntry& ShardedSafetensors::entry(std::string_view name) const { return file_of(name).entry(name); }

Tensor ShardedSafetensors::load(std::string_view name, Device device, AllowF64 f64) const {
    return file_of(name).load(name, device, f64);
}

void ShardedSafetensors::load_into(std::string_view name, const Tensor& dst, AllowF64 f64) const {
    file_of(name).load_into(name, dst, f64);
}

}  // namespace lumen::data
