// tests/cuda/runtime_test.cpp: the CUDA runtime pieces: the caching allocator (statistics, reuse
// without driver calls, release, out-of-memory), transfers between host and device for every
// dtype and layout, and Philox streams identical to the CPU's. GPU-only cases.
#include "tests/harness.h"

#ifdef LUMEN_WITH_CUDA
#include "core/kernels/matmul.h"
#include "data/dataset.h"
#include "data/loader.h"
#include "cuda/allocator.h"
#include "cuda/runtime.h"

#include <cmath>
#include <filesystem>
#include <cstring>

using namespace lumen;

LUMEN_CUDA_TEST("allocator: statistics follow tensors, rounded to size classes") {
    const int d = device.index;
    cuda::synchronize(d);
    const cuda::AllocatorStats before = cuda::allocator_stats(d);
    {
        Tensor t = Tensor::empty({1000}, DType::f32, device);  // 4000 bytes -> 4096
        const cuda::AllocatorStats during = cuda::allocator_stats(d);
        CHECK(during.allocated_bytes == before.allocated_bytes + 4096);
        CHECK(during.peak_allocated_bytes >= during.allocated_bytes);
        CHECK(during.reserved_bytes >= during.allocated_bytes);
        Tensor big = Tensor::empty({3 << 20}, DType::u8, device);  // 3 MiB -> 4 MiB class
        CHECK(cuda::allocator_stats(d).allocated_bytes == during.allocated_bytes + (4u << 20));
    }
    CHECK(cuda::allocator_stats(d).allocated_bytes == before.allocated_bytes);
}

LUMEN_CUDA_TEST("allocator: a steady-state loop makes no driver allocations") {
    const int d = device.index;
    auto step = [&] {
        Tensor a = Tensor::ones({257, 33}, DType::f32, device);
        Tensor b = ops::exp(a) * 2.0;
        Tensor c = ops::sum(b, {1});
        return c;
    };
    step();  // warm the cache
    const int64_t driver_before = cuda::allocator_stats(d).driver_allocs;
    for (int i = 0; i < 50; ++i) step();
    CHECK(cuda::allocator_stats(d).driver_allocs == driver_before);
}

LUMEN_CUDA_TEST("allocator: release_cache returns free blocks; out of memory is a clear, recoverable error") {
    const int d = device.index;
    { Tensor t = Tensor::empty({64 << 20}, DType::u8, device); }
    cuda::release_cache(d);
    const cuda::AllocatorStats s = cuda::allocator_stats(d);
    CHECK(s.reserved_bytes == s.allocated_bytes);
    const int64_t absurd = int64_t(1) << 46;  // 64 TiB
    CHECK_THROWS_CONTAINING(Tensor::empty({absurd}, DType::u8, device), "out of memory");
    CHECK_THROWS_CONTAINING(Tensor::empty({absurd}, DType::u8, device), "smaller batch_size");
    Tensor after = Tensor::ones({1024}, DType::f32, device);  // the process carries on
    CHECK(ops::sum(after).item() == 1024.0);
}

LUMEN_CUDA_TEST("transfers: host <-> device round trips for every dtype and for strided views") {
    for (DType dt : {DType::f32, DType::f64, DType::bf16, DType::f16, DType::i32, DType::i64, DType::u16,
                     DType::u8, DType::i8, DType::boolean}) {
        INFO(dtype_name(dt));
        Tensor host = test::random({7, 13}, 42, DType::f32, Device::cpu(), -50, 50).to(dt);
        Tensor back = host.to(device).to(Device::cpu());
        CHECK_CLOSE(back, host, test::Tolerance{0, 0});
        Tensor strided = host.transpose(0, 1).slice(0, 1, 12, 3);  // non-contiguous source
        CHECK_CLOSE(strided.to(device).to(Device::cpu()), strided.contiguous(), test::Tolerance{0, 0});
    }
    // Copies that convert and scatter into a strided destination, on the device.
    Tensor src = test::random({4, 6}, 7, DType::f32, device);
    Tensor dst = Tensor::zeros({6, 4}, DType::bf16, device);
    Tensor window = dst.transpose(0, 1).detach();
    window.copy_(src);
    CHECK_CLOSE(dst.to(Device::cpu()), src.to(Device::cpu()).to(DType::bf16).transpose(0, 1).contiguous(),
                test::Tolerance{0, 0});
}

