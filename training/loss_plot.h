// training/loss_plot.h: the run's loss curve, out_dir/loss.svg, rendered by gnuplot from the metrics
// file (every training line's loss, and the train/val losses of the evals).
//
//   out_dir/loss_iter.dat   "iter loss" per log line       out_dir/loss.gp    the gnuplot script
//   out_dir/loss_eval.dat   "iter train_loss val_loss"     out_dir/loss.svg   the plot
//
// Re-plot by hand with `cd OUT_DIR && gnuplot loss.gp`. Without gnuplot the data and the script are
// still written, and the result says why nothing was rendered.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

namespace lumen::training {

struct LossPlot {
    bool rendered = false;
    std::string note;  // why it was not rendered ("" when it was)
};

// Reads out_dir/metrics.jsonl. `mark_iteration` draws a vertical line there (the optical switch).
LossPlot write_loss_plot(const std::string& out_dir, std::optional<int64_t> mark_iteration = std::nullopt,
                         const std::string& mark_label = "");

}  // namespace lumen::training
