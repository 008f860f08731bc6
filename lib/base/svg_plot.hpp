// Line charts as standalone SVG documents: stacked panels sharing one x axis, each with its
// own y axis, tick labels, grid and legend. No dependency: the document is built as text, and
// any browser or image viewer shows it.
#pragma once

#include <string>
#include <vector>

namespace lm::plot {

struct Series {
  std::string name;          // legend text
  std::string color;         // an SVG colour, e.g. "#1f77b4"
  std::vector<double> x, y;  // the same length; a point with a non-finite coordinate is left out
  bool markers = false;      // a dot on every point (for sparse series; a lone point always gets one)
};

struct Panel {
  std::string y_label;
  std::vector<Series> series;
  double weight = 1;  // share of the picture's height against the other panels
};

struct Chart {
  std::string title, x_label;
  std::vector<Panel> panels;  // top to bottom; a panel without any finite point is left out
  bool integer_x = false;     // x counts something (steps): ticks a whole number apart
  int width = 900, height = 640;
};

// The chart as an SVG document (UTF-8). Each series is one <polyline> whose points are its
// finite points in order. Throws Error when no series has a finite point, or when x and y
// differ in length.
std::string render_svg(const Chart& chart);

// Ticks at 1, 2 or 5 times a power of ten covering [lo, hi], at most about max_ticks of them:
// the first at or below lo, the last at or above hi.
std::vector<double> nice_ticks(double lo, double hi, int max_ticks);

// A tick value as a label: "0.25", "1200", "3e-05"; never "-0" or rounding noise.
std::string tick_label(double value, double step);

}  // namespace lm::plot
