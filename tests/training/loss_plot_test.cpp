// tests/training/loss_plot_test.cpp: the loss curve (training/loss_plot.h): the data files hold the
// logged and evaluated losses, the script plots them, and with gnuplot installed loss.svg is an SVG.
#include "tests/data/data_test_util.h"
#include "tests/harness.h"
#include "training/loss_plot.h"

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>

using namespace lumen;
using lumen::test::ScratchDir;

namespace {
std::string read_text(const std::string& path) {
    std::ifstream in(path);
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
}
}  // namespace

TEST_CASE("loss plot: data files from metrics.jsonl, a gnuplot script, and loss.svg when gnuplot exists") {
    ScratchDir dir("loss_plot");
    lumen::test::write_bytes(dir.file("metrics.jsonl"),
                             "{\"type\":\"eval\",\"iter\":0,\"train_loss\":4.5,\"val_loss\":4.75}\n"
                             "{\"type\":\"iter\",\"iter\":0,\"loss\":4.25}\n"
                             "not json\n"
                             "{\"type\":\"iter\",\"iter\":1,\"loss\":3.5}\n"
                             "{\"type\":\"eval\",\"iter\":2,\"train_loss\":3.25,\"val_loss\":3.5}\n");
    const training::LossPlot plot = training::write_loss_plot(dir.str(), 1, "optical");
    CHECK(read_text(dir.file("loss_iter.dat")).find("0 4.25\n1 3.5\n") != std::string::npos);
    CHECK(read_text(dir.file("loss_eval.dat")).find("0 4.5 4.75\n2 3.25 3.5\n") != std::string::npos);
    const std::string gp = read_text(dir.file("loss.gp"));
    CHECK(gp.find("set output 'loss.svg'") != std::string::npos);
    CHECK(gp.find("'loss_eval.dat' using 1:3") != std::string::npos);
    CHECK(gp.find("set arrow from 1, graph 0") != std::string::npos);
    const bool have_gnuplot = std::system("command -v gnuplot > /dev/null 2>&1") == 0;
    CHECK(plot.rendered == have_gnuplot);
    if (have_gnuplot) {
        const std::string svg = read_text(dir.file("loss.svg"));
        CHECK(svg.find("<svg") != std::string::npos);
        CHECK(svg.find("val (eval)") != std::string::npos);
    } else {
        CHECK(plot.note.find("gnuplot") != std::string::npos);
    }
}

TEST_CASE("loss plot: an empty metrics file still gives a valid script") {
    ScratchDir dir("loss_plot_empty");
    lumen::test::write_bytes(dir.file("metrics.jsonl"), "");
    const training::LossPlot plot = training::write_loss_plot(dir.str());
    CHECK(read_text(dir.file("loss.gp")).find("no losses logged yet") != std::string::npos);
    if (plot.rendered) CHECK(std::filesystem::exists(dir.file("loss.svg")));
}
