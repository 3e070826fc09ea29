// tests/dist/communicator_test.cpp: the MPI (CPU) backend of dist/communicator.h and the watchdog.
//
// Cases named "mpi2: ..." need two ranks: they are skipped in a plain run, and a parent case runs
// them under `mpirun -np 2` (this same binary, --no-skip) and checks that both ranks passed. The
// world-of-one cases run in this process (MPI as a singleton). The timeout case makes rank 1 fall
// behind a 2 s watchdog and checks the message rank 0 dies with.
#include "dist/communicator.h"
#include "dist/watchdog.h"
#include "tests/dist/mpirun_testing.h"
#include "tests/harness.h"

#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <optional>
#include <sstream>
#include <thread>

extern char** environ;

using namespace lumen;

namespace {

std::unique_ptr<dist::Communicator> cpu_comm(double timeout_s = 60) {
    return dist::make_communicator(Device::cpu(), {.timeout_s = timeout_s});
}

// Rank r's input for the sum tests: the same seed on every rank, so each rank can build all inputs.
Tensor input(const Shape& shape, int rank, DType dtype, uint64_t seed) {
    return test::random(shape, seed * 10 + uint64_t(rank), dtype, Device::cpu(), -4.0, 4.0);
}

template <typename T>
std::string thrown_message(T&& fn) {
    try {
        fn();
    } catch (const Error& e) {
        return e.what();
    }
    return "(nothing thrown)";
}

struct ChildRun {
    int status = -1;  // exit status of mpirun (-1: did not exit normally)
    std::string output;
    double seconds = 0;
};

// Runs this binary's "mpi2: ..." cases matching `filter` (minus `exclude`) under mpirun -np 2.
ChildRun run_two_ranks(const std::string& filter, const std::string& exclude) {
    std::string command = lumen::test::mpirun_command(2);
    command += " /proc/" + std::to_string(getpid()) +
               "/exe --no-skip --no-colors --source-file='*communicator_test.cpp' -tc='" + filter + "'";
    if (!exclude.empty()) command += " -tce='" + exclude + "'";
    command += " 2>&1";
    auto begin = std::chrono::steady_clock::now();
    ChildRun run;
    FILE* pipe = popen(command.c_str(), "r");
    REQUIRE_MESSAGE(pipe != nullptr, "popen failed: " << command);
    char buffer[4096];
    size_t n;
    while ((n = std::fread(buffer, 1, sizeof(buffer), pipe)) > 0) run.output.append(buffer, n);
    int status = pclose(pipe);
    run.status = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    run.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - begin).count();
    return run;
}

// The doctest summaries ("test cases: 6 | 6 passed | 0 failed | ...") in a child run's output.
struct Summary {
    int cases = 0, passed = 0, failed = 0;
};
std::vector<Summary> summaries(const std::string& output) {
    std::vector<Summary> out;
    std::istringstream lines(output);
    std::string line;
    while (std::getline(lines, line)) {
        auto at = line.find("test cases:");
        if (at == std::string::npos) continue;
        Summary s;
        if (std::sscanf(line.c_str() + at, "test cases: %d | %d passed | %d failed", &s.cases, &s.passed, &s.failed) == 3)
            out.push_back(s);
    }
    return out;
}

// Restores an environment variable when it goes out of scope.
struct EnvGuard {
    std::string name;
    std::optional<std::string> old;
    explicit EnvGuard(std::string n) : name(std::move(n)) {
        if (const char* v = std::getenv(name.c_str())) old = v;
    }
    ~EnvGuard() {
        if (old) setenv(name.c_str(), old->c_str(), 1);
        else unsetenv(name.c_str());
    }
};

constexpr int mpi2_cases = 6;  // the "mpi2: ..." cases below, less the timeout one

}  // namespace

// ---------------------------------------------------------------- one process

