// training/loss_plot.cpp: the loss curve's data files, gnuplot script and rendering.
#include "training/loss_plot.h"

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <cstdlib>
#include <filesystem>
#include <fstream>

namespace lumen::training {

namespace {

// `text` inside single quotes for the shell.
std::string shell_quoted(const std::string& text) {
    std::string out = "'";
    for (char c : text) out += c == '\'' ? std::string("'\\''") : std::string(1, c);
    return out + "'";
}

bool gnuplot_present() {
    static const bool present = std::system("command -v gnuplot > /dev/null 2>&1") == 0;
    return present;
}

}  // namespace

LossPlot write_loss_plot(const std::string& out_dir, std::optional<int64_t> mark_iteration,
                         const std::string& mark_label) {
    std::ifstream metrics(out_dir + "/metrics.jsonl");
    std::ofstream iter_dat(out_dir + "/loss_iter.dat"), eval_dat(out_dir + "/loss_eval.dat");
    iter_dat << "# iter loss (mean over the iteration's micro-batches)\n";
    eval_dat << "# iter train_loss val_loss\n";
    int64_t iters = 0, evals = 0;
    for (std::string line; std::getline(metrics, line);) {
        const nlohmann::json r = nlohmann::json::parse(line, nullptr, /*allow_exceptions=*/false);
        if (!r.is_object() || !r.contains("type")) continue;
        if (r["type"] == "iter" && r.contains("loss") && r["loss"].is_number()) {
            iter_dat << fmt::format("{} {}\n", r["iter"].get<int64_t>(), r["loss"].get<double>());
            ++iters;
        } else if (r["type"] == "eval" && r.contains("val_loss") && r["val_loss"].is_number()) {
            eval_dat << fmt::format("{} {} {}\n", r["iter"].get<int64_t>(), r["train_loss"].get<double>(),
                                    r["val_loss"].get<double>());
            ++evals;
        }
    }
    iter_dat.close();
    eval_dat.close();

    std::string plots;
    const auto add = [&](const std::string& p) { plots += (plots.empty() ? "" : ", \\\n     ") + p; };
    if (iters > 0) add("'loss_iter.dat' using 1:2 with lines lw 1 lc rgb '#9ecae1' title 'train (logged iterations)'");
    if (evals > 0) {
        add("'loss_eval.dat' using 1:2 with linespoints pt 7 ps 0.6 lw 2 lc rgb '#3182bd' title 'train (eval)'");
        add("'loss_eval.dat' using 1:3 with linespoints pt 7 ps 0.6 lw 2 lc rgb '#e6550d' title 'val (eval)'");
    }
    std::ofstream gp(out_dir + "/loss.gp");
    gp << "# lumen loss curve: cd to this directory and run `gnuplot loss.gp` (writes loss.svg)\n"
       << "set terminal svg size 960,540 dynamic font 'sans,12'\n"
       << "set output 'loss.svg'\n"
       << "set title 'lumen: loss'\nset xlabel 'iteration'\nset ylabel 'cross-entropy loss'\nset grid\n"
       << "set key top right\n";
    if (mark_iteration)
        gp << fmt::format("set arrow from {0}, graph 0 to {0}, graph 1 nohead dt 2 lc rgb '#636363'\n"
                          "set label '{1}' at {0}, graph 0.95 offset 0.5, 0\n",
                          *mark_iteration, mark_label);
    if (plots.empty()) gp << "set label 'no losses logged yet' at graph 0.4, graph 0.5\nplot [0:1] [0:1] NaN notitle\n";
    else gp << "plot " << plots << "\n";
    gp.close();

    if (!gnuplot_present()) return {false, "gnuplot is not installed (scripts/install-deps.sh installs gnuplot-nox)"};
    const std::string command = fmt::format("cd {} && gnuplot loss.gp > /dev/null 2>&1", shell_quoted(out_dir));
    if (std::system(command.c_str()) != 0) return {false, fmt::format("gnuplot failed on {}/loss.gp", out_dir)};
    return {true, ""};
}

}  // namespace lumen::training
