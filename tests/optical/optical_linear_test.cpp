// tests/optical/optical_linear_test.cpp: OpticalLinear's forward and backward (specs/optical.md
// §3.1, §3.2, §10 L1–L5, Q6): the error against the float product after calibration (min/max and
// quantiles), CUDA against the CPU, the straight-through backward equal to the digital Linear's
// (bit for bit on the CPU), eval-mode calibration of a fresh layer, the bias after the output
// quantizer, and fused q/k/v parts measured like three separate layers.
#include "tests/optical/optical_testing.h"

#include "autograd/ops/optical_linear.h"

using namespace lumen;

LUMEN_GRADCHECK_COVERS("optical_linear", "optical_matmul");  // straight-through: compared with the digital backward

LUMEN_DEVICE_TEST("optical linear L1: relative error after calibration, min/max and quantiles") {
    for (bool quantiles : {false, true})
        for (DType dt : {DType::f32, DType::bf16}) {
            nn::OpticalSettings s;
            if (quantiles) s.q_quantiles = std::pair{0.001, 0.999};
            auto layers = test::optical_pair(384, 1408, false, device, s);
            Generator gen(5);
            const Tensor x = ops::randn({4096, 384}, gen, 0.0, 1.0, DType::f32, device).to(dt);
            autograd::NoGradGuard no_grad;
            layers.optical->forward(x);  // training: calibrates
            layers.optical->eval();
            const Tensor y = layers.optical->forward(x);
            const double err = test::relative_error(y, test::float_linear(x, layers.digital->weight()));
            INFO("quantiles " << quantiles << " dtype " << dtype_name(dt) << " error " << err);
            CHECK(err >= (quantiles ? 0.02 : 0.015));
            CHECK(err <= (quantiles ? 0.05 : 0.04));
        }
}

LUMEN_CUDA_TEST("optical linear L2: CUDA within one output step of the CPU on odd shapes") {
    const int64_t shapes[][3] = {{7, 33, 13}, {129, 65, 257}, {1, 1, 1}, {300, 97, 3}};  // M, K, N
    for (const auto& [M, K, N] : shapes)
        for (DType dt : {DType::f32, DType::bf16}) {
            auto cpu = test::optical_pair(K, N, true, Device::cpu());
            auto gpu = test::optical_pair(K, N, true, device);
            const Tensor x = test::random({M, K}, uint64_t(M + K), DType::f32).to(dt);
            autograd::NoGradGuard no_grad;
            for (int call = 0; call < 2; ++call) {
                const Tensor yc = cpu.optical->forward(x);
                const Tensor yg = gpu.optical->forward(x.to(device));
                // Min/max statistics are exact: identical ranges on both devices.
                CHECK(test::same_bits(gpu.optical->x_min_max().to(Device::cpu()), cpu.optical->x_min_max()));
                CHECK(test::same_bits(gpu.optical->w_min_max().to(Device::cpu()), cpu.optical->w_min_max()));
                const std::vector<float> out = cpu.optical->out_min_max().to_vector<float>();
                const double step = (double(out[1]) - double(out[0])) / 255;
                const std::vector<double> a = yc.to_vector<double>(), b = yg.to(Device::cpu()).to_vector<double>();
                int64_t differing = 0, beyond = 0;
                for (size_t i = 0; i < a.size(); ++i) {
                    const double tol = step * 1.001 + std::fabs(a[i]) * (dt == DType::bf16 ? 0.008 : 1e-6);
                    // A different level, not last-bit noise: the output range is calibrated from one
                    // float product, whose GEMM order differs between the devices.
                    differing += std::fabs(a[i] - b[i]) > 0.5 * step;
                    beyond += std::fabs(a[i] - b[i]) > tol;
                }
                INFO("M " << M << " K " << K << " N " << N << " " << dtype_name(dt) << " call " << call);
                CHECK(beyond == 0);
                CHECK(double(differing) <= 0.001 * double(a.size()) + 1);
            }
        }
}

