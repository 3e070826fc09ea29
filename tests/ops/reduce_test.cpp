// tests/ops/reduce_test.cpp: sum, mean, max, min, var and argmax: every subset of dims of a
// rank-3 tensor, with and without KeepDim, against naive f64 references (contiguous and strided
// inputs; f32, f64, bf16); empty dims, NaN propagation, argmax's first-index rule, integer and
// boolean sums; gradchecks of the sum/max/min nodes (and exact tie splitting) and of mean and var.
#include "tests/harness.h"

#include <fmt/format.h>

#include <cmath>
#include <functional>
#include <limits>

using namespace lumen;

namespace {

constexpr double nan_v = std::numeric_limits<double>::quiet_NaN();

// The values of x grouped by output position: group k holds the elements that reduce into
// output element k (row-major over the kept dims).
std::vector<std::vector<double>> groups_of(const Tensor& x, const std::vector<bool>& reduced) {
    const std::vector<double> v = x.to_vector<double>();
    const Shape& shape = x.shape();
    int64_t out_numel = 1;
    for (size_t d = 0; d < shape.size(); ++d) if (!reduced[d]) out_numel *= shape[d];
    std::vector<std::vector<double>> groups(static_cast<size_t>(out_numel));
    for (size_t i = 0; i < v.size(); ++i) {
        int64_t rest = int64_t(i), out = 0, scale = 1;
        for (size_t d = shape.size(); d-- > 0;) {
            const int64_t idx = rest % shape[d];
            rest /= shape[d];
            if (!reduced[d]) {
                out += idx * scale;
                scale *= shape[d];
            }
        }
        groups[size_t(out)].push_back(v[i]);
    }
    return groups;
}

enum class Op { sum, mean, max, min, var0, var1 };
const Op all_ops[] = {Op::sum, Op::mean, Op::max, Op::min, Op::var0, Op::var1};
const char* op_name(Op op) {
    const char* names[] = {"sum", "mean", "max", "min", "var(correction 0)", "var(correction 1)"};
    return names[int(op)];
}

double reference(Op op, const std::vector<double>& g) {
    const double n = double(g.size());
    double sum = 0;
    for (double v : g) sum += v;
    switch (op) {
    case Op::sum: return sum;
    case Op::mean: return sum / n;
    case Op::max:
    case Op::min: {
        double best = g.at(0);
        for (double v : g) {
            if (std::isnan(v)) return v;
            best = op == Op::max ? std::max(best, v) : std::min(best, v);
        }
        return best;
    }
    case Op::var0:
    case Op::var1: {
        double ss = 0;
        for (double v : g) ss += (v - sum / n) * (v - sum / n);
        return ss / (n - (op == Op::var1 ? 1 : 0));
    }
    }
    return 0;
}

Tensor run(Op op, const Tensor& x, const std::vector<int64_t>& dims, KeepDim keep) {
    switch (op) {
    case Op::sum: return ops::sum(x, dims, keep);
    case Op::mean: return ops::mean(x, dims, keep);
    case Op::max: return ops::max(x, dims, keep);
    case Op::min: return ops::min(x, dims, keep);
    case Op::var0: return ops::var(x, dims, 0, keep);
    case Op::var1: return ops::var(x, dims, 1, keep);
    }
    return {};
}

std::vector<double> f64(const Tensor& t) { return t.to_vector<double>(); }

}  // namespace

LUMEN_DEVICE_TEST("reduce: every subset of dims, KeepDim yes and no, against f64 references") {
    const Shape shape{3, 4, 5};
    for (DType dt : {DType::f32, DType::f64, DType::bf16})
        for (bool strided : {false, true}) {
            // Strided: the same shape as a permuted, stepped view of a larger tensor.
            Tensor x = strided ? test::random({5, 3, 8}, 4, dt, device).slice(2, 0, 8, 2).permute({1, 2, 0})
                               : test::random(shape, 4, dt, device);
            REQUIRE(x.shape() == shape);
            REQUIRE(x.is_contiguous() == !strided);
            for (int mask = 0; mask < 8; ++mask) {
                std::vector<int64_t> dims;
                std::vector<bool> reduced(3, mask == 0);  // no dims listed: reduce all
                for (int d = 0; d < 3; ++d)
                    if (mask & (1 << d)) {
                        dims.push_back(d - (d == 2 ? 3 : 0));  // dim 2 given as -1
                        reduced[size_t(d)] = true;
                    }
                Shape dropped, kept;
                for (int d = 0; d < 3; ++d) {
                    kept.push_back(reduced[size_t(d)] ? 1 : shape[size_t(d)]);
                    if (!reduced[size_t(d)]) dropped.push_back(shape[size_t(d)]);
                }
                const auto groups = groups_of(x, reduced);
                for (Op op : all_ops) {
                    std::vector<double> expected;
                    for (const auto& g : groups) expected.push_back(reference(op, g));
                    for (KeepDim keep : {KeepDim::no, KeepDim::yes}) {
                        INFO(op_name(op) << " " << dtype_name(dt) << (strided ? " strided" : "")
                             << " dims " << shape_str(dims) << (keep == KeepDim::yes ? " keepdim" : ""));
                        Tensor y = run(op, x, dims, keep);
                        CHECK(y.shape() == (keep == KeepDim::yes ? kept : dropped));
                        CHECK(y.dtype() == dt);
                        CHECK(y.device() == device);
                        CHECK_CLOSE(f64(y), expected, test::tolerance(dt));
                    }
                }
            }
            // Listing every dim is the same as listing none.
            CHECK(f64(ops::sum(x, {0, 1, 2})) == f64(ops::sum(x)));
            CHECK(f64(ops::max(x, {2, -3, 1})) == f64(ops::max(x)));
        }
}

