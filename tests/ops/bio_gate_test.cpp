// tests/ops/bio_gate_test.cpp: WiggleGPT v2's bio_gate (shared/specs/wiggle.md §2, §11 rows 2-3):
// the spec's gate values and counts, the counting rules (exact counts per call, none without counts,
// in backward or in a checkpoint recompute, strided counters), forward and gradients against the
// double reference on awkward shapes, and the gradcheck. Every LUMEN_DEVICE_TEST runs on the GPU too.
#include "tests/ops/wiggle_testing.h"

#include "autograd/checkpoint.h"
#include "core/kernels/wiggle.h"

using namespace lumen;
using namespace lumen::wiggle_test;

LUMEN_DEVICE_TEST("bio_gate: spec §11 row 2 known answers (v, s, counted 0.75, ds/dv at v = 0.5)") {
    const std::vector<double> z = {-3, -1, 0, 2};
    const std::vector<double> want_v = {0.0474259, 0.2689414, 0.5, 0.8807971};
    const std::vector<double> want_s = {0.2664184, 0.5236591, 0.7772999, 0.9590655};
    const test::Tolerance seven_digits{1e-7, 1e-6};
    for (DType dt : {DType::f32, DType::f64}) {
        INFO(dtype_name(dt));
        Tensor a = leaf_values({1, 1, 1, 1}, {4}, dt, device), zt = leaf_values(z, {4}, dt, device);
        Tensor counts = Tensor::zeros({2}, DType::i64, device);
        Tensor m = ops::bio_gate(a, zt, 0.25, &counts);  // a = 1: m = s
        const std::vector<double> s = m.to_vector<double>();
        CHECK_CLOSE(s, want_s, seven_digits);
        // v from s: s = σ(5(v − θ)) ⇒ v = θ + logit(s)/5.
        std::vector<double> v;
        for (double si : s) v.push_back(0.25 + std::log(si / (1 - si)) / 5);
        CHECK_CLOSE(v, want_v, test::Tolerance{dt == DType::f64 ? 1e-7 : 2e-6, 1e-6});
        // Counted (no, yes, yes, yes): 3 of 4.
        CHECK(counts.to_vector<int64_t>() == std::vector<int64_t>{3, 4});
        // ds/dv at v = 0.5 (z = 0): dz = ds/dv · v(1 − v) with dm = a = 1; da = s.
        m.backward(Tensor::ones({4}, dt, device));
        CHECK(std::fabs(zt.grad().to_vector<double>()[2] / 0.25 - 0.8655239) < (dt == DType::f64 ? 1e-7 : 1e-6));
        CHECK_CLOSE(a.grad().to_vector<double>(), want_s, seven_digits);
        CHECK(counts.to_vector<int64_t>() == std::vector<int64_t>{3, 4});  // backward never counts
    }
}

LUMEN_DEVICE_TEST("bio_gate: spec §11 row 3, z = 0 (v = 0.5) counts 1.0 at θ = 0.25 and 0.0 at θ = 0.5") {
    for (DType dt : {DType::f32, DType::f64, DType::bf16}) {
        INFO(dtype_name(dt));
        Tensor a = test::random({6, 11}, 50, dt, device), z = Tensor::zeros({6, 11}, dt, device);
        Tensor counts = Tensor::zeros({2}, DType::i64, device);
        ops::bio_gate(a, z, 0.25, &counts);
        CHECK(counts.to_vector<int64_t>() == std::vector<int64_t>{66, 66});
        counts.zero_();
        ops::bio_gate(a, z, 0.5, &counts);  // strict >: 0.5 is not above 0.5
        CHECK(counts.to_vector<int64_t>() == std::vector<int64_t>{0, 66});
    }
}

namespace {

// z values on a 1/32 grid in [-4, 4] (exact in bf16), in a scrambled order: none within 0.004 of
// logit(0.25) or logit(0.7), so v > θ has the same answer in every precision.
std::vector<double> grid_z(int64_t n, int64_t salt) {
    std::vector<double> z;
    for (int64_t i = 0; i < n; ++i) z.push_back(double((i * 37 + salt) % 257 - 128) / 32);
    return z;
}
int64_t host_count(const std::vector<double>& z, double threshold) {
    int64_t active = 0;
    for (double zi : z) active += sigmoid(zi) > threshold;
    return active;
}

}  // namespace

LUMEN_DEVICE_TEST("bio_gate: counts add exactly numel per call and the host recount of v > θ") {
    for (DType dt : {DType::f32, DType::bf16, DType::f16, DType::f64})
        for (const Shape& s : {Shape{7, 13}, Shape{2, 3, 5}, Shape{513, 1000}, Shape{1, 1}, Shape{0, 4}})
            for (double threshold : {0.25, 0.7}) {
                INFO(dtype_name(dt) << " " << shape_str(s) << " θ " << threshold);
                const int64_t n = numel_of(s);
                Tensor a = test::random(s, 51, dt, device);
                Tensor counts = Tensor::full({2}, 5, DType::i64, device);  // adds to what is there
                int64_t active = 5;
                for (int64_t call = 0; call < 3; ++call) {
                    const std::vector<double> z = grid_z(n, call);
                    ops::bio_gate(a, values(z, s, dt, device), threshold, &counts);
                    active += host_count(z, threshold);
                }
                CHECK(counts.to_vector<int64_t>() == std::vector<int64_t>{active, 5 + 3 * n});
            }
    // A strided view of a larger counter buffer: column 1 of (2, 3) takes [active, total].
    Tensor buffer = Tensor::zeros({2, 3}, DType::i64, device);
    Tensor column = buffer.select(1, 1);
    const std::vector<double> z = grid_z(40, 3);
    ops::bio_gate(Tensor::ones({40}, DType::f32, device), values(z, {40}, DType::f32, device), 0.25, &column);
    CHECK(buffer.to_vector<int64_t>() == std::vector<int64_t>{0, host_count(z, 0.25), 0, 0, 40, 0});
}

