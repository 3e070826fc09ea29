// tests/ops/index_test.cpp: index_select and gather: values against plain loops (rank 1 to 3,
// every dim, empty and repeated indices, i32 and i64, non-contiguous x and indices), errors for
// bad indices, backward with repeated indices (exact sums, bit-reproducible, f32 accumulation for
// bf16), and gradchecks. GPU-only cases: CUDA against the CPU kernels bit for bit, forward and
// backward, on awkward shapes, views and long runs of repeated indices, and run to run.
#include "tests/harness.h"

#include <cstring>
#include <functional>

using namespace lumen;

namespace {

// `shape` indices drawn from [0, n), as i32 or i64.
Tensor random_indices(const Shape& shape, int64_t n, uint64_t seed, DType dt) {
    std::vector<double> u = test::random(shape, seed, DType::f64, Device::cpu(), 0, double(n)).to_vector<double>();
    std::vector<int64_t> values;
    for (double v : u) values.push_back(std::min<int64_t>(int64_t(v), n - 1));
    return Tensor::from<int64_t>(values, shape).to(dt);
}

std::vector<int64_t> unravel(int64_t flat, const Shape& shape) {
    std::vector<int64_t> p(shape.size());
    for (int64_t d = int64_t(shape.size()) - 1; d >= 0; --d) {
        p[size_t(d)] = flat % shape[size_t(d)];
        flat /= shape[size_t(d)];
    }
    return p;
}
int64_t ravel(const std::vector<int64_t>& p, const Shape& shape) {
    int64_t flat = 0;
    for (size_t d = 0; d < shape.size(); ++d) flat = flat * shape[d] + p[d];
    return flat;
}

// out[p] = x[p with p[dim] = indices[p[dim]]], plainly.
std::vector<double> ref_index_select(const Tensor& x, int64_t dim, const Tensor& indices) {
    const std::vector<double> xv = x.to_vector<double>();
    const std::vector<int64_t> iv = indices.to_vector<int64_t>();
    Shape out_shape = x.shape();
    out_shape[size_t(dim)] = int64_t(iv.size());
    std::vector<double> out;
    for (int64_t f = 0; f < numel_of(out_shape); ++f) {
        std::vector<int64_t> p = unravel(f, out_shape);
        p[size_t(dim)] = iv[size_t(p[size_t(dim)])];
        out.push_back(xv[size_t(ravel(p, x.shape()))]);
    }
    return out;
}

// out[p] = x[p with p[dim] = indices[p]], plainly.
std::vector<double> ref_gather(const Tensor& x, int64_t dim, const Tensor& indices) {
    const std::vector<double> xv = x.to_vector<double>();
    const std::vector<int64_t> iv = indices.to_vector<int64_t>();
    std::vector<double> out;
    for (int64_t f = 0; f < indices.numel(); ++f) {
        std::vector<int64_t> p = unravel(f, indices.shape());
        p[size_t(dim)] = iv[size_t(f)];
        out.push_back(xv[size_t(ravel(p, x.shape()))]);
    }
    return out;
}

// The backward of gather, plainly: dx[p with p[dim] = indices[p]] += dy[p].
std::vector<double> ref_gather_backward(const Shape& x_shape, const Tensor& dy, int64_t dim, const Tensor& indices) {
    const std::vector<double> dyv = dy.to_vector<double>();
    const std::vector<int64_t> iv = indices.to_vector<int64_t>();
    std::vector<double> dx(static_cast<size_t>(numel_of(x_shape)), 0.0);
    for (int64_t f = 0; f < indices.numel(); ++f) {
        std::vector<int64_t> p = unravel(f, indices.shape());
        p[size_t(dim)] = iv[size_t(f)];
        dx[size_t(ravel(p, x_shape))] += dyv[size_t(f)];
    }
    return dx;
}

}  // namespace

