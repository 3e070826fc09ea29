// tests/ops/shape_test.cpp: views and copies (reshape, view, transpose, permute, slice, expand,
// squeeze, unsqueeze, contiguous, clone, cast, to_device): forward values against an index-map
// reference on contiguous and strided inputs, errors, and a gradcheck for every node name
// autograd/ops/shape.cpp records (each case also checks that the node it means is the one built).
#include "tests/harness.h"

#include <fmt/format.h>

#include <functional>

using namespace lumen;

namespace {

// out[i] = x[map(i)] for every row-major multi-index i of out_shape: the definition of a view.
std::vector<double> gather(const Tensor& x, const Shape& out_shape, const std::function<Shape(const Shape&)>& map) {
    const std::vector<double> xv = x.to_vector<double>();
    const Strides xs = contiguous_strides(x.shape());
    std::vector<double> out;
    Shape idx(out_shape.size(), 0);
    for (int64_t n = 0; n < numel_of(out_shape); ++n) {
        int64_t rest = n;
        for (size_t d = out_shape.size(); d-- > 0;) {
            idx[d] = rest % out_shape[d];
            rest /= out_shape[d];
        }
        const Shape in = map(idx);
        int64_t flat = 0;
        for (size_t d = 0; d < in.size(); ++d) flat += in[d] * xs[d];
        out.push_back(xv[size_t(flat)]);
    }
    return out;
}

// A (5, 4, 3) input: contiguous, or the same shape as a permuted view of a (4, 3, 5) tensor.
Tensor input(bool strided, DType dt, Device device, uint64_t seed) {
    if (!strided) return test::random({5, 4, 3}, seed, dt, device);
    Tensor x = test::random({4, 3, 5}, seed, dt, device).permute({2, 0, 1});
    REQUIRE_FALSE(x.is_contiguous());
    return x;
}

std::string_view node_name(const Tensor& y) { return y.grad_fn() ? y.grad_fn()->name : "(none)"; }

using Fn = std::function<Tensor(const std::vector<Tensor>&)>;

// Gradchecks f and checks that its output was made by the node `name`.
void gradcheck_node(std::string_view name, const Fn& f, const std::vector<Tensor>& inputs,
                    autograd::GradcheckOptions options = {}) {
    INFO("node " << name);
    CHECK(node_name(f(inputs)) == name);
    CHECK_GRADCHECK(f, inputs, options);
}

}  // namespace