LUMEN_DEVICE_TEST("optical linear L3: backward equals the digital Linear's (bit for bit on the CPU)") {
    for (DType dt : {DType::f32, DType::bf16})
        for (bool strided : {false, true}) {
            auto layers = test::optical_pair(24, 10, true, device, {}, "blocks.1.attn.c_proj", 3);
            Tensor base = test::random({2, 5, strided ? 48 : 24}, 7, dt, device);
            Tensor x = (strided ? base.slice(2, 0, 48, 2) : base).detach();  // (2, 5, 24), maybe strided
            x.set_requires_grad(true);
            const Tensor dy = test::random({2, 5, 10}, 8, dt, device);
            layers.digital->forward(x).backward(dy);
            const Tensor gx = x.grad(), gw = layers.digital->weight().grad(), gb = layers.digital->bias().grad();
            x.zero_grad();
            layers.digital->weight().zero_grad();
            layers.digital->bias().zero_grad();
            Tensor y = layers.optical->forward(x);
            CHECK(y.shape() == Shape{2, 5, 10});
            CHECK(y.dtype() == dt);
            y.backward(dy);
            INFO(dtype_name(dt) << " strided " << strided);
            if (device.is_cpu()) {
                CHECK(test::same_bits(x.grad(), gx));
                CHECK(test::same_bits(layers.optical->weight().grad(), gw));
                CHECK(test::same_bits(layers.optical->bias().grad(), gb));
            } else {
                CHECK_CLOSE(x.grad(), gx, test::tolerance(dt));
                CHECK_CLOSE(layers.optical->weight().grad(), gw, test::tolerance(dt));
                CHECK_CLOSE(layers.optical->bias().grad(), gb, test::tolerance(dt));
            }
        }
}

LUMEN_DEVICE_TEST("optical linear Q6: dx = dy exactly, clamped elements included") {
    // optical_matmul(x, I): the straight-through gradient of x is dy · Iᵀ = dy.
    Tensor x = test::random({4, 8}, 1, DType::f32, device, -3, 3).detach();
    x.set_requires_grad(true);
    std::vector<float> eye(64, 0.0f);
    for (int i = 0; i < 8; ++i) eye[size_t(i * 9)] = 1.0f;
    ops::OpticalMatmulCall call;
    call.a_range = Tensor::from(std::vector<float>{-1, 1}).to(device);  // most of x is clamped
    call.b_range = Tensor::from(std::vector<float>{0, 1}).to(device);
    call.out_range = Tensor::from(std::vector<float>{-1, 1}).to(device);
    const Tensor dy = test::random({4, 8}, 2, DType::f32, device);
    ops::optical_matmul(x, Tensor::from(eye, {8, 8}, device), call).backward(dy);
    CHECK(test::same_bits(x.grad(), dy));
}

LUMEN_DEVICE_TEST("optical linear L4: a fresh layer in eval mode calibrates on the batch") {
    auto layers = test::optical_pair(40, 12, false, device, {}, "blocks.2.mlp.c_proj", 9);
    layers.optical->eval();
    const Tensor x = test::random({6, 40}, 4, DType::f32, device, -2, 3);
    autograd::NoGradGuard no_grad;
    const Tensor y = layers.optical->forward(x);
    CHECK(test::all_finite(y));
    const auto min_max = [](const Tensor& t) {
        const std::vector<float> v = t.to_vector<float>();
        return std::vector<float>{*std::min_element(v.begin(), v.end()), *std::max_element(v.begin(), v.end())};
    };
    CHECK(layers.optical->x_min_max().to_vector<float>() == min_max(x));
    CHECK(layers.optical->w_min_max().to_vector<float>() == min_max(layers.digital->weight()));
    const std::vector<float> ref = min_max(test::float_linear(x, layers.digital->weight()));
    const std::vector<float> out = layers.optical->out_min_max().to_vector<float>();
    if (device.is_cpu()) {
        CHECK(out == ref);
    } else {
        CHECK(std::fabs(out[0] - ref[0]) <= 1e-5f * std::fabs(ref[0]));
        CHECK(std::fabs(out[1] - ref[1]) <= 1e-5f * std::fabs(ref[1]));
    }
    CHECK(layers.optical->out_calibrated());
    const std::vector<Tensor> before = {layers.optical->x_min_max().clone(), layers.optical->w_min_max().clone(),
                                        layers.optical->out_min_max().clone()};
    layers.optical->forward(x * 3.0);
    CHECK(test::same_bits(layers.optical->x_min_max(), before[0]));
    CHECK(test::same_bits(layers.optical->w_min_max(), before[1]));
    CHECK(test::same_bits(layers.optical->out_min_max(), before[2]));
    CHECK(layers.optical->dither_calls() == 0);
    CHECK(layers.optical->dither_eval_calls() == 2);
}