LUMEN_DEVICE_TEST("index_select: values match plain loops on every dim, dtype and index type") {
    const Shape shapes[] = {{7}, {4, 5}, {3, 1, 6}, {2, 0, 3}, {2, 3, 33}};
    for (DType dt : {DType::f32, DType::f64, DType::bf16, DType::i64})
        for (DType it : {DType::i32, DType::i64})
            for (const Shape& s : shapes)
                for (int64_t dim = -1; dim < int64_t(s.size()); ++dim) {
                    const int64_t d = normalize_dim(dim, int64_t(s.size()), "test");
                    const int64_t n = s[size_t(d)];
                    for (int64_t m : {int64_t(0), int64_t(1), int64_t(5)}) {
                        if (n == 0 && m > 0) continue;
                        INFO(dtype_name(dt) << " " << dtype_name(it) << " " << shape_str(s) << " dim " << dim << " m " << m);
                        Tensor x = test::random(s, 1, dt, device, -5, 5);
                        Tensor idx = random_indices({m}, n, 2 + uint64_t(m), it).to(device);
                        Tensor y = ops::index_select(x, dim, idx);
                        Shape expected_shape = s;
                        expected_shape[size_t(d)] = m;
                        REQUIRE(y.shape() == expected_shape);
                        CHECK_CLOSE(y.to_vector<double>(), ref_index_select(x, d, idx), test::Tolerance{0, 0});
                    }
                }
}

LUMEN_DEVICE_TEST("index_select: non-contiguous x and indices") {
    Tensor x = test::random({6, 4, 5}, 3, DType::f32, device).permute({2, 0, 1});  // (5, 6, 4) strided
    Tensor idx = Tensor::from<int64_t>({3, 9, 0, 9, 1, 9, 3, 9}, {8}, device).slice(0, 0, 8, 2);  // {3, 0, 1, 3}
    REQUIRE_FALSE(x.is_contiguous());
    REQUIRE_FALSE(idx.is_contiguous());
    for (int64_t dim : {0, 1, 2}) {
        INFO("dim " << dim);
        CHECK_CLOSE(ops::index_select(x, dim, idx).to_vector<double>(),
                    ref_index_select(x.contiguous(), dim, idx.contiguous()), test::Tolerance{0, 0});
    }
}

LUMEN_DEVICE_TEST("gather: values match plain loops, with indices smaller than x and non-contiguous") {
    struct Case { Shape x, index; int64_t dim; };
    const Case cases[] = {
        {{7}, {4}, 0},           {{7}, {12}, -1},          {{3, 4}, {3, 4}, 1},  {{3, 4}, {2, 3}, 0},
        {{3, 4}, {2, 9}, 1},     {{2, 3, 5}, {2, 3, 5}, 2}, {{2, 3, 5}, {1, 6, 4}, 1},
        {{2, 3, 5}, {2, 2, 2}, 0}, {{2, 3, 5}, {0, 3, 5}, 2}, {{3, 4, 40}, {3, 7, 37}, 1},
    };
    for (DType dt : {DType::f32, DType::f64, DType::bf16})
        for (DType it : {DType::i32, DType::i64})
            for (const Case& c : cases) {
                INFO(dtype_name(dt) << " " << dtype_name(it) << " x " << shape_str(c.x) << " index "
                     << shape_str(c.index) << " dim " << c.dim);
                const int64_t d = normalize_dim(c.dim, int64_t(c.x.size()), "test");
                Tensor x = test::random(c.x, 4, dt, device, -5, 5);
                Tensor idx = random_indices(c.index, c.x[size_t(d)], 5, it).to(device);
                Tensor y = ops::gather(x, c.dim, idx);
                REQUIRE(y.shape() == c.index);
                CHECK_CLOSE(y.to_vector<double>(), ref_gather(x, d, idx), test::Tolerance{0, 0});
            }
    // Strided x and strided indices.
    Tensor x = test::random({5, 4, 3}, 6, DType::f32, device).transpose(0, 2);          // (3, 4, 5)
    Tensor idx = random_indices({4, 6, 2}, 4, 7, DType::i64).to(device).transpose(0, 2);  // (2, 6, 4)
    REQUIRE_FALSE(x.is_contiguous());
    REQUIRE_FALSE(idx.is_contiguous());
    CHECK_CLOSE(ops::gather(x, 1, idx).to_vector<double>(), ref_gather(x.contiguous(), 1, idx.contiguous()),
                test::Tolerance{0, 0});
}

