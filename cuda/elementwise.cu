// cuda/elementwise.cu: CUDA kernels of the elementwise family (unary and its backward, binary,
// compare, where, fill, device-side copy/cast, arange, Philox uniform/normal). Each is a functor
// over the per-element formulas shared with the CPU (core/elementwise_math.h) handed to
// launch_map (cuda/elementwise.cuh). Reference: core/cpu/elementwise.cpp.
#include "core/elementwise_math.h"
#include "core/philox.h"
#include "cuda/elementwise.cuh"

namespace lumen::cuda {

namespace {

template <typename T>
using C_of = std::conditional_t<std::is_floating_point_v<compute_t<T>>, compute_t<T>, double>;

template <typename DT, typename C>
struct UnaryFn {
    UnaryOp op;
    __device__ DT operator()(DT x) const { return store_from<DT>(apply_unary<C>(op, load_as<C>(x))); }
};

template <typename DT, typename C>
struct UnaryBackwardFn {
    UnaryOp op;
    __device__ DT operator()(DT dy, DT x) const {
        return store_from<DT>(load_as<C>(dy) * unary_derivative<C>(op, load_as<C>(x)));
    }
};

template <typename DT, typename C>
struct BinaryFn {
    BinaryOp op;
    __device__ DT operator()(DT a, DT b) const {
        return store_from<DT>(apply_binary<C>(op, load_as<C>(a), load_as<C>(b)));
    }
};

template <typename DT, typename C>
struct CompareFn {
    CompareOp op;
    __device__ bool operator()(DT a, DT b) const { return apply_compare<C>(op, load_as<C>(a), load_as<C>(b)); }
};

template <typename DT>
struct WhereFn {
    __device__ DT operator()(bool c, DT a, DT b) const { return c ? a : b; }
};

template <typename To, typename From>
struct CastFn {
    __device__ To operator()(From x) const {
        using C = std::conditional_t<std::is_same_v<To, bool>, bool,
                  std::conditional_t<std::is_floating_point_v<To> || std::is_same_v<To, __nv_bfloat16> ||
                                         std::is_same_v<To, __half> || std::is_same_v<From, __nv_bfloat16> ||
                                         std::is_same_v<From, __half> || std::is_floating_point_v<From>,
                                     double, int64_t>>;
        return store_from<To>(load_as<C>(x));
    }
};

template <typename DT>
__global__ void fill_kernel(int64_t n, OffsetCalc<1> calc, DT* out, DT value) {
    for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x) {
        int64_t off[1];
        calc.get(i, off);
        out[off[0]] = value;
    }
}

template <typename DT>
__global__ void arange_kernel(int64_t n, DT* out, double start, double step) {
    for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x)
        out[i] = store_from<DT>(__dadd_rn(start, __dmul_rn(double(i), step)));  // as the CPU: no FMA
}

// Element i of the draw: the same formula as the CPU (core/philox.h).
template <typename DT, bool Normal>
__global__ void random_kernel(int64_t n, DT* out, RngState rng, float a, float b) {
    for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x) {
        // NOTE: explicit roundings (no fused multiply-add), as the CPU computes a + b·u.
        const float u = Normal ? philox_normal(rng, uint64_t(i)) : philox_uniform(rng, uint64_t(i));
        out[i] = store_from<DT>(__fadd_rn(a, __fmul_rn(b, u)));
    }
}

int64_t grid_for(const Tensor& t, int64_t n) {
    return std::min(blocks_for(n, 256), int64_t(properties(t.device().index).sm_count) * 16);
}

}  // namespace

void unary(UnaryOp op, Tensor& out, const Tensor& x) {
    dispatch_all(x.dtype(), "unary", [&]<typename T>() {
        using DT = device_t<T>;
        launch_map<DT, DT>("unary_kernel", out, {&x}, UnaryFn<DT, C_of<T>>{op});
    });
}

void unary_backward(UnaryOp op, Tensor& dx, const Tensor& dy, const Tensor& x) {
    dispatch_float(x.dtype(), "unary_backward", [&]<typename T>() {
        using DT = device_t<T>;
        launch_map<DT, DT, DT>("unary_backward_kernel", dx, {&dy, &x}, UnaryBackwardFn<DT, compute_t<T>>{op});
    });
}

