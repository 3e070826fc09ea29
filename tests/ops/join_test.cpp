// tests/ops/join_test.cpp: cat, stack, split and chunk: values against plain loops on awkward
// shapes (pieces of size 0, dim = -1, rank 1 and 3, non-contiguous inputs), errors, the piece
// counts of chunk (as torch.chunk), backward through each, and gradchecks. GPU-only: CUDA values
// and gradients against the CPU's on awkward shapes and strided pieces.
#include "tests/harness.h"

#include <functional>

using namespace lumen;

namespace {

// cat in plain loops over the host values: for each outer position, each piece's rows in turn.
std::vector<double> ref_cat(const std::vector<Tensor>& pieces, int64_t dim) {
    const Shape& s = pieces[0].shape();
    int64_t outer = 1, inner = 1;
    for (int64_t d = 0; d < dim; ++d) outer *= s[size_t(d)];
    for (size_t d = size_t(dim) + 1; d < s.size(); ++d) inner *= s[d];
    std::vector<std::vector<double>> values;
    for (const Tensor& p : pieces) values.push_back(p.to_vector<double>());
    std::vector<double> out;
    for (int64_t o = 0; o < outer; ++o)
        for (size_t i = 0; i < pieces.size(); ++i) {
            const int64_t n = pieces[i].shape()[size_t(dim)];
            for (int64_t j = 0; j < n; ++j)
                for (int64_t k = 0; k < inner; ++k) out.push_back(values[i][size_t((o * n + j) * inner + k)]);
        }
    return out;
}

struct CatCase {
    std::vector<Shape> shapes;
    int64_t dim;  // as passed (may be negative)
};

const std::vector<CatCase>& cat_cases() {
    static const std::vector<CatCase> cases = {
        {{{3}, {5}}, 0},                         // rank 1
        {{{0}, {4}, {0}}, -1},                   // pieces of size 0
        {{{2, 3}, {2, 5}, {2, 1}}, 1},
        {{{2, 3}, {4, 3}}, 0},
        {{{2, 3, 4}, {2, 3, 7}}, -1},            // rank 3, dim = -1
        {{{2, 3, 4}, {2, 0, 4}, {2, 5, 4}}, 1},  // rank 3, a middle piece of size 0
        {{{1, 1, 1}, {3, 1, 1}}, 0},
        {{{0, 3}, {0, 2}}, 1},                   // no elements at all
        {{{4, 33}}, 1},                          // one tensor: a copy
    };
    return cases;
}

}  // namespace

LUMEN_DEVICE_TEST("cat: values match plain loops on awkward shapes and dtypes") {
    for (DType dt : {DType::f32, DType::f64, DType::bf16, DType::i32})
        for (const CatCase& c : cat_cases()) {
            std::vector<Tensor> pieces;
            std::string shapes;
            for (size_t i = 0; i < c.shapes.size(); ++i) {
                pieces.push_back(test::random(c.shapes[i], 10 + i, dt, device, -5, 5));
                shapes += shape_str(c.shapes[i]) + " ";
            }
            INFO(dtype_name(dt) << " " << shapes << "dim " << c.dim);
            const int64_t dim = normalize_dim(c.dim, int64_t(c.shapes[0].size()), "test");
            Tensor y = ops::cat(pieces, c.dim);
            Shape expected_shape = c.shapes[0];
            expected_shape[size_t(dim)] = 0;
            for (const Shape& s : c.shapes) expected_shape[size_t(dim)] += s[size_t(dim)];
            CHECK(y.shape() == expected_shape);
            CHECK(y.dtype() == dt);
            CHECK(y.is_contiguous());
            CHECK_CLOSE(y.to_vector<double>(), ref_cat(pieces, dim), test::Tolerance{0, 0});  // a copy: exact
        }
}

