// autograd/ops/matmul.cpp: matmul (node "matmul"), forward and backward. Kernel:
// core/kernels/matmul.h (CPU reference in core/cpu/matmul.cpp).
//
// The operands reach the kernel as views: a 1-D operand gains its unit dim, batch dims are
// broadcast with stride 0, and the batch dims are collapsed into the kernel's one batch dim
// where their strides allow (else the leading ones are looped over here). Nothing is copied.
// The backward is two more matmuls through transposed views: da = dy · bᵀ, db = aᵀ · dy, each
// summed over the batch dims its operand was broadcast along.
#include "autograd/ops/matmul.h"

#include "autograd/node.h"
#include "autograd/ops/shape.h"
#include "autograd/registry.h"
#include "core/kernels/matmul.h"

#include <algorithm>

namespace lumen::ops {

static const bool registered = autograd::register_differentiable({"matmul"});

namespace {

// x's storage under another layout, outside autograd (the node is recorded on the op's inputs).
Tensor with_layout(const Tensor& x, const Layout& layout) {
    return Tensor::over(x.storage(), layout, x.dtype());
}

Shape concat(Shape head, std::initializer_list<int64_t> tail) {
    head.insert(head.end(), tail);
    return head;
}

// out (batch..., M, N) contiguous = a (batch..., M, K) · b (batch..., K, N), with a and b already
// expanded to the same batch dims. The kernel takes one batch dim: the trailing batch dims whose
// strides collapse into one (for a and b alike) become it, and the leading rest (a broadcast dim
// between two real ones, as in (2, 1, M, K) · (5, K, N)) are looped over here.
void batched_matmul(Tensor& out, const Tensor& a, const Tensor& b, Accumulate acc) {
    const int64_t rank = a.dim(), M = a.size(-2), K = a.size(-1), N = b.size(-1);
    struct Dim {
        int64_t size, sa, sb;
    };
    std::vector<Dim> dims;  // the batch dims of size other than 1
    for (int64_t d = 0; d < rank - 2; ++d)
        if (a.shape()[d] != 1) dims.push_back({a.shape()[d], a.strides()[d], b.strides()[d]});
    Dim inner{1, 0, 0};  // the collapsed trailing batch dims
    size_t outer = dims.size();
    if (!dims.empty()) {
        inner = dims[--outer];
        for (; outer > 0; --outer) {
            const Dim& d = dims[outer - 1];
            if (d.sa != inner.sa * inner.size || d.sb != inner.sb * inner.size) break;
            inner.size *= d.size;
        }
    }
    int64_t outer_count = 1;
    for (size_t d = 0; d < outer; ++d) outer_count *= dims[d].size;
    for (int64_t p = 0; p < outer_count; ++p) {
        int64_t off_a = a.offset(), off_b = b.offset(), rest = p;
        for (size_t d = outer; d-- > 0;) {
            const int64_t i = rest % dims[d].size;
            rest /= dims[d].size;
            off_a += i * dims[d].sa;
            off_b += i * dims[d].sb;
        }
        Tensor o = with_layout(
            out, {{inner.size, M, N}, {M * N, N, 1}, out.offset() + p * inner.size * M * N});
        kernels::matmul(o,
                        with_layout(a, {{inner.size, M, K},
                                        {inner.sa, a.strides()[rank - 2], a.strides()[rank - 1]},
                                        off_a}),
                        with_layout(b, {{inner.size, K, N},
                                        {inner.sb, b.strides()[rank - 2], b.strides()[rank - 1]},
                                        off_b}),
                        acc);
    }
}

}  // namespace

Tensor matmul(const Tensor& a, const Tensor& b) {
    check(a.dim() >= 1 && b.dim() >= 1, "matmul",
          "operands must have at least one dim (got a scalar)", {{"a", a}, {"b", b}});
    check(a.dtype() == b.dtype(), "matmul", "dtypes differ (cast one with .to())",
          {{"a", a}, {"b", b}});
    check(a.dtype() == DType::f32 || a.dtype() == DType::f64 || a.dtype() == DType::bf16 ||
              a.dtype() == DType::f16, "matmul",
          fmt::format("expected f32, f64, bf16 or f16 operands, got {}", dtype_name(a.dtype())),
          {{"a", a}, {"b", b}});
    check(a.device() == b.device(), "matmul", "tensors on different devices", {{"a", a}, {"b", b}});
    // numpy's vector rules: a (K,) is a row (1, K), b (K,) a column (K, 1); the dim added here is
    // dropped from the result.
    const bool a_vec = a.dim() == 1, b_vec = b.dim() == 1;
    const Layout la = a_vec ? a.layout().unsqueeze(0) : a.layout();  // (..., M, K)
    const Layout lb = b_vec ? b.layout().unsqueeze(1) : b.layout();  // (..., K, N)
    const int64_t M = la.shape.end()[-2], K = la.shape.back(), N = lb.shape.back();
    check(K == lb.shape.end()[-2], "matmul",
          fmt::format("inner dimensions differ ({} vs {})", K, lb.shape.end()[-2]),
          {{"a", a}, {"b", b}});
    const Shape a_batch(la.shape.begin(), la.shape.end() - 2),
        b_batch(lb.shape.begin(), lb.shape.end() - 2);
    const size_t rank = std::max(a_batch.size(), b_batch.size());
    Shape batch(rank);
    for (size_t i = 0; i < rank; ++i) {
        const int64_t da = i < rank - a_batch.size() ? 1 : a_batch[i - (rank - a_batch.size())];
        const int64_t db = i < rank - b_batch.size() ? 1 : b_batch[i - (rank - b_batch.size())];
        check(da == db || da == 1 || db == 1, "matmul",
              fmt::format("batch dimensions do not broadcast ({} vs {})", shape_str(a_batch),
                          shape_str(b_batch)),
              {{"a", a}, {"b", b}});
        batch[i] = da == 1 ? db : da;
    }
    Shape y_shape = batch;  // (..., M, N) without the dims of a vector operand
    if (!a_vec) y_shape.push_back(M);
    if (!b_vec) y_shape.push_back(N);

    Tensor out = Tensor::empty(concat(batch, {M, N}), a.dtype(), a.device());  // (..., M, N)
    batched_matmul(out, with_layout(a, la.expand(concat(batch, {M, K}))),
                   with_layout(b, lb.expand(concat(batch, {K, N}))), Accumulate::no);
    Tensor y = (a_vec || b_vec) ? with_layout(out, Layout::contiguous(y_shape)) : out;

    // Each gradient needs the other operand; save only what is needed, with its unit dim added.
    const bool ga = a.requires_grad(), gb = b.requires_grad();
    autograd::record(
        "matmul", y, {a, b},
        [a2 = gb ? with_layout(a, la) : Tensor(), b2 = ga ? with_layout(b, lb) : Tensor(),
         sa = la.shape, sb = lb.shape, a_shape = a.shape(), b_shape = b.shape(),
         out_shape = out.shape()](const Tensor& dy) {
            const Tensor dy2 = dy.reshape(out_shape);  // (..., M, N)
            Tensor da, db;
            // da = dy · bᵀ: (..., M, N) · (..., N, K), summed to a's batch dims.
            if (b2.defined()) {
                const Tensor bt = b2.transpose(b2.dim() - 2, b2.dim() - 1);
                da = autograd::sum_to(matmul(dy2, bt), sa).reshape(a_shape);
            }
            // db = aᵀ · dy: (..., K, M) · (..., M, N), summed to b's batch dims. When b was
            // broadcast along every batch dim, the batch folds into the sum over M: one
            // (K, P) · (P, N) product with P = batch·M, not a (batch, K, N) temporary.
            const bool b_shared =
                std::all_of(sb.begin(), sb.end() - 2, [](int64_t s) { return s == 1; });
            if (a2.defined() && b_shared && dy2.dim() > 2) {
                const Shape rows(dy2.shape().begin(), dy2.shape().end() - 1);  // (..., M)
                const int64_t K = sb.end()[-2], N = sb.back(), P = numel_of(rows);
                const Tensor a_rows = a2.expand(concat(rows, {K})).reshape({P, K});  // (P, K)
                db = matmul(a_rows.transpose(0, 1), dy2.reshape({P, N})).reshape(b_shape);
            } else if (a2.defined()) {
                const Tensor at = a2.transpose(a2.dim() - 2, a2.dim() - 1);
                db = autograd::sum_to(matmul(at, dy2), sb).reshape(b_shape);
            }
            return autograd::Grads{da, db};
        });
    return y;
}

}  // namespace lumen::ops
