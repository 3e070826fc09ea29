// tests/core/tensor_test.cpp: the Tensor handle: construction, host reads and writes, views
// through the member functions (values, sharing and errors), printing, the in-place helpers
// (fill_, copy_, add_), undefined tensors, the error format, and core/cpu/loops.h's strided walk.
#include "tests/harness.h"

#include <fmt/format.h>

#include "core/cpu/loops.h"

#include <atomic>

using namespace lumen;

namespace {

// Every element's offset, in row-major order of the layout's shape.
std::vector<int64_t> offsets(const Layout& l) {
    std::vector<int64_t> out;
    for (int64_t i = 0; i < l.numel(); ++i) {
        int64_t rest = i, off = l.offset;
        for (int64_t d = l.rank() - 1; d >= 0; --d) {
            off += (rest % l.shape[size_t(d)]) * l.strides[size_t(d)];
            rest /= l.shape[size_t(d)];
        }
        out.push_back(off);
    }
    return out;
}

Tensor iota(const Shape& shape, DType dt = DType::f32) {
    std::vector<double> v(static_cast<size_t>(numel_of(shape)));
    for (size_t i = 0; i < v.size(); ++i) v[i] = double(i);
    return Tensor::from<double>(v, shape).to(dt);
}

}  // namespace

TEST_CASE("tensor: construction and host round trips") {
    CHECK(Tensor::zeros({2, 3}).to_vector<float>() == std::vector<float>(6, 0.f));
    CHECK(Tensor::ones({2}, DType::i64).to_vector<int64_t>() == std::vector<int64_t>{1, 1});
    CHECK(Tensor::full({3}, -2.5, DType::f64).to_vector<double>() == std::vector<double>(3, -2.5));
    Tensor s = Tensor::scalar(4.0, DType::bf16);
    CHECK(s.dim() == 0);
    CHECK(s.numel() == 1);
    CHECK(s.item() == 4.0);
    Tensor e = Tensor::empty({2, 0, 3});
    CHECK(e.numel() == 0);
    CHECK(e.to_vector<float>().empty());
    CHECK_THROWS_CONTAINING(Tensor::empty({2, -1}), "empty: negative size in shape (2, -1)");

    CHECK(Tensor::from<int8_t>({-128, 0, 127}).to_vector<int8_t>() == std::vector<int8_t>{-128, 0, 127});
    CHECK(Tensor::from<uint16_t>({0, 65535}).to_vector<int64_t>() == std::vector<int64_t>{0, 65535});
    CHECK(Tensor::from<bool>({true, false}).dtype() == DType::boolean);
    CHECK(Tensor::from<bool>({true, false}).to_vector<bool>() == std::vector<bool>{true, false});
    CHECK(Tensor::from<int64_t>({1, 2, 3, 4, 5, 6}, {2, 3}).to_vector<float>() ==
          std::vector<float>{1, 2, 3, 4, 5, 6});
    CHECK(Tensor::from<double>({0.5, -1.5}).to_vector<int32_t>() == std::vector<int32_t>{0, -1});
    CHECK_THROWS_CONTAINING(Tensor::from<float>({1, 2, 3, 4, 5}, {2, 3}), "from: 5 values do not fill shape (2, 3)");

    Tensor x = Tensor::from<float>({1, 2, 3, 4, 5, 6}, {2, 3});
    CHECK(x.size(0) == 2);
    CHECK(x.size(-1) == 3);
    CHECK_THROWS_CONTAINING(x.size(2), "size: dim 2 out of range for a tensor of rank 2");
    CHECK_THROWS_CONTAINING(s.size(0), "size: a scalar has no dims");
    auto [rows, cols] = x.dims<2>();
    CHECK((rows == 2 && cols == 3));
    CHECK_THROWS_CONTAINING(x.dims<3>(), "dims: expected a tensor of rank 3: x (2, 3) f32 [cpu]");
    CHECK(x.data<float>()[4] == 5.f);
    CHECK_THROWS_CONTAINING(x.data<double>(), "data: tensor is not f64: x (2, 3) f32 [cpu]");
    CHECK(Tensor::from<double>({7.5}, {1, 1}).item() == 7.5);
    CHECK_THROWS_CONTAINING(x.item(), "item: expected a tensor with one element: x (2, 3) f32 [cpu]");
    CHECK_THROWS_CONTAINING(Tensor::empty({0}).item(), "item: expected a tensor with one element");
    CHECK_THROWS_CONTAINING(Tensor::zeros({2}, DType::i32).set_requires_grad(), "requires_grad: only floating tensors");
    Tensor d = x.detach();
    CHECK(d.storage() == x.storage());
    CHECK_FALSE(d.same(x));
}