LUMEN_DEVICE_TEST("optical linear L5: the bias is added in f32 after the output quantizer") {
    auto layers = test::optical_pair(16, 9, true, device, {}, "blocks.0.attn.c_attn", 2);
    const Tensor x = test::random({5, 16}, 3, DType::f32, device);
    autograd::NoGradGuard no_grad;
    ops::OpticalLinearCall call;
    call.x_range = Tensor::from(std::vector<float>{-1, 1}).to(device);
    call.w_range = Tensor::from(std::vector<float>{-0.05f, 0.05f}, {1, 2}).to(device);
    call.out_range = Tensor::from(std::vector<float>{-0.2f, 0.2f}, {1, 2}).to(device);
    call.update_ranges = false;
    call.dither.key = {0, 0x1234u, 17};
    const Tensor w = layers.digital->weight(), b = layers.digital->bias();
    const Tensor with_bias = ops::optical_linear(x, w, b, call);
    const Tensor without = ops::optical_linear(x, w, Tensor(), call);
    CHECK(test::same_bits(with_bias, without + b));  // f32: one rounding of q + b either way
    CHECK(!test::same_bits(with_bias, without));
}

LUMEN_DEVICE_TEST("optical linear: fused q/k/v parts have the ranges of three separate layers") {
    const std::vector<int64_t> parts = {8, 4, 4};
    auto fused = test::optical_pair(8, 16, false, device, {}, "blocks.0.attn.c_attn", 4, parts);
    CHECK(fused.optical->parts() == 3);
    CHECK(fused.optical->w_min_max().shape() == Shape{3, 2});
    const Tensor x = test::random({11, 8}, 6, DType::f32, device);
    autograd::NoGradGuard no_grad;
    fused.optical->forward(x);
    fused.optical->forward(x * 0.5);  // the EMA, per part
    const Tensor w = fused.digital->weight();
    int64_t r0 = 0;
    for (int64_t q = 0; q < 3; ++q) {
        Generator unused(0);
        auto part = std::make_shared<nn::Linear>(8, parts[size_t(q)], false, unused);
        Tensor pw = part->weight();
        pw.copy_(w.narrow(0, r0, parts[size_t(q)]).to(Device::cpu()));
        part->to(device);
        nn::OpticalLinear separate(*part, {}, "separate");
        separate.forward(x);
        separate.forward(x * 0.5);
        INFO("part " << q);
        CHECK(test::same_bits(separate.w_min_max().reshape({2}), fused.optical->w_min_max().select(0, q)));
        if (device.is_cpu())
            CHECK(test::same_bits(separate.out_min_max().reshape({2}), fused.optical->out_min_max().select(0, q)));
        else
            CHECK_CLOSE(separate.out_min_max().reshape({2}), fused.optical->out_min_max().select(0, q),
                        test::Tolerance{1e-6, 1e-5});
        CHECK(test::same_bits(separate.x_min_max(), fused.optical->x_min_max()));
        r0 += parts[size_t(q)];
    }
}
