// core/device.cpp: device names, and what this build knows about CUDA.
#include "core/device.h"

#include "core/error.h"

#include <charconv>

namespace lumen {

#ifdef LUMEN_WITH_CUDA
namespace cuda { int device_count(); }
#endif

std::string Device::str() const {
    return type == DeviceType::cpu ? "cpu" : fmt::format("cuda:{}", index);
}

Device device_from_name(std::string_view name) {
    if (name == "cpu") return Device::cpu();
    if (name == "cuda") return Device::cuda(0);
    if (name.starts_with("cuda:")) {
        int index = -1;
        auto digits = name.substr(5);
        auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), index);
        if (ec == std::errc() && end == digits.data() + digits.size() && index >= 0)
            return Device::cuda(index);
    }
    throw Error(fmt::format("unknown device '{}': expected cpu, cuda or cuda:N", name));
}

bool built_with_cuda() {
#ifdef LUMEN_WITH_CUDA
    return true;
#else
    return false;
#endif
}

int cuda_device_count() {
#ifdef LUMEN_WITH_CUDA
    return cuda::device_count();
#else
    return 0;
#endif
}

}  // namespace lumen
