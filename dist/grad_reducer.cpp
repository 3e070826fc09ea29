// dist/grad_reducer.cpp: gradient buckets and their all-reduce during backward (see
// dist/grad_reducer.h).
#include "dist/grad_reducer.h"

#include <fmt/format.h>

namespace lumen::dist {

GradReducer::GradReducer(Communicator& comm, std::vector<nn::Parameter> params, ReducerOptions options)
    : comm_(comm), options_(options) {
    check(options.wire == DType::f32 || options.wire == DType::bf16, "GradReducer",
          fmt::format("the wire dtype must be f32 or bf16, not {}", dtype_name(options.wire)));
    check(options.bucket_mb > 0, "GradReducer",
          fmt::format("bucket_mb must be > 0 (found {})", options.bucket_mb));
    const Device device = comm.device();
    for (nn::Parameter& p : params) {
        const Tensor& t = p.tensor;
        check(t.defined() && t.requires_grad() && t.is_leaf(), "GradReducer",
              fmt::format("parameter {} must be a trainable leaf (the optimizer's parameters only)", p.name));
        check(t.dtype() == DType::f32 && t.device() == device, "GradReducer",
              fmt::format("parameter {} must be f32 on {}", p.name, device.str()), {{"param", t}});
        check(!slot_of_.count(&t.impl()), "GradReducer", fmt::format("parameter {} is listed twice", p.name));
        slot_of_[&t.impl()] = slots_.size();
        Slot slot;
        slot.param = std::move(p);
        slots_.push_back(std::move(slot));
    }

    // Buckets in reverse registration order, each ≤ cap bytes of f32 unless one tensor is larger. Each
    // view starts at a multiple of kAlign elements (256 bytes), so the kernels that write and read
    // gradients take their vectorised paths; the padding stays zero and is summed as zeros.
    constexpr int64_t kAlign = 64;
    const auto padded = [](int64_t n) { return (n + kAlign - 1) / kAlign * kAlign; };
    const double cap = options.bucket_mb * 1024.0 * 1024.0;
    std::vector<int64_t> numels;
    double bytes = 0;
    for (size_t i = slots_.size(); i-- > 0;) {
        const double b = 4.0 * double(padded(slots_[i].param.tensor.numel()));
        if (buckets_.empty() || (bytes + b > cap && !buckets_.back().slots.empty())) {
            buckets_.emplace_back();
            numels.push_back(0);
            bytes = 0;
        }
        slots_[i].bucket = buckets_.size() - 1;
        buckets_.back().slots.push_back(i);
        numels.back() += padded(slots_[i].param.tensor.numel());
        bytes += b;
    }
    for (size_t bi = 0; bi < buckets_.size(); ++bi) {
        Bucket& bucket = buckets_[bi];
        bucket.flat = Tensor::zeros({numels[bi]}, DType::f32, device);
        if (options.wire == DType::bf16) bucket.wire = Tensor::empty({numels[bi]}, DType::bf16, device);
        int64_t offset = 0;
        for (size_t si : bucket.slots) {
            Slot& s = slots_[si];
            const int64_t n = s.param.tensor.numel();
            s.view = bucket.flat.narrow(0, offset, n).view(s.param.tensor.shape());  // .grad's shape
            offset += padded(n);
            const Tensor old = s.param.tensor.grad();
            if (old.defined()) s.view.copy_(old);
            s.param.tensor.set_grad(s.view);
        }
    }
}

GradReducer::~GradReducer() = default;  // NOTE: an armed reducer being destroyed (an exception) just stops listening

void GradReducer::arm() {
    check(!armed(), "GradReducer::arm", "already armed: call finish() after the armed backward");
    for (Slot& s : slots_) {
        const Tensor g = s.param.tensor.grad();
        const bool ours = g.defined() && g.storage() == s.view.storage() && g.offset() == s.view.offset() &&
                          g.shape() == s.view.shape() && g.strides() == s.view.strides() &&
                          g.dtype() == DType::f32;
        if (!ours) {
            // NOTE: something replaced or dropped the gradient since: keep its values, in the bucket.
            if (g.defined()) s.view.copy_(g);
            else s.view.zero_();
            s.param.tensor.set_grad(s.view);
        }
        s.fired = false;
    }
    for (Bucket& b : buckets_) {
        b.fired = 0;
        b.launched = false;
        b.work.reset();
    }
    launch_order_.clear();
    launched_in_backward_ = 0;
    listening_.emplace(static_cast<autograd::LeafGradListener&>(*this));
}

void GradReducer::gradient_final(TensorImpl& leaf) {
    auto it = slot_of_.find(&leaf);
    if (it == slot_of_.end()) return;  // not a parameter of ours (a checkpoint's detached input, ...)
    Slot& s = slots_[it->second];
    Bucket& bucket = buckets_[s.bucket];
    if (bucket.launched)
        throw Error(fmt::format(
            "GradReducer: the gradient of {} became final again after its bucket {} was launched for "
            "all-reduce, so the sum sent to the other ranks misses this contribution (a parameter used "
            "by two checkpointed blocks, or a second backward between arm() and finish()?)",
            s.param.name, s.bucket));
    if (s.fired)
        throw Error(fmt::format(
            "GradReducer: the gradient of {} was reported final twice in one armed backward (bucket {}); "
            "a parameter used by two checkpointed blocks, or a second backward between arm() and finish()?",
            s.param.name, s.bucket));
    s.fired = true;
    if (++bucket.fired == bucket.slots.size()) {
        launch(s.bucket);
        ++launched_in_backward_;
    }
}

void GradReducer::launch(size_t b) {
    Bucket& bucket = buckets_[b];
    bucket.launched = true;
    launch_order_.push_back(b);
    const std::string what = fmt::format("bucket {}", b);
    if (options_.wire == DType::bf16) {
        bucket.wire.copy_(bucket.flat);  // one cast kernel into the preallocated buffer
        bucket.work = comm_.all_reduce_sum_async(bucket.wire, what);
    } else {
        bucket.work = comm_.all_reduce_sum_async(bucket.flat, what);
    }
}

void GradReducer::finish() {
    check(armed(), "GradReducer::finish", "not armed: call arm() before the last micro-step's backward");
    listening_.reset();
    for (size_t b = 0; b < buckets_.size(); ++b)
        if (!buckets_[b].launched) launch(b);
    for (size_t b : launch_order_) {
        Bucket& bucket = buckets_[b];
        bucket.work->wait();
        bucket.work.reset();
        if (options_.wire == DType::bf16) bucket.flat.copy_(bucket.wire);  // after wait: the sum
    }
    launch_order_.clear();
}

void GradReducer::zero_grad() {
    check(!armed(), "GradReducer::zero_grad", "armed: call finish() first");
    for (Slot& s : slots_) {
        const Tensor g = s.param.tensor.grad();
        if (!g.defined() || g.storage() != s.view.storage()) s.param.tensor.set_grad(s.view);  // re-attach
    }
    for (Bucket& b : buckets_) b.flat.zero_();
}

std::vector<std::string> GradReducer::report() const {
    return {fmt::format("gradient buckets: {} ({:g} MB), {} on the wire", buckets_.size(), options_.bucket_mb,
                        dtype_name(options_.wire))};
}

std::vector<std::string> GradReducer::bucket_names(size_t b) const {
    check(b < buckets_.size(), "GradReducer::bucket_names", fmt::format("no bucket {} ({} buckets)", b, buckets_.size()));
    std::vector<std::string> names;
    for (size_t si : buckets_[b].slots) names.push_back(slots_[si].param.name);
    return names;
}

}  // namespace lumen::dist