LUMEN_DEVICE_TEST("cat: non-contiguous pieces, and one piece gives a copy") {
    Tensor a = test::random({5, 3}, 1, DType::f32, device).transpose(0, 1);              // (3, 5) strided
    Tensor b = test::random({3, 8}, 2, DType::f32, device).slice(1, 1, 8, 2);           // (3, 4) step 2
    REQUIRE_FALSE(a.is_contiguous());
    REQUIRE_FALSE(b.is_contiguous());
    CHECK_CLOSE(ops::cat({a, b}, 1).to_vector<double>(), ref_cat({a.contiguous(), b.contiguous()}, 1),
                test::Tolerance{0, 0});
    CHECK_CLOSE(ops::cat({a, b}, -1), ops::cat({a.contiguous(), b.contiguous()}, 1), test::Tolerance{0, 0});

    Tensor x = test::random({2, 3}, 3, DType::f32, device);
    Tensor y = ops::cat({x}, 0);
    CHECK_CLOSE(y, x, test::Tolerance{0, 0});
    CHECK(y.storage() != x.storage());  // a new tensor, not a view
}

LUMEN_DEVICE_TEST("cat: errors name the op, the offending tensor's index and its shape") {
    Tensor a = Tensor::zeros({2, 3}, DType::f32, device);
    Tensor b = Tensor::zeros({2, 4}, DType::f32, device);
    Tensor c = Tensor::zeros({3, 4}, DType::f32, device);
    CHECK_THROWS_CONTAINING(ops::cat({}, 0), "cat: expected at least one tensor");
    CHECK_THROWS_CONTAINING(ops::cat({a, b, c}, 1), "cat: tensor 2 has shape (3, 4)");
    CHECK_THROWS_CONTAINING(ops::cat({a, b, c}, 1), "tensors[2] (3, 4) f32");
    CHECK_THROWS_CONTAINING(ops::cat({a, b}, 0), "cat: tensor 1 has shape (2, 4), which differs from tensor 0's (2, 3) in dim 1");
    CHECK_THROWS_CONTAINING(ops::cat({a, Tensor::zeros({2, 3}, DType::bf16, device)}, 0),
                            "cat: tensor 1 has another dtype");
    CHECK_THROWS_CONTAINING(ops::cat({a, Tensor::zeros({2, 3, 1}, DType::f32, device)}, 0),
                            "cat: tensor 1 has rank 3, tensor 0 has rank 2");
    CHECK_THROWS_CONTAINING(ops::cat({a, a}, 2), "cat: dim 2 out of range");
    CHECK_THROWS_CONTAINING(ops::cat({Tensor::scalar(1.0, DType::f32, device)}, 0), "cat: tensor 0 is a scalar");
}

TEST_CASE("cat: backward gives each input its slice of dy, including empty pieces") {
    Tensor a = Tensor::from<double>({1, 2, 3, 4}, {2, 2}).requires_grad_();
    Tensor e = Tensor::zeros({2, 0}, DType::f64).requires_grad_();
    Tensor b = Tensor::from<double>({5, 6}, {2, 1}).requires_grad_();
    Tensor y = ops::cat({a, e, b}, 1);  // (2, 3)
    CHECK(y.to_vector<double>() == std::vector<double>{1, 2, 5, 3, 4, 6});
    y.backward(Tensor::from<double>({10, 20, 30, 40, 50, 60}, {2, 3}));
    CHECK(a.grad().to_vector<double>() == std::vector<double>{10, 20, 40, 50});
    CHECK(b.grad().to_vector<double>() == std::vector<double>{30, 60});
    CHECK(e.grad().shape() == Shape{2, 0});
}

LUMEN_GRADCHECK_COVERS("cat");

TEST_CASE("cat: gradcheck, with strided pieces and a piece that needs no grad") {
    CHECK_GRADCHECK([](const std::vector<Tensor>& in) { return ops::cat({in[0], in[1], in[2]}, 1); },
                    {test::leaf({2, 3}, 1), test::leaf({2, 1}, 2), test::leaf({2, 4}, 3)});
    CHECK_GRADCHECK([](const std::vector<Tensor>& in) {
        return ops::cat({in[0].transpose(0, 1), in[1].slice(0, 0, 6, 2)}, -1);  // (3, 2) ++ (3, 2) strided
    }, {test::leaf({2, 3}, 4), test::leaf({6, 2}, 5)});
    Tensor constant = test::random({1, 3}, 6, DType::f64);
    CHECK_GRADCHECK([constant](const std::vector<Tensor>& in) { return ops::cat({constant, in[0]}, 0); },
                    {test::leaf({2, 3}, 7)});
    CHECK_GRADCHECK([](const std::vector<Tensor>& in) { return ops::cat({in[0]}, 0); }, {test::leaf({4}, 8)});
}

