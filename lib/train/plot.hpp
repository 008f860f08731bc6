// The picture of a training run: training and validation loss against the step, and the
// learning rate on a panel below, as an SVG document (base/svg_plot). Made from the steps a
// run reports, or read back from the JSON Lines a run writes with --metrics.
#pragma once

#include <cmath>
#include <string>
#include <vector>

namespace lm::train {

// One step of a run. NaN marks a value the step does not have (no validation on this step, a
// non-finite loss written as null).
struct MetricsPoint {
  double step = 0;
  double loss = NAN;
  double lr = NAN;
  double valid_loss = NAN;
};

// Reads a --metrics file ('-' = stdin): one JSON object per line with numbers "step" and
// "loss", and optionally "lr" and "valid_loss" (other members are ignored; blank lines are
// skipped). Points come back ordered by step. Throws FormatError "FILE:LINE: ..." for a line
// that is not a JSON object or lacks step or loss, FormatError when there is no line at all;
// IoError when it cannot be read.
std::vector<MetricsPoint> read_metrics(const std::string& path);

// The run's picture as an SVG document. Series of more than max_points points are drawn as
// the means of equal runs of consecutive steps, and their legend says how many steps each
// point stands for. Throws Error when no point has a finite value.
std::string metrics_svg(const std::vector<MetricsPoint>& points, const std::string& title, size_t max_points = 2000);

// metrics_svg written atomically to `path` ('-' = stdout), through OutputFile.
void write_metrics_svg(const std::string& path, const std::vector<MetricsPoint>& points, const std::string& title);

}  // namespace lm::train