TEST_CASE("dist: detect_launch reads Open MPI's environment") {
    EnvGuard r("OMPI_COMM_WORLD_RANK"), s("OMPI_COMM_WORLD_SIZE"), lr("OMPI_COMM_WORLD_LOCAL_RANK"),
        ls("OMPI_COMM_WORLD_LOCAL_SIZE");
    setenv("OMPI_COMM_WORLD_RANK", "3", 1);
    setenv("OMPI_COMM_WORLD_SIZE", "4", 1);
    setenv("OMPI_COMM_WORLD_LOCAL_RANK", "1", 1);
    setenv("OMPI_COMM_WORLD_LOCAL_SIZE", "2", 1);
    dist::Launch l = dist::detect_launch();
    CHECK(l.under_mpirun);
    CHECK(l.rank == 3);
    CHECK(l.world == 4);
    CHECK(l.local_rank == 1);
    CHECK(l.local_world == 2);

    setenv("OMPI_COMM_WORLD_RANK", "4", 1);
    CHECK(thrown_message([] { dist::detect_launch(); }).find("rank 4 of a world of 4") != std::string::npos);
    setenv("OMPI_COMM_WORLD_RANK", "x", 1);
    CHECK(thrown_message([] { dist::detect_launch(); }).find("OMPI_COMM_WORLD_RANK='x'") != std::string::npos);

    for (const char* name : {"OMPI_COMM_WORLD_RANK", "OMPI_COMM_WORLD_SIZE", "OMPI_COMM_WORLD_LOCAL_RANK",
                             "OMPI_COMM_WORLD_LOCAL_SIZE"})
        unsetenv(name);
    EnvGuard pr("PMI_RANK");
    unsetenv("PMI_RANK");
    dist::Launch alone = dist::detect_launch();
    CHECK_FALSE(alone.under_mpirun);
    CHECK(alone.rank == 0);
    CHECK(alone.world == 1);
}

TEST_CASE("dist: a world of one sums, broadcasts and meets itself") {
    auto comm = cpu_comm();
    CHECK(comm->rank() == 0);
    CHECK(comm->world() == 1);
    CHECK(comm->backend() == dist::Backend::mpi);
    CHECK(dist::backend_name(comm->backend()) == "mpi");
    CHECK(comm->device() == Device::cpu());
    for (DType dt : {DType::f32, DType::bf16, DType::f64, DType::i64}) {
        INFO(dtype_name(dt));
        Tensor t = input({3, 5}, 0, DType::f64, 1).to(dt);
        Tensor before = t.clone();
        comm->all_reduce_sum(t);
        CHECK(test::same_bits(t, before));
        Tensor u = before.clone();
        auto work = comm->all_reduce_sum_async(u, "u");
        work->wait();
        work->wait();  // a second wait does nothing
        CHECK(test::same_bits(u, before));
    }
    Tensor b = Tensor::from(std::vector<float>{1, 2, 3});
    comm->broadcast(b, 0);
    CHECK(b.to_vector<float>() == std::vector<float>{1, 2, 3});
    std::vector<double> d{1.5, -2};
    comm->all_reduce_sum_host(d);
    CHECK(d == std::vector<double>{1.5, -2});
    std::vector<int64_t> i{int64_t(1) << 40, 7};
    comm->all_reduce_sum_host(i);
    CHECK(i == std::vector<int64_t>{int64_t(1) << 40, 7});
    CHECK(comm->broadcast_host("state names", 0) == "state names");
    comm->barrier();
}

