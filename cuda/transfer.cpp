// cuda/transfer.cu: cuda::copy, the copy kernel entry for every pair of devices that involves a
// GPU: device to device (with dtype conversion and any strides, cuda/elementwise.cu), host to
// device and device to host through a pinned staging buffer on the copy stream, and between GPUs.
//
// The copy stream first waits for the compute stream (the destination block may have just been
// recycled by the caching allocator), and the call returns once the transfer is complete, so the
// host buffer may be reused at once.
#include "core/kernels/elementwise.h"
#include "cuda/allocator.h"
#include "cuda/runtime.h"

#include <mutex>

namespace lumen::cuda {

void copy_on_device(Tensor& out, const Tensor& src);  // cuda/elementwise.cu

namespace {

// One grow-only pinned staging buffer for the process.
struct Staging {
    std::mutex mutex;
    void* ptr = nullptr;
    size_t bytes = 0;
    void* reserve(size_t wanted) {
        if (wanted > bytes) {
            pinned_release(ptr);
            ptr = pinned_allocate(wanted);
            bytes = wanted;
        }
        return ptr;
    }
};
Staging& staging() {
    static Staging& s = *new Staging;  // NOTE: leaked: transfers may run during static destruction
    return s;
}

void copy_stream_waits_for_compute(int device) {
    cudaEvent_t event;
    LUMEN_CUDA_CHECK(cudaEventCreateWithFlags(&event, cudaEventDisableTiming));
    LUMEN_CUDA_CHECK(cudaEventRecord(event, compute_stream(device)));
    LUMEN_CUDA_CHECK(cudaStreamWaitEvent(copy_stream(device), event, 0));
    LUMEN_CUDA_CHECK(cudaEventDestroy(event));
}

// A contiguous tensor with src's values on src's device (src itself when already contiguous).
Tensor contiguous_on_device(const Tensor& src, DType dtype) {
    if (src.is_contiguous() && src.dtype() == dtype) return src;
    Tensor tmp = Tensor::empty(src.shape(), dtype, src.device());
    copy_on_device(tmp, src);
    return tmp;
}

Tensor host_view(void* ptr, const Shape& shape, DType dtype) {
    return Tensor::over(std::make_shared<Storage>(ptr, size_t(numel_of(shape)) * dtype_size(dtype), Device::cpu(), nullptr),
                        Layout::contiguous(shape), dtype);
}

void host_to_device(Tensor& out, const Tensor& src) {
    const int device = out.device().index;
    const size_t bytes = size_t(out.numel()) * dtype_size(out.dtype());
    Tensor dst = out.is_contiguous() ? out : Tensor::empty(out.shape(), out.dtype(), out.device());
    {
        Staging& s = staging();
        std::lock_guard lock(s.mutex);
        Tensor staged = host_view(s.reserve(bytes), out.shape(), out.dtype());
        cpu::copy(staged, src);  // converts and gathers strides on the host
        set_device(device);
        copy_stream_waits_for_compute(device);
        LUMEN_CUDA_CHECK(cudaMemcpyAsync(dst.data_ptr(), s.ptr, bytes, cudaMemcpyHostToDevice, copy_stream(device)));
        LUMEN_CUDA_CHECK(cudaStreamSynchronize(copy_stream(device)));
    }
    if (!dst.same(out)) copy_on_device(out, dst);
}

void device_to_host(Tensor& out, const Tensor& src) {
    const int device = src.device().index;
    Tensor packed = contiguous_on_device(src, src.dtype());
    const size_t bytes = size_t(src.numel()) * dtype_size(src.dtype());
    Staging& s = staging();
    std::lock_guard lock(s.mutex);
    void* host = s.reserve(bytes);
    set_device(device);
    copy_stream_waits_for_compute(device);
    LUMEN_CUDA_CHECK(cudaMemcpyAsync(host, packed.data_ptr(), bytes, cudaMemcpyDeviceToHost, copy_stream(device)));
    LUMEN_CUDA_CHECK(cudaStreamSynchronize(copy_stream(device)));
    cpu::copy(out, host_view(host, src.shape(), src.dtype()));
}

void device_to_device(Tensor& out, const Tensor& src) {
    Tensor packed = contiguous_on_device(src, src.dtype());
    Tensor landed = Tensor::empty(src.shape(), src.dtype(), out.device());
    const size_t bytes = size_t(src.numel()) * dtype_size(src.dtype());
    synchronize(src.device().index);
    set_device(out.device().index);
    copy_stream_waits_for_compute(out.device().index);
    LUMEN_CUDA_CHECK(cudaMemcpyPeerAsync(landed.data_ptr(), out.device().index, packed.data_ptr(),
                                         src.device().index, bytes, copy_stream(out.device().index)));
    LUMEN_CUDA_CHECK(cudaStreamSynchronize(copy_stream(out.device().index)));
    copy_on_device(out, landed);
}

}  // namespace

void copy(Tensor& out, const Tensor& src) {
    if (out.numel() == 0) return;
    if (out.device().is_cuda() && src.device() == out.device()) return copy_on_device(out, src);
    if (out.device().is_cuda() && src.device().is_cpu()) return host_to_device(out, src);
    if (out.device().is_cpu() && src.device().is_cuda()) return device_to_host(out, src);
    return device_to_device(out, src);
}

}  // namespace lumen::cuda