LUMEN_DEVICE_TEST("shape ops: forward values on contiguous and strided inputs") {
    for (DType dt : {DType::f32, DType::f64, DType::bf16})
        for (bool strided : {false, true}) {
            INFO(dtype_name(dt) << (strided ? " strided" : " contiguous"));
            const Tensor x = input(strided, dt, device, 7);
            const std::vector<double> xv = x.to_vector<double>();
            auto same_order = [&](const Tensor& y, const Shape& shape) {
                CHECK(y.shape() == shape);
                CHECK(y.dtype() == dt);
                CHECK(y.device() == device);
                CHECK(y.to_vector<double>() == xv);
            };
            same_order(x.reshape({3, -1, 2}), {3, 10, 2});
            same_order(x.reshape({60}), {60});
            same_order(x.reshape({5, 2, 2, 3}), {5, 2, 2, 3});
            same_order(x.unsqueeze(1), {5, 1, 4, 3});
            same_order(x.unsqueeze(-1).squeeze(3), {5, 4, 3});
            same_order(x.contiguous(), {5, 4, 3});
            same_order(x.clone(), {5, 4, 3});
            if (!strided) same_order(x.view({20, 3}), {20, 3});

            Tensor t = x.transpose(0, 2);
            CHECK(t.shape() == Shape{3, 4, 5});
            CHECK(t.to_vector<double>() == gather(x, {3, 4, 5}, [](const Shape& i) { return Shape{i[2], i[1], i[0]}; }));
            CHECK(x.transpose(-1, 1).to_vector<double>() ==
                  gather(x, {5, 3, 4}, [](const Shape& i) { return Shape{i[0], i[2], i[1]}; }));
            Tensor p = x.permute({1, 2, 0});
            CHECK(p.shape() == Shape{4, 3, 5});
            CHECK(p.to_vector<double>() == gather(x, {4, 3, 5}, [](const Shape& i) { return Shape{i[2], i[0], i[1]}; }));
            Tensor s = x.slice(1, 1, 4, 2);
            CHECK(s.shape() == Shape{5, 2, 3});
            CHECK(s.to_vector<double>() ==
                  gather(x, {5, 2, 3}, [](const Shape& i) { return Shape{i[0], 1 + 2 * i[1], i[2]}; }));
            Tensor s2 = x.slice(0, -2, 100).slice(2, 0, -1);
            CHECK(s2.to_vector<double>() ==
                  gather(x, {2, 4, 2}, [](const Shape& i) { return Shape{3 + i[0], i[1], i[2]}; }));
            Tensor col = x.slice(1, 2, 3);  // (5, 1, 3)
            Tensor e = col.expand({2, 5, -1, 3}).expand({2, 5, 4, 3});
            CHECK(e.to_vector<double>() ==
                  gather(x, {2, 5, 4, 3}, [](const Shape& i) { return Shape{i[1], 2, i[3]}; }));
            // A copy made by reshape of a strided view still reads right.
            CHECK(t.reshape({-1}).to_vector<double>() == t.to_vector<double>());
            CHECK(t.reshape({12, 5}).shape() == Shape{12, 5});
            // Views share storage; copies do not.
            CHECK(t.storage() == x.storage());
            CHECK(s.storage() == x.storage());
            CHECK(e.storage() == x.storage());
            CHECK(x.clone().storage() != x.storage());
            CHECK(x.contiguous().same(x) == !strided);
        }
}

LUMEN_DEVICE_TEST("shape ops: awkward shapes") {
    Tensor z = Tensor::zeros({0, 3}, DType::f32, device);
    CHECK(z.reshape({3, 0}).shape() == Shape{3, 0});
    CHECK(z.transpose(0, 1).contiguous().shape() == Shape{3, 0});
    CHECK(z.slice(1, 1, 2).shape() == Shape{0, 1});
    CHECK(z.expand({2, 0, 3}).numel() == 0);
    Tensor s = Tensor::scalar(3, DType::f32, device);
    CHECK(s.reshape({1, 1}).to_vector<float>() == std::vector<float>{3});
    CHECK(s.transpose(0, -1).same(s));  // a scalar transposes to itself
    CHECK(s.permute({}).item() == 3);
    CHECK(s.unsqueeze(0).squeeze(0).dim() == 0);
    Tensor one = Tensor::ones({1, 1, 1}, DType::f64, device);
    CHECK(one.permute({2, 0, 1}).is_contiguous());
    CHECK(one.reshape({}).item() == 1);
}

LUMEN_DEVICE_TEST("shape ops: errors name the op and the operand") {
    Tensor x = Tensor::zeros({2, 3, 4}, DType::f32, device);
    const std::string xs = "x (2, 3, 4) f32 [" + device.str() + "]";
    CHECK_THROWS_CONTAINING(x.transpose(0, 3), "transpose: dim 3 out of range for a tensor of rank 3");
    CHECK_THROWS_CONTAINING(x.permute({0, 1}), ("permute: 2 dims given for a tensor of rank 3: " + xs).c_str());
    CHECK_THROWS_CONTAINING(x.permute({0, 1, -3}), ("permute: dim 0 repeated: " + xs).c_str());
    CHECK_THROWS_CONTAINING(x.permute({0, 1, 3}), "permute: dim 3 out of range");
    CHECK_THROWS_CONTAINING(x.reshape({5, -1}), ("reshape: cannot infer -1 in (5, -1): " + xs).c_str());
    CHECK_THROWS_CONTAINING(x.transpose(0, 2).view({24}), "view: the layout (strides (1, 4, 12)) cannot be viewed as (24,)");
    CHECK_THROWS_CONTAINING(x.expand({2, 6, 4}), ("expand: dim 1 of size 3 cannot expand to 6: " + xs).c_str());
    CHECK_THROWS_CONTAINING(x.squeeze(1), ("squeeze: dim 1 does not have size 1: " + xs).c_str());
    CHECK_THROWS_CONTAINING(x.slice(-4, 0, 1), "slice: dim -4 out of range");
    CHECK_THROWS_CONTAINING(x.unsqueeze(-5), "unsqueeze: dim -5 out of range");
}

