// tests/dist/nccl_communicator_test.cpp: the NCCL backend of dist/communicator.h in a world of one (this
// process, MPI as a singleton): the sums leave every dtype's values as they are, async work orders with
// the compute stream, broadcast, host sums, and the errors. Two or more GPUs are exercised by
// tests/e2e/data_parallel_test.cpp and scripts/gpu-dist.sh under mpirun.
#include "autograd/ops/ops.h"
#include "dist/communicator.h"
#include "tests/harness.h"

using namespace lumen;

LUMEN_CUDA_TEST("dist nccl: a world of one sums, broadcasts and orders its work with the compute stream") {
    if (!dist::built_with_nccl()) {
        FAIL("this CUDA build has no NCCL support: data-parallel GPU runs are impossible");
        return;
    }
    auto comm = dist::make_communicator(device, {.timeout_s = 60});
    REQUIRE(comm->backend() == dist::Backend::nccl);
    CHECK(comm->rank() == 0);
    CHECK(comm->world() == 1);
    CHECK(comm->device() == device);
    for (DType dt : {DType::f32, DType::bf16, DType::f64, DType::i64}) {
        INFO("dtype " << dtype_name(dt));
        const Tensor host = dt == DType::i64 ? Tensor::from(std::vector<int64_t>{1, -2, 1ll << 40, 7})
                                             : test::random({1000, 3}, 7, dt, Device::cpu(), -3.0, 3.0);
        Tensor t = host.to(device);
        comm->all_reduce_sum(t);
        CHECK(test::same_bits(t.to(Device::cpu()), host));
        // Async: work queued after wait() sees the result; the kernel queued before the call is part of it.
        Tensor u = host.to(device);
        u.add_(u);  // queued on the compute stream before the call: part of what is summed
        auto work = comm->all_reduce_sum_async(u, "test bucket");
        work->wait();
        work->wait();  // a second wait does nothing
        CHECK(test::same_bits((u + u).to(Device::cpu()), (host + host) + (host + host)));
        Tensor b = host.to(device);
        comm->broadcast(b, 0);
        CHECK(test::same_bits(b.to(Device::cpu()), host));
    }
    std::vector<double> d{1.5, -2.0};
    comm->all_reduce_sum_host(d);
    CHECK(d == std::vector<double>{1.5, -2.0});
    CHECK(comm->broadcast_host("lumen", 0) == "lumen");
    comm->barrier();

    Tensor on_cpu = Tensor::zeros({4});
    CHECK_THROWS_WITH_AS(comm->all_reduce_sum(on_cpu), doctest::Contains("cpu"), Error);
    Tensor i32 = Tensor::zeros({4}, DType::i32, device);
    CHECK_THROWS_AS(comm->all_reduce_sum(i32), Error);
}
