// tests/optical/optical_state_test.cpp: OpticalLinear's state across calls (specs/optical.md §4.2,
// §5, §10 R6, S2, S3, S5 at module level): the two call counters and their buffers, eval mode
// leaving ranges alone, training under no-grad updating them, the output statistics on the product
// or on the quantized output, a state-dict round trip into a fresh layer, activation checkpointing
// (the recompute reuses the original call's ranges and counter and advances nothing), and on a GPU
// a forward and backward captured into a CUDA graph (no host synchronisation).
#include "tests/optical/optical_testing.h"

#include "autograd/checkpoint.h"

#ifdef LUMEN_WITH_CUDA
#include "cuda/runtime.h"
#endif

using namespace lumen;

namespace {

int64_t buffer_value(const Tensor& counter) { return counter.to_vector<int64_t>()[0]; }

std::map<std::string, Tensor> state_of(const nn::Module& m) {
    std::map<std::string, Tensor> out;
    for (const auto& [name, t] : m.state_dict()) out[name] = t.clone();
    return out;
}

}  // namespace

LUMEN_DEVICE_TEST("optical state R6: counters advance once per call, training and eval apart") {
    auto layers = test::optical_pair(12, 5, true, device);
    nn::OpticalLinear& layer = *layers.optical;
    const Tensor x = test::random({3, 12}, 1, DType::f32, device);
    const auto buffers = [&] {
        std::map<std::string, Tensor> b;
        for (const auto& [name, t] : layer.buffers()) b[name] = t;
        return b;
    };
    autograd::NoGradGuard no_grad;
    layer.forward(x);
    layer.forward(x);
    CHECK(layer.dither_calls() == 2);
    CHECK(layer.dither_eval_calls() == 0);
    layer.eval();
    layer.forward(x);
    CHECK(layer.dither_calls() == 2);
    CHECK(layer.dither_eval_calls() == 1);
    CHECK(buffer_value(buffers()["dither_calls"]) == 2);
    CHECK(buffer_value(buffers()["dither_eval_calls"]) == 1);
    nn::OpticalSettings bypass = layer.settings();
    bypass.q_bypass = true;
    nn::OpticalLinear bypassed(*layers.digital, bypass, "bypassed");
    bypassed.forward(x);
    CHECK(bypassed.dither_calls() == 0);
    CHECK(bypassed.dither_eval_calls() == 0);
}

LUMEN_DEVICE_TEST("optical state R6: the eval schedule leaves the training outputs unchanged") {
    auto a = test::optical_pair(20, 6, true, device, {}, "blocks.3.mlp.c_fc", 2);
    auto b = test::optical_pair(20, 6, true, device, {}, "blocks.3.mlp.c_fc", 2);
    autograd::NoGradGuard no_grad;
    for (int step = 0; step < 4; ++step) {
        const Tensor x = test::random({4, 20}, uint64_t(10 + step), DType::f32, device);
        const Tensor ya = a.optical->forward(x);
        const Tensor yb = b.optical->forward(x);
        CHECK(test::same_bits(ya, yb));
        b.optical->eval();  // b evaluates after every training call, a never does
        b.optical->forward(x * 2.0);
        b.optical->train();
    }
    CHECK(test::same_bits(a.optical->out_min_max(), b.optical->out_min_max()));
}

LUMEN_DEVICE_TEST("optical state: scalar dither repeats its one offset on every call, element dither moves on") {
    for (nn::DitherMode mode : {nn::DitherMode::scalar, nn::DitherMode::element}) {
        nn::OpticalSettings s;
        s.dither = mode;
        s.q_init_seed = 7;
        s.q_smooth_factor = 1.0;  // the ranges freeze after calibration: only the counter changes
        auto layers = test::optical_pair(32, 16, false, device, s);
        const Tensor x = test::random({8, 32}, 5, DType::f32, device);
        autograd::NoGradGuard no_grad;
        layers.optical->forward(x);
        const Tensor y1 = layers.optical->forward(x), y2 = layers.optical->forward(x);
        CHECK(layers.optical->dither_calls() == 3);
        CHECK(test::same_bits(y1, y2) == (mode == nn::DitherMode::scalar));
    }
}

