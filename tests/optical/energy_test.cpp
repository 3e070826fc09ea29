// tests/optical/energy_test.cpp: the energy model (specs/optical.md §8, §10 E1): MAC, conversion and
// weight-access counts of the AICrossSim CLM shapes (§8.3's table), photon and digital energies,
// the "not set" terms, and the report's engineering formatting.
#include "nn/optical_energy.h"
#include "tests/harness.h"

#include <cmath>

using namespace lumen;
using nn::OpticalUnitKind;

namespace {

// §9.3: RMSNorm, RoPE, head_dim 64, SwiGLU, untied lm_head; vocabulary 49,152 and T = 1024 (§8.3).
nn::ModelConfig clm(int64_t dim, int64_t layers, int64_t heads, int64_t kv_heads, int64_t ffn) {
    nn::ModelConfig c;
    c.n_embd = dim;
    c.n_layer = layers;
    c.n_head = heads;
    c.n_kv_head = kv_heads;
    c.mlp = nn::MlpKind::swiglu;
    c.mlp_hidden = ffn;
    c.tie_embeddings = false;
    c.vocab_size = 49'152;
    c.block_size = 1024;
    c.norm = nn::NormKind::rmsnorm;
    c.pos = nn::PosKind::rope;
    return c;
}

// The selection of a Llama-shaped model written out by hand (no module tree): per layer the
// attention unit, the fused q/k/v projection, o, gate, up and down.
nn::OpticalReport llama_selection(const nn::ModelConfig& c) {
    nn::OpticalReport r;
    const int64_t d = c.n_embd, hs = c.head_size(), kv = c.kv_heads() * hs, f = c.mlp_hidden;
    auto linear = [&](std::string name, int64_t in, int64_t out, std::vector<int64_t> parts) {
        nn::OpticalModuleInfo m;
        m.name = std::move(name);
        m.kind = OpticalUnitKind::linear;
        m.settings = "fc";
        m.d_in = in;
        m.d_out = out;
        m.row_parts = std::move(parts);
        r.selected.push_back(m);
    };
    for (int64_t l = 0; l < c.n_layer; ++l) {
        const std::string b = "blocks." + std::to_string(l);
        nn::OpticalModuleInfo a;
        a.name = b + ".attn";
        a.kind = OpticalUnitKind::attention;
        a.settings = "attention";
        a.n_head = c.n_head;
        a.n_kv_head = c.kv_heads();
        a.head_size = hs;
        a.d_in = a.d_out = d;
        r.selected.push_back(a);
        linear(b + ".attn.c_attn", d, d + 2 * kv, {d, kv, kv});
        linear(b + ".attn.c_proj", d, d, {d});
        linear(b + ".mlp.c_gate", d, f, {f});
        linear(b + ".mlp.c_fc", d, f, {f});
        linear(b + ".mlp.c_proj", f, d, {d});
    }
    return r;
}

struct Row {
    int64_t dim, layers, heads, kv_heads, ffn;
    int64_t mac_linear, mac_attention, mac_lm_head, adc, dac;
    const char* digital;  // @300 fJ/MAC, as §8.3 prints it
};

// specs/optical.md §8.3 [derived]
const Row kRows[] = {
    {384, 22, 6, 2, 1408, 44'335'104, 8'659'200, 18'874'368, 169'026, 157'762, "15.9 µJ"},
    {768, 24, 12, 4, 2688, 186'384'384, 18'892'800, 37'748'736, 362'640, 341'136, "61.6 µJ"},
    {960, 30, 15, 5, 3328, 361'267'200, 29'520'000, 47'185'920, 564'705, 532'065, "117 µJ"},
    {1152, 32, 18, 6, 4096, 566'231'040, 37'785'600, 56'623'104, 729'376, 684'320, "181 µJ"},
    {1536, 32, 24, 8, 5376, 994'050'048, 50'380'800, 75'497'472, 967'040, 909'696, "313 µJ"},
};

void check_row(const nn::OpticalReport& report, const nn::ModelConfig& c, const Row& row) {
    const nn::OpticalWork w = nn::count_optical_work(report, c, nn::EnergyParams{});
    CHECK(w.context == 1024);
    CHECK(w.mac_linear == row.mac_linear);
    CHECK(w.mac_attention == row.mac_attention);
    CHECK(w.mac_lm_head == row.mac_lm_head);
    CHECK(w.n_adc == double(row.adc));
    CHECK(w.n_dac == double(row.dac));
    CHECK(w.linear_units == 5 * c.n_layer);
    CHECK(w.attention_units == c.n_layer);
    const nn::EnergyEstimate e = nn::estimate_energy(w, nn::EnergyParams{});
    CHECK(nn::format_joules(e.digital) == row.digital);
}

}  // namespace

