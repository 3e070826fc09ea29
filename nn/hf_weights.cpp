// nn/hf_weights.cpp: the one table between Hugging Face tensor names and lumen's (specs/formats.md
// §8.1, §8.2), and the three things done with it: load_hf_weights (a folder's tensors into a GPT),
// load_hf_model, and export_hf (a lumen state dict out as a folder transformers loads).
//
// A table row is one lumen tensor and the Hugging Face tensors that make it, in row order: one
// part for most, three ([q; k; v]) for Llama's fused c_attn. A part may be transposed (GPT-2's
// Conv1D stores (in, out)) and may hold RoPE rows (q and k), which are permuted inside each head
// when the lumen model pairs dims interleaved, since transformers' Llama pairs them half-split:
// Hugging Face row p·hd/2 + j = lumen row 2j + p (p ∈ {0, 1}, j < hd/2).
#include "nn/hf_model.h"

#include "autograd/node.h"
#include "core/error.h"
#include "data/file_io.h"
#include "data/safetensors.h"
#include "nn/layers.h"
#include "nn/optical_settings.h"

#include <fmt/format.h>

#include <fcntl.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <functional>
#include <map>
#include <optional>
#include <set>
#include <span>

namespace lumen::nn {

namespace {

namespace fs = std::filesystem;

// ---------------------------------------------------------------- the table

enum class Transform { copy, transpose };

struct HfPart {
    std::string name;                        // Hugging Face name
    int64_t rows = 0;                        // rows of the lumen tensor it fills (dim 0)
    Transform transform = Transform::copy;
    bool rope_rows = false;                  // q or k rows: permuted for an interleaved lumen model
};

struct TableRow {
    std::string lumen;                       // lumen name
    Shape shape;                             // lumen shape
    std::vector<HfPart> parts;               // filling dim 0 in order
};

// A row whose one part is the whole tensor.
TableRow single(std::string lumen, Shape shape, std::string hf, Transform t = Transform::copy) {
    const int64_t rows = shape.empty() ? 1 : shape[0];
    return TableRow{std::move(lumen), std::move(shape), {HfPart{std::move(hf), rows, t, false}}};
}

// GPT-2: `prefix` is "" or "transformer." (lm_head never has it). Biases only when c.bias.
std::vector<TableRow> gpt2_table(const ModelConfig& c, const std::string& prefix) {
    const int64_t C = c.n_embd, H = c.hidden(), V = c.vocab_size;
    const auto T = Transform::transpose;
    std::vector<TableRow> rows;
    rows.push_back(single("wte.weight", {V, C}, prefix + "wte.weight"));
    rows.push_back(single("wpe.weight", {c.block_size, C}, prefix + "wpe.weight"));
    auto norm = [&](const std::string& lumen, const std::string& hf) {
        rows.push_back(single(lumen + ".weight", {C}, hf + ".weight"));
        if (c.bias) rows.push_back(single(lumen + ".bias", {C}, hf + ".bias"));
    };
    auto linear = [&](const std::string& lumen, const std::string& hf, int64_t in, int64_t out) {
        rows.push_back(single(lumen + ".weight", {out, in}, hf + ".weight", T));  // Conv1D (in, out)
        if (c.bias) rows.push_back(single(lumen + ".bias", {out}, hf + ".bias"));
    };
    for (int64_t i = 0; i < c.n_layer; ++i) {
        const std::string l = fmt::format("blocks.{}.", i), h = fmt::format("{}h.{}.", prefix, i);
        norm(l + "ln_1", h + "ln_1");
        linear(l + "attn.c_attn", h + "attn.c_attn", C, 3 * C);
        linear(l + "attn.c_proj", h + "attn.c_proj", C, C);
        norm(l + "ln_2", h + "ln_2");
        linear(l + "mlp.c_fc", h + "mlp.c_fc", C, H);
        linear(l + "mlp.c_proj", h + "mlp.c_proj", H, C);
    }
    norm("ln_f", prefix + "ln_f");
    if (!c.tie_embeddings) rows.push_back(single("lm_head.weight", {V, C}, "lm_head.weight"));
    return rows;
}

std::vector<TableRow> llama_table(const ModelConfig& c) {
    const int64_t C = c.n_embd, H = c.hidden(), V = c.vocab_size, kv = c.kv_heads() * c.head_size();
    std::vector<TableRow> rows;
    rows.push_back(single("wte.weight", {V, C}, "model.embed_tokens.weight"));
    auto linear = [&](const std::string& lumen, const std::string& hf, int64_t in, int64_t out) {
        rows.push_back(single(lumen + ".weight", {out, in}, hf + ".weight"));
        if (c.bias) rows.push_back(single(lumen + ".bias", {out}, hf + ".bias"));
    };
    for (int64_t i = 0; i < c.n_layer; ++i) {
        const std::string l = fmt::format("blocks.{}.", i), h = fmt::format("model.layers.{}.", i);
        rows.push_back(single(l + "ln_1.weight", {C}, h + "input_layernorm.weight"));
        for (const char* kind : {"weight", "bias"}) {
            if (std::string(kind) == "bias" && !c.bias) continue;
            const bool w = std::string(kind) == "weight";
            const std::string a = h + "self_attn.";
            rows.push_back(TableRow{l + "attn.c_attn." + kind, w ? Shape{C + 2 * kv, C} : Shape{C + 2 * kv},
                                    {HfPart{a + "q_proj." + kind, C, Transform::copy, true},
                                     HfPart{a + "k_proj." + kind, kv, Transform::copy, true},
                                     HfPart{a + "v_proj." + kind, kv, Transform::copy, false}}});
        }
        linear(l + "attn.c_proj", h + "self_attn.o_proj", C, C);
        rows.push_back(single(l + "ln_2.weight", {C}, h + "post_attention_layernorm.weight"));
        linear(l + "mlp.c_gate", h + "mlp.gate_proj", C, H);
        linear(l + "mlp.c_fc", h + "mlp.up_proj", C, H);
        linear(l + "mlp.c_proj", h + "mlp.down_proj", H, C);
    }
    rows.push_back(single("ln_f.weight", {C}, "model.norm.weight"));
    if (!c.tie_embeddings) rows.push_back(single("lm_head.weight", {V, C}, "lm_head.weight"));
    return rows;
}

std::vector<TableRow> hf_table(const ModelConfig& c, HfArch arch, const std::string& gpt2_prefix) {
    return arch == HfArch::gpt2 ? gpt2_table(c, gpt2_prefix) : llama_table(c);
}

// The part's shape in the Hugging Face file.
Shape hf_shape(const TableRow& row, const HfPart& part) {
    Shape s = row.shape;
    if (!s.empty()) s[0] = part.rows;
    if (part.transform == Transform::transpose) std::swap(s[0], s[1]);
    return s;
}

// Rows (dim 0) of q or k, heads of `hd` rows: lumen interleaved -> Hugging Face half-split
// (to_hf), or back. (nh·hd, ...) -> (nh·hd, ...) contiguous.
Tensor permute_rope_rows(const Tensor& t, int64_t hd, bool to_hf) {
    Shape s = t.shape();
    const int64_t nh = s[0] / hd;
    Shape split = {nh, hd / 2, 2};  // lumen row h·hd + 2j + p
    Shape perm_shape = {nh, 2, hd / 2};  // Hugging Face row h·hd + p·hd/2 + j
    for (size_t d = 1; d < s.size(); ++d) split.push_back(s[d]), perm_shape.push_back(s[d]);
    std::vector<int64_t> order(split.size());
    for (size_t d = 0; d < order.size(); ++d) order[d] = int64_t(d);
    std::swap(order[1], order[2]);
    const Tensor src = t.contiguous().reshape(to_hf ? split : perm_shape);
    return src.permute(order).contiguous().reshape(s);
}

bool is_lora_name(const std::string& name) {
    size_t start = 0;
    while (start <= name.size()) {
        const size_t dot = name.find('.', start);
        const std::string part = name.substr(start, dot == std::string::npos ? std::string::npos : dot - start);
        if (part == "lora_A" || part == "lora_B") return true;
        if (dot == std::string::npos) break;
        start = dot + 1;
    }
    return false;
}

// Lumen state entries that a Hugging Face folder never holds: optical range statistics and
// counters, and LoRA adapters (added after loading).
bool is_lumen_only(const std::string& name) { return is_optical_state_name(name) || is_lora_name(name); }

// Hugging Face buffers that are not parameters: GPT-2's causal mask, old Llama inv_freq tables.
bool is_hf_buffer(const std::string& name) {
    auto ends_with = [&](std::string_view suffix) {
        return name.size() >= suffix.size() && name.compare(name.size() - suffix.size(), suffix.size(), suffix) == 0;
    };
    return ends_with(".attn.bias") || ends_with(".attn.masked_bias") || ends_with(".rotary_emb.inv_freq");
}


// ---------------------------------------------------------------- the folder's tensors

// model.safetensors, or model.safetensors.index.json and its shards.
class HfTensors {
public:
    explicit HfTensors(const std::string& dir) {
        const fs::path d(dir);
        if (fs::exists(d / "model.safetensors")) {
            where_ = (d / "model.safetensors").string();
            single_.emplace(data::open_safetensors(where_));
        } else if (fs::exists(d / data::safetensors_index_name)) {
            where_ = (d / data::safetensors_index_name).string();
            sharded_.emplace(data::open_sharded(dir));
        } else if (fs::exists(d / "pytorch_model.bin") || fs::exists(d / "pytorch_model.bin.index.json")) {
            throw Error(fmt::format(
                "{}: holds only pytorch_model.bin (a pickle), which lumen does not read; convert it with "
                "transformers: AutoModelForCausalLM.from_pretrained(\"{}\").save_pretrained(\"{}\", "
                "safe_serialization=True) writes model.safetensors",
                dir, dir, dir));
        } else {
            throw Error(fmt::format("{}: no model.safetensors or {} (expected a Hugging Face model folder)", dir,
                                    data::safetensors_index_name));
        }
    }
    const std::string& where() const { return where_; }
    const std::vector<data::SafetensorsEntry>& entries() const {
        return single_ ? single_->entries() : sharded_->entries();
    }
    bool contains(std::string_view name) const { return single_ ? single_->contains(name) : sharded_->contains(name); }
    const data::SafetensorsEntry& entry(std::string_view name) const {
        return single_ ? single_->entry(name) : sharded_->entry(name);
    }
    Tensor load(std::string_view name) const { return single_ ? single_->load(name) : sharded_->load(name); }
    std::span<const uint8_t> raw(std::string_view name) const {
        return single_ ? single_->raw(name) : sharded_->file_of(name).raw(name);
    }

private:
    std::string where_;
    std::optional<data::SafetensorsFile> single_;
    std::optional<data::ShardedSafetensors> sharded_;
};

// Whether two tensors of the folder hold the same values (same bytes when the dtypes agree).
bool same_values(const HfTensors& f, const std::string& a, const std::string& b) {
    if (f.entry(a).dtype == f.entry(b).dtype) {
        const auto ra = f.raw(a), rb = f.raw(b);
        return ra.size() == rb.size() && std::memcmp(ra.data(), rb.data(), ra.size()) == 0;
    }
    return f.load(a).to_vector<float>() == f.load(b).to_vector<float>();
}

// ---------------------------------------------------------------- writing a folder

void fsync_path(const fs::path& p) {
    const int fd = ::open(p.c_str(), O_RDONLY);
    if (fd < 0) return;
    ::fsync(fd);
    ::close(fd);
}

// Runs `write` (which writes files into the directory it is given) so that a reader never sees a
// half-written folder: a new `dir` is written as a temporary directory beside it, fsynced and renamed
// into place. An existing `dir` is kept with whatever else it holds (a tokenizer, say): `write` then
// writes straight into it, each file through its own temporary name and rename; nothing is deleted.
void write_dir_atomically(const std::string& dir, const std::function<void(const std::string&)>& write) {
    const fs::path final_dir = fs::absolute(fs::path(dir)).lexically_normal();
    const fs::path target = final_dir.has_filename() ? final_dir : final_dir.parent_path();
    std::error_code ec;
    if (fs::exists(target)) {
        check(fs::is_directory(target), "export_hf", fmt::format("{} exists and is not a directory", target.string()));
        write(target.string());
        fsync_path(target);
        return;
    }
    const fs::path parent = target.parent_path();
    fs::create_directories(parent, ec);
    check(!ec, "export_hf", fmt::format("cannot create {}: {}", parent.string(), ec.message()));
    const fs::path tmp = parent / fmt::format(".tmp-{}-{}", target.filename().string(), ::getpid());
    fs::remove_all(tmp, ec);
    fs::create_directories(tmp, ec);
    check(!ec, "export_hf", fmt::format("cannot create {}: {}", tmp.string(), ec.message()));
    try {
        write(tmp.string());
        fsync_path(tmp);
        fs::rename(tmp, target, ec);
        check(!ec, "export_hf", fmt::format("cannot rename {} to {}: {}", tmp.string(), target.string(), ec.message()));
        fsync_path(parent);
    } catch (...) {
        fs::remove_all(tmp, ec);
        throw;
    }
}

}  // namespace

// ---------------------------------------------------------------- import

void load_hf_weights(const HfModel& hf, GPT& model) {
    const HfTensors file(hf.dir);
    const ModelConfig& c = model.config();
    check(c.n_embd % c.n_head == 0, "load_hf_weights", "n_embd must be divisible by n_head");
    std::string prefix;
    if (hf.arch == HfArch::gpt2 && file.contains("transformer.wte.weight")) prefix = "transformer.";
    const std::vector<TableRow> table = hf_table(c, hf.arch, prefix);

    std::map<std::string, Tensor> own;
    for (auto& [name, t] : model.state_dict()) own.emplace(name, t);
    std::vector<std::string> missing, unexpected, misshaped, unmapped;
    std::set<std::string> used;
    for (const TableRow& row : table) {
        auto it = own.find(row.lumen);
        check(it != own.end() && it->second.shape() == row.shape, "load_hf_weights",
              fmt::format("{}: the model has no {} of shape {}, which a {} folder fills (norm = {}, pos = {}, mlp = {}); "
                          "build the model from read_hf_config's config", hf.dir, row.lumen, shape_str(row.shape),
                          hf_arch_name(hf.arch), norm_name(c.norm), pos_name(c.pos), mlp_name(c.mlp)));
        for (const HfPart& part : row.parts) {
            if (!file.contains(part.name)) {
                missing.push_back(part.name);
                continue;
            }
            used.insert(part.name);
            const Shape want = hf_shape(row, part), got = file.entry(part.name).shape;
            if (row.lumen == "wpe.weight") {  // n_positions rows, of which the model takes the first block_size
                if (got.size() != 2 || got[1] != want[1] || got[0] < want[0])
                    misshaped.push_back(fmt::format("{} (expected (≥ {}, {}) for block_size {}, found {})", part.name,
                                                    want[0], want[1], c.block_size, shape_str(got)));
            } else if (got != want) {
                misshaped.push_back(fmt::format("{} (expected {}, found {})", part.name, shape_str(want), shape_str(got)));
            }
        }
        own.erase(it);
    }
    for (const auto& [name, t] : own)
        if (!is_lumen_only(name)) unmapped.push_back(name);
    const std::string wte_name = table.front().parts.front().name;
    bool check_tied_head = false;
    for (const auto& e : file.entries()) {
        if (used.count(e.name) || is_hf_buffer(e.name)) continue;
        if (e.name == "lm_head.weight" && c.tie_embeddings) {
            check_tied_head = true;
            if (file.contains(wte_name) && e.shape != file.entry(wte_name).shape)
                misshaped.push_back(fmt::format("lm_head.weight (tied: expected {}'s shape {}, found {})", wte_name,
                                                shape_str(file.entry(wte_name).shape), shape_str(e.shape)));
            continue;
        }
        unexpected.push_back(e.name);
    }
    if (!missing.empty() || !unexpected.empty() || !misshaped.empty() || !unmapped.empty()) {
        std::string what = fmt::format("{}: does not match the {} model:", file.where(), hf_arch_name(hf.arch));
        if (!missing.empty()) what += fmt::format(" missing {} [{}];", missing.size(), list_names(missing, 64));
        if (!unexpected.empty()) what += fmt::format(" unexpected {} [{}];", unexpected.size(), list_names(unexpected, 64));
        if (!misshaped.empty()) what += fmt::format(" wrong shape {} [{}];", misshaped.size(), list_names(misshaped, 64));
        if (!unmapped.empty())
            what += fmt::format(" lumen tensors with no Hugging Face source {} [{}];", unmapped.size(), list_names(unmapped, 64));
        what.pop_back();
        throw Error(what);
    }
    if (check_tied_head && !same_values(file, "lm_head.weight", wte_name))
        throw Error(fmt::format("{}: lm_head.weight differs from {}, but the model ties them (tie_word_embeddings); "
                                "set tie_word_embeddings to false in config.json to keep both",
                                file.where(), wte_name));

    autograd::NoGradGuard no_grad;
    own.clear();
    for (auto& [name, t] : model.state_dict()) own.emplace(name, t);
    const int64_t hd = c.head_size();
    const bool interleaved = c.pos == PosKind::rope && c.rope_pairing == RopePairingKind::interleaved;
    for (const TableRow& row : table) {
        const Tensor& dst = own.at(row.lumen);
        Tensor buf = Tensor::empty(row.shape, dst.dtype());  // assembled on the host
        int64_t r0 = 0;
        for (const HfPart& part : row.parts) {
            Tensor src = file.load(part.name);  // file dtype, host
            if (part.transform == Transform::transpose) src = src.transpose(0, 1);
            if (row.lumen == "wpe.weight") src = src.narrow(0, 0, row.shape[0]);
            if (part.rope_rows && interleaved) src = permute_rope_rows(src, hd, /*to_hf=*/false);
            Tensor slot = row.parts.size() == 1 ? buf : buf.narrow(0, r0, part.rows);
            slot.copy_(src);
            r0 += part.rows;
        }
        assign_in_place(dst, dst.device() == buf.device() ? buf : buf.to(dst.device()));
    }
}

std::unique_ptr<GPT> load_hf_model(const std::string& dir) {
    const HfModel hf = read_hf_config(dir);
    std::unique_ptr<GPT> model;
    {
        NoInitGuard no_init;  // every tensor is about to be loaded
        model = std::make_unique<GPT>(hf.config);
    }
    load_hf_weights(hf, *model);
    return model;
}

// ---------------------------------------------------------------- export

void export_hf(const ModelConfig& c, const std::vector<NamedTensor>& state, const std::string& dir, DType dtype) {
    for (const auto& [name, t] : state)
        check(!is_lora_name(name), "export_hf",
              fmt::format("the state holds LoRA adapters ({}): merge the LoRA adapters first (--merge_lora)", name));
    HfArch arch = HfArch::gpt2;
    std::string config_text;
    try {
        arch = hf_arch_for(c);
        config_text = hf_config_json(c, dtype);  // also checks dtype
    } catch (const Error& e) {
        throw Error(fmt::format("export_hf: {}", e.what()));
    }
    const std::vector<TableRow> table = hf_table(c, arch, "transformer.");

    std::map<std::string, Tensor> by_name(state.begin(), state.end());
    std::vector<std::string> missing, misshaped;
    for (const TableRow& row : table) {
        auto it = by_name.find(row.lumen);
        if (it == by_name.end()) {
            missing.push_back(row.lumen);
        } else if (it->second.shape() != row.shape) {
            misshaped.push_back(fmt::format("{} (expected {}, found {})", row.lumen, shape_str(row.shape),
                                            shape_str(it->second.shape())));
        }
    }
    if (!missing.empty() || !misshaped.empty()) {
        std::string what = fmt::format("export_hf: the state does not match the model config ({}):", hf_arch_name(arch));
        if (!missing.empty()) what += fmt::format(" missing {} [{}];", missing.size(), list_names(missing, 64));
        if (!misshaped.empty()) what += fmt::format(" wrong shape {} [{}];", misshaped.size(), list_names(misshaped, 64));
        what.pop_back();
        throw Error(what);
    }

    autograd::NoGradGuard no_grad;
    const int64_t hd = c.head_size();
    const bool interleaved = c.pos == PosKind::rope && c.rope_pairing == RopePairingKind::interleaved;
    std::vector<std::pair<std::string, Tensor>> out;
    for (const TableRow& row : table) {
        const Tensor src = by_name.at(row.lumen).detach().to(Device::cpu());
        int64_t r0 = 0;
        for (const HfPart& part : row.parts) {
            Tensor t = row.parts.size() == 1 ? src : src.narrow(0, r0, part.rows);
            r0 += part.rows;
            if (part.rope_rows && interleaved) t = permute_rope_rows(t, hd, /*to_hf=*/true);
            if (part.transform == Transform::transpose) t = t.transpose(0, 1);
            out.emplace_back(part.name, t.to(dtype).contiguous());
        }
    }
    if (arch == HfArch::gpt2 && !c.bias) {  // GPT-2 always has biases: zeros compute what lumen does
        const int64_t C = c.n_embd, H = c.hidden();
        auto zeros = [&](const std::string& name, int64_t n) { out.emplace_back(name, Tensor::zeros({n}, dtype)); };
        for (int64_t i = 0; i < c.n_layer; ++i) {
            const std::string h = fmt::format("transformer.h.{}.", i);
            zeros(h + "ln_1.bias", C);
            zeros(h + "attn.c_attn.bias", 3 * C);
            zeros(h + "attn.c_proj.bias", C);
            zeros(h + "ln_2.bias", C);
            zeros(h + "mlp.c_fc.bias", H);
            zeros(h + "mlp.c_proj.bias", C);
        }
        zeros("transformer.ln_f.bias", C);
    }
    write_dir_atomically(dir, [&](const std::string& tmp) {
        // NOTE: the weights first: a folder whose config.json is new always has its new weights.
        data::write_safetensors(tmp + "/model.safetensors", out, {{"lumen_export", std::string(hf_arch_name(arch))}});
        data::write_file_atomic(tmp + "/config.json", config_text);
    });
}

}  // namespace lumen::nn