LUMEN_DEVICE_TEST("optical state S2: eval leaves calibrated buffers alone, training under no-grad updates") {
    auto layers = test::optical_pair(16, 7, false, device);
    nn::OpticalLinear& layer = *layers.optical;
    const Tensor x = test::random({5, 16}, 3, DType::f32, device);
    autograd::NoGradGuard no_grad;
    layer.forward(x);
    const auto calibrated = state_of(layer);
    layer.eval();
    layer.forward(x * 4.0);
    for (const char* name : {"x_min_max", "w_min_max", "out_min_max"})
        CHECK(test::same_bits(state_of(layer)[name], calibrated.at(name)));
    layer.train();
    layer.forward(x * 4.0);
    CHECK(!test::same_bits(state_of(layer)["x_min_max"], calibrated.at("x_min_max")));
    CHECK(!test::same_bits(state_of(layer)["out_min_max"], calibrated.at("out_min_max")));
}

LUMEN_DEVICE_TEST("optical state S3: output statistics on the product or on the quantized output") {
    for (nn::OutStats mode : {nn::OutStats::product, nn::OutStats::quantized}) {
        nn::OpticalSettings s;
        s.out_stats = mode;
        auto layers = test::optical_pair(16, 7, false, device, s);
        const Tensor x = test::random({9, 16}, 4, DType::f32, device);
        autograd::NoGradGuard no_grad;
        layers.optical->forward(x);
        const std::vector<float> before = layers.optical->out_min_max().to_vector<float>();
        layers.optical->forward(x * 8.0);  // accumulators far beyond the current range
        const std::vector<float> after = layers.optical->out_min_max().to_vector<float>();
        INFO("quantized " << (mode == nn::OutStats::quantized));
        if (mode == nn::OutStats::product) {
            CHECK(after[1] > before[1]);  // moves toward the accumulator's range, above hi
            CHECK(after[0] < before[0]);
        } else {
            // The quantized output cannot exceed hi (no bias): the range never grows (up to the
            // f32 rounding of the top level and of the EMA, an ulp or two).
            CHECK(after[1] <= before[1] + 4e-7f * std::fabs(before[1]));
            CHECK(after[0] >= before[0] - 4e-7f * std::fabs(before[0]));
        }
    }
}

LUMEN_DEVICE_TEST("optical state S5: a state-dict round trip continues bit for bit") {
    auto a = test::optical_pair(10, 6, true, device, {}, "blocks.1.mlp.c_proj", 5);
    autograd::NoGradGuard no_grad;
    for (int step = 0; step < 3; ++step) a.optical->forward(test::random({4, 10}, uint64_t(step), DType::f32, device));
    a.optical->eval();
    a.optical->forward(test::random({4, 10}, 99, DType::f32, device));
    a.optical->train();
    const auto saved = state_of(*a.optical);

    auto b = test::optical_pair(10, 6, true, device, {}, "blocks.1.mlp.c_proj", 77);  // other weights
    CHECK(!b.optical->out_calibrated());
    b.optical->load_state_dict(saved);
    CHECK(b.optical->out_calibrated());
    CHECK(b.optical->dither_calls() == 3);
    CHECK(b.optical->dither_eval_calls() == 1);
    for (int step = 3; step < 5; ++step) {
        const Tensor x = test::random({4, 10}, uint64_t(step), DType::f32, device);
        CHECK(test::same_bits(a.optical->forward(x), b.optical->forward(x)));
    }
    for (const auto& [name, t] : state_of(*a.optical)) CHECK(test::same_bits(state_of(*b.optical)[name], t));

    // A loaded uncalibrated state calibrates again on the next call.
    auto fresh = test::optical_pair(10, 6, true, device, {}, "blocks.1.mlp.c_proj", 5);
    b.optical->load_state_dict(state_of(*fresh.optical));
    CHECK(!b.optical->out_calibrated());
    CHECK(b.optical->dither_calls() == 0);
}