LUMEN_DEVICE_TEST("index_select and gather: errors name the op, the bad value and the valid range") {
    Tensor x = Tensor::zeros({3, 5}, DType::f32, device);
    Tensor bad = Tensor::from<int64_t>({0, 7, 1}, {3}, device);
    CHECK_THROWS_CONTAINING(ops::index_select(x, 1, bad), "index_select: index 7 (element 1 of indices) is out of range [0, 5) for dim 1");
    CHECK_THROWS_CONTAINING(ops::index_select(x, 0, Tensor::from<int32_t>({-1}, {1}, device)),
                            "index_select: index -1 (element 0 of indices) is out of range [0, 3)");
    CHECK_THROWS_CONTAINING(ops::index_select(x, 0, Tensor::from<float>({0.f}, {1}, device)),
                            "index_select: indices must be i32 or i64");
    CHECK_THROWS_CONTAINING(ops::index_select(x, 0, Tensor::zeros({1, 1}, DType::i64, device)),
                            "index_select: indices must be one-dimensional");
    CHECK_THROWS_CONTAINING(ops::index_select(x, 2, bad), "index_select: dim 2 out of range");
    CHECK_THROWS_CONTAINING(ops::index_select(Tensor::scalar(1.0, DType::f32, device), 0, bad),
                            "index_select: x must have at least one dim");

    Tensor gi = Tensor::from<int64_t>({0, 1, 2, 3, 4, 5}, {3, 2}, device);
    CHECK_THROWS_CONTAINING(ops::gather(x, 1, gi), "gather: index 5 (element 5 of indices) is out of range [0, 5) for dim 1");
    CHECK_THROWS_CONTAINING(ops::gather(x, 1, Tensor::zeros({3}, DType::i64, device)),
                            "gather: indices must have x's rank (2), got rank 1");
    CHECK_THROWS_CONTAINING(ops::gather(x, 1, Tensor::zeros({4, 2}, DType::i64, device)),
                            "gather: indices has size 4 in dim 0, larger than x's 3");
    CHECK_THROWS_CONTAINING(ops::gather(x, 0, Tensor::zeros({3, 5}, DType::f64, device)),
                            "gather: indices must be i32 or i64");
}

TEST_CASE("index_select: backward adds repeated indices (exact values)") {
    Tensor x = Tensor::zeros({3}, DType::f64).requires_grad_();
    Tensor y = ops::index_select(x, 0, Tensor::from<int64_t>({0, 2, 0, 0}, {4}));
    y.backward(Tensor::from<double>({1, 2, 3, 4}, {4}));
    CHECK(x.grad().to_vector<double>() == std::vector<double>{8, 0, 2});  // 1 + 3 + 4, none, 2

    Tensor x2 = Tensor::zeros({2, 3}, DType::f32).requires_grad_();
    Tensor y2 = ops::index_select(x2, 1, Tensor::from<int32_t>({2, 2, 0}, {3}));  // (2, 3)
    y2.backward(Tensor::from<float>({1, 2, 3, 10, 20, 30}, {2, 3}));
    CHECK(x2.grad().to_vector<float>() == std::vector<float>{3, 0, 3, 30, 0, 30});
}

TEST_CASE("gather: backward adds repeated indices (exact values)") {
    Tensor x = Tensor::zeros({2, 3}, DType::f64).requires_grad_();
    Tensor idx = Tensor::from<int64_t>({1, 1, 1, 0, 2, 2, 2, 0}, {2, 4});
    Tensor y = ops::gather(x, 1, idx);  // (2, 4)
    y.backward(Tensor::from<double>({1, 2, 3, 4, 5, 6, 7, 8}, {2, 4}));
    CHECK(x.grad().to_vector<double>() == std::vector<double>{4, 6, 0, 8, 0, 18});
}