LUMEN_DEVICE_TEST("stack: a new dim at any position, values from plain loops") {
    std::vector<Tensor> xs;
    for (uint64_t i = 0; i < 3; ++i) xs.push_back(test::random({2, 4}, 20 + i, DType::f32, device));
    std::vector<std::vector<double>> v;
    for (const Tensor& x : xs) v.push_back(x.to_vector<double>());
    const std::pair<int64_t, Shape> dims[] = {{0, {3, 2, 4}}, {1, {2, 3, 4}}, {2, {2, 4, 3}}, {-1, {2, 4, 3}}};
    for (const auto& [dim, shape] : dims) {
        INFO("dim " << dim);
        Tensor y = ops::stack(xs, dim);
        REQUIRE(y.shape() == shape);
        std::vector<double> expected;
        for (int64_t i = 0; i < shape[0]; ++i)
            for (int64_t j = 0; j < shape[1]; ++j)
                for (int64_t k = 0; k < shape[2]; ++k) {
                    // (piece, row, col) for each layout of the new dim
                    const int64_t d = dim < 0 ? 2 : dim;
                    const int64_t p = d == 0 ? i : d == 1 ? j : k;
                    const int64_t r = d == 0 ? j : i, c = d == 2 ? j : k;
                    expected.push_back(v[size_t(p)][size_t(r * 4 + c)]);
                }
        CHECK_CLOSE(y.to_vector<double>(), expected, test::Tolerance{0, 0});
    }
    Tensor s = ops::stack({Tensor::scalar(1.0, DType::f32, device), Tensor::scalar(2.0, DType::f32, device)}, 0);
    CHECK(s.to_vector<float>() == std::vector<float>{1.f, 2.f});
    CHECK(ops::stack({Tensor::zeros({0, 3}, DType::f32, device)}, 1).shape() == Shape{0, 1, 3});
}

LUMEN_DEVICE_TEST("stack: errors") {
    Tensor a = Tensor::zeros({2, 3}, DType::f32, device);
    CHECK_THROWS_CONTAINING(ops::stack({}, 0), "stack: expected at least one tensor");
    CHECK_THROWS_CONTAINING(ops::stack({a, a, Tensor::zeros({3, 2}, DType::f32, device)}, 0),
                            "stack: tensor 2 has shape (3, 2), tensor 0 has (2, 3)");
    CHECK_THROWS_CONTAINING(ops::stack({a, a}, 3), "stack: dim 3 out of range");
    CHECK_THROWS_CONTAINING(ops::stack({a, Tensor::zeros({2, 3}, DType::f64, device)}, 0),
                            "stack: tensor 1 has another dtype or device than tensor 0");
}

TEST_CASE("stack: gradcheck through unsqueeze + cat") {
    CHECK_GRADCHECK([](const std::vector<Tensor>& in) { return ops::stack({in[0], in[1].transpose(0, 1)}, 1); },
                    {test::leaf({2, 3}, 30), test::leaf({3, 2}, 31)});
}

namespace {
std::vector<int64_t> sizes_along(const std::vector<Tensor>& pieces, int64_t dim) {
    std::vector<int64_t> sizes;
    for (const Tensor& p : pieces) sizes.push_back(p.size(dim));
    return sizes;
}
}  // namespace

LUMEN_DEVICE_TEST("split and chunk: piece sizes as in PyTorch") {
    auto x_of = [&](int64_t n) { return test::random({2, n}, 40, DType::f32, device); };
    using V = std::vector<int64_t>;
    CHECK(sizes_along(ops::split(x_of(5), 2, 1), 1) == V{2, 2, 1});
    CHECK(sizes_along(ops::split(x_of(6), 3, -1), 1) == V{3, 3});
    CHECK(sizes_along(ops::split(x_of(2), 5, 1), 1) == V{2});
    CHECK(sizes_along(ops::split(x_of(0), 2, 1), 1) == V{0});       // torch.split: one empty piece
    CHECK(sizes_along(ops::chunk(x_of(5), 3, 1), 1) == V{2, 2, 1});
    CHECK(sizes_along(ops::chunk(x_of(6), 4, 1), 1) == V{2, 2, 2});  // fewer chunks than asked
    CHECK(sizes_along(ops::chunk(x_of(6), 3, -1), 1) == V{2, 2, 2});
    CHECK(sizes_along(ops::chunk(x_of(7), 2, 1), 1) == V{4, 3});
    CHECK(sizes_along(ops::chunk(x_of(2), 5, 1), 1) == V{1, 1});
    CHECK(sizes_along(ops::chunk(x_of(1), 4, 1), 1) == V{1});
    CHECK(sizes_along(ops::chunk(x_of(0), 3, 1), 1) == V{0, 0, 0}); // torch.chunk: `chunks` empties
    CHECK(sizes_along(ops::chunk(x_of(9), 1, 1), 1) == V{9});
}