LUMEN_DEVICE_TEST("optical state: checkpoint recompute reuses the call's ranges and counter") {
    auto plain = test::optical_pair(12, 8, true, device, {}, "blocks.0.mlp.c_fc", 6);
    auto ckpt = test::optical_pair(12, 8, true, device, {}, "blocks.0.mlp.c_fc", 6);
    for (int step = 0; step < 3; ++step) {
        Tensor x1 = test::random({5, 12}, uint64_t(20 + step), DType::f32, device).detach(), x2 = x1.detach();
        x1.set_requires_grad(true);
        x2.set_requires_grad(true);
        // y² inside the checkpoint: its gradient reads the recomputed quantized output.
        const auto squared = [](const Tensor& y) { return y * y; };
        const Tensor y1 = squared(plain.optical->forward(x1));
        ops::sum(y1).backward();
        const Tensor y2 = autograd::checkpoint(
            [&](const std::vector<Tensor>& in) { return squared(ckpt.optical->forward(in[0])); }, {x2});
        CHECK(test::same_bits(y2, y1));
        CHECK(ckpt.optical->pending_recomputes() == 1);
        const auto before = state_of(*ckpt.optical);
        ops::sum(y2).backward();
        CHECK(ckpt.optical->pending_recomputes() == 0);
        for (const auto& [name, t] : state_of(*ckpt.optical)) CHECK(test::same_bits(t, before.at(name)));
        CHECK(ckpt.optical->dither_calls() == step + 1);
        CHECK(test::same_bits(x2.grad(), x1.grad()));
        CHECK(test::same_bits(ckpt.optical->weight().grad(), plain.optical->weight().grad()));
        CHECK(test::same_bits(ckpt.optical->bias().grad(), plain.optical->bias().grad()));
    }
}

#ifdef LUMEN_WITH_CUDA
LUMEN_CUDA_TEST("optical state: forward and backward capture into a CUDA graph (no host sync)") {
    for (int variant = 0; variant < 3; ++variant) {  // training, eval, training with quantile statistics
        const bool training = variant != 1;
        nn::OpticalSettings s;
        if (variant == 2) s.q_quantiles = std::pair{0.001, 0.999};
        auto layers = test::optical_pair(64, 48, true, device, s, "blocks.0.attn.c_attn", 8, {16, 16, 16});
        layers.optical->train(training);
        const Tensor x = test::random({2, 9, 64}, 9, DType::bf16, device).detach();
        const Tensor dy = test::random({2, 9, 48}, 10, DType::bf16, device);
        Tensor xg = x.detach();
        xg.set_requires_grad(true);
        for (int warm = 0; warm < 3; ++warm) layers.optical->forward(xg).backward(dy);  // allocator blocks, plans
        cuda::synchronize(device.index);
        cudaStream_t stream = cuda::compute_stream(device.index);
        REQUIRE(cudaStreamBeginCapture(stream, cudaStreamCaptureModeThreadLocal) == cudaSuccess);
        std::string error;
        try {
            layers.optical->forward(xg).backward(dy);
        } catch (const std::exception& e) {
            error = e.what();
        }
        cudaGraph_t graph = nullptr;
        const cudaError_t end = cudaStreamEndCapture(stream, &graph);
        INFO("variant " << variant << ": " << error << " / " << cudaGetErrorString(end));
        CHECK(error.empty());
        CHECK(end == cudaSuccess);
        if (graph) cudaGraphDestroy(graph);
        cudaGetLastError();
        cuda::synchronize(device.index);
    }
}
#endif