TEST_CASE("index_select and gather: backward sums bf16 in f32 and is bit-reproducible") {
    // 300 ones into one bf16 element: a bf16 running sum stops at 256.
    Tensor x = Tensor::zeros({2}, DType::bf16).requires_grad_();
    Tensor y = ops::index_select(x, 0, Tensor::zeros({300}, DType::i64));
    y.backward(Tensor::ones({300}, DType::bf16));
    CHECK(x.grad().to_vector<float>() == std::vector<float>{300.f, 0.f});

    // Many repeated indices, large enough to run on several threads: the same bits as a
    // sequential f32 sum in index order, on every run.
    const int64_t n = 50, m = 2000;
    Tensor idx = random_indices({m}, n, 8, DType::i64);
    Tensor dy = test::random({64, m, 40}, 9, DType::f32);
    auto backward = [&]() {
        Tensor x = Tensor::zeros({64, n, 40}, DType::f32).requires_grad_();
        ops::index_select(x, 1, idx).backward(dy);
        return x.grad().to_vector<float>();
    };
    const std::vector<float> first = backward();
    CHECK(backward() == first);
    const std::vector<int64_t> iv = idx.to_vector<int64_t>();
    const std::vector<float> dyv = dy.to_vector<float>();
    std::vector<float> sequential(first.size(), 0.f);
    for (int64_t o = 0; o < 64; ++o)
        for (int64_t j = 0; j < m; ++j)
            for (int64_t k = 0; k < 40; ++k)
                sequential[size_t((o * n + iv[size_t(j)]) * 40 + k)] += dyv[size_t((o * m + j) * 40 + k)];
    CHECK(first == sequential);

    Tensor gidx = random_indices({40, 300, 16}, n, 10, DType::i32);
    Tensor gdy = test::random({40, 300, 16}, 11, DType::f32);
    auto gather_backward = [&]() {
        Tensor x = Tensor::zeros({40, n, 16}, DType::f32).requires_grad_();
        ops::gather(x, 1, gidx).backward(gdy);
        return x.grad().to_vector<float>();
    };
    const std::vector<float> g = gather_backward();
    CHECK(gather_backward() == g);
    CHECK_CLOSE(std::vector<double>(g.begin(), g.end()), ref_gather_backward({40, n, 16}, gdy, 1, gidx),
                test::tolerance(DType::f32));
}

TEST_CASE("gather: backward with non-contiguous dy matches the plain scatter") {
    Tensor x = Tensor::zeros({3, 4, 5}, DType::f64).requires_grad_();
    Tensor idx = random_indices({2, 6, 5}, 4, 12, DType::i64);
    Tensor y = ops::gather(x, 1, idx);  // (2, 6, 5)
    Tensor dy = test::random({5, 6, 2}, 13, DType::f64).transpose(0, 2);  // (2, 6, 5) strided
    y.backward(dy);
    CHECK_CLOSE(x.grad().to_vector<double>(), ref_gather_backward({3, 4, 5}, dy.contiguous(), 1, idx),
                test::tolerance(DType::f64));
}

LUMEN_GRADCHECK_COVERS("index_select", "gather");

TEST_CASE("index_select and gather: gradcheck with repeated indices and strided inputs") {
    Tensor rows = Tensor::from<int64_t>({2, 0, 2, 1, 2}, {5});
    CHECK_GRADCHECK([rows](const std::vector<Tensor>& in) { return ops::index_select(in[0], 0, rows); },
                    {test::leaf({3, 4}, 60)});
    Tensor cols = Tensor::from<int32_t>({3, 3, 0, 9, 1, 9}, {6}).slice(0, 0, 6, 2);  // {3, 0, 1} strided
    CHECK_GRADCHECK([cols](const std::vector<Tensor>& in) {
        return ops::index_select(in[0].transpose(0, 2), -1, cols);  // x (2, 3, 4) strided
    }, {test::leaf({4, 3, 2}, 61)});

    Tensor g = random_indices({3, 6, 2}, 4, 62, DType::i64);
    CHECK_GRADCHECK([g](const std::vector<Tensor>& in) { return ops::gather(in[0], 1, g); },
                    {test::leaf({3, 4, 2}, 63)});
    Tensor gt = random_indices({2, 5}, 3, 64, DType::i32).transpose(0, 1);  // (5, 2) strided
    CHECK_GRADCHECK([gt](const std::vector<Tensor>& in) {
        return ops::gather(in[0].transpose(0, 1), 0, gt);  // x (3, 4) strided
    }, {test::leaf({4, 3}, 65)});
}

