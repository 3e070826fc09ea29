// cuda/runtime.cu: checked CUDA calls, launch checks, streams, cuBLASLt handles, device properties
// (see cuda/runtime.h).
#include "cuda/runtime.h"

#include <array>
#include <mutex>
#include <vector>

namespace lumen::cuda {

namespace {
bool debug_sync_on = false;
constexpr int max_devices = 64;

struct DeviceState {
    std::once_flag once;
    cudaStream_t compute = nullptr;
    cudaStream_t copy = nullptr;
    cublasLtHandle_t lt = nullptr;
    void* workspace = nullptr;
    size_t workspace_bytes = 0;
    DeviceProperties props;
};
std::array<DeviceState, max_devices> devices;

DeviceState& state(int device) {
    if (device < 0 || device >= device_count())
        throw Error(fmt::format("cuda: device cuda:{} does not exist ({} CUDA devices)", device, device_count()));
    DeviceState& s = devices[size_t(device)];
    std::call_once(s.once, [&] {
        set_device(device);
        LUMEN_CUDA_CHECK(cudaStreamCreateWithFlags(&s.compute, cudaStreamNonBlocking));
        LUMEN_CUDA_CHECK(cudaStreamCreateWithFlags(&s.copy, cudaStreamNonBlocking));
        LUMEN_CUBLAS_CHECK(cublasLtCreate(&s.lt));
        cudaDeviceProp p{};
        LUMEN_CUDA_CHECK(cudaGetDeviceProperties(&p, device));
        s.props.name = p.name;
        s.props.sm_count = p.multiProcessorCount;
        s.props.compute_capability = p.major * 10 + p.minor;
        s.props.memory_bytes = p.totalGlobalMem;
        s.props.l2_bytes = size_t(p.l2CacheSize);
        int memory_clock_khz = 0, bus_width_bits = 0;
        cudaDeviceGetAttribute(&memory_clock_khz, cudaDevAttrMemoryClockRate, device);
        cudaDeviceGetAttribute(&bus_width_bits, cudaDevAttrGlobalMemoryBusWidth, device);
        s.props.memory_bandwidth_bytes_per_s = 2.0 * memory_clock_khz * 1e3 * bus_width_bits / 8.0;
        int clock_khz = 0;
        cudaDeviceGetAttribute(&clock_khz, cudaDevAttrClockRate, device);
        const double flops_per_clock_per_sm = s.props.compute_capability == 90 ? 4096.0
                                              : s.props.compute_capability == 80 ? 2048.0 : 0.0;
        s.props.peak_bf16_flops_per_s = flops_per_clock_per_sm * s.props.sm_count * clock_khz * 1e3;
    });
    return s;
}
}  // namespace

void fail_cuda(cudaError_t status, const char* call, const char* file, int line) {
    cudaGetLastError();
    throw Error(fmt::format("cuda: {} failed: {} ({}:{})", call, cudaGetErrorString(status), file, line));
}

void fail_cublas(cublasStatus_t status, const char* call, const char* file, int line) {
    throw Error(fmt::format("cublas: {} failed: status {} ({}:{})", call, int(status), file, line));
}

void check_launch(const char* kernel, std::initializer_list<Operand> operands) {
    cudaError_t status = cudaGetLastError();
    if (status == cudaSuccess && debug_sync_on) status = cudaDeviceSynchronize();
    if (status != cudaSuccess) {
        cudaGetLastError();
        throw Error(fmt::format("cuda: {}: {} ({}){}", kernel, cudaGetErrorString(status),
                                describe_operands(operands),
                                debug_sync_on ? "" : "; CUDA errors can surface one op late: set "
                                                     "debug_sync = true to stop at the op that caused it"));
    }
}

void set_debug_sync(bool on) { debug_sync_on = on; }
bool debug_sync() { return debug_sync_on; }

int device_count() {
    static const int count = [] {
        int n = 0;
        if (cudaGetDeviceCount(&n) != cudaSuccess) {
            cudaGetLastError();  // NOTE: no driver or no GPU is "zero devices", not an error
            return 0;
        }
        return n;
    }();
    return count;
}

void set_device(int device) {
    int current = -1;
    LUMEN_CUDA_CHECK(cudaGetDevice(&current));
    if (current != device) LUMEN_CUDA_CHECK(cudaSetDevice(device));
}

cudaStream_t compute_stream(int device) { return state(device).compute; }
cudaStream_t copy_stream(int device) { return state(device).copy; }
cublasLtHandle_t cublaslt_handle(int device) { return state(device).lt; }

void* cublaslt_workspace(int device, size_t* bytes) {
    DeviceState& s = state(device);
    constexpr size_t wanted = 32u << 20;  // NOTE: 32 MiB: what cuBLAS recommends for Hopper
    if (!s.workspace) {
        set_device(device);
        LUMEN_CUDA_CHECK(cudaMalloc(&s.workspace, wanted));
        s.workspace_bytes = wanted;
    }
    *bytes = s.workspace_bytes;
    return s.workspace;
}

void synchronize(int device) {
    DeviceState& s = state(device);
    LUMEN_CUDA_CHECK(cudaStreamSynchronize(s.compute));
    LUMEN_CUDA_CHECK(cudaStreamSynchronize(s.copy));
}

const DeviceProperties& properties(int device) { return state(device).props; }

}  // namespace lumen::cuda
