// cuda/multi_tensor.cuh: the element loop of an element-wise multi-tensor kernel (one block per
// chunk of a MultiTensorTable, cuda/multi_tensor.h).
//
//   const TensorChunk c = chunks[blockIdx.x];
//   for_each_chunk_element<4, 0b1101>(slots[c.slot], c.begin, c.end, [&](float (&x)[4]) { ... });
//
// loads element i of the slot's first N pointers (f32) into x, calls f(x), and stores back the
// pointers whose bit is set in WRITE (bit k = pointer k). When every pointer is 16-byte aligned
// at the chunk's start the body moves 4 elements per load; the rest goes one element at a time.
// Threads take elements (or 4-vectors) threadIdx.x, threadIdx.x + blockDim.x, ...
#pragma once

#include "cuda/multi_tensor.h"

#include <cstdint>

namespace lumen::cuda {

struct alignas(16) Float4 {
    float v[4];
};

template <int N, unsigned WRITE, typename F>
__device__ __forceinline__ void for_each_chunk_element(const TensorSlot& slot, int64_t begin, int64_t end, const F& f) {
    float* ptr[N];
    bool aligned = true;
#pragma unroll
    for (int k = 0; k < N; ++k) {
        ptr[k] = static_cast<float*>(slot.ptr[k]);
        aligned = aligned && reinterpret_cast<uintptr_t>(ptr[k] + begin) % 16 == 0;
    }
    if (aligned) {
        const int64_t nvec = (end - begin) / 4;
        for (int64_t j = threadIdx.x; j < nvec; j += blockDim.x) {
            Float4 pack[N];
#pragma unroll
            for (int k = 0; k < N; ++k) pack[k] = reinterpret_cast<const Float4*>(ptr[k] + begin)[j];
#pragma unroll
            for (int e = 0; e < 4; ++e) {
                float x[N];
#pragma unroll
                for (int k = 0; k < N; ++k) x[k] = pack[k].v[e];
                f(x);
#pragma unroll
                for (int k = 0; k < N; ++k) pack[k].v[e] = x[k];
            }
#pragma unroll
            for (int k = 0; k < N; ++k)
                if (WRITE & (1u << k)) reinterpret_cast<Float4*>(ptr[k] + begin)[j] = pack[k];
        }
        begin += nvec * 4;
    }
    for (int64_t i = begin + threadIdx.x; i < end; i += blockDim.x) {
        float x[N];
#pragma unroll
        for (int k = 0; k < N; ++k) x[k] = ptr[k][i];
        f(x);
#pragma unroll
        for (int k = 0; k < N; ++k)
            if (WRITE & (1u << k)) ptr[k][i] = x[k];
    }
}

}  // namespace lumen::cuda
