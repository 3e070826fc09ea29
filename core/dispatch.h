// core/dispatch.h: the switches from a runtime DType to a kernel template, and from a Device to
// the CPU or CUDA kernel.
//
//   dispatch_float(x.dtype(), "exp", [&]<typename T>() { cpu_exp<T>(...); });
//
// dispatch_float covers f32, f64, bf16, f16; dispatch_all adds the integer types and boolean.
// An unsupported dtype is an error naming the op.
#pragma once

#include "core/dtype.h"
#include "core/error.h"

namespace lumen {

template <typename F>
decltype(auto) dispatch_float(DType dt, const char* op, F&& f) {
    switch (dt) {
    case DType::f32: return f.template operator()<float>();
    case DType::f64: return f.template operator()<double>();
    case DType::bf16: return f.template operator()<bf16>();
    case DType::f16: return f.template operator()<f16>();
    default:
        throw Error(concat_message({op, ": expected a floating dtype (f32, f64, bf16, f16), got ", dtype_name(dt)}));
    }
}

template <typename F>
decltype(auto) dispatch_all(DType dt, const char* op, F&& f) {
    switch (dt) {
    case DType::f32: return f.template operator()<float>();
    case DType::f64: return f.template operator()<double>();
    case DType::bf16: return f.template operator()<bf16>();
    case DType::f16: return f.template operator()<f16>();
    case DType::i32: return f.template operator()<int32_t>();
    case DType::i64: return f.template operator()<int64_t>();
    case DType::u16: return f.template operator()<uint16_t>();
    case DType::u8: return f.template operator()<uint8_t>();
    case DType::i8: return f.template operator()<int8_t>();
    case DType::boolean: return f.template operator()<bool>();
    }
    throw Error(concat_message({op, ": unknown dtype"}));
}

template <typename F>
decltype(auto) dispatch_index(DType dt, const char* op, F&& f) {
    switch (dt) {
    case DType::i32: return f.template operator()<int32_t>();
    case DType::i64: return f.template operator()<int64_t>();
    default:
        throw Error(concat_message({op, ": expected an index dtype (i32 or i64), got ", dtype_name(dt)}));
    }
}

// A CUDA tensor in a CPU-only build: a loud error naming the call, never a CPU fallback.
[[noreturn]] void missing_cuda_kernel(const char* op);

}  // namespace lumen

// The device switch of a kernel entry (core/kernels/*.h):
//   inline void exp(Tensor& out, const Tensor& x) { LUMEN_DISPATCH(out.device(), exp(out, x)) }
// calls cpu::exp or cuda::exp. A CPU-only build compiles no cuda:: symbol: a CUDA tensor there
// is a loud error naming the call.
#ifdef LUMEN_WITH_CUDA
#define LUMEN_CUDA_CASE(call) ::lumen::cuda::call; return;
#else
#define LUMEN_CUDA_CASE(call) ::lumen::missing_cuda_kernel(#call);
#endif
#define LUMEN_DISPATCH(device, call)                                        \
    switch ((device).type) {                                                \
    case ::lumen::DeviceType::cpu: ::lumen::cpu::call; return;              \
    case ::lumen::DeviceType::cuda: LUMEN_CUDA_CASE(call)                   \
    }

