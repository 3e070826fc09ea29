// nn/module.cpp: the module tree's bookkeeping: names, modes, state dicts, device and dtype moves.
#include "nn/module.h"

#include "core/error.h"

#include <fmt/format.h>

#include <set>

namespace lumen::nn {

void assign_in_place(const Tensor& t, const Tensor& replacement) {
    TensorImpl& impl = t.impl();
    const TensorImpl& r = replacement.impl();
    impl.storage = r.storage;
    impl.layout = r.layout;
    impl.dtype = r.dtype;
    impl.grad.reset();
}

Tensor Module::register_parameter(const std::string& name, Tensor tensor, Role role,
                                  std::vector<int64_t> row_parts) {
    check(tensor.defined(), "register_parameter", fmt::format("parameter '{}' is undefined", name));
    if (!row_parts.empty()) {
        int64_t total = 0;
        for (int64_t p : row_parts) total += p;
        check(tensor.dim() == 2 && total == tensor.size(0), "register_parameter",
              fmt::format("row_parts of '{}' must sum to its rows", name), {{name.c_str(), tensor}});
    }
    tensor.set_requires_grad(true);
    params_.push_back({name, tensor, role, std::move(row_parts), true});
    return tensor;
}

Tensor Module::register_buffer(const std::string& name, Tensor tensor, bool persistent) {
    buffers_.push_back({name, tensor, Role::other, {}, persistent});
    return tensor;
}

size_t Module::add_child(const std::string& name, std::shared_ptr<Module> module,
                         std::function<bool(const Module*)> accepts) {
    check(module != nullptr, "register_module", fmt::format("module '{}' is null", name));
    module->train(training_);
    children_.push_back({name, std::move(module), std::move(accepts)});
    return children_.size() - 1;
}

Module* Module::child(const std::string& name) const {
    for (const auto& c : children_)
        if (c.name == name) return c.module.get();
    return nullptr;
}

void Module::replace_module(const std::string& path, std::shared_ptr<Module> replacement) {
    const size_t dot = path.find('.');
    const std::string head = path.substr(0, dot);
    for (auto& c : children_) {
        if (c.name != head) continue;
        if (dot != std::string::npos) return c.module->replace_module(path.substr(dot + 1), std::move(replacement));
        check(replacement && c.accepts(replacement.get()), "replace_module",
              fmt::format("the replacement for '{}' is not the kind of module its parent uses", path));
        replacement->train(training_);
        c.module = std::move(replacement);
        return;
    }
    check(false, "replace_module", fmt::format("no submodule named '{}'", path));
}

void Module::collect_parameters(const std::string& prefix, std::vector<Parameter>& out) const {
    for (const auto& p : params_) out.push_back({prefix + p.name, p.tensor, p.role, p.row_parts});
    for (const auto& c : children_) c.module->collect_parameters(prefix + c.name + ".", out);
}

void Module::collect_buffers(const std::string& prefix, bool non_persistent, std::vector<NamedTensor>& out) const {
    for (const auto& b : buffers_)
        if (b.persistent || non_persistent) out.emplace_back(prefix + b.name, b.tensor);
    for (const auto& c : children_) c.module->collect_buffers(prefix + c.name + ".", non_persistent, out);
}

void Module::collect_modules(const std::string& prefix, std::vector<NamedModule>& out) {
    out.emplace_back(prefix.empty() ? "" : prefix.substr(0, prefix.size() - 1), this);
    for (const auto& c : children_) c.module->collect_modules(prefix + c.name + ".", out);
}

std::vector<Parameter> Module::parameters() const {
    std::vector<Parameter> out;
    collect_parameters("", out);
    return out;
}

std::vector<NamedTensor> Module::buffers(bool include_non_persistent) const {
    std::vector<NamedTensor> out;
    collect_buffers("", include_non_persistent, out);
    return out;
}

std::vector<NamedModule> Module::modules() {
    std::vector<NamedModule> out;
    collect_modules("", out);
    return out;
}

void Module::train(bool on) {
    training_ = on;
    for (auto& c : children_) c.module->train(on);
    on_mode_change();
}

std::vector<NamedTensor> Module::state_dict() const {
    std::vector<NamedTensor> out;
    for (auto& p : parameters()) out.emplace_back(p.name, p.tensor);
    for (auto& b : buffers()) out.push_back(b);
    return out;
}

void Module::load_state_dict(const std::map<std::string, Tensor>& state) {
    const auto own = state_dict();
    std::vector<std::string> missing, unexpected, misshaped;
    std::set<std::string> known;
    for (const auto& [name, t] : own) {
        known.insert(name);
        auto it = state.find(name);
        if (it == state.end()) {
            missing.push_back(name);
        } else if (it->second.shape() != t.shape()) {
            misshaped.push_back(fmt::format("{} (expected {}, got {})", name, shape_str(t.shape()),
                                            shape_str(it->second.shape())));
        }
    }
    for (const auto& [name, t] : state)
        if (!known.count(name)) unexpected.push_back(name);
    if (!missing.empty() || !unexpected.empty() || !misshaped.empty()) {
        std::string what = "the state does not match the model:";
        if (!missing.empty()) what += fmt::format(" missing {} [{}];", missing.size(), list_names(missing, 5));
        if (!unexpected.empty())
            what += fmt::format(" unexpected {} [{}];", unexpected.size(), list_names(unexpected, 5));
        if (!misshaped.empty())
            what += fmt::format(" wrong shape {} [{}];", misshaped.size(), list_names(misshaped, 5));
        check(false, "load_state_dict", what);
    }
    for (const auto& [name, t] : own) {
        const Tensor& src = state.at(name);
        assign_in_place(t, src.to(t.device()).to(t.dtype()).contiguous().clone());
    }
    for (auto& [name, m] : modules()) m->on_state_loaded();
}

void Module::to(Device device) {
    for (auto& p : parameters())
        if (p.tensor.device() != device) assign_in_place(p.tensor, p.tensor.detach().to(device));
    for (auto& [name, b] : buffers(true))
        if (b.device() != device) assign_in_place(b, b.to(device));
}

void Module::to(DType dtype) {
    for (auto& p : parameters())
        if (is_floating(p.tensor.dtype()) && p.tensor.dtype() != dtype)
            assign_in_place(p.tensor, p.tensor.detach().to(dtype));
    for (auto& [name, b] : buffers(true))
        if (is_floating(b.dtype()) && b.dtype() != dtype) assign_in_place(b, b.to(dtype));
}

int64_t Module::num_parameters() const {
    int64_t n = 0;
    for (const auto& p : parameters()) n += p.tensor.numel();
    return n;
}

void Module::set_requires_grad(bool on) {
    for (auto& p : parameters()) p.tensor.set_requires_grad(on);
}

}  // namespace lumen::nn