LUMEN_DEVICE_TEST("bio_gate: no counting without counts, in backward, or in a checkpoint recompute") {
    const std::vector<double> zv = grid_z(60, 7);
    const int64_t active = host_count(zv, 0.25);
    Tensor a = test::random({6, 10}, 52, DType::f32, device).set_requires_grad();
    Tensor z = values(zv, {6, 10}, DType::f32, device).detach().set_requires_grad();
    Tensor counts = Tensor::zeros({2}, DType::i64, device);
    // No counts: the same output, nothing to count into.
    Tensor m_plain = ops::bio_gate(a, z, 0.25);
    Tensor m = ops::bio_gate(a, z, 0.25, &counts);
    CHECK(test::same_bits(m, m_plain));
    CHECK(counts.to_vector<int64_t>() == std::vector<int64_t>{active, 60});
    ops::sum(m).backward();
    CHECK(counts.to_vector<int64_t>() == std::vector<int64_t>{active, 60});
    // Under checkpointing: the first forward counts once; the recompute in backward does not.
    counts.zero_();
    Tensor w = Tensor::full({10}, 0.5, DType::f32, device);
    Tensor y = autograd::checkpoint(
        [&](const std::vector<Tensor>& in) { return ops::bio_gate(in[0] * w, in[1], 0.25, &counts); }, {a, z});
    CHECK(counts.to_vector<int64_t>() == std::vector<int64_t>{active, 60});
    a.zero_grad(), z.zero_grad();
    ops::sum(y).backward();
    CHECK(counts.to_vector<int64_t>() == std::vector<int64_t>{active, 60});
    REQUIRE(a.grad().defined());  // the recompute ran
    CHECK(z.grad().defined());
}

LUMEN_DEVICE_TEST("bio_gate: forward and gradients match the double reference on awkward shapes") {
    for (DType dt : {DType::f32, DType::f64, DType::bf16, DType::f16})
        for (const Shape& s : {Shape{0, 5}, Shape{1, 1}, Shape{7, 3}, Shape{2, 3, 33}, Shape{513, 1000}})
            for (int need = 0; need < 4; ++need) {  // bit 0: a, bit 1: z
                INFO(dtype_name(dt) << " " << shape_str(s) << " need " << need);
                Tensor a = test::random(s, 70, dt, device, -2, 2).set_requires_grad(need & 1);
                Tensor z = test::random(s, 71, dt, device, -6, 6).set_requires_grad(need & 2);
                Tensor dm = test::random(s, 72, dt, device);
                const double threshold = 0.3;
                Tensor m = ops::bio_gate(a, z, threshold);
                const GateRef want = ref_bio_gate(a.to_vector<double>(), z.to_vector<double>(), threshold,
                                                  dm.to_vector<double>());
                const test::Tolerance tol = test::tolerance(dt);
                CHECK_CLOSE(m.to_vector<double>(), want.m, tol);
                if (need == 0) {
                    CHECK_FALSE(m.requires_grad());
                    continue;
                }
                m.backward(dm);
                REQUIRE(a.grad().defined() == bool(need & 1));
                REQUIRE(z.grad().defined() == bool(need & 2));
                if (need & 1) CHECK_CLOSE(a.grad().to_vector<double>(), want.da, tol);
                if (need & 2) CHECK_CLOSE(z.grad().to_vector<double>(), want.dz, tol);
            }
    // Non-contiguous inputs.
    Tensor a = test::random({9, 4}, 73, DType::f32, device).transpose(0, 1);
    Tensor z = test::random({4, 18}, 74, DType::f32, device, -3, 3).slice(1, 0, 18, 2);
    CHECK_CLOSE(ops::bio_gate(a, z, 0.25).to_vector<double>(),
                ref_bio_gate(a.to_vector<double>(), z.to_vector<double>(), 0.25,
                             std::vector<double>(36, 1.0)).m,
                test::tolerance(DType::f32));
}

// ==== determinism ====

LUMEN_GRADCHECK_COVERS("bio_gate");

TEST_CASE("bio_gate: gradcheck for a and z") {
    auto f = [](const std::vector<Tensor>& in) { return ops::bio_gate(in[0], in[1], 0.25); };
    CHECK_GRADCHECK(f, {test::leaf({3, 4}, 120, -2, 2), test::leaf({3, 4}, 121, -4, 4)});
    CHECK_GRADCHECK(f, {test::leaf({2, 1, 5}, 122, -2, 2), test::leaf({2, 1, 5}, 123, -4, 4)});
    // The bio MLP's shape of use: z = a·W_gᵀ, so a gets both paths (direct, and through z).
    CHECK_GRADCHECK([](const std::vector<Tensor>& in) {
                        return ops::bio_gate(in[0], ops::matmul(in[0], in[1].transpose(0, 1)), 0.3);
                    },
                    {test::leaf({3, 4}, 124, -2, 2), test::leaf({4, 4}, 125)});
}
