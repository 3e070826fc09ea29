// nn/module.h: the module tree: explicit registration of parameters, buffers and submodules,
// dotted names, train/eval mode, state dicts, and moving a whole model between devices and dtypes.
//
//   class Linear : public Module {
//       Linear(...) { weight_ = register_parameter("weight", w, Role::matrix); }
//   };
//   model.parameters();   // [{"blocks.0.attn.c_attn.weight", tensor, Role::matrix, {C, kv, kv}}, ...]
//
// A registered tensor keeps its identity for the module's lifetime: to(device) and to(dtype)
// replace the storage inside the same TensorImpl, so a layer's `weight_` member and every handle
// handed out by parameters() see the move. Build the optimizer after moving the model.
#pragma once

#include "core/tensor.h"
#include "nn/parameter.h"

#include <functional>
#include <map>
#include <type_traits>
#include <memory>
#include <string>
#include <utility>
#include <vector>

namespace lumen::nn {

class Module;

// A module's handle on one of its children. It looks the child up on each use, so the transform
// pass can replace the child (with a subclass of M) under a module that holds the handle.
template <typename M>
class Child {
public:
    Child() = default;
    Child(const Module* owner, size_t index) : owner_(owner), index_(index) {}
    M* get() const;
    M* operator->() const { return get(); }
    M& operator*() const { return *get(); }
    explicit operator bool() const { return owner_ != nullptr; }

private:
    const Module* owner_ = nullptr;
    size_t index_ = 0;
};

using NamedTensor = std::pair<std::string, Tensor>;
using NamedModule = std::pair<std::string, Module*>;

class Module {
public:
    Module() = default;
    virtual ~Module() = default;
    Module(const Module&) = delete;
    Module& operator=(const Module&) = delete;

    // Every parameter of this module and its submodules, depth first in registration order, with
    // dotted names relative to this module.
    std::vector<Parameter> parameters() const;
    // Persistent buffers (saved in state dicts) and non-persistent ones (caches, tables).
    std::vector<NamedTensor> buffers(bool include_non_persistent = false) const;
    // This module ("") and every descendant, depth first, with dotted names.
    std::vector<NamedModule> modules();
    // The direct child called `name` (nullptr if none).
    Module* child(const std::string& name) const;
    // Puts `replacement` where the descendant at dotted `path` was (the optical transform pass).
    void replace_module(const std::string& path, std::shared_ptr<Module> replacement);

    void train(bool on = true);
    void eval() { train(false); }
    bool training() const { return training_; }

    // Parameters then persistent buffers, by dotted name.
    std::vector<NamedTensor> state_dict() const;
    // Copies every entry into the registered tensor (converting dtype, keeping the device). Missing,
    // unexpected or mis-shaped entries throw one error listing all of them (up to a few per kind).
    void load_state_dict(const std::map<std::string, Tensor>& state);

    // Moves every parameter and buffer; to(dtype) converts floating tensors only.
    void to(Device device);
    void to(DType dtype);

    int64_t num_parameters() const;
    // Sets requires_grad on every parameter (false = frozen: no gradient, no optimizer group).
    void set_requires_grad(bool on);

protected:
    // Registers a leaf (set to require grad) and returns the handle the module keeps.
    Tensor register_parameter(const std::string& name, Tensor tensor, Role role,
                              std::vector<int64_t> row_parts = {});
    Tensor register_buffer(const std::string& name, Tensor tensor, bool persistent = true);
    template <typename M>
    Child<M> register_module(const std::string& name, std::shared_ptr<M> module) {
        auto accepts = [](const Module* m) { return dynamic_cast<const M*>(m) != nullptr; };
        return Child<M>(this, add_child(name, std::move(module), accepts));
    }
    // Called by train(): subclasses with mode-dependent state override it (and call the base).
    virtual void on_mode_change() {}
    // Called on every module (this one and each descendant) at the end of load_state_dict, after
    // all entries were copied: modules that mirror buffers on the host re-read them here.
    virtual void on_state_loaded() {}

private:
    template <typename M> friend class Child;
    struct Slot {
        std::string name;
        Tensor tensor;
        Role role = Role::other;
        std::vector<int64_t> row_parts;
        bool persistent = true;
    };
    struct ChildSlot {
        std::string name;
        std::shared_ptr<Module> module;
        std::function<bool(const Module*)> accepts;  // the type the holder's Child<M> expects
    };
    size_t add_child(const std::string& name, std::shared_ptr<Module> module,
                     std::function<bool(const Module*)> accepts);
    Module* child_at(size_t index) const { return children_[index].module.get(); }
    void collect_parameters(const std::string& prefix, std::vector<Parameter>& out) const;
    void collect_buffers(const std::string& prefix, bool non_persistent, std::vector<NamedTensor>& out) const;
    void collect_modules(const std::string& prefix, std::vector<NamedModule>& out);

    std::vector<Slot> params_;
    std::vector<Slot> buffers_;
    std::vector<ChildSlot> children_;
    bool training_ = true;
};

template <typename M>
M* Child<M>::get() const {
    Module* m = owner_->child_at(index_);
    if constexpr (std::is_same_v<M, Module>) {
        return m;
    } else {
        return static_cast<M*>(m);  // replace_module checks the replacement's type
    }
}

// A container of numbered children ("0", "1", ...), as `blocks`.
class ModuleList : public Module {
public:
    template <typename M>
    Child<M> append(std::shared_ptr<M> module) {
        return register_module(std::to_string(size_++), std::move(module));
    }
    size_t size() const { return size_; }

private:
    size_t size_ = 0;
};

// Replaces t's storage, layout and dtype in place with those of `replacement` (same shape).
void assign_in_place(const Tensor& t, const Tensor& replacement);

}  // namespace lumen::nn