LUMEN_GRADCHECK_COVERS("reshape", "transpose", "permute", "slice", "expand", "squeeze", "unsqueeze",
                       "contiguous", "clone", "cast", "to_device");

TEST_CASE("shape ops: gradcheck every recorded node, with strided inputs made inside f") {
    const Tensor a = test::leaf({3, 4}, 1), b = test::leaf({2, 3, 4}, 2), c = test::leaf({3, 1}, 3);
    const Tensor d = test::leaf({1, 3, 4}, 4), r = test::leaf({1, 3}, 5);
    gradcheck_node("reshape", [](const auto& in) { return in[0].reshape({6, 2}); }, {a});  // a view
    gradcheck_node("reshape", [](const auto& in) { return in[0].transpose(0, 1).reshape({-1}); }, {a});  // a copy
    gradcheck_node("reshape", [](const auto& in) { return ops::view(in[0].transpose(0, 1), {2, 2, 3}); }, {a});
    gradcheck_node("transpose", [](const auto& in) { return in[0].transpose(0, 2); }, {b});
    gradcheck_node("transpose", [](const auto& in) { return in[0].slice(1, 0, 3, 2).transpose(-1, 0); }, {b});
    gradcheck_node("permute", [](const auto& in) { return in[0].permute({2, 0, 1}); }, {b});
    gradcheck_node("permute", [](const auto& in) { return in[0].transpose(0, 1).permute({-1, 0, 1}); }, {b});
    gradcheck_node("slice", [](const auto& in) { return in[0].slice(1, 1, 4, 2); }, {a});
    gradcheck_node("slice", [](const auto& in) { return in[0].slice(-1, -3, 100); }, {b});
    gradcheck_node("slice", [](const auto& in) { return in[0].transpose(0, 1).slice(0, 0, 3, 2); }, {a});
    gradcheck_node("slice", [](const auto& in) { return in[0].slice(0, 2, 2); }, {a});  // empty
    gradcheck_node("expand", [](const auto& in) { return in[0].expand({2, 3, 4}); }, {c});
    gradcheck_node("expand", [](const auto& in) { return in[0].expand({5, -1, 4}); }, {d});
    gradcheck_node("expand", [](const auto& in) { return in[0].transpose(0, 1).expand({2, 3, 4}); }, {r});
    gradcheck_node("squeeze", [](const auto& in) { return in[0].squeeze(1); }, {c});
    gradcheck_node("squeeze", [](const auto& in) { return in[0].transpose(0, 1).squeeze(0); }, {c});
    gradcheck_node("unsqueeze", [](const auto& in) { return in[0].unsqueeze(1); }, {a});
    gradcheck_node("unsqueeze", [](const auto& in) { return in[0].transpose(0, 1).unsqueeze(-1); }, {a});
    gradcheck_node("contiguous", [](const auto& in) { return in[0].transpose(0, 1).contiguous(); }, {a});
    gradcheck_node("contiguous", [](const auto& in) { return in[0].slice(2, 1, 4, 2).contiguous(); }, {b});
    gradcheck_node("clone", [](const auto& in) { return in[0].clone(); }, {a});
    gradcheck_node("clone", [](const auto& in) { return in[0].permute({1, 2, 0}).clone(); }, {b});
    // A cast to f32 rounds, so the path f64 -> f32 -> f64 is checked with tolerances that allow
    // f32 rounding: f(x) = cast(cast(x, f32), f64) · x, whose gradient is cast(x) + x.
    autograd::GradcheckOptions loose;
    loose.eps = 1e-3;
    loose.atol = 1e-4;
    loose.rtol = 1e-3;
    auto round_trip = [](const Tensor& x) { return ops::cast(ops::cast(x, DType::f32), DType::f64); };
    CHECK_GRADCHECK([round_trip](const auto& in) { return round_trip(in[0]) * in[0]; }, {a}, loose);
    gradcheck_node("cast", [round_trip](const auto& in) { return round_trip(in[0].transpose(0, 1)); }, {a}, loose);
}

