// SVG line charts, written as text: layout, nice ticks, polylines and legends.
#include "base/svg_plot.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>

#include "base/error.hpp"
#include "base/utf8.hpp"

namespace lm::plot {

namespace {

// Text for an SVG text node or attribute: XML's five special characters escaped, characters
// XML 1.0 does not allow dropped, invalid UTF-8 bytes replaced by U+FFFD.
std::string xml_text(std::string_view s) {
  std::string out;
  for (size_t i = 0; i < s.size();) {
    const char c = s[i];
    switch (c) {
      case '&': out += "&amp;"; ++i; continue;
      case '<': out += "&lt;"; ++i; continue;
      case '>': out += "&gt;"; ++i; continue;
      case '"': out += "&quot;"; ++i; continue;
      case '\'': out += "&apos;"; ++i; continue;
      default: break;
    }
    if (uint8_t(c) < 0x20) {
      if (c == '\t' || c == '\n') out += ' ';
      ++i;
      continue;
    }
    const size_t n = utf8_sequence_length(s, i);
    if (n == 0) {
      out += "\xef\xbf\xbd";
      ++i;
    } else {
      out.append(s.data() + i, n);
      i += n;
    }
  }
  return out;
}

std::string fmt(const char* f, double v) {
  char b[64];
  std::snprintf(b, sizeof b, f, v);
  return b;
}

std::string px(double v) { return fmt("%.1f", v); }

struct Range {
  double lo = INFINITY, hi = -INFINITY;
  void add(double v) { lo = std::min(lo, v), hi = std::max(hi, v); }
  bool empty() const { return !(lo <= hi); }
};

bool finite_point(const Series& s, size_t i) { return std::isfinite(s.x[i]) && std::isfinite(s.y[i]); }

size_t finite_points(const Series& s) {
  size_t n = 0;
  for (size_t i = 0; i < s.x.size(); ++i) n += finite_point(s, i);
  return n;
}

// Ticks for a data range: widened first when it is a single value, padded a little when `pad`
// (so a curve's extremes clear the frame), and a whole number apart when `integer`.
std::vector<double> axis_ticks(Range r, int max_ticks, bool pad, bool integer) {
  if (r.lo == r.hi) {
    const double d = integer || r.lo == 0 ? 1 : std::fabs(r.lo) * 0.1;
    r.lo -= d, r.hi += d;
  }
  if (pad) {
    const double p = (r.hi - r.lo) * 0.02;
    r.lo = r.lo >= 0 && r.lo - p < 0 ? 0 : r.lo - p;  // a positive quantity keeps 0 as its floor
    r.hi += p;
  }
  if (integer) max_ticks = int(std::min<double>(max_ticks, std::max(1.0, r.hi - r.lo)));
  return nice_ticks(r.lo, r.hi, max_ticks);
}

}  // namespace

std::vector<double> nice_ticks(double lo, double hi, int max_ticks) {
  if (!(std::isfinite(lo) && std::isfinite(hi) && lo < hi) || max_ticks < 1)
    throw Error("cannot place axis ticks on the range " + fmt("%g", lo) + " to " + fmt("%g", hi));
  const double raw = (hi - lo) / max_ticks;
  const double mag = std::pow(10.0, std::floor(std::log10(raw)));
  const double norm = raw / mag;
  const double step = (norm <= 1 ? 1 : norm <= 2 ? 2 : norm <= 5 ? 5 : 10) * mag;
  const double first = std::floor(lo / step + 1e-9), last = std::ceil(hi / step - 1e-9);
  std::vector<double> ticks;
  for (double k = first; k <= last + 0.5; ++k) ticks.push_back(k * step);
  return ticks;
}

std::string tick_label(double v, double step) {
  if (std::fabs(v) < std::fabs(step) * 1e-6) return "0";
  const int step_exp = int(std::floor(std::log10(std::fabs(step)) + 1e-9));
  if (step_exp >= -4 && std::fabs(v) < 1e7) return fmt(("%." + std::to_string(std::max(0, -step_exp)) + "f").c_str(), v);
  const int v_exp = int(std::floor(std::log10(std::fabs(v)) + 1e-9));
  std::string s = fmt(("%." + std::to_string(std::max(0, v_exp - step_exp)) + "e").c_str(), v);
  // "3e-05" -> "3e-5", "1.2e+07" -> "1.2e7"
  const size_t e = s.find('e');
  std::string exp = s.substr(e + 1);
  const bool neg = exp[0] == '-';
  exp = exp.substr(exp[0] == '-' || exp[0] == '+' ? 1 : 0);
  exp.erase(0, std::min(exp.find_first_not_of('0'), exp.size() - 1));
  return s.substr(0, e) + "e" + (neg ? "-" : "") + exp;
}

std::string render_svg(const Chart& c) {
  std::vector<const Panel*> panels;
  Range xr;
  for (const Panel& p : c.panels) {
    bool any = false;
    for (const Series& s : p.series) {
      if (s.x.size() != s.y.size())
        throw Error("series '" + s.name + "' has " + std::to_string(s.x.size()) + " x values but " +
                    std::to_string(s.y.size()) + " y values");
      for (size_t i = 0; i < s.x.size(); ++i)
        if (finite_point(s, i)) xr.add(s.x[i]), any = true;
    }
    if (any) panels.push_back(&p);
  }
  if (panels.empty()) throw Error("nothing to plot: no series has a finite point");

  const double W = std::max(c.width, 200), H = std::max(c.height, 160);
  const double left = 84, right = 24, top = c.title.empty() ? 16 : 44, bottom = 52, gap = 24;
  const double plot_w = W - left - right;
  double weights = 0;
  for (const Panel* p : panels) weights += std::max(p->weight, 0.05);
  const double avail = H - top - bottom - gap * double(panels.size() - 1);

  const std::vector<double> xt = axis_ticks(xr, std::max(2, int(plot_w / 90)), false, c.integer_x);
  const double x0 = xt.front(), x1 = xt.back(), xstep = xt.size() > 1 ? xt[1] - xt[0] : 1;
  auto X = [&](double x) { return left + (x - x0) / (x1 - x0) * plot_w; };

  std::string o;
  o += "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n";
  o += "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"" + px(W) + "\" height=\"" + px(H) + "\" viewBox=\"0 0 " +
       px(W) + " " + px(H) + "\" font-family=\"sans-serif\" font-size=\"12\">\n";
  if (!c.title.empty()) o += "<title>" + xml_text(c.title) + "</title>\n";
  o += "<rect x=\"0\" y=\"0\" width=\"" + px(W) + "\" height=\"" + px(H) + "\" fill=\"white\"/>\n";
  if (!c.title.empty())
    o += "<text x=\"" + px(W / 2) + "\" y=\"28\" text-anchor=\"middle\" font-size=\"16\" font-weight=\"bold\">" +
         xml_text(c.title) + "</text>\n";

  double ptop = top;
  for (size_t pi = 0; pi < panels.size(); ++pi) {
    const Panel& p = *panels[pi];
    const double ph = avail * std::max(p.weight, 0.05) / weights;
    const bool last = pi + 1 == panels.size();
    Range yr;
    for (const Series& s : p.series)
      for (size_t i = 0; i < s.x.size(); ++i)
        if (finite_point(s, i)) yr.add(s.y[i]);
    const std::vector<double> yt = axis_ticks(yr, std::max(3, std::min(8, int(ph / 32))), true, false);
    const double y0 = yt.front(), y1 = yt.back(), ystep = yt.size() > 1 ? yt[1] - yt[0] : 1;
    auto Y = [&](double y) { return ptop + (1 - (y - y0) / (y1 - y0)) * ph; };

    o += "<g class=\"panel\">\n";
    // Grid and tick labels.
    for (double t : yt) {
      o += "<line x1=\"" + px(left) + "\" y1=\"" + px(Y(t)) + "\" x2=\"" + px(left + plot_w) + "\" y2=\"" + px(Y(t)) +
           "\" stroke=\"#e4e4e4\"/>\n";
      o += "<text x=\"" + px(left - 6) + "\" y=\"" + px(Y(t) + 4) + "\" text-anchor=\"end\">" + tick_label(t, ystep) +
           "</text>\n";
    }
    for (double t : xt) {
      o += "<line x1=\"" + px(X(t)) + "\" y1=\"" + px(ptop) + "\" x2=\"" + px(X(t)) + "\" y2=\"" + px(ptop + ph) +
           "\" stroke=\"#e4e4e4\"/>\n";
      if (last)
        o += "<text x=\"" + px(X(t)) + "\" y=\"" + px(ptop + ph + 16) + "\" text-anchor=\"middle\">" +
             tick_label(t, xstep) + "</text>\n";
    }
    o += "<rect x=\"" + px(left) + "\" y=\"" + px(ptop) + "\" width=\"" + px(plot_w) + "\" height=\"" + px(ph) +
         "\" fill=\"none\" stroke=\"#444\"/>\n";
    if (!p.y_label.empty())
      o += "<text transform=\"translate(16 " + px(ptop + ph / 2) + ") rotate(-90)\" text-anchor=\"middle\">" +
           xml_text(p.y_label) + "</text>\n";
    if (last && !c.x_label.empty())
      o += "<text x=\"" + px(left + plot_w / 2) + "\" y=\"" + px(ptop + ph + 38) + "\" text-anchor=\"middle\">" +
           xml_text(c.x_label) + "</text>\n";

    // The series.
    std::vector<const Series*> shown;
    for (const Series& s : p.series) {
      const size_t n = finite_points(s);
      if (n == 0) continue;
      shown.push_back(&s);
      std::string pts;
      std::string dots;
      for (size_t i = 0; i < s.x.size(); ++i) {
        if (!finite_point(s, i)) continue;
        const std::string xs = px(X(s.x[i])), ys = px(Y(s.y[i]));
        pts += (pts.empty() ? "" : " ") + xs + "," + ys;
        if (s.markers || n == 1)
          dots += "<circle cx=\"" + xs + "\" cy=\"" + ys + "\" r=\"3\" fill=\"" + xml_text(s.color) + "\"/>\n";
      }
      o += "<polyline class=\"series\" data-name=\"" + xml_text(s.name) + "\" fill=\"none\" stroke=\"" +
           xml_text(s.color) + "\" stroke-width=\"1.5\" stroke-linejoin=\"round\" points=\"" + pts + "\"/>\n";
      o += dots;
    }

    // The legend, top right inside the panel.
    size_t chars = 0;
    for (const Series* s : shown) chars = std::max(chars, s->name.size());
    const double lw = 40 + 7.0 * double(chars), lh = 8 + 18.0 * double(shown.size());
    const double lx = left + plot_w - lw - 8, ly = ptop + 8;
    o += "<g class=\"legend\">\n<rect x=\"" + px(lx) + "\" y=\"" + px(ly) + "\" width=\"" + px(lw) + "\" height=\"" +
         px(lh) + "\" fill=\"white\" fill-opacity=\"0.85\" stroke=\"#bbb\"/>\n";
    for (size_t i = 0; i < shown.size(); ++i) {
      const double yy = ly + 13 + 18.0 * double(i);
      o += "<line x1=\"" + px(lx + 8) + "\" y1=\"" + px(yy) + "\" x2=\"" + px(lx + 28) + "\" y2=\"" + px(yy) +
           "\" stroke=\"" + xml_text(shown[i]->color) + "\" stroke-width=\"2\"/>\n";
      o += "<text x=\"" + px(lx + 34) + "\" y=\"" + px(yy + 4) + "\">" + xml_text(shown[i]->name) + "</text>\n";
    }
    o += "</g>\n</g>\n";
    ptop += ph + gap;
  }
  o += "</svg>\n";
  return o;
}

}  // namespace lm::plot