TEST_CASE("tensor: reshape and view share storage when they can, copy otherwise") {
    Tensor x = iota({3, 4});
    Tensor r = x.reshape({2, -1});
    CHECK(r.shape() == Shape{2, 6});
    CHECK(r.storage() == x.storage());
    CHECK(x.view({4, 3}).storage() == x.storage());
    CHECK(x.flatten().shape() == Shape{12});

    Tensor t = x.transpose(0, 1);  // (4, 3), strides (1, 4)
    CHECK(t.storage() == x.storage());
    Tensor flat = t.reshape({12});  // needs a copy
    CHECK(flat.storage() != x.storage());
    CHECK(flat.is_contiguous());
    CHECK(flat.to_vector<float>() == std::vector<float>{0, 4, 8, 1, 5, 9, 2, 6, 10, 3, 7, 11});
    CHECK(t.reshape({2, 2, 3}).storage() == x.storage());  // splitting a dim is a view
    CHECK(t.reshape({2, 2, 3}).to_vector<float>() == t.to_vector<float>());
    CHECK_THROWS_CONTAINING(t.view({12}),
                            "view: the layout (strides (1, 4)) cannot be viewed as (12,) without a copy; "
                            "use reshape: x (4, 3) f32 [cpu]");
    CHECK_THROWS_CONTAINING(x.reshape({-1, -1}), "reshape: only one dim can be -1 in (-1, -1): x (3, 4) f32 [cpu]");
    CHECK_THROWS_CONTAINING(x.reshape({-1, 5}), "reshape: cannot infer -1 in (-1, 5)");
    CHECK_THROWS_CONTAINING(x.reshape({-1, 0}), "reshape: cannot infer -1 in (-1, 0)");
    CHECK_THROWS_CONTAINING(x.reshape({5}), "reshape: shape (5,) has 5 elements, the tensor 12");
    CHECK_THROWS_CONTAINING(x.reshape({-2, -6}), "reshape: negative size in (-2, -6)");
    CHECK_THROWS_CONTAINING(x.view({7}), "view: shape (7,) has 7 elements, the tensor 12");
    CHECK(Tensor::empty({0, 4}).reshape({4, -1, 2}).shape() == Shape{4, 0, 2});
}

TEST_CASE("tensor: slice, select and narrow") {
    Tensor x = iota({10});
    auto values = [](const Tensor& t) { return t.to_vector<float>(); };
    CHECK(values(x.slice(0, -3, 10)) == std::vector<float>{7, 8, 9});
    CHECK(values(x.slice(0, -100, 100)) == values(x));
    CHECK(values(x.slice(0, 2, -2, 3)) == std::vector<float>{2, 5});
    CHECK(values(x.slice(0, 1, 10, 4)) == std::vector<float>{1, 5, 9});
    CHECK(values(x.slice(0, -1, -5)) == std::vector<float>{});
    CHECK(x.slice(0, 8, 3).shape() == Shape{0});
    CHECK(x.slice(0, 20, 30).shape() == Shape{0});
    CHECK_THROWS_CONTAINING(x.slice(0, 0, 5, 0), "slice: step must be ≥ 1, got 0: x (10,) f32 [cpu]");
    CHECK_THROWS_CONTAINING(x.slice(0, 0, 5, -1), "slice: step must be ≥ 1, got -1");
    CHECK_THROWS_CONTAINING(x.slice(1, 0, 5), "slice: dim 1 out of range");
    CHECK_THROWS_CONTAINING(Tensor::scalar(1).slice(0, 0, 1), "slice: cannot slice a scalar");

    Tensor m = iota({3, 4});
    CHECK(values(m.slice(1, 1, 4, 2)) == std::vector<float>{1, 3, 5, 7, 9, 11});
    CHECK(values(m.slice(-2, 1, 3).slice(-1, -2, 4)) == std::vector<float>{6, 7, 10, 11});
    CHECK(values(m.select(0, -1)) == std::vector<float>{8, 9, 10, 11});
    CHECK(values(m.select(1, 2)) == std::vector<float>{2, 6, 10});
    CHECK(m.select(1, 2).shape() == Shape{3});
    CHECK_THROWS_CONTAINING(m.select(0, 3), "select: index 3 out of range for dim 0 of size 3: x (3, 4) f32 [cpu]");
    CHECK_THROWS_CONTAINING(m.select(1, -5), "select: index -5 out of range for dim 1 of size 4");
    CHECK_THROWS_CONTAINING(m.select(2, 0), "select: dim 2 out of range");
    CHECK_THROWS_CONTAINING(Tensor::scalar(1).select(0, 0), "select: cannot select from a scalar");
    CHECK(values(m.narrow(1, 1, 2)) == std::vector<float>{1, 2, 5, 6, 9, 10});
    CHECK(m.narrow(0, 3, 0).shape() == Shape{0, 4});
    CHECK_THROWS_CONTAINING(m.narrow(1, 3, 2), "narrow: range [3, 5) outside dim 1 of size 4: x (3, 4) f32 [cpu]");
    CHECK_THROWS_CONTAINING(m.narrow(0, -1, 1), "narrow: range [-1, 0) outside dim 0 of size 3");
    CHECK_THROWS_CONTAINING(m.narrow(0, 0, -1), "narrow: range [0, -1) outside dim 0");
    CHECK_THROWS_CONTAINING(Tensor::scalar(1).narrow(0, 0, 1), "narrow: cannot narrow a scalar");
}