LUMEN_DEVICE_TEST("split and chunk: views whose values are the slices, on rank 1 and 3") {
    Tensor x = test::random({3, 7, 2}, 41, DType::f32, device).transpose(0, 2);  // (2, 7, 3) strided
    const std::vector<double> v = x.contiguous().to_vector<double>();
    std::vector<Tensor> pieces = ops::split(x, 3, 1);
    REQUIRE(pieces.size() == 3);
    int64_t start = 0;
    for (const Tensor& p : pieces) {
        CHECK(p.storage() == x.storage());  // a view
        std::vector<double> expected;
        for (int64_t i = 0; i < 2; ++i)
            for (int64_t j = start; j < start + p.size(1); ++j)
                for (int64_t k = 0; k < 3; ++k) expected.push_back(v[size_t((i * 7 + j) * 3 + k)]);
        CHECK_CLOSE(p.to_vector<double>(), expected, test::Tolerance{0, 0});
        start += p.size(1);
    }
    CHECK(start == 7);
    CHECK_CLOSE(ops::cat(ops::chunk(x, 3, 1), 1), x, test::Tolerance{0, 0});
    Tensor r = Tensor::from<float>({1.f, 2.f, 3.f, 4.f, 5.f}, {5}, device);
    std::vector<Tensor> c = ops::chunk(r, 2, 0);
    REQUIRE(c.size() == 2);
    CHECK(c[0].to_vector<float>() == std::vector<float>{1.f, 2.f, 3.f});
    CHECK(c[1].to_vector<float>() == std::vector<float>{4.f, 5.f});
}

LUMEN_DEVICE_TEST("split and chunk: errors") {
    Tensor x = Tensor::zeros({2, 3}, DType::f32, device);
    CHECK_THROWS_CONTAINING(ops::split(x, 0, 1), "split: split size must be ≥ 1, got 0");
    CHECK_THROWS_CONTAINING(ops::split(x, 1, 2), "split: dim 2 out of range");
    CHECK_THROWS_CONTAINING(ops::split(Tensor::scalar(1.0, DType::f32, device), 1, 0), "split: cannot split a scalar");
    CHECK_THROWS_CONTAINING(ops::chunk(x, 0, 0), "chunk: chunks must be ≥ 1, got 0");
    CHECK_THROWS_CONTAINING(ops::chunk(x, 2, -3), "chunk: dim -3 out of range");
}

TEST_CASE("split and chunk: gradcheck through their slices") {
    // Each piece is weighted differently, so a gradient sent to the wrong piece fails.
    CHECK_GRADCHECK([](const std::vector<Tensor>& in) {
        std::vector<Tensor> p = ops::split(in[0].transpose(0, 1), 2, 0);  // (5, 3) -> 2, 2, 1 rows
        return ops::cat({p[2] * 3.0, p[0], p[1] * p[1]}, 0);
    }, {test::leaf({3, 5}, 50)});
    CHECK_GRADCHECK([](const std::vector<Tensor>& in) {
        std::vector<Tensor> p = ops::chunk(in[0], 3, -1);  // (2, 5) -> 2, 2, 1 cols
        return ops::cat({p[1], p[0] * 2.0}, 1);
    }, {test::leaf({2, 5}, 51)});
}

// ---- CUDA against the CPU (run only where a GPU is present) ----