LUMEN_CUDA_TEST("philox: a CUDA draw equals the CPU draw (uniform bit for bit, normal to f32 rounding)") {
    for (int64_t n : {1, 3, 4, 5, 1000, 100003}) {
        INFO("n = " << n);
        Generator gc(99, 3), gg(99, 3);
        Tensor uc = ops::rand({n}, gc, -2.0, 5.0), ug = ops::rand({n}, gg, -2.0, 5.0, DType::f32, device);
        const auto vc = uc.to_vector<float>(), vg = ug.to_vector<float>();
        CHECK(std::memcmp(vc.data(), vg.data(), vc.size() * sizeof(float)) == 0);
        CHECK(gc.state().offset == gg.state().offset);
        Tensor nc = ops::randn({n}, gc), ng = ops::randn({n}, gg, 0.0, 1.0, DType::f32, device);
        CHECK_CLOSE(ng, nc, test::Tolerance{2e-6, 2e-6});
        Tensor bc = ops::rand({n}, gc, 0.0, 1.0, DType::bf16), bg = ops::rand({n}, gg, 0.0, 1.0, DType::bf16, device);
        CHECK_CLOSE(bg, bc, test::Tolerance{0, 0});
    }
}

LUMEN_CUDA_TEST("device properties are read off the device") {
    const cuda::DeviceProperties& p = cuda::properties(device.index);
    CHECK_FALSE(p.name.empty());
    CHECK(p.sm_count > 0);
    CHECK(p.memory_bytes > (size_t(1) << 30));
    CHECK(p.memory_bandwidth_bytes_per_s > 1e11);
    if (p.compute_capability == 90 || p.compute_capability == 80) CHECK(p.peak_bf16_flops_per_s > 1e14);
}

LUMEN_CUDA_TEST("cuda errors name the device and the problem") {
    CHECK_THROWS_CONTAINING(Tensor::empty({4}, DType::f32, Device::cuda(1000)), "cuda:1000");
}

LUMEN_CUDA_TEST("matmul: f32 products with and without TF32") {
    Tensor a = test::random({1, 64, 512}, 1, DType::f32, device), b = test::random({1, 512, 48}, 2, DType::f32, device);
    Tensor reference = ops::matmul(a.to(Device::cpu()).to(DType::f64), b.to(Device::cpu()).to(DType::f64));
    Tensor out = Tensor::empty({1, 64, 48}, DType::f32, device);
    kernels::matmul(out, a, b, Accumulate::no);
    CHECK_CLOSE(out, reference, test::Tolerance{1e-4, 1e-5});  // plain f32
    cuda::set_matmul_tf32(true);
    kernels::matmul(out, a, b, Accumulate::no);
    cuda::set_matmul_tf32(false);
    CHECK_CLOSE(out, reference, test::Tolerance{5e-2, 5e-3});  // TF32: 10-bit mantissas
}

LUMEN_CUDA_TEST("data loader: batches in pinned memory equal the pageable ones") {
    const std::string dir =
        (std::filesystem::path(__FILE__).parent_path().parent_path() / "fixtures" / "fineweb").string();
    const data::DatasetInfo info = data::read_dataset_info(dir);
    data::LoaderConfig config;
    config.B = 2;
    config.T = 16;
    config.vocab_size = info.vocab_size;
    data::LoaderConfig pinned_config = config;
    pinned_config.allocator = {cuda::pinned_allocate, cuda::pinned_release_storage};
    data::DataLoader pageable(data::open_shards(info, data::Split::train), config);
    data::DataLoader pinned(data::open_shards(info, data::Split::train), pinned_config);
    for (int step = 0; step < 3; ++step) {
        const data::Batch a = pageable.next(), b = pinned.next();
        CHECK(test::same_bits(a.inputs, b.inputs));
        CHECK(test::same_bits(a.targets, b.targets));
        cudaPointerAttributes attributes{};
        REQUIRE(cudaPointerGetAttributes(&attributes, b.inputs.data_ptr()) == cudaSuccess);
        CHECK(attributes.type == cudaMemoryTypeHost);  // page-locked: async copies to the GPU
        CHECK(test::same_bits(b.inputs.to(device), a.inputs));
    }
}

LUMEN_CUDA_TEST("debug sync: launches are checked synchronously when asked") {
    cuda::set_debug_sync(true);
    CHECK(cuda::debug_sync());
    Tensor x = test::random({1000}, 3, DType::f32, device);
    CHECK_CLOSE(ops::exp(x), ops::exp(x.to(Device::cpu())), test::tolerance(DType::f32));
    cuda::set_debug_sync(false);
}

#endif  // LUMEN_WITH_CUDA