TEST_CASE("tensor: expand, squeeze and unsqueeze") {
    Tensor c = Tensor::from<float>({1, 2, 3}, {3, 1});
    Tensor e = c.expand({2, -1, 4});
    CHECK(e.shape() == Shape{2, 3, 4});
    CHECK(e.strides() == Strides{0, 1, 0});
    CHECK(e.storage() == c.storage());
    std::vector<float> expected;
    for (int b = 0; b < 2; ++b)
        for (int r = 1; r <= 3; ++r)
            for (int k = 0; k < 4; ++k) expected.push_back(float(r));
    CHECK(e.to_vector<float>() == expected);
    CHECK(Tensor::scalar(5).expand({2, 2}).to_vector<float>() == std::vector<float>(4, 5.f));
    CHECK(c.expand({3, 0}).numel() == 0);
    CHECK_THROWS_CONTAINING(c.expand({3}), "expand: cannot expand to fewer dims: (3,): x (3, 1) f32 [cpu]");
    CHECK_THROWS_CONTAINING(c.expand({-1, 3, 1}), "expand: -1 is not allowed for a new leading dim");
    CHECK_THROWS_CONTAINING(c.expand({5, 2}), "expand: dim 0 of size 3 cannot expand to 5");
    CHECK_THROWS_CONTAINING(c.expand({3, -2}), "expand: dim 1 of size 1 cannot expand to -2");

    Tensor x = iota({2, 1, 3});
    CHECK(x.squeeze(1).shape() == Shape{2, 3});
    CHECK(x.squeeze(-2).shape() == Shape{2, 3});
    CHECK(x.squeeze(1).to_vector<float>() == x.to_vector<float>());
    CHECK(Tensor::zeros({1}).squeeze(0).dim() == 0);
    CHECK_THROWS_CONTAINING(x.squeeze(0), "squeeze: dim 0 does not have size 1: x (2, 1, 3) f32 [cpu]");
    CHECK_THROWS_CONTAINING(x.squeeze(3), "squeeze: dim 3 out of range");
    CHECK_THROWS_CONTAINING(Tensor::scalar(1).squeeze(0), "squeeze: dim 0 does not have size 1");
    CHECK(x.unsqueeze(0).shape() == Shape{1, 2, 1, 3});
    CHECK(x.unsqueeze(-1).shape() == Shape{2, 1, 3, 1});
    CHECK(x.unsqueeze(3).shape() == Shape{2, 1, 3, 1});
    CHECK(Tensor::scalar(1).unsqueeze(0).shape() == Shape{1});
    CHECK_THROWS_CONTAINING(x.unsqueeze(5), "unsqueeze: dim 5 out of range for a tensor of rank 4");
}

