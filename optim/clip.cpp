// optim/clip.cpp: clip_flags (see optim/clip.h): argument checks, the CPU reduction, and the
// dispatch to cuda::clip_flags for CUDA gradients.
//
// NOTE: the CPU sums in the CUDA kernel's order (chunks of kClipChunk per tensor, kClipLanes
// lanes, a pairwise tree) with plain f32 adds and multiplies, so both devices give the same norm.
#include "optim/clip.h"

#include "core/dispatch.h"

#include <cmath>
#include <string>

namespace lumen::optim {
namespace {

// s[0] after adding s[i + stride] into s[i] for stride = lanes/2, ..., 1.
float tree_sum(float* s) {
    for (int stride = kClipLanes / 2; stride > 0; stride >>= 1)
        for (int i = 0; i < stride; ++i) s[i] = s[i] + s[i + stride];
    return s[0];
}

// Lane l sums x[l], x[l + lanes], ... (squared if `square`), then the lanes meet in the tree.
float lane_sum(const float* x, int64_t n, bool square) {
    float lanes[kClipLanes] = {};
    for (int64_t i = 0; i < n; i += kClipLanes) {
        const int64_t m = std::min<int64_t>(kClipLanes, n - i);
        for (int64_t l = 0; l < m; ++l) lanes[l] = lanes[l] + (square ? x[i + l] * x[i + l] : x[i + l]);
    }
    return tree_sum(lanes);
}

struct Chunk {
    const float* data;
    int64_t n;
};

void cpu_clip_flags(Tensor& flags, const std::vector<Tensor>& grads, double grad_clip, const Tensor& loss) {
    std::vector<Chunk> chunks;
    for (const Tensor& g : grads)
        for (int64_t begin = 0; begin < g.numel(); begin += kClipChunk)
            chunks.push_back({g.data<float>() + begin, std::min(kClipChunk, g.numel() - begin)});
    std::vector<float> partials(chunks.size());
#pragma omp parallel for schedule(dynamic, 1) if (chunks.size() > 1)
    for (int64_t c = 0; c < int64_t(chunks.size()); ++c)
        partials[size_t(c)] = lane_sum(chunks[size_t(c)].data, chunks[size_t(c)].n, true);
    const float sum = lane_sum(partials.data(), int64_t(partials.size()), false);
    const float norm = std::sqrt(sum);
    const bool loss_bad = loss.defined() && !std::isfinite(loss.data<float>()[0]);
    const bool bad = loss_bad || !std::isfinite(norm);
    const float clip = float(grad_clip);
    const float gamma = grad_clip > 0 ? std::fmin(1.0f, clip / (norm + 1e-6f)) : 1.0f;
    float* f = flags.data<float>();
    f[0] = gamma;
    f[1] = bad ? 1.0f : 0.0f;
    f[2] = norm;
}

}  // namespace

Tensor clip_flags(const std::vector<nn::Parameter>& params, double grad_clip, const Tensor& loss) {
    check(std::isfinite(grad_clip) && grad_clip >= 0, "clip_flags",
          concat_message({"grad_clip = ", std::to_string(grad_clip), " must be finite and >= 0 (0 = no clipping)"}));
    Device device = !params.empty() ? params.front().tensor.device() : loss.defined() ? loss.device() : Device::cpu();
    std::vector<Tensor> grads;
    for (const nn::Parameter& p : params) {
        check(p.tensor.device() == device, "clip_flags",
              concat_message({"parameter ", p.name, " is on another device than the first parameter"}),
              {{p.name, p.tensor}});
        const Tensor g = p.tensor.grad();
        if (!g.defined() || g.numel() == 0) continue;  // no gradient: zeros, adding nothing
        check(g.dtype() == DType::f32 && g.device() == device, "clip_flags",
              concat_message({"the gradient of ", p.name, " must be f32 on the parameter's device"}), {{"grad", g}});
        grads.push_back(g.contiguous());
    }
    Tensor loss32;
    if (loss.defined()) {
        check(loss.numel() == 1 && loss.device() == device, "clip_flags",
              "loss must be one element on the parameters' device", {{"loss", loss}});
        loss32 = loss.dtype() == DType::f32 ? loss.contiguous() : loss.to(DType::f32);
    }
    Tensor flags = Tensor::empty({3}, DType::f32, device);
    if (device.is_cpu()) {
        cpu_clip_flags(flags, grads, grad_clip, loss32);
    } else {
#ifdef LUMEN_WITH_CUDA
        cuda::clip_flags(flags, grads, grad_clip, loss32, device);
#else
        missing_cuda_kernel("clip_flags");
#endif
    }
    return flags;
}

}  // namespace lumen::optim