LUMEN_DEVICE_TEST("reduce: empty dims, scalars and argument errors") {
    Tensor e = Tensor::zeros({3, 0, 4}, DType::f32, device);
    CHECK(ops::sum(e, {1}).shape() == Shape{3, 4});
    CHECK(f64(ops::sum(e, {1})) == std::vector<double>(12, 0.0));  // the sum of nothing is 0
    CHECK(ops::sum(e).item() == 0.0);
    CHECK(ops::sum(e, {0}).shape() == Shape{0, 4});
    for (double v : f64(ops::mean(e, {1}, KeepDim::yes))) CHECK(std::isnan(v));  // 0 / 0
    CHECK(ops::mean(e, {1}, KeepDim::yes).shape() == Shape{3, 1, 4});
    CHECK(std::isnan(ops::mean(e).item()));
    CHECK(std::isnan(ops::var(e).item()));
    const std::string es = "x (3, 0, 4) f32 [" + device.str() + "]";
    CHECK_THROWS_CONTAINING(ops::max(e, {1}), ("max: cannot reduce an empty dim (no identity for max/min): " + es).c_str());
    CHECK_THROWS_CONTAINING(ops::min(e), "min: cannot reduce an empty dim");
    CHECK_THROWS_CONTAINING(ops::argmax(e, 1), "argmax: cannot take argmax over an empty dim");
    CHECK(ops::max(e, {0}).shape() == Shape{0, 4});  // a non-empty dim of an empty tensor
    CHECK(ops::argmax(e, 2).shape() == Shape{3, 0});

    Tensor s = Tensor::scalar(2.5, DType::f64, device);
    CHECK(ops::sum(s).item() == 2.5);
    CHECK(ops::sum(s).dim() == 0);
    CHECK(ops::max(s, {0}).item() == 2.5);
    CHECK(ops::mean(s, {-1}, KeepDim::yes).item() == 2.5);
    CHECK(ops::argmax(s, 0).item() == 0);
    CHECK(std::isnan(ops::var(s).item()));  // one element, correction 1: 0 / 0
    CHECK(ops::var(s, {}, 0).item() == 0);

    Tensor x = Tensor::zeros({2, 3, 4}, DType::f32, device);
    CHECK_THROWS_CONTAINING(ops::sum(x, {1, 1}), "sum: dim 1 listed twice");
    CHECK_THROWS_CONTAINING(ops::max(x, {2, -1}), "max: dim -1 listed twice");
    CHECK_THROWS_CONTAINING(ops::sum(x, {3}), "sum: dim 3 out of range for a tensor of rank 3");
    CHECK_THROWS_CONTAINING(ops::argmax(x, -4), "argmax: dim -4 out of range");
    Tensor i = Tensor::zeros({2}, DType::i32, device);
    CHECK_THROWS_CONTAINING(ops::mean(i), "mean: expected a floating tensor");
    CHECK_THROWS_CONTAINING(ops::var(i), "var: expected a floating tensor");
}

