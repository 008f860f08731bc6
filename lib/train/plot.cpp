// Reading --metrics JSON Lines and drawing a run's loss and learning-rate curves.
#include "train/plot.hpp"

#include <algorithm>
#include <map>

#include "base/error.hpp"
#include "base/file.hpp"
#include "base/json.hpp"
#include "base/svg_plot.hpp"

namespace lm::train {

namespace {

// Points of one value against the step, as means of runs of `k` consecutive points when there
// are more than max_points; returns k.
size_t add_points(plot::Series& s, const std::vector<MetricsPoint>& pts, double MetricsPoint::*field,
                  size_t max_points) {
  std::vector<std::pair<double, double>> v;
  for (const MetricsPoint& p : pts)
    if (std::isfinite(p.*field)) v.emplace_back(p.step, p.*field);
  const size_t k = v.size() > max_points ? (v.size() + max_points - 1) / max_points : 1;
  for (size_t i = 0; i < v.size(); i += k) {
    const size_t end = std::min(v.size(), i + k);
    double sx = 0, sy = 0;
    for (size_t j = i; j < end; ++j) sx += v[j].first, sy += v[j].second;
    s.x.push_back(sx / double(end - i));
    s.y.push_back(sy / double(end - i));
  }
  if (k > 1) s.name += " (mean of " + std::to_string(k) + " steps)";
  return k;
}

}  // namespace

std::vector<MetricsPoint> read_metrics(const std::string& path) {
  const std::string name = display_name(path);
  LineReader in(path);
  std::vector<MetricsPoint> pts;
  std::map<std::string, double> m;
  std::string line, err;
  while (in.next(line)) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.find_first_not_of(" \t") == std::string::npos) continue;
    const std::string where = name + ":" + std::to_string(in.line_number());
    if (!parse_json_numbers(line, m, err)) throw FormatError(where, "is not a JSON object: " + err);
    auto step = m.find("step"), loss = m.find("loss");
    if (step == m.end() || !std::isfinite(step->second) || step->second < 0)
      throw FormatError(where, "has no number member 'step', expected one object per step as lm-train --metrics writes");
    if (loss == m.end())
      throw FormatError(where, "has no number member 'loss', expected one object per step as lm-train --metrics writes");
    // The values lm writes are floats printed with 9 digits: read back as those floats, so the
    // picture of a metrics file is the one --plot drew during the run.
    MetricsPoint p;
    p.step = step->second;
    p.loss = float(loss->second);
    if (auto lr = m.find("lr"); lr != m.end()) p.lr = float(lr->second);
    if (auto vl = m.find("valid_loss"); vl != m.end()) p.valid_loss = float(vl->second);
    pts.push_back(p);
  }
  if (pts.empty())
    throw FormatError(name, "has no metrics, expected JSON Lines with numbers 'step' and 'loss' (lm-train --metrics)");
  std::stable_sort(pts.begin(), pts.end(), [](const MetricsPoint& a, const MetricsPoint& b) { return a.step < b.step; });
  return pts;
}

std::string metrics_svg(const std::vector<MetricsPoint>& points, const std::string& title, size_t max_points) {
  max_points = std::max<size_t>(max_points, 2);
  plot::Chart c;
  c.title = title;
  c.x_label = "step";
  c.integer_x = true;
  plot::Panel loss;
  loss.y_label = "loss (nats per token)";
  loss.weight = 2.4;
  plot::Series train{"training loss", "#1f77b4", {}, {}, false};
  add_points(train, points, &MetricsPoint::loss, max_points);
  plot::Series valid{"validation loss", "#d62728", {}, {}, false};
  add_points(valid, points, &MetricsPoint::valid_loss, max_points);
  valid.markers = valid.x.size() <= 60;  // validations are sparse: show where each one is
  loss.series = {std::move(train), std::move(valid)};
  plot::Panel lr;
  lr.y_label = "learning rate";
  plot::Series rate{"learning rate", "#2ca02c", {}, {}, false};
  add_points(rate, points, &MetricsPoint::lr, max_points);
  lr.series = {std::move(rate)};
  c.panels = {std::move(loss), std::move(lr)};
  return plot::render_svg(c);
}

void write_metrics_svg(const std::string& path, const std::vector<MetricsPoint>& points, const std::string& title) {
  const std::string svg = metrics_svg(points, title);
  OutputFile out(path);
  out.write(svg);
  out.commit();
}

}  // namespace lm::train