// ---- CUDA against the CPU kernels (run only where a GPU is present) ----

namespace {

// Checks a == b exactly, naming the first differing element, and bit for bit.
#define CHECK_SAME(a, b)                                                                          \
    do {                                                                                          \
        CHECK_CLOSE((a).to(Device::cpu()), (b).to(Device::cpu()), test::Tolerance{0, 0});          \
        CHECK(test::same_bits((a), (b)));                                                               \
    } while (0)

using View = std::function<Tensor(const Tensor&)>;
Tensor as_is(const Tensor& t) { return t; }

struct IndexRun {
    Tensor y, dx;
};
// index_select or gather on `device`: the host x, indices and dy copied over, the views applied
// there, then the backward with dy (float dtypes only).
IndexRun index_on(Device device, bool is_gather, int64_t dim, const Tensor& x_host, const Tensor& idx_host,
                  const Tensor& dy_host, const View& xv = as_is, const View& iv = as_is, const View& dv = as_is) {
    Tensor leaf = x_host.to(device).detach();  // a fresh leaf on every run, even on the CPU
    const bool grad = is_floating(leaf.dtype());
    if (grad) leaf.set_requires_grad(true);
    Tensor x = xv(leaf), idx = iv(idx_host.to(device));
    Tensor y = is_gather ? ops::gather(x, dim, idx) : ops::index_select(x, dim, idx);
    if (grad) y.backward(dv(dy_host.to(device)));
    return {y.detach(), grad ? leaf.grad() : Tensor()};
}

// The CPU run, a CUDA run and a second CUDA run: outputs and gradients the same bits.
void check_cuda_against_cpu(Device device, bool is_gather, int64_t dim, const Tensor& x, const Tensor& idx,
                            const Tensor& dy, const View& xv = as_is, const View& iv = as_is,
                            const View& dv = as_is) {
    const IndexRun cpu = index_on(Device::cpu(), is_gather, dim, x, idx, dy, xv, iv, dv);
    const IndexRun gpu = index_on(device, is_gather, dim, x, idx, dy, xv, iv, dv);
    CHECK(gpu.y.device() == device);
    CHECK_SAME(gpu.y, cpu.y);
    REQUIRE(gpu.dx.defined() == cpu.dx.defined());
    if (!cpu.dx.defined()) return;
    CHECK(gpu.dx.device() == device);
    // The CUDA backward adds each dx element's terms in index order in f32 (f64), as the CPU does.
    CHECK_SAME(gpu.dx, cpu.dx);
    CHECK(test::same_bits(gpu.dx, index_on(device, is_gather, dim, x, idx, dy, xv, iv, dv).dx));  // run to run
}

bool big(const Shape& s) { return numel_of(s) > 200000; }

}  // namespace