void binary(BinaryOp op, Tensor& out, const Tensor& a, const Tensor& b) {
    dispatch_all(out.dtype(), "binary", [&]<typename T>() {
        using DT = device_t<T>;
        using C = std::conditional_t<std::is_same_v<T, bool>, int64_t, compute_t<T>>;
        launch_map<DT, DT, DT>("binary_kernel", out, {&a, &b}, BinaryFn<DT, C>{op});
    });
}

void compare(CompareOp op, Tensor& out, const Tensor& a, const Tensor& b) {
    dispatch_all(a.dtype(), "compare", [&]<typename T>() {
        using DT = device_t<T>;
        launch_map<bool, DT, DT>("compare_kernel", out, {&a, &b}, CompareFn<DT, compute_t<T>>{op});
    });
}

void where(Tensor& out, const Tensor& cond, const Tensor& a, const Tensor& b) {
    dispatch_all(out.dtype(), "where", [&]<typename T>() {
        using DT = device_t<T>;
        launch_map<DT, bool, DT, DT>("where_kernel", out, {&cond, &a, &b}, WhereFn<DT>{});
    });
}

void fill(Tensor& out, double value) {
    const int64_t n = out.numel();
    if (n == 0) return;
    set_device(out.device().index);
    dispatch_all(out.dtype(), "fill", [&]<typename T>() {
        using DT = device_t<T>;
        const T host_value = convert<T>(value);
        DT device_value;
        std::memcpy(&device_value, &host_value, sizeof(DT));
        const auto calc = make_offset_calc<1>(out.shape(), {&out.layout()}, "fill");
        fill_kernel<<<unsigned(grid_for(out, n)), 256, 0, compute_stream(out.device().index)>>>(
            n, calc, device_ptr<T>(out), device_value);
    });
    check_launch("fill_kernel", {{"out", out}});
}

// Device-to-device copy with conversion; both on out's device. A plain contiguous copy is the
// driver's copy engine path (cudaMemcpyAsync), which runs at the copy ceiling.
void copy_on_device(Tensor& out, const Tensor& src) {
    if (out.dtype() == src.dtype() && out.is_contiguous() && src.is_contiguous() && out.shape() == src.shape()) {
        if (out.numel() == 0) return;
        set_device(out.device().index);
        LUMEN_CUDA_CHECK(cudaMemcpyAsync(out.data_ptr(), src.data_ptr(), size_t(out.numel()) * dtype_size(out.dtype()),
                                         cudaMemcpyDeviceToDevice, compute_stream(out.device().index)));
        return;
    }
    dispatch_all(out.dtype(), "copy", [&]<typename To>() {
        dispatch_all(src.dtype(), "copy", [&]<typename From>() {
            launch_map<device_t<To>, device_t<From>>("copy_kernel", out, {&src},
                                                     CastFn<device_t<To>, device_t<From>>{});
        });
    });
}

void arange(Tensor& out, double start, double step) {
    const int64_t n = out.numel();
    if (n == 0) return;
    set_device(out.device().index);
    dispatch_all(out.dtype(), "arange", [&]<typename T>() {
        arange_kernel<<<unsigned(grid_for(out, n)), 256, 0, compute_stream(out.device().index)>>>(
            n, data_ptr<T>(out), start, step);
    });
    check_launch("arange_kernel", {{"out", out}});
}

void uniform(Tensor& out, const RngState& rng, double lo, double hi) {
    const int64_t n = out.numel();
    if (n == 0) return;
    set_device(out.device().index);
    dispatch_float(out.dtype(), "uniform", [&]<typename T>() {
        random_kernel<device_t<T>, false><<<unsigned(grid_for(out, n)), 256, 0, compute_stream(out.device().index)>>>(
            n, data_ptr<T>(out), rng, float(lo), float(hi - lo));
    });
    check_launch("uniform_kernel", {{"out", out}});
}

void normal(Tensor& out, const RngState& rng, double mean, double std) {
    const int64_t n = out.numel();
    if (n == 0) return;
    set_device(out.device().index);
    dispatch_float(out.dtype(), "normal", [&]<typename T>() {
        random_kernel<device_t<T>, true><<<unsigned(grid_for(out, n)), 256, 0, compute_stream(out.device().index)>>>(
            n, data_ptr<T>(out), rng, float(mean), float(std));
    });
    check_launch("normal_kernel", {{"out", out}});
}

}  // namespace lumen::cuda