TEST_CASE("tensor: printing and describe") {
    CHECK(fmt::format("{}", Tensor::scalar(1.5)) == "tensor(1.5, shape=(), dtype=f32, device=cpu)");
    CHECK(fmt::format("{}", Tensor::scalar(0.1)) == "tensor(0.1, shape=(), dtype=f32, device=cpu)");
    CHECK(fmt::format("{}", Tensor::from<float>({1, 2.5f, -3})) ==
          "tensor([1, 2.5, -3], shape=(3,), dtype=f32, device=cpu)");
    CHECK(fmt::format("{}", Tensor::from<int64_t>({1, 2, 3, 4}, {2, 2})) ==
          "tensor([[1, 2],\n        [3, 4]], shape=(2, 2), dtype=i64, device=cpu)");
    CHECK(fmt::format("{}", iota({10})) ==
          "tensor([0, 1, 2, ..., 7, 8, 9], shape=(10,), dtype=f32, device=cpu)");
    CHECK(fmt::format("{}", iota({6})) == "tensor([0, 1, 2, 3, 4, 5], shape=(6,), dtype=f32, device=cpu)");
    CHECK(fmt::format("{}", iota({8, 2})) ==
          "tensor([[0, 1],\n        [2, 3],\n        [4, 5],\n        ...,\n"
          "        [10, 11],\n        [12, 13],\n        [14, 15]], shape=(8, 2), dtype=f32, device=cpu)");
    CHECK(fmt::format("{}", iota({2, 1, 2})) ==
          "tensor([[[0, 1]],\n        [[2, 3]]], shape=(2, 1, 2), dtype=f32, device=cpu)");
    CHECK(fmt::format("{}", iota({2, 8}).transpose(0, 1).slice(0, 0, 2)) ==
          "tensor([[0, 8],\n        [1, 9]], shape=(2, 2), dtype=f32, device=cpu)");
    CHECK(fmt::format("{}", Tensor::empty({0})) == "tensor([], shape=(0,), dtype=f32, device=cpu)");
    CHECK(fmt::format("{}", Tensor::from<double>({0.123456789, 1e-9}, {2})) ==
          "tensor([0.123457, 1e-09], shape=(2,), dtype=f64, device=cpu)");
    CHECK(fmt::format("{}", Tensor::from<bool>({true, false})) == "tensor([1, 0], shape=(2,), dtype=bool, device=cpu)");
    CHECK(fmt::format("{}", Tensor()) == "tensor(undefined)");
    CHECK(describe(Tensor::zeros({2, 3}, DType::bf16)) == "(2, 3) bf16 [cpu]");
    CHECK(describe(Tensor::scalar(1, DType::i64)) == "() i64 [cpu]");
    CHECK(describe(Tensor()) == "(undefined)");
}

TEST_CASE("tensor: errors name the op, what is wrong and every operand") {
    Tensor a = Tensor::zeros({4, 3}), b = Tensor::zeros({5}, DType::bf16);
    CHECK_THROWS_WITH_AS(check(false, "op", "what", {{"a", a}, {"b", b}}),
                         "op: what: a (4, 3) f32 [cpu], b (5,) bf16 [cpu]", Error);
    CHECK_THROWS_WITH_AS(check(false, "op", "no operands"), "op: no operands", Error);
    CHECK_NOTHROW(check(true, "op", "fine", {{"a", a}}));
    CHECK_THROWS_WITH_AS(ops::add(a, Tensor::zeros({5})),
                         "add: shapes do not broadcast: a (4, 3) f32 [cpu], b (5,) f32 [cpu]", Error);
}

TEST_CASE("tensor: undefined tensors are errors, not crashes") {
    Tensor u;
    Tensor x = Tensor::ones({2});
    CHECK_FALSE(u.defined());
    CHECK_THROWS_CONTAINING(u.shape(), "tensor: use of an undefined tensor");
    CHECK_THROWS_CONTAINING(u.numel(), "undefined tensor");
    CHECK_THROWS_CONTAINING(u.fill_(1), "undefined tensor");
    CHECK_THROWS_CONTAINING(x.copy_(u), "undefined tensor");
    CHECK_THROWS_CONTAINING(x.add_(u), "undefined tensor");
    CHECK_THROWS_CONTAINING(u.to_vector<float>(), "undefined tensor");
    CHECK_THROWS_CONTAINING(ops::add(u, x), "undefined tensor");
    CHECK_THROWS_CONTAINING(u.reshape({1}), "undefined tensor");
    CHECK_THROWS_WITH_AS(check(false, "op", "bad", {{"x", u}}), "op: bad: x (undefined)", Error);
    CHECK_FALSE(x.grad().defined());
}

