// autograd/ops/join.cpp: cat (a node), and stack, split and chunk (compositions of unsqueeze +
// cat and of slice views, so they record no node of their own).
//
// cat allocates its output once and copies each piece into its slice with the copy kernel; its
// backward hands each input the matching slice of dy (a view, no copy). Pieces of size 0 along
// dim are allowed. index_select and gather live in autograd/ops/index.cpp.
#include "autograd/ops/join.h"

#include "autograd/node.h"
#include "autograd/ops/shape.h"
#include "autograd/registry.h"
#include "core/kernels/elementwise.h"

namespace lumen::ops {

static const bool registered = autograd::register_differentiable({"cat"});

Tensor cat(const std::vector<Tensor>& tensors, int64_t dim) {
    check(!tensors.empty(), "cat", "expected at least one tensor, got an empty list");
    const Tensor& first = tensors[0];
    check(first.dim() >= 1, "cat", "tensor 0 is a scalar; cat needs tensors of rank ≥ 1", {{"tensors[0]", first}});
    dim = normalize_dim(dim, first.dim(), "cat");
    Shape shape = first.shape();
    shape[size_t(dim)] = 0;
    // NOTE: messages are formatted only on failure: cat runs every step on a handful of tensors.
    for (size_t i = 0; i < tensors.size(); ++i) {
        const Tensor& t = tensors[i];
        auto fail_at = [&](const std::string& what) {
            fail("cat", what, {{"tensors[0]", first}, {fmt::format("tensors[{}]", i), t}});
        };
        if (t.dtype() != first.dtype()) fail_at(fmt::format("tensor {} has another dtype than tensor 0", i));
        if (t.device() != first.device()) fail_at(fmt::format("tensor {} is on another device than tensor 0", i));
        if (t.dim() != first.dim())
            fail_at(fmt::format("tensor {} has rank {}, tensor 0 has rank {}", i, t.dim(), first.dim()));
        for (int64_t d = 0; d < t.dim(); ++d)
            if (d != dim && t.shape()[size_t(d)] != first.shape()[size_t(d)])
                fail_at(fmt::format("tensor {} has shape {}, which differs from tensor 0's {} in dim {} "
                                    "(only dim {} may differ)", i, shape_str(t.shape()), shape_str(first.shape()), d, dim));
        shape[size_t(dim)] += t.shape()[size_t(dim)];
    }
    Tensor y = Tensor::empty(shape, first.dtype(), first.device());
    std::vector<int64_t> starts;  // where each piece begins along dim, and the end: (pieces + 1,)
    int64_t start = 0;
    for (const Tensor& t : tensors) {
        starts.push_back(start);
        const int64_t end = start + t.shape()[size_t(dim)];
        if (end > start) {
            Tensor window = Tensor::over(y.storage(), y.layout().slice(dim, start, end, 1), y.dtype());
            kernels::copy(window, t);
        }
        start = end;
    }
    starts.push_back(start);
    autograd::record("cat", y, tensors, [dim, starts](const Tensor& dy) {
        autograd::Grads dx;
        for (size_t i = 0; i + 1 < starts.size(); ++i) dx.push_back(slice(dy, dim, starts[i], starts[i + 1]));
        return dx;
    });
    return y;
}

Tensor stack(const std::vector<Tensor>& tensors, int64_t dim) {
    check(!tensors.empty(), "stack", "expected at least one tensor, got an empty list");
    const Tensor& first = tensors[0];
    for (size_t i = 1; i < tensors.size(); ++i) {
        const Tensor& t = tensors[i];
        auto fail_at = [&](const std::string& what) {
            fail("stack", what, {{"tensors[0]", first}, {fmt::format("tensors[{}]", i), t}});
        };
        if (t.dtype() != first.dtype() || t.device() != first.device())
            fail_at(fmt::format("tensor {} has another dtype or device than tensor 0", i));
        if (t.shape() != first.shape())
            fail_at(fmt::format("tensor {} has shape {}, tensor 0 has {}; stack needs equal shapes", i,
                                shape_str(t.shape()), shape_str(first.shape())));
    }
    dim = normalize_dim(dim, first.dim() + 1, "stack");
    std::vector<Tensor> pieces;
    pieces.reserve(tensors.size());
    for (const Tensor& t : tensors) pieces.push_back(unsqueeze(t, dim));  // size 1 at dim
    return cat(pieces, dim);
}

std::vector<Tensor> split(const Tensor& x, int64_t size, int64_t dim) {
    check(x.dim() >= 1, "split", "cannot split a scalar", {{"x", x}});
    check(size >= 1, "split", fmt::format("split size must be ≥ 1, got {}", size), {{"x", x}});
    dim = normalize_dim(dim, x.dim(), "split");
    const int64_t n = x.shape()[size_t(dim)];
    // NOTE: as in PyTorch, a dim of size 0 splits into one empty piece.
    const int64_t pieces = std::max<int64_t>(1, (n + size - 1) / size);
    std::vector<Tensor> out;
    out.reserve(static_cast<size_t>(pieces));
    for (int64_t p = 0; p < pieces; ++p) out.push_back(slice(x, dim, p * size, std::min(n, (p + 1) * size)));
    return out;
}

std::vector<Tensor> chunk(const Tensor& x, int64_t chunks, int64_t dim) {
    check(x.dim() >= 1, "chunk", "cannot chunk a scalar", {{"x", x}});
    check(chunks >= 1, "chunk", fmt::format("chunks must be ≥ 1, got {}", chunks), {{"x", x}});
    dim = normalize_dim(dim, x.dim(), "chunk");
    const int64_t n = x.shape()[size_t(dim)];
    if (n == 0) {  // NOTE: as torch.chunk: `chunks` empty pieces
        std::vector<Tensor> out;
        for (int64_t c = 0; c < chunks; ++c) out.push_back(slice(x, dim, 0, 0));
        return out;
    }
    return split(x, (n + chunks - 1) / chunks, dim);  // ceil(n / chunks); fewer pieces when n is small
}

}  // namespace lumen::ops