LUMEN_DEVICE_TEST("reduce: max, min and argmax propagate NaN; argmax takes the first maximum") {
    for (DType dt : {DType::f32, DType::f64, DType::bf16}) {
        INFO(dtype_name(dt));
        Tensor x = Tensor::from<double>({1, nan_v, 3, nan_v, 0, 0, 2, 5, nan_v, 1, 2, 3}, {4, 3}).to(dt).to(device);
        std::vector<double> mx = f64(ops::max(x, {1})), mn = f64(ops::min(x, {1}));
        for (int r = 0; r < 3; ++r) CHECK((std::isnan(mx[size_t(r)]) && std::isnan(mn[size_t(r)])));
        CHECK(mx[3] == 3);
        CHECK(mn[3] == 1);
        CHECK(std::isnan(ops::max(x).item()));
        CHECK(ops::argmax(x, 1).to_vector<int64_t>() == std::vector<int64_t>{1, 0, 2, 2});
        // Down the columns (a strided reduction): every column holds a NaN.
        CHECK(ops::argmax(x, 0).to_vector<int64_t>() == std::vector<int64_t>{1, 0, 2});
        for (double v : f64(ops::min(x, {0}))) CHECK(std::isnan(v));
        Tensor inf = Tensor::from<double>({-INFINITY, -INFINITY, INFINITY, 1}, {2, 2}).to(dt).to(device);
        CHECK(f64(ops::max(inf, {1})) == std::vector<double>{-INFINITY, INFINITY});
        CHECK(ops::argmax(inf, 1).to_vector<int64_t>() == std::vector<int64_t>{0, 0});

        Tensor ties = Tensor::from<double>({3, 1, 3, 2, 2, 2, 0, 5, 5}, {3, 3}).to(dt).to(device);
        Tensor a = ops::argmax(ties, 1);
        CHECK(a.dtype() == DType::i64);
        CHECK(a.to_vector<int64_t>() == std::vector<int64_t>{0, 0, 1});
        CHECK(ops::argmax(ties, -2).to_vector<int64_t>() == std::vector<int64_t>{0, 2, 2});
        CHECK(ops::argmax(ties, 1, KeepDim::yes).shape() == Shape{3, 1});
        CHECK(ops::argmax(ties.transpose(0, 1), 1).to_vector<int64_t>() == std::vector<int64_t>{0, 2, 2});
    }
    Tensor b = Tensor::from<bool>({false, true, true}).to(device);
    CHECK(ops::argmax(b, 0).item() == 1);
    Tensor i = Tensor::from<int32_t>({-5, 7, 7, -9}).to(device);
    CHECK(ops::argmax(i, 0).item() == 1);
}

LUMEN_DEVICE_TEST("reduce: integer and boolean inputs; bf16 sums accumulate wide") {
    Tensor i = Tensor::from<int32_t>({1, 2, 3, 4, 5, 6}, {2, 3}).to(device);
    CHECK(ops::sum(i).dtype() == DType::i64);
    CHECK(ops::sum(i).item() == 21);
    CHECK(ops::sum(i, {0}).to_vector<int64_t>() == std::vector<int64_t>{5, 7, 9});
    CHECK(ops::sum(i.transpose(0, 1), {1}).to_vector<int64_t>() == std::vector<int64_t>{5, 7, 9});
    CHECK(ops::max(i, {1}).dtype() == DType::i32);
    CHECK(ops::max(i, {1}).to_vector<int32_t>() == std::vector<int32_t>{3, 6});
    CHECK(ops::min(i).item() == 1);
    CHECK(ops::sum(Tensor::from<uint8_t>({200, 200, 255}).to(device)).item() == 655);  // no u8 wrap
    CHECK(ops::sum(Tensor::from<int8_t>({-100, -100}).to(device)).item() == -200);
    CHECK(ops::sum(Tensor::from<int64_t>({int64_t(1) << 40, int64_t(1) << 40}).to(device)).item() == 0x1p41);
    Tensor flags = Tensor::from<bool>({true, false, true, true}).to(device);
    CHECK(ops::sum(flags).dtype() == DType::i64);
    CHECK(ops::sum(flags).item() == 3);
    CHECK(ops::max(flags).item() == 1);
    CHECK(ops::min(flags).item() == 0);

    // 1000 ones: a bf16 running sum would stop at 256; the kernel accumulates in f64.
    Tensor ones = Tensor::ones({1000}, DType::bf16, device);
    CHECK(ops::sum(ones).item() == 1000);
    CHECK(ops::mean(ones).item() == 1);
    Tensor third = Tensor::full({3000}, 1.0 / 3, DType::f32, device);
    CHECK(std::abs(ops::sum(third).item() - 1000.0) < 1e-3);
}

LUMEN_GRADCHECK_COVERS("sum", "max", "min");