LUMEN_CUDA_TEST("index_select: CUDA matches the CPU bit for bit, forward and backward, on awkward shapes") {
    struct Case {
        Shape x;
        int64_t dim, m;
    };
    // n = 1 (every index 0), 0 elements in x, no indices, 70000 rows of 3, many repeats (m ≫ n),
    // odd inner sizes (1, 3, 33, 1025, 4097), rank 4.
    const Case cases[] = {{{7}, 0, 5},           {{1}, 0, 1},           {{1, 1}, -1, 3},
                          {{70000, 3}, 0, 70000}, {{3, 70000}, 1, 4097}, {{5, 1025}, 0, 4097},
                          {{2, 33, 3}, 1, 100},   {{4097, 1}, 1, 3},      {{0, 3}, 1, 4},
                          {{3, 0}, 0, 2},         {{3, 4}, 0, 0},         {{2, 3, 5, 7}, 2, 9},
                          {{50, 33}, 0, 20000},   {{64, 50, 40}, 1, 2000}, {{3, 4097}, -1, 1},
                          {{4, 4097}, 0, 3},      {{2, 1025}, 0, 70}};  // few wide rows
    for (DType dt : {DType::f32, DType::f64, DType::bf16, DType::f16, DType::i32})
        for (DType it : {DType::i32, DType::i64})
            for (const Case& c : cases) {
                const int64_t d = normalize_dim(c.dim, int64_t(c.x.size()), "test");
                Shape y_shape = c.x;
                y_shape[size_t(d)] = c.m;
                if ((big(c.x) || big(y_shape)) && !(dt == DType::f32 && it == DType::i64) &&
                    !(dt == DType::bf16 && it == DType::i32))
                    continue;  // the large cases twice are enough
                INFO(dtype_name(dt) << " " << dtype_name(it) << " x " << shape_str(c.x) << " dim " << c.dim
                                    << " m " << c.m);
                Tensor x = test::random(c.x, 501, DType::f64, Device::cpu(), -5, 5).to(dt);
                Tensor idx = random_indices({c.m}, c.x[size_t(d)], 502, it);
                Tensor dy = test::random(y_shape, 503, is_floating(dt) ? dt : DType::f32);
                check_cuda_against_cpu(device, false, c.dim, x, idx, dy);
            }
}

LUMEN_CUDA_TEST("gather: CUDA matches the CPU bit for bit, forward and backward, on awkward shapes") {
    struct Case {
        Shape x, index;
        int64_t dim;
    };
    // Picks along the last dim, indices smaller and larger than x, long lines of repeats (m ≫ n),
    // empty index lines (dx must still be zeroed), 70000 rows of 3, n = 1.
    const Case cases[] = {
        {{7}, {5}, 0},                 {{1}, {1}, 0},                  {{70000, 3}, {70000, 3}, 1},
        {{70000, 3}, {70000, 1}, -1},  {{3, 1025}, {4097, 1025}, 0},   {{4097, 33}, {4097, 65}, 1},
        {{2, 33, 5}, {2, 40, 3}, 1},   {{0, 3}, {0, 5}, 1},            {{3, 4}, {3, 0}, 1},
        {{4, 5}, {0, 5}, 1},           {{2, 3, 4, 5}, {2, 3, 6, 5}, 2}, {{5, 1}, {5, 9}, 1},
        {{40, 50, 16}, {40, 300, 16}, 1}, {{6, 4097}, {3, 4097}, 1},
    };
    for (DType dt : {DType::f32, DType::f64, DType::bf16, DType::f16, DType::i32})
        for (DType it : {DType::i32, DType::i64})
            for (const Case& c : cases) {
                if ((big(c.x) || big(c.index)) && !(dt == DType::f32 && it == DType::i64) &&
                    !(dt == DType::bf16 && it == DType::i32))
                    continue;
                const int64_t d = normalize_dim(c.dim, int64_t(c.x.size()), "test");
                INFO(dtype_name(dt) << " " << dtype_name(it) << " x " << shape_str(c.x) << " index "
                                    << shape_str(c.index) << " dim " << c.dim);
                Tensor x = test::random(c.x, 511, DType::f64, Device::cpu(), -5, 5).to(dt);
                Tensor idx = random_indices(c.index, c.x[size_t(d)], 512, it);
                Tensor dy = test::random(c.index, 513, is_floating(dt) ? dt : DType::f32);
                check_cuda_against_cpu(device, true, c.dim, x, idx, dy);
            }
}

