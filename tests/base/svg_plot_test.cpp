// Tests for lib/base/svg_plot: a well-formed document, one polyline per series with one point
// per finite value, a lone point, non-finite values left out, empty input refused, and ticks.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "base/error.hpp"
#include "base/svg_plot.hpp"

using namespace lm::plot;

namespace {

// True if every element of `xml` is closed in order (a tag stack over the markup), every '&'
// starts an entity, and the root is <svg>: enough of XML's well-formedness for what
// render_svg writes (no comments, CDATA or doctype).
bool well_formed(const std::string& xml, std::string& why) {
  std::vector<std::string> stack;
  std::string root;
  size_t i = 0;
  if (xml.rfind("<?xml ", 0) == 0) i = xml.find("?>") + 2;
  while ((i = xml.find_first_of("<&", i)) != std::string::npos) {
    if (xml[i] == '&') {
      const size_t semi = xml.find(';', i);
      const std::string ent = xml.substr(i, semi == std::string::npos ? 8 : semi - i + 1);
      if (ent != "&amp;" && ent != "&lt;" && ent != "&gt;" && ent != "&quot;" && ent != "&apos;")
        return why = "bad entity " + ent, false;
      ++i;
      continue;
    }
    const size_t end = xml.find('>', i);
    if (end == std::string::npos) return why = "unclosed tag", false;
    std::string tag = xml.substr(i + 1, end - i - 1);
    if (tag.find('<') != std::string::npos) return why = "'<' inside a tag", false;
    const bool closing = !tag.empty() && tag[0] == '/';
    const bool empty = !tag.empty() && tag.back() == '/';
    const std::string name = tag.substr(closing, tag.find_first_of(" /", closing) - closing);
    if (name.empty()) return why = "tag without a name", false;
    if (closing) {
      if (stack.empty() || stack.back() != name) return why = "</" + name + "> closes nothing open", false;
      stack.pop_back();
    } else {
      if (stack.empty() && !root.empty()) return why = "two root elements", false;
      if (root.empty()) root = name;
      if (!empty) stack.push_back(name);
    }
    // Attribute values are quoted: an even number of quotes in the tag.
    if (std::count(tag.begin(), tag.end(), '"') % 2) return why = "unbalanced quotes in <" + name + ">", false;
    i = end + 1;
  }
  if (!stack.empty()) return why = "<" + stack.back() + "> not closed", false;
  if (root != "svg") return why = "root is <" + root + ">", false;
  return true;
}

// The points attribute of each polyline, in document order.
std::vector<std::string> polylines(const std::string& svg) {
  std::vector<std::string> v;
  for (size_t i = 0; (i = svg.find("<polyline", i)) != std::string::npos; ++i) {
    const size_t p = svg.find("points=\"", i) + 8;
    v.push_back(svg.substr(p, svg.find('"', p) - p));
  }
  return v;
}

size_t n_points(const std::string& points) {
  if (points.empty()) return 0;
  return size_t(std::count(points.begin(), points.end(), ' ')) + 1;
}

Chart two_series() {
  Chart c;
  c.title = "loss & <rate> of \"run\"";
  c.x_label = "step";
  c.integer_x = true;
  Panel p;
  p.y_label = "loss";
  Series a{"training loss", "#1f77b4", {}, {}, false};
  for (int s = 1; s <= 50; ++s) a.x.push_back(s), a.y.push_back(5.0 / s);
  Series b{"validation loss", "#d62728", {10, 20, 30, 40, 50}, {0.6, 0.35, 0.3, 0.2, 0.15}, true};
  p.series = {a, b};
  Panel q;
  q.y_label = "learning rate";
  Series r{"learning rate", "#2ca02c", {}, {}, false};
  for (int s = 1; s <= 50; ++s) r.x.push_back(s), r.y.push_back(1e-3 * (1 - s / 60.0));
  q.series = {r};
  c.panels = {p, q};
  return c;
}

}  // namespace

