// Tests for lib/train/plot: reading --metrics JSON Lines (errors name file and line) and the
// run's picture (training and validation loss, learning rate; long runs averaged).
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <string>

#include "base/error.hpp"
#include "test_util.hpp"
#include "train/plot.hpp"

using namespace lm;
using namespace lm::train;

namespace {

std::string error_of(const std::string& path) {
  try {
    read_metrics(path);
  } catch (const FormatError& e) {
    return e.what();
  }
  return "(no error)";
}

size_t count(const std::string& s, const std::string& what) {
  size_t n = 0;
  for (size_t i = 0; (i = s.find(what, i)) != std::string::npos; i += what.size()) ++n;
  return n;
}

}  // namespace

TEST_CASE("read_metrics reads what lm-train --metrics writes, in step order") {
  test::TempDir dir;
  const std::string path = dir.path() + "/m.jsonl";
  test::write_file(path,
                   "{\"step\":2,\"loss\":5.5,\"lr\":0.002,\"grad_norm\":1.5,\"skipped\":false}\n"
                   "\n"
                   "{\"step\":1,\"loss\":6.25,\"lr\":0.001,\"grad_norm\":2,\"skipped\":false}\r\n"
                   "{\"step\":3,\"loss\":null,\"lr\":0.003,\"grad_norm\":null,\"skipped\":true,\"valid_loss\":5.75}\n");
  const auto pts = read_metrics(path);
  REQUIRE(pts.size() == 3);
  CHECK(pts[0].step == 1);
  CHECK(pts[0].loss == 6.25);
  CHECK(pts[1].lr == double(0.002f));  // lm writes floats
  CHECK(std::isnan(pts[1].valid_loss));
  CHECK(std::isnan(pts[2].loss));  // a skipped step's non-finite loss
  CHECK(pts[2].valid_loss == 5.75);
  const std::string svg = metrics_svg(pts, "run");
  CHECK(count(svg, "<polyline") == 3);
  CHECK(svg.find("data-name=\"training loss\"") != std::string::npos);
  CHECK(svg.find("data-name=\"validation loss\"") != std::string::npos);
  CHECK(svg.find("data-name=\"learning rate\"") != std::string::npos);
}

TEST_CASE("bad metrics files are errors naming the file and the line") {
  test::TempDir dir;
  const std::string path = dir.path() + "/m.jsonl";
  test::write_file(path, "{\"step\":1,\"loss\":6}\n{\"step\":2,\"loss\":5\n");
  CHECK(error_of(path) == path + ":2: is not a JSON object: unexpected end of input; expected '}' at byte 19");
  test::write_file(path, "{\"step\":1,\"loss\":6}\nstep 2 loss 5\n");
  CHECK(error_of(path) == path + ":2: is not a JSON object: invalid literal; last read: 's' at byte 1");
  test::write_file(path, "{\"step\":1,\"lr\":0.1}\n");
  CHECK(error_of(path).rfind(path + ":1: has no number member 'loss'", 0) == 0);
  test::write_file(path, "{\"loss\":1}\n");
  CHECK(error_of(path).rfind(path + ":1: has no number member 'step'", 0) == 0);
  test::write_file(path, "{\"step\":\"1\",\"loss\":1}\n");
  CHECK(error_of(path).rfind(path + ":1: has no number member 'step'", 0) == 0);
  test::write_file(path, "{\"step\":1,\"loss\":1.}\n");
  CHECK(error_of(path) == path + ":1: is not a JSON object: invalid number; expected digit after '.'; last read: '1.}' at byte 20");
  test::write_file(path, "");
  CHECK(error_of(path).rfind(path + ": has no metrics", 0) == 0);
  test::write_file(path, "\n  \n");
  CHECK(error_of(path).rfind(path + ": has no metrics", 0) == 0);
  CHECK_THROWS_AS(read_metrics(dir.path() + "/absent.jsonl"), IoError);
}

TEST_CASE("long runs are drawn as means of consecutive steps, and say so") {
  std::vector<MetricsPoint> pts(5000);
  for (size_t i = 0; i < pts.size(); ++i) {
    pts[i].step = double(i + 1);
    pts[i].loss = 6.0 - double(i) / 1000;
    pts[i].lr = 1e-3;
    if ((i + 1) % 100 == 0) pts[i].valid_loss = pts[i].loss + 0.1;
  }
  const std::string svg = metrics_svg(pts, "long", 1000);
  CHECK(svg.find("training loss (mean of 5 steps)") != std::string::npos);
  CHECK(svg.find(">validation loss<") != std::string::npos);  // 50 points: drawn as they are
  CHECK(count(svg, "<circle") == 50);
  const size_t p = svg.find("points=\"", svg.find("data-name=\"training loss")) + 8;
  const std::string points = svg.substr(p, svg.find('"', p) - p);
  CHECK(size_t(std::count(points.begin(), points.end(), ' ')) + 1 == 1000);
  std::vector<MetricsPoint> empty;
  CHECK_THROWS_AS(metrics_svg(empty, "x"), Error);
}