TEST_CASE("dist: bad inputs are errors that name the op and the tensor") {
    auto comm = cpu_comm();
    Tensor ints = Tensor::zeros({2, 3}, DType::i32);
    std::string m = thrown_message([&] { comm->all_reduce_sum(ints); });
    CHECK(m.find("all_reduce_sum") != std::string::npos);
    CHECK(m.find("f32, bf16, f64 or i64") != std::string::npos);
    CHECK(m.find("tensor (2, 3) i32 [cpu]") != std::string::npos);

    m = thrown_message([&] { comm->all_reduce_sum_async(Tensor::zeros({4}, DType::u8), "bucket 3"); });
    CHECK(m.find("all_reduce_sum_async") != std::string::npos);
    INFO(m);
    CHECK(m.find("bucket 3 (4,) u8 [cpu]") != std::string::npos);

    Tensor strided = Tensor::zeros({4, 6}).transpose(0, 1);
    m = thrown_message([&] { comm->all_reduce_sum(strided); });
    CHECK(m.find("contiguous") != std::string::npos);
    m = thrown_message([&] { comm->broadcast(strided, 0); });
    CHECK(m.find("broadcast") != std::string::npos);
    CHECK(m.find("contiguous") != std::string::npos);

    Tensor undefined;
    CHECK(thrown_message([&] { comm->all_reduce_sum(undefined); }).find("undefined") != std::string::npos);

    Tensor f = Tensor::zeros({2});
    m = thrown_message([&] { comm->broadcast(f, 1); });
    CHECK(m.find("root 1 is not a rank of this job (world 1)") != std::string::npos);
    CHECK(thrown_message([&] { comm->broadcast_host("x", -1); }).find("root -1") != std::string::npos);

    m = thrown_message([] { dist::make_communicator(dist::Backend::mpi, Device::cuda(0), {}); });
    CHECK(m.find("MPI backend takes CPU tensors, asked for cuda:0") != std::string::npos);
    CHECK(thrown_message([] { cpu_comm(-1); }).find("timeout_s") != std::string::npos);
    if (!dist::built_with_nccl()) {
        m = thrown_message([] { dist::make_communicator(dist::Backend::nccl, Device::cuda(0), {}); });
        CHECK(m.find("this build has no NCCL support") != std::string::npos);
    }

    // The communicator still works after the refusals.
    Tensor ok = Tensor::from(std::vector<float>{4, 5});
    comm->all_reduce_sum(ok);
    CHECK(ok.to_vector<float>() == std::vector<float>{4, 5});
}

TEST_CASE("dist: the watchdog numbers collectives and polls their completion") {
    dist::ensure_mpi();
    dist::Watchdog dog(0, 1, 30);
    CHECK(dog.enabled());
    uint64_t a = dog.start("barrier");
    uint64_t b = dog.start("all_reduce 'x'");
    CHECK(a == 1);
    CHECK(b == 2);
    CHECK(dog.pending() == 2);
    dog.done(b);
    dog.done(a);
    CHECK(dog.pending() == 0);

    std::atomic<bool> finished{false};
    uint64_t c = dog.start("all_reduce 'event'", [&] { return finished.load(); });
    CHECK(c == 3);
    std::this_thread::sleep_for(std::chrono::milliseconds(150));
    CHECK(dog.pending() == 1);  // the thread polled and found it running
    finished = true;
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(2);
    while (dog.pending() != 0 && std::chrono::steady_clock::now() < deadline)
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
    CHECK(dog.pending() == 0);  // ...and saw it finish without a done() call

    dist::Watchdog off(0, 1, 0);
    CHECK_FALSE(off.enabled());
    CHECK(off.start("barrier") == 1);
    CHECK(off.pending() == 0);  // disabled: nothing tracked
}

// ---------------------------------------------------------------- two ranks (under mpirun)

TEST_CASE("mpi2: f32, f64 and i64 sums match the host's" * doctest::skip()) {
    auto comm = cpu_comm();
    REQUIRE(comm->world() == 2);
    for (DType dt : {DType::f32, DType::f64}) {
        INFO(dtype_name(dt));
        Tensor t = input({37, 11}, comm->rank(), dt, 2);
        comm->all_reduce_sum(t);
        // One addition of two values: the same bits in either order.
        Tensor expected = input({37, 11}, 0, dt, 2).clone().add_(input({37, 11}, 1, dt, 2));
        CHECK(test::same_bits(t, expected));
    }
    const int64_t big = int64_t(1) << 40;  // NOTE: beyond 32 bits: a narrowing path would lose it
    Tensor i = Tensor::from(std::vector<int64_t>{big + comm->rank(), -5 * (comm->rank() + 1), 0});
    comm->all_reduce_sum(i);
    CHECK(i.to_vector<int64_t>() == std::vector<int64_t>{2 * big + 1, -15, 0});
}

