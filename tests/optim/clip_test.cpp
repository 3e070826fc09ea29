// tests/optim/clip_test.cpp: clip_flags (specs/optimizers.md §1): the norm against a double
// reference over several gradients (multi-chunk, empty, missing), γ with and without clipping,
// the bad flag for NaN/Inf gradients and losses, thread-count independence, argument errors; on
// a GPU, CUDA against the CPU (same summation order: same bits) and repeats.
#include "tests/optim/optim_testing.h"

#include <omp.h>

using namespace lumen;
using namespace lumen::optim_test;

namespace {

// Parameters with gradients of awkward sizes (more than one chunk, odd, empty), one without.
std::vector<nn::Parameter> clip_params(Device device) {
    std::vector<nn::Parameter> ps = {param("a", {300, 700}, 1, device), param("b", {1}, 2, device),
                                     param("c", {65537}, 3, device), param("d", {0}, 4, device),
                                     param("e", {17, 3}, 5, device)};
    for (size_t i = 0; i < ps.size(); ++i)
        if (ps[i].name != "e") set_grad(ps[i], normal(ps[i].tensor.numel(), 100 + i, 0.3));
    return ps;
}

double reference_norm(const std::vector<nn::Parameter>& ps) {
    double sum = 0;
    for (const nn::Parameter& p : ps)
        if (p.tensor.grad().defined())
            for (double g : values(p.tensor.grad())) sum += g * g;
    return std::sqrt(sum);
}

}  // namespace

LUMEN_DEVICE_TEST("clip_flags: norm matches a double reference; γ = min(1, clip/(norm + 1e-6))") {
    const std::vector<nn::Parameter> ps = clip_params(device);
    const double norm = reference_norm(ps);
    for (double clip : {0.0, 1.0, 1e6}) {
        INFO("grad_clip " << clip);
        const std::vector<double> f = values(optim::clip_flags(ps, clip));
        REQUIRE(f.size() == 3);
        CHECK(std::fabs(f[2] - norm) <= 1e-6 * norm);
        const double gamma = clip == 0 ? 1.0 : std::min(1.0, clip / (norm + 1e-6));
        CHECK(std::fabs(f[0] - gamma) <= 1e-6 * gamma);
        CHECK(f[1] == 0.0);
    }
    // A non-contiguous (transposed) gradient gives the same norm.
    nn::Parameter t = param("t", {300, 700}, 1, device);
    t.tensor.set_grad(ps[0].tensor.grad().transpose(0, 1).contiguous().transpose(0, 1));
    REQUIRE(!t.tensor.grad().is_contiguous());
    std::vector<nn::Parameter> swapped = ps;
    swapped[0] = t;
    CHECK(test::same_bits(optim::clip_flags(swapped, 1.0), optim::clip_flags(ps, 1.0)));
    // No gradients at all: norm 0, γ 1.
    const std::vector<double> none = values(optim::clip_flags({param("z", {5}, 9, device)}, 1.0));
    CHECK(none == std::vector<double>{1.0, 0.0, 0.0});
}

LUMEN_DEVICE_TEST("clip_flags: a NaN or Inf gradient or loss sets bad") {
    const std::vector<nn::Parameter> ps = clip_params(device);
    for (float poison : {NAN, INFINITY, -INFINITY}) {
        std::vector<float> g = normal(ps[2].tensor.numel(), 7, 0.3);
        g[65536] = poison;  // in the second chunk of c
        set_grad(ps[2], g);
        CHECK(values(optim::clip_flags(ps, 1.0))[1] == 1.0);
    }
    set_grad(ps[2], normal(ps[2].tensor.numel(), 7, 0.3));
    for (float loss : {NAN, INFINITY}) {
        Tensor l = Tensor::from(std::vector<float>{loss}, {1}, device);
        CHECK(values(optim::clip_flags(ps, 1.0, l))[1] == 1.0);
    }
    Tensor fine = Tensor::from(std::vector<float>{3.5f}, {1}, device);
    CHECK(values(optim::clip_flags(ps, 1.0, fine))[1] == 0.0);
    // A loss in another float dtype is read too.
    Tensor bf = Tensor::from(std::vector<float>{NAN}, {1}, device).to(DType::bf16);
    CHECK(values(optim::clip_flags(ps, 1.0, bf))[1] == 1.0);
}

TEST_CASE("clip_flags: the same bits on any thread count") {
    const std::vector<nn::Parameter> ps = clip_params(Device::cpu());
    const Tensor many = optim::clip_flags(ps, 1.0);
    const int threads = omp_get_max_threads();
    omp_set_num_threads(1);
    const Tensor one = optim::clip_flags(ps, 1.0);
    omp_set_num_threads(threads);
    CHECK(test::same_bits(many, one));
}

TEST_CASE("clip_flags: argument errors") {
    const std::vector<nn::Parameter> ps = clip_params(Device::cpu());
    CHECK_THROWS_CONTAINING(optim::clip_flags(ps, -1.0), "grad_clip");
    CHECK_THROWS_CONTAINING(optim::clip_flags(ps, 1.0, Tensor::zeros({2})), "loss");
    nn::Parameter half = param("h", {4}, 1);
    half.tensor.set_grad(Tensor::zeros({4}, DType::bf16));
    CHECK_THROWS_CONTAINING(optim::clip_flags({half}, 1.0), "gradient of h");
}

LUMEN_CUDA_TEST("clip_flags: CUDA matches the CPU (the same summation order) and repeats") {
    const std::vector<nn::Parameter> pc = clip_params(Device::cpu()), pg = clip_params(device);
    const Tensor loss = Tensor::from(std::vector<float>{2.0f}, {1}, device);
    const Tensor fc = optim::clip_flags(pc, 1.0, loss.to(Device::cpu())), fg = optim::clip_flags(pg, 1.0, loss);
    CHECK_CLOSE(fg.to(Device::cpu()).to(DType::f64), fc.to(DType::f64), test::Tolerance{0, 1e-6});
    CHECK_MESSAGE(test::same_bits(fg, fc), fmt::format("CUDA {} vs CPU {}", fg, fc));
    CHECK(test::same_bits(optim::clip_flags(pg, 1.0, loss), fg));
}
