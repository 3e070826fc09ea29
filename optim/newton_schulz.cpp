// optim/newton_schulz.cpp: the Newton–Schulz driver (workspace, GEMM sequence) and the CPU
// reference of its element-wise kernels (see optim/newton_schulz.h; CUDA: cuda/optim_muon.cu).
//
// NOTE: the CPU kernels round exactly where the CUDA ones do and use the same f32 operations in
// the same order (no contraction into FMA on either side), so given the same GEMM results the two
// devices produce the same bits; only the GEMMs' summation orders differ.
#include "optim/newton_schulz.h"

#include "core/cpu/loops.h"
#include "core/kernels/matmul.h"
#include "core/kernels/reduce.h"

#include <cmath>

namespace lumen {

namespace cpu {
namespace {

// Runs f<W>() for the two working dtypes.
template <typename F>
void dispatch_ns(DType dt, const char* op, F&& f) {
    if (dt == DType::f32) return f.template operator()<float>();
    if (dt == DType::bf16) return f.template operator()<bf16>();
    throw Error(concat_message({op, ": Newton–Schulz works in f32 or bf16, got ", dtype_name(dt)}));
}

template <typename T>
T* base(const Tensor& t) {
    return static_cast<T*>(t.storage()->data());
}

}  // namespace

void ns_load(Tensor& x, Tensor& partials, const Tensor& src) {
    const auto [n, m] = x.dims<2>();
    const int64_t count = n * m, chunks = partials.numel();
    const float* s = static_cast<const float*>(src.data_ptr());
    const int64_t s0 = src.strides()[0], s1 = src.strides()[1];
    float* part = partials.data<float>();
    dispatch_ns(x.dtype(), "ns_load", [&]<typename W>() {
        W* xs = static_cast<W*>(x.data_ptr());
        parallel_for(chunks, 1, [&](int64_t begin, int64_t end) {
            for (int64_t k = begin; k < end; ++k) {
                const int64_t e0 = k * optim::ns_norm_chunk, e1 = std::min(count, e0 + optim::ns_norm_chunk);
                float sum = 0.f;
                for (int64_t e = e0; e < e1; ++e) {
                    const int64_t i = e / m, j = e % m;
                    const W v = convert<W>(s[i * s0 + j * s1]);
                    const float f = convert<float>(v);
                    sum += f * f;
                    xs[e] = v;
                }
                part[k] = sum;
            }
        });
    });
}

void ns_normalize(Tensor& x, const Tensor& sumsq) {
    const float s = *sumsq.data<float>();
    dispatch_ns(x.dtype(), "ns_normalize", [&]<typename W>() {
        const float norm = convert<float>(convert<W>(std::sqrt(s)));
        const float denom = convert<float>(convert<W>(norm + optim::ns_norm_eps));
        W* xs = static_cast<W*>(x.data_ptr());
        parallel_for(x.numel(), parallel_grain, [&](int64_t begin, int64_t end) {
            for (int64_t e = begin; e < end; ++e) xs[e] = convert<W>(convert<float>(xs[e]) / denom);
        });
    });
}

void ns_combine(Tensor& out, const Tensor& x, const Tensor& p, float alpha, float beta) {
    const float* ps = p.data<float>();
    dispatch_ns(out.dtype(), "ns_combine", [&]<typename W>() {
        W* os = static_cast<W*>(out.data_ptr());
        const W* xs = static_cast<const W*>(x.data_ptr());
        parallel_for(out.numel(), parallel_grain, [&](int64_t begin, int64_t end) {
            for (int64_t e = begin; e < end; ++e) {
                const float scaled_x = alpha * convert<float>(xs[e]);
                const float scaled_p = beta * ps[e];
                os[e] = convert<W>(scaled_x + scaled_p);
            }
        });
    });
}

void ns_store(Tensor& dst, const Tensor& src, float scale) {
    float* d = base<float>(dst);
    dispatch_ns(src.dtype(), "ns_store", [&]<typename W>() {
        const W* s = base<const W>(src);
        for_each_strided<2>(dst.shape(), {&dst.layout(), &src.layout()},
                            [&](const auto& o) { d[o[0]] = convert<float>(s[o[1]]) * scale; });
    });
}

}  // namespace cpu

namespace optim {
namespace {

// A (1, rows, cols) view of the first rows·cols elements of buf, or of its transpose.
Tensor matrix(const Tensor& buf, int64_t rows, int64_t cols, bool transposed = false) {
    Layout layout = transposed ? Layout{{1, cols, rows}, {rows * cols, 1, cols}, 0}
                               : Layout{{1, rows, cols}, {rows * cols, cols, 1}, 0};
    return Tensor::over(buf.storage(), layout, buf.dtype());
}

Tensor flat(const Tensor& buf, const Shape& shape) {
    return Tensor::over(buf.storage(), Layout::contiguous(shape), buf.dtype());
}

}  // namespace

NewtonSchulz::NewtonSchulz(DType dtype, Device device) : dtype_(dtype), device_(device) {
    check(dtype == DType::bf16 || dtype == DType::f32, "NewtonSchulz",
          concat_message({"the working dtype is bf16 or f32, got ", dtype_name(dtype)}));
    sumsq_ = Tensor::zeros({1}, DType::f32, device);
}

void NewtonSchulz::reserve_elements(int64_t nn, int64_t nm_needed) {
    const int64_t n2 = std::max(cap_n2_, nn), nm = std::max(cap_nm_, nm_needed);
    if (n2 != cap_n2_) {
        a_ = Tensor::empty({n2}, dtype_, device_);
        b_ = Tensor::empty({n2}, dtype_, device_);
        p_ = Tensor::empty({n2}, DType::f32, device_);
        cap_n2_ = n2;
    }
    if (nm != cap_nm_) {
        x_ = Tensor::empty({nm}, dtype_, device_);
        q_ = Tensor::empty({nm}, DType::f32, device_);
        partials_ = Tensor::empty({(nm + ns_norm_chunk - 1) / ns_norm_chunk}, DType::f32, device_);
        cap_nm_ = nm;
    }
}

int64_t NewtonSchulz::workspace_bytes() const {
    const int64_t w = int64_t(dtype_size(dtype_));
    return cap_n2_ * (2 * w + 4) + cap_nm_ * (w + 4) + (cap_nm_ + ns_norm_chunk - 1) / ns_norm_chunk * 4 + 4;
}

void NewtonSchulz::orthogonalize(const Tensor& out, const Tensor& u, int64_t steps, double scale) {
    check(u.dim() == 2 && u.dtype() == DType::f32 && out.dtype() == DType::f32 && out.shape() == u.shape() &&
              u.device() == device_ && out.device() == device_,
          "newton_schulz", "expected u and out (rows, cols) f32 on the workspace's device", {{"u", u}, {"out", out}});
    const auto [rows, cols] = u.dims<2>();
    if (rows * cols == 0) return;
    // X keeps u's orientation. On a wide u (rows ≤ cols) the iteration is §8's: A = X·Xᵀ,
    // X ← a·X + B·X. On a tall u it runs from the right, A = Xᵀ·X, X ← a·X + X·B: the same as
    // iterating on uᵀ and transposing back (A and B are symmetric), without a transposed copy.
    const bool tall = rows > cols;
    const int64_t n = tall ? cols : rows, m = tall ? rows : cols;
    reserve(n, m);
    const int64_t chunks = (n * m + ns_norm_chunk - 1) / ns_norm_chunk;

    Tensor x = flat(x_, {rows, cols});              // W
    Tensor partials = flat(partials_, {chunks});    // (chunks,) f32
    kernels::ns_load(x, partials, u);
    kernels::reduce_rows(ReduceOp::sum, sumsq_, partials, chunks);
    kernels::ns_normalize(x, sumsq_);

    Tensor x3 = matrix(x_, rows, cols), xt3 = matrix(x_, rows, cols, /*transposed=*/true);
    Tensor a3 = matrix(a_, n, n), b3 = matrix(b_, n, n);  // (1, n, n) W
    Tensor p3 = matrix(p_, n, n), q3 = matrix(q_, rows, cols);  // f32
    for (int64_t s = 0; s < steps; ++s) {
        if (tall) kernels::matmul(a3, xt3, x3, Accumulate::no);  // A = Xᵀ·X   (n, n)
        else kernels::matmul(a3, x3, xt3, Accumulate::no);       // A = X·Xᵀ   (n, n)
        kernels::matmul(p3, a3, a3, Accumulate::no);              // P = A·A in f32
        kernels::ns_combine(b3, a3, p3, float(ns_b), float(ns_c));    // B = b·A + c·P
        if (tall) kernels::matmul(q3, x3, b3, Accumulate::no);   // Q = X·B in f32   (rows, cols)
        else kernels::matmul(q3, b3, x3, Accumulate::no);        // Q = B·X in f32   (rows, cols)
        kernels::ns_combine(x3, x3, q3, float(ns_a), 1.f);            // X = a·X + Q
    }
    Tensor dst = out;
    kernels::ns_store(dst, x, float(scale));
}

Tensor newton_schulz(const Tensor& g, int64_t steps, DType dtype) {
    NewtonSchulz ns(dtype, g.device());
    Tensor out = Tensor::zeros(g.shape(), DType::f32, g.device());
    ns.orthogonalize(out, g.to(DType::f32).contiguous(), steps, 1.0);
    return out;
}

}  // namespace optim
}  // namespace lumen
