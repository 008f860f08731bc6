// Tests for lib/eval/classify: scikit-learn's classification_report example (its documentation:
// y_true [0, 1, 2, 2, 2], y_pred [0, 0, 2, 2, 1]), a label seen only in predictions, and the
// three line formats.
#include <doctest/doctest.h>

#include <string>
#include <cstdint>
#include <vector>

#include "eval/classify.hpp"

using namespace lm::eval;

namespace {

ClassifyResult score(const std::vector<std::string>& gold, const std::vector<std::string>& pred) {
  ClassifyScorer s;
  for (size_t i = 0; i < gold.size(); ++i) s.add(gold[i], pred[i]);
  return s.result(true);
}

}  // namespace

TEST_CASE("classify: scikit-learn's classification_report example") {
  const ClassifyResult r = score({"0", "1", "2", "2", "2"}, {"0", "0", "2", "2", "1"});
  REQUIRE(r.labels.size() == 3);
  // sklearn prints (2 decimals): 0: 0.50 1.00 0.67 1 / 1: 0.00 0.00 0.00 1 / 2: 1.00 0.67 0.80 3
  CHECK(r.labels[0].label == "0");
  CHECK(r.labels[0].precision == doctest::Approx(0.5));
  CHECK(r.labels[0].recall == doctest::Approx(1.0));
  CHECK(r.labels[0].f1 == doctest::Approx(2.0 / 3));
  CHECK(r.labels[0].support == 1);
  CHECK(r.labels[1].precision == 0.0);
  CHECK(r.labels[1].recall == 0.0);
  CHECK(r.labels[1].f1 == 0.0);
  CHECK(r.labels[2].precision == doctest::Approx(1.0));
  CHECK(r.labels[2].recall == doctest::Approx(2.0 / 3));
  CHECK(r.labels[2].f1 == doctest::Approx(0.8));
  CHECK(r.labels[2].support == 3);
  CHECK(r.labels[2].predicted == 2);
  // accuracy 0.60; macro avg 0.50 0.56 0.49; weighted avg 0.70 0.60 0.61
  CHECK(r.examples == 5);
  CHECK(r.correct == 3);
  CHECK(r.accuracy == doctest::Approx(0.6));
  CHECK(r.micro.f1 == doctest::Approx(0.6));
  CHECK(r.macro.precision == doctest::Approx(0.5));
  CHECK(r.macro.recall == doctest::Approx(5.0 / 9));
  CHECK(r.macro.f1 == doctest::Approx((2.0 / 3 + 0.8) / 3));
  CHECK(r.weighted.precision == doctest::Approx(0.7));
  CHECK(r.weighted.recall == doctest::Approx(0.6));
  CHECK(r.weighted.f1 == doctest::Approx((2.0 / 3 + 3 * 0.8) / 5));
  // Rows gold, columns predicted.
  CHECK(r.confusion == std::vector<uint64_t>{1, 0, 0, 1, 0, 0, 0, 1, 2});
}

TEST_CASE("classify: a label only predicted counts in the macro average with support 0") {
  const ClassifyResult r = score({"a", "a", "b"}, {"a", "c", "b"});
  REQUIRE(r.labels.size() == 3);
  CHECK(r.labels[2].label == "c");
  CHECK(r.labels[2].support == 0);
  CHECK(r.labels[2].predicted == 1);
  CHECK(r.labels[2].precision == 0.0);
  CHECK(r.labels[2].recall == 0.0);
  // a: P 1, R 0.5, F1 2/3; b: 1, 1, 1; c: 0
  CHECK(r.macro.f1 == doctest::Approx((2.0 / 3 + 1.0) / 3));
  CHECK(r.weighted.f1 == doctest::Approx((2 * 2.0 / 3 + 1.0) / 3));
  CHECK(r.accuracy == doctest::Approx(2.0 / 3));
}

TEST_CASE("classify: no examples gives zeros, not NaN") {
  const ClassifyResult r = ClassifyScorer().result();
  CHECK(r.labels.empty());
  CHECK(r.examples == 0);
  CHECK(r.accuracy == 0.0);
  CHECK(r.macro.f1 == 0.0);
}

// 10000 labels made a 10000 x 10000 matrix (763 MiB) even when no one asked for it.
TEST_CASE("classify: the confusion matrix is made only when asked for; the scores do not need it") {
  ClassifyScorer s;
  for (int i = 0; i < 10000; ++i) s.add("g" + std::to_string(i), i % 2 ? "g" + std::to_string(i) : "p" + std::to_string(i));
  CHECK(s.labels() == 15000);
  const ClassifyResult r = s.result();
  CHECK(r.confusion.empty());
  REQUIRE(r.labels.size() == 15000);
  CHECK(r.correct == 5000);
  CHECK(r.accuracy == doctest::Approx(0.5));
  CHECK(r.labels[0].label == "g0");
  CHECK(r.labels[0].recall == 0.0);
  CHECK(r.labels[1].label == "g1");
  CHECK(r.labels[1].f1 == doctest::Approx(1.0));
  // The same scores as with the matrix.
  const ClassifyResult small = score({"0", "1", "2", "2", "2"}, {"0", "0", "2", "2", "1"});
  ClassifyScorer t;
  for (auto [g, p] : {std::pair{"0", "0"}, {"1", "0"}, {"2", "2"}, {"2", "2"}, {"2", "1"}}) t.add(g, p);
  const ClassifyResult no_matrix = t.result();
  CHECK(no_matrix.confusion.empty());
  CHECK(small.confusion.size() == 9);
  for (size_t i = 0; i < 3; ++i) {
    CHECK(no_matrix.labels[i].precision == small.labels[i].precision);
    CHECK(no_matrix.labels[i].recall == small.labels[i].recall);
  }
  CHECK(no_matrix.macro.f1 == small.macro.f1);
}
