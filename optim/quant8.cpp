// optim/quant8.cpp: the dynamic maps, the block-wise quantize / dequantize entry points and their
// CPU kernels (see optim/quant8.h; CUDA in cuda/quant8.cu).
#include "optim/quant8.h"

#include "core/cpu/loops.h"
#include "core/dispatch.h"

#include <algorithm>
#include <bit>
#include <vector>

namespace lumen::optim {

namespace {

// specs/optimizers.md §5.1: decade i (0..6) holds the midpoints of n points evenly spaced over
// [0.1, 1], scaled by 10^(i−6), with n = 2^i + 1 (signed, both signs) or 2^(i+1) + 1 (unsigned);
// then 0 and 1.
QuantMap build_dynamic_map(bool is_signed) {
    static constexpr double decade_scale[7] = {1e-6, 1e-5, 1e-4, 1e-3, 1e-2, 1e-1, 1.0};
    std::vector<double> values;
    for (int i = 0; i < 7; ++i) {
        const int n = is_signed ? (1 << i) + 1 : (1 << (i + 1)) + 1;
        const double spacing = 0.9 / double(n - 1);
        for (int k = 0; k + 1 < n; ++k) {
            const double lo = 0.1 + spacing * double(k), hi = 0.1 + spacing * double(k + 1);
            const double mid = decade_scale[i] * ((lo + hi) / 2.0);
            values.push_back(mid);
            if (is_signed) values.push_back(-mid);
        }
    }
    values.push_back(0.0);
    values.push_back(1.0);
    check(values.size() == 256, "dynamic_map", "the map does not have 256 entries");
    std::sort(values.begin(), values.end());
    QuantMap map;
    for (size_t i = 0; i < 256; ++i) map[i] = float(values[i]);
    return map;
}

void check_codes(const Tensor& codes, const Tensor& absmax, const char* op) {
    check(codes.dtype() == DType::u8 && codes.is_contiguous(), op, "codes must be contiguous u8",
          {{"codes", codes}});
    check(absmax.dtype() == DType::f32 && absmax.is_contiguous() && absmax.dim() == 1 &&
              absmax.numel() == quant_blocks(codes.numel()),
          op, "absmax must be contiguous f32 of ceil(numel / 256)", {{"codes", codes}, {"absmax", absmax}});
    check(codes.device() == absmax.device(), op, "codes and absmax must share a device",
          {{"codes", codes}, {"absmax", absmax}});
}

void run_quantize(Tensor& codes, Tensor& absmax, const Tensor& x, const Tensor& map, bool is_signed) {
    LUMEN_DISPATCH(x.device(), quantize_blockwise8(codes, absmax, x, map, is_signed))
}
void run_dequantize(Tensor& out, const Tensor& codes, const Tensor& absmax, const Tensor& map) {
    LUMEN_DISPATCH(codes.device(), dequantize_blockwise8(out, codes, absmax, map))
}

}  // namespace

const QuantMap& dynamic_map(bool is_signed) {
    static const QuantMap signed_map = build_dynamic_map(true);
    static const QuantMap unsigned_map = build_dynamic_map(false);
    return is_signed ? signed_map : unsigned_map;
}

Tensor dynamic_map_tensor(bool is_signed, Device device) {
    const QuantMap& map = dynamic_map(is_signed);
    return Tensor::from(std::vector<float>(map.begin(), map.end()), {256}, device);
}

int64_t ulp_distance(float a, float b) {
    // Floats as integers ordered like the values: negative values mirrored below zero.
    auto ordered = [](float x) {
        const int32_t bits = std::bit_cast<int32_t>(x);
        return bits < 0 ? -int64_t(bits & 0x7fffffff) : int64_t(bits);
    };
    const int64_t d = ordered(a) - ordered(b);
    return d < 0 ? -d : d;
}

std::pair<Tensor, Tensor> quantize_blockwise(const Tensor& x, bool is_signed) {
    check(x.dtype() == DType::f32, "quantize_blockwise", "expected f32 values", {{"x", x}});
    Tensor xc = x.contiguous();
    Tensor codes = Tensor::empty(x.shape(), DType::u8, x.device());
    Tensor absmax = Tensor::empty({quant_blocks(x.numel())}, DType::f32, x.device());
    Tensor map = dynamic_map_tensor(is_signed, x.device());
    run_quantize(codes, absmax, xc, map, is_signed);
    return {codes, absmax};
}

Tensor dequantize_blockwise(const Tensor& codes, const Tensor& absmax, bool is_signed) {
    check_codes(codes, absmax, "dequantize_blockwise");
    Tensor out = Tensor::empty(codes.shape(), DType::f32, codes.device());
    Tensor map = dynamic_map_tensor(is_signed, codes.device());
    run_dequantize(out, codes, absmax, map);
    return out;
}

}  // namespace lumen::optim

namespace lumen::cpu {

void quantize_blockwise8(Tensor& codes, Tensor& absmax, const Tensor& x, const Tensor& map, bool is_signed) {
    const float* xs = x.data<float>();
    const float* c = map.data<float>();
    uint8_t* q = codes.data<uint8_t>();
    float* a = absmax.data<float>();
    const int64_t n = x.numel();
    const uint8_t zero = is_signed ? optim::signed_zero_code : optim::unsigned_zero_code;
    parallel_for(optim::quant_blocks(n), parallel_grain / optim::quant_block, [&](int64_t b0, int64_t b1) {
        for (int64_t b = b0; b < b1; ++b) {
            const int64_t begin = b * optim::quant_block, end = std::min(n, begin + optim::quant_block);
            float amax = 0.f;
            for (int64_t i = begin; i < end; ++i) amax = std::max(amax, std::fabs(xs[i]));
            a[b] = amax;
            for (int64_t i = begin; i < end; ++i)
                q[i] = amax == 0.f ? zero : optim::quantize_code(c, xs[i] / amax, is_signed);
        }
    });
}

void dequantize_blockwise8(Tensor& out, const Tensor& codes, const Tensor& absmax, const Tensor& map) {
    const uint8_t* q = codes.data<uint8_t>();
    const float* a = absmax.data<float>();
    const float* c = map.data<float>();
    float* o = out.data<float>();
    parallel_for(codes.numel(), parallel_grain, [&](int64_t begin, int64_t end) {
        for (int64_t i = begin; i < end; ++i) o[i] = c[q[i]] * a[i / optim::quant_block];
    });
}

}  // namespace lumen::cpu