TEST_CASE("reduce: gradcheck of sum, max and min, with strided inputs made inside f") {
    const Tensor x = test::leaf({3, 4, 5}, 21);
    using Dims = std::vector<int64_t>;
    using View = std::function<Tensor(const Tensor&)>;
    const View views[] = {
        [](const Tensor& t) { return t; },
        [](const Tensor& t) { return t.permute({2, 0, 1}); },                 // (5, 3, 4)
        [](const Tensor& t) { return t.transpose(0, 2).slice(1, 0, 4, 2); },  // (5, 2, 3)
    };
    for (const Dims& dims : {Dims{}, Dims{1}, Dims{0, 2}, Dims{-1}, Dims{0, 1, 2}})
        for (KeepDim keep : {KeepDim::no, KeepDim::yes})
            for (size_t v = 0; v < std::size(views); ++v) {
                INFO("dims " << shape_str(dims) << (keep == KeepDim::yes ? " keepdim" : "") << " view " << v);
                const View view = views[v];
                CHECK_GRADCHECK([=](const auto& in) { return ops::sum(view(in[0]), dims, keep); }, {x});
                CHECK_GRADCHECK([=](const auto& in) { return ops::max(view(in[0]), dims, keep); }, {x});
                CHECK_GRADCHECK([=](const auto& in) { return ops::min(view(in[0]), dims, keep); }, {x});
            }
    Tensor y = ops::max(x, {1});
    REQUIRE(y.grad_fn());
    CHECK(y.grad_fn()->name == "max");
    CHECK(ops::min(x).grad_fn()->name == "min");
    CHECK(ops::sum(x, {0}).grad_fn()->name == "sum");
}

TEST_CASE("reduce: max and min split the gradient evenly among ties") {
    Tensor x = Tensor::from<double>({1, 3, 3, 2, 2, 2}, {2, 3}).requires_grad_();
    ops::sum(ops::max(x, {1})).backward();
    CHECK(x.grad().to_vector<double>() == std::vector<double>{0, 0.5, 0.5, 1.0 / 3, 1.0 / 3, 1.0 / 3});
    x.zero_grad();
    ops::sum(ops::max(x, {1}) * Tensor::from<double>({2, 3})).backward();  // upstream weights
    CHECK(x.grad().to_vector<double>() == std::vector<double>{0, 1, 1, 1, 1, 1});

    Tensor m = Tensor::from<double>({1, 1, 3, 2, 0, 2}, {2, 3}).requires_grad_();
    ops::sum(ops::min(m, {1}, KeepDim::yes)).backward();
    CHECK(m.grad().to_vector<double>() == std::vector<double>{0.5, 0.5, 0, 0, 1, 0});

    Tensor all = Tensor::from<double>({5, 1, 5, 5}, {2, 2}).requires_grad_();
    ops::max(all).backward();
    CHECK(all.grad().to_vector<double>() == std::vector<double>{1.0 / 3, 0, 1.0 / 3, 1.0 / 3});

    Tensor col = Tensor::from<double>({4, 4, 1, 4}, {2, 2}).requires_grad_();  // ties down a column
    ops::sum(ops::max(col, {0})).backward();
    CHECK(col.grad().to_vector<double>() == std::vector<double>{1, 0.5, 0, 0.5});

    Tensor s = Tensor::from<double>({1, 2, 3, 4, 5, 6}, {2, 3}).requires_grad_();
    ops::sum(ops::sum(s, {1}) * Tensor::from<double>({10, 100})).backward();
    CHECK(s.grad().to_vector<double>() == std::vector<double>{10, 10, 10, 100, 100, 100});
}

TEST_CASE("reduce: gradcheck of the mean and var compositions") {
    const Tensor x = test::leaf({3, 4, 5}, 22);
    using Dims = std::vector<int64_t>;
    using View = std::function<Tensor(const Tensor&)>;
    const View views[] = {
        [](const Tensor& t) { return t; },
        [](const Tensor& t) { return t.transpose(0, 1); },     // (4, 3, 5)
        [](const Tensor& t) { return t.permute({1, 2, 0}); },  // (4, 5, 3)
    };
    for (const Dims& dims : {Dims{}, Dims{1}, Dims{0, 2}, Dims{-1}})
        for (KeepDim keep : {KeepDim::no, KeepDim::yes})
            for (size_t v = 0; v < std::size(views); ++v) {
                INFO("dims " << shape_str(dims) << (keep == KeepDim::yes ? " keepdim" : "") << " view " << v);
                const View view = views[v];
                CHECK_GRADCHECK([=](const auto& in) { return ops::mean(view(in[0]), dims, keep); }, {x});
                for (int64_t c : {0, 1})
                    CHECK_GRADCHECK([=](const auto& in) { return ops::var(view(in[0]), dims, c, keep); }, {x});
            }
}