namespace {

struct JoinRun {
    Tensor y;
    std::vector<Tensor> grads;  // one per input (float dtypes only)
};
using JoinFn = std::function<Tensor(const std::vector<Tensor>&)>;

// fn on `device` copies of the host inputs (fresh leaves requiring grad when floating), then the
// backward with a random dy of y's shape drawn on the CPU from `seed`.
JoinRun join_on(Device device, const std::vector<Tensor>& hosts, const JoinFn& fn, uint64_t seed) {
    std::vector<Tensor> leaves;
    for (const Tensor& h : hosts) {
        Tensor t = h.to(device).detach();  // a fresh leaf on every run, even on the CPU
        if (is_floating(t.dtype())) t.set_requires_grad(true);
        leaves.push_back(t);
    }
    Tensor y = fn(leaves);
    JoinRun run{y.detach(), {}};
    if (!is_floating(y.dtype())) return run;
    y.backward(test::random(y.shape(), seed, y.dtype()).to(device));
    for (const Tensor& l : leaves) run.grads.push_back(l.grad());
    return run;
}

}  // namespace

LUMEN_CUDA_TEST("cat, stack, split: CUDA values and gradients equal the CPU's") {
    struct Case {
        std::string name;
        std::vector<Shape> shapes;
        JoinFn fn;
    };
    using V = const std::vector<Tensor>&;
    const std::vector<Case> cases = {
        {"cat rows of 3", {{70000, 3}, {1, 3}, {0, 3}, {4097, 3}}, [](V in) { return ops::cat(in, 0); }},
        {"cat last dim, odd widths", {{5, 1}, {5, 33}, {5, 1025}, {5, 0}}, [](V in) { return ops::cat(in, -1); }},
        {"cat one element", {{1}, {1}}, [](V in) { return ops::cat(in, 0); }},
        {"cat no elements", {{0, 3}, {0, 2}}, [](V in) { return ops::cat(in, 1); }},
        {"cat strided pieces", {{33, 7}, {4097, 7}},
         [](V in) { return ops::cat({in[0].transpose(0, 1), in[1].slice(0, 1, 4097, 2).transpose(0, 1)}, 1); }},
        {"cat rank 3 middle", {{2, 3, 4097}, {2, 1, 4097}, {2, 5, 4097}}, [](V in) { return ops::cat(in, 1); }},
        {"stack dim 0", {{3, 1025}, {3, 1025}, {3, 1025}}, [](V in) { return ops::stack(in, 0); }},
        {"stack last dim, strided", {{33, 5}, {5, 33}},
         [](V in) { return ops::stack({in[0].transpose(0, 1), in[1]}, -1); }},
        {"split and weighted cat", {{7, 4097}},
         [](V in) {
             std::vector<Tensor> p = ops::split(in[0], 3, 0);  // 3, 3, 1 rows
             return ops::cat({p[2] * 3.0, p[0], p[1] * 0.5}, 0);
         }},
        {"chunk of a transpose", {{33, 10}},
         [](V in) {
             std::vector<Tensor> p = ops::chunk(in[0].transpose(0, 1), 3, 0);  // 4, 4, 2 rows of 33
             return ops::cat({p[1], p[2] * 2.0, p[0]}, 0);
         }},
    };
    for (DType dt : {DType::f32, DType::bf16, DType::f64, DType::i32})
        for (const Case& c : cases) {
            if (!is_floating(dt) && c.name.find("weighted") != std::string::npos) continue;
            if (!is_floating(dt) && c.name.find("chunk") != std::string::npos) continue;
            INFO(dtype_name(dt) << " " << c.name);
            std::vector<Tensor> hosts;
            for (size_t i = 0; i < c.shapes.size(); ++i)
                hosts.push_back(test::random(c.shapes[i], 600 + i, DType::f64, Device::cpu(), -5, 5).to(dt));
            const JoinRun cpu = join_on(Device::cpu(), hosts, c.fn, 610);
            const JoinRun gpu = join_on(device, hosts, c.fn, 610);
            CHECK(gpu.y.device() == device);
            CHECK_CLOSE(gpu.y.to(Device::cpu()), cpu.y, test::Tolerance{0, 0});  // copies (and exact scalings)
            REQUIRE(gpu.grads.size() == cpu.grads.size());
            for (size_t i = 0; i < cpu.grads.size(); ++i) {
                INFO("gradient of input " << i);
                REQUIRE(gpu.grads[i].defined());
                CHECK(gpu.grads[i].device() == device);
                CHECK_CLOSE(gpu.grads[i].to(Device::cpu()), cpu.grads[i], test::tolerance(dt));
            }
        }
}
