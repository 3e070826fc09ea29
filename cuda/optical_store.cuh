// cuda/optical_store.cuh: how the optical kernels store a result: NaN as one canonical quiet NaN
// (f32 0x7FC00000, bf16 0x7FC0, f16 0x7E00), the bits the CPU reference writes, since GPU arithmetic
// and conversions produce their own NaN patterns; other values rounded to nearest even as usual.
#pragma once

#include "cuda/common.cuh"

namespace lumen::cuda {

template <typename OT>
__device__ __forceinline__ OT store_canonical(float v) {
    if (v != v) {
        if constexpr (std::is_same_v<OT, __nv_bfloat16>) return __ushort_as_bfloat16(0x7FC0);
        else if constexpr (std::is_same_v<OT, __half>) return __ushort_as_half(0x7E00);
        else if constexpr (std::is_same_v<OT, float>) return __uint_as_float(0x7FC00000u);
        else if constexpr (std::is_same_v<OT, double>) return __longlong_as_double(0x7FF8000000000000ll);
    }
    return store_from<OT>(v);
}

}  // namespace lumen::cuda