TEST_CASE("shape ops: backward values") {
    // expand: the gradient sums over the broadcast dims.
    Tensor c = Tensor::from<double>({1, 2, 3}, {3, 1}).requires_grad_();
    ops::sum(c.expand({2, 3, 4})).backward();
    CHECK(c.grad().to_vector<double>() == std::vector<double>{8, 8, 8});
    // slice: ones where selected, zeros elsewhere; a tensor used twice accumulates.
    Tensor x = Tensor::zeros({6}, DType::f64).requires_grad_();
    ops::sum(x.slice(0, 1, 6, 2) + x.slice(0, 3, 6)).backward();
    CHECK(x.grad().to_vector<double>() == std::vector<double>{0, 1, 0, 2, 1, 2});
    // select (slice + squeeze) and permute route every element back to its place.
    Tensor m = Tensor::zeros({2, 3}, DType::f64).requires_grad_();
    ops::sum(m.select(1, -1) * 5.0 + m.permute({1, 0}).select(0, 0)).backward();
    CHECK(m.grad().to_vector<double>() == std::vector<double>{1, 0, 5, 1, 0, 5});
}

TEST_CASE("cast: backward casts the gradient back to the input's dtype") {
    Tensor x = Tensor::from<float>({1.5f, -2.0f}).requires_grad_();
    Tensor y = ops::cast(x, DType::f64);
    CHECK(node_name(y) == "cast");
    ops::sum(y * y).backward();
    CHECK(x.grad().dtype() == DType::f32);
    CHECK(x.grad().to_vector<float>() == std::vector<float>{3.0f, -4.0f});

    Tensor w = Tensor::from<double>({0.1, 0.2, 0.3}).requires_grad_();
    Tensor h = w.to(DType::bf16);
    CHECK(h.dtype() == DType::bf16);
    ops::sum(h * 2.0).backward();
    CHECK(w.grad().dtype() == DType::f64);
    CHECK(w.grad().to_vector<double>() == std::vector<double>{2, 2, 2});

    CHECK(ops::cast(w, DType::f64).same(w));      // same dtype: the tensor itself, no node
    Tensor i = ops::cast(w, DType::i32);          // to an integer dtype: no gradient
    CHECK_FALSE(i.requires_grad());
    CHECK(i.grad_fn() == nullptr);
    {
        autograd::NoGradGuard no_grad;
        CHECK(ops::cast(w, DType::f32).grad_fn() == nullptr);
    }
}

LUMEN_DEVICE_TEST("to_device: gradcheck through a round trip to each device") {
    Tensor x = test::leaf({3, 4}, 9);
    if (device.is_cpu()) {
        // On the CPU to_device is the identity and records nothing. On a machine without a GPU
        // this is the only device, so this case checks nothing more about to_device: expected.
        CHECK(ops::to_device(x, device).same(x));
        return;
    }
    Tensor y = ops::to_device(x, device);
    CHECK(y.device() == device);
    CHECK(node_name(y) == "to_device");
    CHECK(y.to(Device::cpu()).to_vector<double>() == x.to_vector<double>());
    gradcheck_node("mul", [device](const auto& in) {
        return ops::to_device(ops::to_device(in[0], device), Device::cpu()) * in[0];
    }, {x});
    gradcheck_node("to_device", [device](const auto& in) {
        return ops::to_device(ops::to_device(in[0].transpose(0, 1), device) * 3.0, Device::cpu());
    }, {x});
}