LUMEN_CUDA_TEST("index_select and gather: CUDA with non-contiguous x, indices and dy, and offset views") {
    auto reversed = [](Shape s) { return Shape(s.rbegin(), s.rend()); };
    const View reverse3 = [](const Tensor& t) { return t.permute({2, 1, 0}); };
    for (DType dt : {DType::f32, DType::bf16, DType::f64}) {
        // x (6, 4, 5) permuted to (5, 6, 4); indices every other of 8 (repeats); dy permuted.
        Tensor x = test::random({6, 4, 5}, 521, dt);
        const View xv = [](const Tensor& t) { return t.permute({2, 0, 1}); };
        Tensor idx = Tensor::from<int64_t>({3, 9, 0, 9, 3, 9, 1, 9, 3, 9}, {10});
        const View iv = [](const Tensor& t) { return t.slice(0, 0, 10, 2); };  // {3, 0, 3, 1, 3}
        for (int64_t dim : {0, 1, 2}) {
            INFO(dtype_name(dt) << " index_select dim " << dim);
            Shape y_shape = {5, 6, 4};
            y_shape[size_t(dim)] = 5;
            Tensor dy = test::random(reversed(y_shape), 522, dt);
            check_cuda_against_cpu(device, false, dim, x, idx, dy, xv, iv, reverse3);
        }
        // Offset views: x (7, 9) columns 1, 3, 5, 7 -> (7, 4); indices from element 3 of their storage.
        Tensor x2 = test::random({7, 9}, 523, dt);
        const View xv2 = [](const Tensor& t) { return t.slice(1, 1, 9, 2); };
        Tensor idx2 = random_indices({40}, 4, 524, DType::i32);
        const View iv2 = [](const Tensor& t) { return t.slice(0, 3, 40); };
        check_cuda_against_cpu(device, false, 1, x2, idx2, test::random({7, 37}, 525, dt), xv2, iv2);
        {
            INFO(dtype_name(dt) << " gather");
            // x (5, 4, 3) transposed to (3, 4, 5); indices (4, 6, 2) transposed to (2, 6, 4).
            const View tv = [](const Tensor& t) { return t.transpose(0, 2); };
            Tensor gx = test::random({5, 4, 3}, 526, dt);
            Tensor gi = random_indices({4, 6, 2}, 4, 527, DType::i64);
            check_cuda_against_cpu(device, true, 1, gx, gi, test::random({4, 6, 2}, 528, dt), tv, tv, reverse3);
            // Offset view of the indices along the gathered dim; x sliced with a step.
            Tensor gi2 = random_indices({9, 3}, 3, 529, DType::i32);
            check_cuda_against_cpu(device, true, 0, x2, gi2, test::random({7, 3}, 530, dt), xv2,
                                   [](const Tensor& t) { return t.slice(0, 2, 9); });
        }
    }
}

LUMEN_CUDA_TEST("index_select and gather: CUDA backward with one index repeated 100000 times") {
    // Long runs of one value: the index_select run is one thread's serial sum, the gather lines
    // walk all of it; bf16 must sum in f32 (a bf16 running sum stops at 256).
    for (DType dt : {DType::f32, DType::bf16}) {
        INFO(dtype_name(dt));
        Tensor x = test::random({4, 3}, 531, dt);
        Tensor idx = Tensor::full({100000}, 2.0, DType::i64);
        check_cuda_against_cpu(device, false, 0, x, idx, test::random({100000, 3}, 532, dt));
        Tensor ones = Tensor::ones({100000, 3}, dt);
        const IndexRun gpu = index_on(device, false, 0, x, idx, ones);
        const double r = Tensor::full({1}, 100000.0, dt).to_vector<double>()[0];  // 100000 in dt
        CHECK(gpu.dx.to_vector<double>() == std::vector<double>{0, 0, 0, 0, 0, 0, r, r, r, 0, 0, 0});
        Tensor gidx = Tensor::full({100000, 3}, 1.0, DType::i32);
        check_cuda_against_cpu(device, true, 0, x, gidx, test::random({100000, 3}, 533, dt));
    }
}
