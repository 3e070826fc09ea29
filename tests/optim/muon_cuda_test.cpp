// tests/optim/muon_cuda_test.cpp: Muon on a GPU: the element-wise Newton–Schulz kernels bit for bit
// against the CPU on awkward shapes, the momentum/update kernels (bad steps write nothing), the whole
// step against the CPU (f32 NS tight, bf16 NS at atol 2e-2 on O), and CUDA repeats bit for bit.
#include "tests/optim/muon_testing.h"

using namespace lumen;
using namespace lumen::optim_test;
using namespace lumen::muon_test;

namespace {

// A (rows, cols) f32 view: contiguous, transposed, or every other column of a wider tensor.
Tensor layout_case(int64_t rows, int64_t cols, int how, uint64_t seed, Device device) {
    if (how == 0) return Tensor::from(normal(rows * cols, seed, 1.0), {rows, cols}, device);
    if (how == 1) return Tensor::from(normal(rows * cols, seed, 1.0), {cols, rows}, device).transpose(0, 1);
    return Tensor::from(normal(rows * 2 * cols, seed, 1.0), {rows, 2 * cols}, device).slice(1, 0, 2 * cols, 2);
}

}  // namespace

LUMEN_CUDA_TEST("muon: Newton-Schulz element-wise kernels match the CPU bit for bit on awkward shapes") {
    const std::pair<int64_t, int64_t> shapes[] = {{1, 1}, {0, 7}, {3, 5}, {37, 129}, {64, 4097}, {100, 1}};
    uint64_t seed = 1;
    for (DType dt : {DType::bf16, DType::f32}) {
        for (auto [n, m] : shapes) {
            for (int how = 0; how < 3; ++how) {
                INFO(dtype_name(dt) << " " << n << "x" << m << " layout " << how);
                const Tensor src = layout_case(n, m, how, seed++, Device::cpu());
                const Tensor src_d = layout_case(n, m, how, seed - 1, device);
                const int64_t chunks = (n * m + optim::ns_norm_chunk - 1) / optim::ns_norm_chunk;
                Tensor x = Tensor::empty({n, m}, dt), xd = Tensor::empty({n, m}, dt, device);
                Tensor part = Tensor::empty({chunks}), part_d = Tensor::empty({chunks}, DType::f32, device);
                cpu::ns_load(x, part, src);
                kernels::ns_load(xd, part_d, src_d);
                CHECK(test::same_bits(xd, x));
                CHECK_CLOSE(part_d, part, test::Tolerance{0, 1e-5});
                // Normalise both by the CPU's sum, so the comparison is bit for bit.
                Tensor sumsq = Tensor::zeros({1});
                if (chunks > 0) kernels::reduce_rows(ReduceOp::sum, sumsq, part, chunks);
                cpu::ns_normalize(x, sumsq);
                kernels::ns_normalize(xd, sumsq.to(device));
                CHECK(test::same_bits(xd, x));
                // Combine with an f32 operand, in place (X = a·X + Q) and out of place.
                const Tensor q = Tensor::from(normal(n * m, seed++, 1.0), {n, m});
                const Tensor qd = q.to(device);
                Tensor y = Tensor::empty({n, m}, dt), yd = Tensor::empty({n, m}, dt, device);
                cpu::ns_combine(y, x, q, -4.775f, 2.0315f);
                kernels::ns_combine(yd, xd, qd, -4.775f, 2.0315f);
                CHECK(test::same_bits(yd, y));
                cpu::ns_combine(x, x, q, 3.4445f, 1.f);
                kernels::ns_combine(xd, xd, qd, 3.4445f, 1.f);
                CHECK(test::same_bits(xd, x));
                // Store transposed into a strided f32 destination with a scale.
                Tensor dst = Tensor::zeros({m, 2 * n}), dst_d = Tensor::zeros({m, 2 * n}, DType::f32, device);
                Tensor dv = dst.slice(1, 0, 2 * n, 2), dv_d = dst_d.slice(1, 0, 2 * n, 2);
                cpu::ns_store(dv, x.transpose(0, 1), 1.2247449f);
                kernels::ns_store(dv_d, xd.transpose(0, 1), 1.2247449f);
                CHECK(test::same_bits(dst_d, dst));
            }
        }
    }
}