TEST_CASE("mpi2: bf16 sums add in f32 and round to nearest even" * doctest::skip()) {
    auto comm = cpu_comm();
    REQUIRE(comm->world() == 2);
    const int r = comm->rank();
    // Exact: small halves and integers.
    Tensor exact = Tensor::from(std::vector<float>{0.5f + r, -2.0f * r, 64.0f, 1.0f}).to(DType::bf16);
    comm->all_reduce_sum(exact);
    CHECK(exact.to_vector<float>() == std::vector<float>{2.0f, -2.0f, 128.0f, 2.0f});

    // Rounding: 1 + 2^-8 is a tie (to 1, the even mantissa), 1 + 3·2^-9 rounds up to 1 + 2^-7, and
    // random values; the host reference rounds each f32 sum of the two bf16 inputs.
    std::vector<float> mine = r == 0 ? std::vector<float>{1.0f, 1.0f, 256.0f}
                                     : std::vector<float>{0x1p-8f, 3 * 0x1p-9f, 1.5f};
    Tensor t = Tensor::from(mine).to(DType::bf16);
    comm->all_reduce_sum(t);
    CHECK(t.to_vector<float>() == std::vector<float>{1.0f, 1.0f + 0x1p-7f, 258.0f});

    Tensor x = input({1000}, r, DType::bf16, 3);
    comm->all_reduce_sum(x);
    auto v0 = input({1000}, 0, DType::bf16, 3).to_vector<float>(), v1 = input({1000}, 1, DType::bf16, 3).to_vector<float>();
    auto got = x.to_vector<float>();
    int rounded = 0;
    for (size_t k = 0; k < got.size(); ++k) {
        float sum = v0[k] + v1[k];
        float ref = float(bf16(sum));
        rounded += ref != sum;
        if (got[k] != ref) FAIL_CHECK("element " << k << ": " << got[k] << " != bf16(" << v0[k] << " + " << v1[k] << ") = " << ref);
    }
    CHECK(rounded > 100);  // the case does exercise the rounding
}

TEST_CASE("mpi2: async sums of several buffers overlap and land in place" * doctest::skip()) {
    auto comm = cpu_comm();
    REQUIRE(comm->world() == 2);
    const int r = comm->rank();
    std::vector<Shape> shapes{{1 << 20}, {3, 7}, {1000}, {64, 64}};
    std::vector<DType> dtypes{DType::f32, DType::f64, DType::bf16, DType::f32};
    std::vector<Tensor> buffers;
    std::vector<std::unique_ptr<dist::Work>> works;
    for (size_t k = 0; k < shapes.size(); ++k) {
        buffers.push_back(input(shapes[k], r, dtypes[k], 10 + k));
        works.push_back(comm->all_reduce_sum_async(buffers[k], "bucket " + std::to_string(k)));
    }
    // All four are in flight; wait in reverse order.
    for (size_t k = works.size(); k-- > 0;) works[k]->wait();
    for (size_t k = 0; k < shapes.size(); ++k) {
        INFO("bucket " << k);
        Tensor a = input(shapes[k], 0, dtypes[k], 10 + k), b = input(shapes[k], 1, dtypes[k], 10 + k);
        Tensor expected = dtypes[k] == DType::bf16 ? a.to(DType::f32).add_(b.to(DType::f32)).to(DType::bf16)
                                                   : a.clone().add_(b);
        CHECK(test::same_bits(buffers[k], expected));
    }
    // A Work dropped without wait() finishes in its destructor: the next collective still matches.
    { auto dropped = comm->all_reduce_sum_async(buffers[1], "dropped"); }
    std::vector<int64_t> n{1};
    comm->all_reduce_sum_host(n);
    CHECK(n == std::vector<int64_t>{2});
}

TEST_CASE("mpi2: broadcast from root 1" * doctest::skip()) {
    auto comm = cpu_comm();
    REQUIRE(comm->world() == 2);
    const int r = comm->rank();
    Tensor t = r == 1 ? Tensor::from(std::vector<float>{7, 8, 9, -1, 0.25f, 3}, {2, 3}) : Tensor::zeros({2, 3});
    comm->broadcast(t, 1);
    CHECK(t.to_vector<float>() == std::vector<float>{7, 8, 9, -1, 0.25f, 3});
    Tensor h = r == 1 ? Tensor::from(std::vector<float>{1.5f, -2.5f}).to(DType::bf16) : Tensor::zeros({2}, DType::bf16);
    comm->broadcast(h, 1);
    CHECK(h.to_vector<float>() == std::vector<float>{1.5f, -2.5f});
    Tensor z = r == 0 ? Tensor::from(std::vector<int64_t>{42}) : Tensor::zeros({1}, DType::i64);
    comm->broadcast(z, 0);
    CHECK(z.to_vector<int64_t>() == std::vector<int64_t>{42});
}

