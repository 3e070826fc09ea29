// core/device.h: where a tensor lives: the CPU or a CUDA device with an index.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace lumen {

enum class DeviceType : uint8_t { cpu, cuda };

struct Device {
    DeviceType type = DeviceType::cpu;
    int index = 0;

    static Device cpu() { return {DeviceType::cpu, 0}; }
    static Device cuda(int index = 0) { return {DeviceType::cuda, index}; }
    bool is_cpu() const { return type == DeviceType::cpu; }
    bool is_cuda() const { return type == DeviceType::cuda; }
    bool operator==(const Device&) const = default;
    std::string str() const;  // "cpu", "cuda:0"
};

// Parses "cpu", "cuda", "cuda:N"; throws naming the string on failure. "auto" is the trainer's.
Device device_from_name(std::string_view name);

// Whether this build has the CUDA backend, and how many CUDA devices the runtime sees (0 in a
// CPU-only build or on a machine without a GPU).
bool built_with_cuda();
int cuda_device_count();

}  // namespace lumen