TEST_CASE("a chart is a well-formed SVG document with one polyline per series") {
  const std::string svg = render_svg(two_series());
  std::string why;
  CHECK_MESSAGE(well_formed(svg, why), why);
  CHECK(svg.find("<svg xmlns=\"http://www.w3.org/2000/svg\"") != std::string::npos);
  CHECK(svg.find("loss &amp; &lt;rate&gt; of &quot;run&quot;") != std::string::npos);  // the title, escaped
  const auto lines = polylines(svg);
  REQUIRE(lines.size() == 3);
  CHECK(n_points(lines[0]) == 50);
  CHECK(n_points(lines[1]) == 5);
  CHECK(n_points(lines[2]) == 50);
  CHECK(svg.find("data-name=\"training loss\"") < svg.find("data-name=\"validation loss\""));
  // Validation points are marked; the legend names every series.
  size_t circles = 0;
  for (size_t i = 0; (i = svg.find("<circle", i)) != std::string::npos; ++i) ++circles;
  CHECK(circles == 5);
  for (const char* name : {">training loss<", ">validation loss<", ">learning rate<", ">step<"})
    CHECK(svg.find(name) != std::string::npos);
}

TEST_CASE("non-finite values are left out, a lone point is drawn, empty input is refused") {
  Chart c = two_series();
  c.panels[0].series[0].y[3] = NAN;
  c.panels[0].series[0].y[7] = INFINITY;
  c.panels[0].series[1].x = {25};
  c.panels[0].series[1].y = {0.3};
  c.panels[0].series[1].markers = false;
  std::string svg = render_svg(c);
  std::string why;
  CHECK_MESSAGE(well_formed(svg, why), why);
  auto lines = polylines(svg);
  REQUIRE(lines.size() == 3);
  CHECK(n_points(lines[0]) == 48);
  CHECK(n_points(lines[1]) == 1);
  CHECK(svg.find("nan") == std::string::npos);
  CHECK(svg.find("inf") == std::string::npos);
  CHECK(svg.find("<circle") != std::string::npos);  // the lone point shows as a dot

  // A chart of one point in all: its axes are widened around it.
  Chart one;
  one.integer_x = true;
  one.panels.push_back(Panel{"loss", {Series{"training loss", "#000", {1}, {6.2}, false}}, 1});
  svg = render_svg(one);
  CHECK_MESSAGE(well_formed(svg, why), why);
  CHECK(n_points(polylines(svg).at(0)) == 1);

  // A panel without finite points is left out; nothing finite at all is an error.
  c.panels[1].series[0].y.assign(50, NAN);
  CHECK(polylines(render_svg(c)).size() == 2);
  Chart none;
  CHECK_THROWS_AS(render_svg(none), lm::Error);
  none.panels.push_back(Panel{"loss", {Series{"a", "#000", {1, 2}, {NAN, NAN}, false}}, 1});
  CHECK_THROWS_AS(render_svg(none), lm::Error);
  none.panels[0].series[0].y = {1};
  CHECK_THROWS_AS(render_svg(none), lm::Error);  // x and y differ in length
}

TEST_CASE("ticks are 1, 2 or 5 times a power of ten and cover the range; labels are short") {
  std::vector<double> t = nice_ticks(1.83, 6.12, 6);
  REQUIRE(t.size() >= 2);
  CHECK(t.front() <= 1.83);
  CHECK(t.back() >= 6.12);
  CHECK(t[1] - t[0] == doctest::Approx(1.0));
  t = nice_ticks(0, 3.1e-3, 4);
  CHECK(t[1] - t[0] == doctest::Approx(1e-3));
  CHECK(tick_label(0.002, 0.001) == "0.002");
  CHECK(tick_label(1.2e-4, 2e-5) == "1.2e-4");
  CHECK(tick_label(3e-5, 1e-5) == "3e-5");
  CHECK(tick_label(2000, 500) == "2000");
  CHECK(tick_label(1e-17, 0.1) == "0");
  CHECK(tick_label(-0.5, 0.5) == "-0.5");
  CHECK_THROWS_AS(nice_ticks(1, 1, 5), lm::Error);
}