TEST_CASE("mpi2: host sums, broadcast_host and barrier" * doctest::skip()) {
    auto comm = cpu_comm();
    REQUIRE(comm->world() == 2);
    const int r = comm->rank();
    std::vector<double> d{0.5 + r, 1e300, -3.0 * r};
    comm->all_reduce_sum_host(d);
    CHECK(d == std::vector<double>{2.0, 2e300, -3.0});
    std::vector<int64_t> i{r + 1, (int64_t(1) << 50) * (r + 1)};
    comm->all_reduce_sum_host(i);
    CHECK(i == std::vector<int64_t>{3, (int64_t(1) << 50) * 3});
    std::vector<double> none;
    comm->all_reduce_sum_host(none);

    std::string long_text(100000, 'x');
    long_text[12345] = '!';
    std::string got = comm->broadcast_host(r == 1 ? long_text : "short", 1);
    CHECK(got == long_text);
    CHECK(comm->broadcast_host(r == 0 ? "" : "not me", 0) == "");

    // Rank 1 arrives late: rank 0's barrier must wait for it.
    auto begin = std::chrono::steady_clock::now();
    if (r == 1) std::this_thread::sleep_for(std::chrono::milliseconds(300));
    comm->barrier();
    double waited = std::chrono::duration<double>(std::chrono::steady_clock::now() - begin).count();
    CHECK(waited >= 0.25);
}

TEST_CASE("mpi2: bad input is refused on every rank and the job goes on" * doctest::skip()) {
    auto comm = cpu_comm();
    REQUIRE(comm->world() == 2);
    Tensor ints = Tensor::zeros({5}, DType::i32);
    std::string m = thrown_message([&] { comm->all_reduce_sum(ints); });
    CHECK(m.find("f32, bf16, f64 or i64") != std::string::npos);
    m = thrown_message([&] { comm->broadcast(ints, 2); });
    CHECK(m.find("root 2 is not a rank of this job (world 2)") != std::string::npos);
    Tensor ok = Tensor::from(std::vector<double>{1.0 + comm->rank()});
    comm->all_reduce_sum(ok);
    CHECK(ok.to_vector<double>() == std::vector<double>{3.0});
}

TEST_CASE("mpi2: timeout: rank 1 falls behind and rank 0's watchdog aborts the job" * doctest::skip()) {
    auto comm = cpu_comm(2.0);
    REQUIRE(comm->world() == 2);
    comm->set_context("iteration 7");
    Tensor t = Tensor::ones({4});
    comm->all_reduce_sum(t);  // #1: both ranks meet once
    if (comm->rank() == 1) std::this_thread::sleep_for(std::chrono::milliseconds(4000));
    comm->all_reduce_sum(t);  // #2: rank 0 waits here past its 2 s timeout
    FAIL("the watchdog did not abort rank 0");
}

TEST_CASE("dist: two ranks under mpirun pass the mpi2 cases") {
    ChildRun run = run_two_ranks("mpi2: *", "mpi2: timeout*");
    INFO(run.output);
    CHECK(run.status == 0);
    auto found = summaries(run.output);
    REQUIRE(found.size() == 2);  // one per rank
    for (const Summary& s : found) {
        CHECK(s.cases == mpi2_cases);
        CHECK(s.passed == mpi2_cases);
        CHECK(s.failed == 0);
    }
}

TEST_CASE("dist: a rank that falls behind trips the other's watchdog") {
    ChildRun run = run_two_ranks("mpi2: timeout*", "");
    INFO(run.output);
    CHECK(run.status != 0);
    CHECK(run.seconds < 20);
    CHECK(run.output.find("lumen dist: rank 0: all_reduce 'tensor' (#2, iteration 7) not done after") !=
          std::string::npos);
    CHECK(run.output.find("rank 1 last reported: #1 all_reduce 'tensor' started, #1 done (iteration 7)") != std::string::npos);
    CHECK(run.output.find("it is behind (has not started #2)") != std::string::npos);
    CHECK(run.output.find("aborting the job") != std::string::npos);
    CHECK(run.output.find("the watchdog did not abort rank 0") == std::string::npos);
}