TEST_CASE("tensor: fill_, copy_ and add_") {
    Tensor m = Tensor::zeros({3, 4});
    m.slice(1, 1, 4, 2).fill_(7);  // columns 1 and 3
    CHECK(m.to_vector<float>() == std::vector<float>{0, 7, 0, 7, 0, 7, 0, 7, 0, 7, 0, 7});
    CHECK(Tensor::empty({3}, DType::i8).fill_(3.7).to_vector<int64_t>() == std::vector<int64_t>{3, 3, 3});
    CHECK(Tensor::empty({2}, DType::boolean).fill_(0.5).to_vector<bool>() == std::vector<bool>{true, true});
    CHECK(Tensor::empty({2}, DType::bf16).fill_(1.0 / 3).to_vector<double>()[0] == double(float(bf16(1.f / 3))));
    Tensor z = Tensor::ones({4});
    CHECK(z.zero_().to_vector<float>() == std::vector<float>(4, 0.f));

    // copy_ broadcasts the source and converts dtype.
    Tensor d = Tensor::zeros({2, 3}, DType::i32);
    d.copy_(Tensor::from<double>({1.9, -2.9, 3.0}));
    CHECK(d.to_vector<int32_t>() == std::vector<int32_t>{1, -2, 3, 1, -2, 3});
    d.copy_(Tensor::from<float>({5, 6}, {2, 1}));
    CHECK(d.to_vector<int32_t>() == std::vector<int32_t>{5, 5, 5, 6, 6, 6});
    d.copy_(Tensor::scalar(9, DType::u8));
    CHECK(d.to_vector<int32_t>() == std::vector<int32_t>(6, 9));
    // Into a strided slice (a column of a row-major matrix), from a non-contiguous source.
    Tensor dst = Tensor::zeros({3, 3}, DType::f64);
    dst.select(1, 1).copy_(iota({2, 3}).transpose(0, 1).select(1, 1));  // 3, 4, 5
    CHECK(dst.to_vector<double>() == std::vector<double>{0, 3, 0, 0, 4, 0, 0, 5, 0});
    dst.transpose(0, 1).copy_(iota({3, 3}, DType::bf16));
    CHECK(dst.to_vector<double>() == std::vector<double>{0, 3, 6, 1, 4, 7, 2, 5, 8});
    CHECK_THROWS_CONTAINING(Tensor::zeros({1, 3}).copy_(Tensor::zeros({2, 3})),
                            "copy_: source does not broadcast to the destination: dst (1, 3) f32 [cpu], src (2, 3) f32 [cpu]");
    CHECK_THROWS_CONTAINING(Tensor::zeros({3}).copy_(Tensor::zeros({4})), "copy_: shapes do not broadcast");

    // add_: this += alpha · other, broadcast, into strided views.
    Tensor a = Tensor::from<float>({1, 2, 3});
    a.add_(Tensor::from<float>({10, 20, 30}), 0.5);
    CHECK(a.to_vector<float>() == std::vector<float>{6, 12, 18});
    a.add_(a);
    CHECK(a.to_vector<float>() == std::vector<float>{12, 24, 36});
    Tensor g = Tensor::zeros({2, 3}, DType::f64);
    g.add_(Tensor::from<double>({1, 2, 3}), -2.0);
    g.add_(Tensor::ones({2, 1}, DType::f64));
    CHECK(g.to_vector<double>() == std::vector<double>{-1, -3, -5, -1, -3, -5});
    Tensor h = Tensor::zeros({4, 4});
    h.slice(1, 0, 4, 2).add_(Tensor::ones({4, 2}), 3);
    CHECK(h.to_vector<float>() == std::vector<float>{3, 0, 3, 0, 3, 0, 3, 0, 3, 0, 3, 0, 3, 0, 3, 0});
    Tensor i = Tensor::from<int64_t>({1, 2});
    i.add_(Tensor::from<int64_t>({3, 4}), 2);
    CHECK(i.to_vector<int64_t>() == std::vector<int64_t>{7, 10});
    CHECK_THROWS_CONTAINING(a.add_(Tensor::zeros({3}, DType::f64)),
                            "add_: operands must share dtype and device: self (3,) f32 [cpu], other (3,) f64 [cpu]");
    CHECK_THROWS_CONTAINING(a.add_(Tensor::zeros({2, 3})), "add_: other does not broadcast to self");
    CHECK_THROWS_CONTAINING(a.add_(Tensor::zeros({4})), "add_: shapes do not broadcast");
}