TEST_CASE("optical energy: hν = h·c/λ") {
    const double h = 6.62607015e-34, c = 299792458.0;
    CHECK(nn::photon_energy_j(1550) == h * c / 1550e-9);
    CHECK(std::fabs(nn::photon_energy_j(1550) / 1.2816e-19 - 1) < 1e-4);  // §8.2
    CHECK(std::fabs(nn::photon_energy_j(530) / 3.748e-19 - 1) < 1e-3);
}

TEST_CASE("optical energy: E1, the 60M shape planned on the model itself (§8.3 first row)") {
    nn::NoInitGuard no_init;  // counting only
    const nn::ModelConfig c = clm(384, 22, 6, 2, 1408);
    nn::GPT model(c);
    const nn::OpticalReport r = nn::plan_optical_transform(model, nn::OpticalPlan{});
    check_row(r, c, kRows[0]);

    // the module walk finds the same units as the hand-written Llama selection
    const nn::OpticalReport hand = llama_selection(c);
    REQUIRE(r.selected.size() == hand.selected.size());
    for (size_t i = 0; i < hand.selected.size(); ++i) {
        // model order: attn, attn.c_attn, attn.c_proj, then the MLP's c_gate, c_fc, c_proj
        CHECK(r.selected[i].name == hand.selected[i].name);
        CHECK(r.selected[i].row_parts == hand.selected[i].row_parts);
    }

    const nn::OpticalWork w = nn::count_optical_work(r, c, nn::EnergyParams{});
    CHECK(w.mac_optical() == 52'994'304);
    CHECK(w.weight_reuse == 1024);
    CHECK(w.n_weight == 44'335'104.0 / 1024 + 22 * 2 * 2 * 64);  // d_in·d_out/R + the new K and V

    const double hv = nn::photon_energy_j(1550);
    nn::EnergyParams per_mac;
    per_mac.photons_per_mac = 1;
    const auto e1 = nn::estimate_energy(w, per_mac);
    REQUIRE(e1.optical);
    CHECK(*e1.optical == doctest::Approx(52'994'304 * hv).epsilon(1e-12));
    CHECK(nn::format_joules(*e1.optical) == "6.79 pJ");

    nn::EnergyParams per_output;
    per_output.photons_per_output = 100;
    const auto e2 = nn::estimate_energy(w, per_output);
    REQUIRE(e2.optical);
    CHECK(*e2.optical == doctest::Approx(169'026 * 100 * hv).epsilon(1e-12));
    CHECK(nn::format_joules(*e2.optical) == "2.17 pJ");

    CHECK(e1.digital == doctest::Approx(52'994'304 * 300e-15).epsilon(1e-12));
    CHECK(nn::format_joules(e1.digital) == "15.9 µJ");
    CHECK(e1.lm_head_digital == doctest::Approx(18'874'368 * 300e-15).epsilon(1e-12));

    const std::string text = nn::format_energy_report(r, c, per_mac);
    INFO(text);
    for (const char* s : {"52,994,304", "44,335,104", "8,659,200", "18,874,368", "157,762", "169,026", "6.79 pJ",
                          "15.9 µJ", "5.66 µJ", "not set (e_dac_pj)", "not set (e_adc_pj)", "not set (e_weight_pj)",
                          "not set (e_mem_pj)", "48,928"})
        CHECK(text.find(s) != std::string::npos);
    CHECK(nn::format_energy_report(r, c, nn::EnergyParams{}).find("E_opt                 not set") != std::string::npos);
}

TEST_CASE("optical energy: E1, the 200M shape planned on the model (§8.3 second row)") {
    nn::NoInitGuard no_init;
    const nn::ModelConfig c = clm(768, 24, 12, 4, 2688);
    nn::GPT model(c);
    check_row(nn::plan_optical_transform(model, nn::OpticalPlan{}), c, kRows[1]);
}

TEST_CASE("optical energy: every row of §8.3 from the hand-written selection (half-integer averages)") {
    for (const Row& row : kRows) {
        INFO(row.dim);
        const nn::ModelConfig c = clm(row.dim, row.layers, row.heads, row.kv_heads, row.ffn);
        check_row(llama_selection(c), c, row);
    }
}

TEST_CASE("optical energy: electronics terms, totals and the ratio") {
    const nn::ModelConfig c = clm(384, 22, 6, 2, 1408);
    const auto report = llama_selection(c);
    nn::EnergyParams p;
    p.photons_per_output = 100;
    p.efficiency = 0.5;
    p.e_dac_pj = 1;
    p.e_adc_pj = 2;
    p.e_weight_pj = 3;
    const auto w = nn::count_optical_work(report, c, p);
    auto e = nn::estimate_energy(w, p);
    CHECK(*e.optical == doctest::Approx(169'026 * 100 * nn::photon_energy_j(1550) / 0.5).epsilon(1e-12));
    CHECK(*e.dac == doctest::Approx(157'762e-12).epsilon(1e-12));
    CHECK(*e.adc == doctest::Approx(2 * 169'026e-12).epsilon(1e-12));
    CHECK(*e.weight == doctest::Approx(3 * 48'928e-12).epsilon(1e-12));
    CHECK_FALSE(e.mem);
    CHECK_FALSE(e.electronics);
    CHECK_FALSE(e.optical_total);
    std::string text = nn::format_energy_report(report, c, p);
    CHECK(text.find("not set (e_mem_pj)") != std::string::npos);
    CHECK(text.find("digital / optical     not computable") != std::string::npos);

    p.e_mem_pj = 4;
    e = nn::estimate_energy(w, p);
    const double elec = (157'762 + 2 * 169'026 + (3 + 4) * 48'928) * 1e-12;
    CHECK(*e.electronics == doctest::Approx(elec).epsilon(1e-12));
    CHECK(*e.optical_total == doctest::Approx(elec + *e.optical).epsilon(1e-12));
    text = nn::format_energy_report(report, c, p);
    // 15.898 µJ / 0.839 µJ ≈ 18.9
    const double ratio = e.digital / *e.optical_total;
    CHECK(text.find(fmt::format("digital / optical     {:.3g}×", ratio)) != std::string::npos);

    // context and weight reuse override the block size
    p.context = 2048;
    p.weight_reuse = 1;
    const auto w2 = nn::count_optical_work(report, c, p);
    CHECK(w2.mac_attention == 22 * 384 * 2049);
    CHECK(w2.n_weight == 44'335'104.0 + 22 * 256);

    nn::EnergyParams both;
    both.photons_per_mac = 1;
    both.photons_per_output = 1;
    CHECK_THROWS_CONTAINING(nn::estimate_energy(w, both), "not both");
}

TEST_CASE("optical energy: bypassed modules are digital; a tied head still counts its digital MACs") {
    nn::ModelConfig c = clm(384, 22, 6, 2, 1408);
    c.tie_embeddings = true;
    auto report = llama_selection(c);
    int64_t bypassed_macs = 0;
    for (auto& m : report.selected)
        if (m.name.ends_with(".mlp.c_gate")) {
            m.bypass = true;
            bypassed_macs += m.d_in * m.d_out;
        }
    const auto w = nn::count_optical_work(report, c, nn::EnergyParams{});
    CHECK(bypassed_macs == 22 * 384 * 1408);
    CHECK(w.mac_bypassed == bypassed_macs);
    CHECK(w.mac_linear == 44'335'104 - bypassed_macs);
    CHECK(w.n_adc == 169'026 - 22 * 1408);
    CHECK(w.n_dac == 157'762 - 22 * 384);
    CHECK(w.linear_units == 4 * 22);
    CHECK(w.mac_lm_head == 18'874'368);
}

TEST_CASE("optical energy: engineering formatting") {
    CHECK(nn::format_joules(6.7915e-12) == "6.79 pJ");
    CHECK(nn::format_joules(15.898e-6) == "15.9 µJ");
    CHECK(nn::format_joules(117.3e-6) == "117 µJ");
    CHECK(nn::format_joules(9.996e-12) == "10.0 pJ");
    CHECK(nn::format_joules(999.6e-12) == "1.00 nJ");
    CHECK(nn::format_joules(1.5e-3) == "1.50 mJ");
    CHECK(nn::format_joules(2.0) == "2.00 J");
    CHECK(nn::format_joules(0) == "0 J");
}