LUMEN_CUDA_TEST("muon: momentum and update kernels match the CPU bit for bit (bad steps write nothing)") {
    for (int64_t n : {int64_t(0), int64_t(1), int64_t(1000), int64_t(100003)}) {
        for (bool nesterov : {true, false}) {
            for (float bad : {0.f, 1.f}) {
                INFO(n << std::string(nesterov ? " nesterov" : "") << " bad " << bad);
                const Tensor g = Tensor::from(normal(n, 1, 0.01), {n});
                Tensor m = Tensor::from(normal(n, 2, 0.01), {n}), p = Tensor::from(normal(n, 3, 0.1), {n});
                Tensor md = m.to(device), pd = p.to(device), gd = g.to(device);
                Tensor u = Tensor::empty({n}), ud = Tensor::empty({n}, DType::f32, device);
                const Tensor fl = flags(0.37, bad, Device::cpu()), fd = fl.to(device);
                const Tensor m0 = m.clone();
                cpu::muon_momentum(u, m, g, fl, 0.95, nesterov);
                kernels::muon_momentum(ud, md, gd, fd, 0.95, nesterov);
                CHECK(test::same_bits(ud, u));
                CHECK(test::same_bits(md, m));
                if (bad != 0.f) CHECK(test::same_bits(m, m0));
                const Tensor p0 = p.clone();
                cpu::muon_update(p, u, fl, 0.02f, 0.9998f);
                kernels::muon_update(pd, ud, fd, 0.02f, 0.9998f);
                CHECK(test::same_bits(pd, p));
                if (bad != 0.f) CHECK(test::same_bits(p, p0));
                // An undefined gradient is a zero gradient.
                cpu::muon_momentum(u, m, Tensor(), fl, 0.95, nesterov);
                kernels::muon_momentum(ud, md, Tensor(), fd, 0.95, nesterov);
                CHECK(test::same_bits(ud, u));
            }
        }
    }
}

LUMEN_CUDA_TEST("muon: the CUDA step matches the CPU (f32 NS at 1e-5; bf16 NS at atol 2e-2 on O)") {
    for (bool f32 : {true, false}) {
        INFO(std::string(f32 ? "f32 NS" : "bf16 NS"));
        optim::Hyper h = optim::api_defaults(optim::Kind::muon);
        h.ns_f32 = f32, h.weight_decay = 0.01;
        nn::Parameter big = param("big", {1024, 4097}, 9, Device::cpu());
        std::vector<nn::Parameter> pc = muon_params(Device::cpu());
        pc.push_back(big);
        std::vector<nn::Parameter> pg;
        for (const nn::Parameter& p : pc) {
            Tensor t = p.tensor.detach().to(device);
            t.set_requires_grad(true);
            pg.push_back({p.name, t, p.role, p.row_parts});
        }
        optim::Optimizer cpu_opt = muon_group(h, pc), gpu_opt = muon_group(h, pg);
        for (int step = 1; step <= (f32 ? 3 : 2); ++step) {  // 1024×4097 NS on the CPU is the cost
            // Restart both from the CPU's parameters and momentum so that O is compared per step.
            if (step > 1) {
                for (size_t i = 0; i < pc.size(); ++i) pg[i].tensor.detach().copy_(pc[i].tensor);
                std::map<std::string, Tensor> st;
                for (const auto& [name, t] : cpu_opt.state_dict().tensors) st[name] = t;
                gpu_opt.rule(0).load_state(st);
            }
            std::vector<Tensor> before;
            for (const nn::Parameter& p : pc) before.push_back(p.tensor.detach().clone());
            for (size_t i = 0; i < pc.size(); ++i) {
                const std::vector<float> g = grad_values(pc[i], step, i);
                set_grad(pc[i], g);
                set_grad(pg[i], g);
            }
            const double lr_scale = 0.9;
            // The same γ on both devices (bit-identical momentum is then expected).
            cpu_opt.step({lr_scale, flags(0.37, 0.0, Device::cpu())});
            gpu_opt.step({lr_scale, flags(0.37, 0.0, device)});
            const double lr_t = h.lr * lr_scale;
            for (size_t i = 0; i < pc.size(); ++i) {
                INFO("step " << step << " " << pc[i].name);
                // O = (p·(1 − lr·wd) − p₁)/lr on each device.
                const std::vector<double> p0 = values(before[i]), c = values(pc[i].tensor), g = values(pg[i].tensor);
                std::vector<double> oc(c.size()), og(c.size());
                for (size_t e = 0; e < c.size(); ++e) {
                    oc[e] = (p0[e] * (1 - lr_t * h.weight_decay) - c[e]) / lr_t;
                    og[e] = (p0[e] * (1 - lr_t * h.weight_decay) - g[e]) / lr_t;
                }
                std::string first;
                if (f32) {
                    CHECK_MESSAGE(mismatches(g, c, 1e-6, 1e-5, &first) == 0, first);
                } else {
                    CHECK_MESSAGE(mismatches(og, oc, 2e-2, 0, &first) == 0, first);
                }
            }
            const auto sc = cpu_opt.state_dict().tensors, sg = gpu_opt.state_dict().tensors;
            for (size_t i = 0; i < sc.size(); ++i) CHECK(test::same_bits(sg[i].second.to(Device::cpu()), sc[i].second));
        }
    }
}

LUMEN_CUDA_TEST("muon: the same CUDA steps twice give the same bits (bf16 and f32 NS)") {
    for (bool f32 : {true, false}) {
        optim::Hyper h = optim::api_defaults(optim::Kind::muon);
        h.ns_f32 = f32, h.weight_decay = 0.01;
        auto run = [&] {
            std::vector<nn::Parameter> ps = muon_params(device);
            ps.push_back(param("big", {768, 3072}, 8, device));
            optim::Optimizer opt = muon_group(h, ps);
            for (int step = 1; step <= 4; ++step) {
                feed(ps, step);
                opt.step({1.0, optim::clip_flags(ps, 0.5)});
            }
            return snapshot(opt);
        };
        check_same(run(), run());
    }
}