TEST_CASE("tensor: contiguous, clone and to_vector of strided views") {
    Tensor x = iota({3, 4});
    CHECK(x.contiguous().same(x));
    Tensor t = x.transpose(0, 1);
    Tensor c = t.contiguous();
    CHECK(c.is_contiguous());
    CHECK(c.storage() != x.storage());
    CHECK(c.to_vector<float>() == t.to_vector<float>());
    CHECK(c.to_vector<float>() == std::vector<float>{0, 4, 8, 1, 5, 9, 2, 6, 10, 3, 7, 11});
    Tensor k = x.clone();
    CHECK(k.storage() != x.storage());
    k.fill_(0);
    CHECK(x.to_vector<float>()[5] == 5.f);  // a clone is a copy
    CHECK(t.clone().is_contiguous());

    // Large enough to run the strided walk in several OpenMP chunks.
    Tensor big = iota({300, 257}, DType::f64);
    std::vector<double> bt = big.transpose(0, 1).contiguous().to_vector<double>();
    bool ok = true;
    for (int64_t i = 0; i < 257 && ok; ++i)
        for (int64_t j = 0; j < 300 && ok; ++j) ok = bt[size_t(i * 300 + j)] == double(j * 257 + i);
    CHECK(ok);
}

TEST_CASE("loops: for_each_strided visits every element once, in row-major order") {
    const Layout layouts[] = {
        Layout::contiguous({5, 7}),
        Layout::contiguous({3, 4, 5}).transpose(0, 2),
        Layout::contiguous({6, 8}).slice(1, 1, 8, 3),
        Layout{{4, 1, 3}, {1, 50, 4}, 9},                 // a size-1 dim with an odd stride
        Layout::contiguous({5}).expand({3, 5}),           // stride 0
        Layout::contiguous({}),                           // one element
        Layout{{1, 1}, {3, 3}, 4},
        Layout::contiguous({200, 300}).transpose(0, 1),   // 60000 elements: several chunks
        Layout::contiguous({64, 3, 257}).permute({2, 0, 1}).slice(0, 2, 257, 2),
        Layout::contiguous({129, 1}).expand({3, 129, 257}),
        Layout::contiguous({4, 0, 3}),
    };
    for (const Layout& l : layouts) {
        INFO(shape_str(l.shape) << " strides " << shape_str(l.strides));
        const Layout out = Layout::contiguous(l.shape);
        std::vector<int64_t> seen(static_cast<size_t>(l.numel()), -1);
        std::atomic<int64_t> calls = 0;
        cpu::for_each_strided<2>(l.shape, {&out, &l}, [&](const auto& o) {
            seen[size_t(o[0])] = o[1];  // out is contiguous: o[0] is the row-major index
            ++calls;
        });
        CHECK(calls == l.numel());
        CHECK(seen == offsets(l));
    }
    for (int64_t n : {0, 1, 5, 4096, 100003}) {
        std::vector<int> hits(static_cast<size_t>(n), 0);
        cpu::parallel_for(n, 1000, [&](int64_t begin, int64_t end) {
            for (int64_t i = begin; i < end; ++i) ++hits[size_t(i)];
        });
        CHECK(std::count(hits.begin(), hits.end(), 1) == n);
    }
}

TEST_CASE("tensor: a CUDA tensor without a GPU is a clear error, never a CPU fallback") {
    if (cuda_device_count() > 0) return;  // NOTE: with a GPU, the CUDA cases test CUDA tensors
    // A CPU-only build says it has no CUDA; a CUDA build on a machine without a GPU says so.
    const std::string why = built_with_cuda() ? "0 CUDA devices" : "this build has no CUDA support";
    CHECK_THROWS_CONTAINING(Tensor::empty({4}, DType::f32, Device::cuda(0)), why);
    CHECK_THROWS_CONTAINING(Tensor::ones({2}).to(Device::cuda(0)), why);
    CHECK_THROWS_CONTAINING(Tensor::ones({2}).to(Device::cuda(0)), "cuda:0");
}
