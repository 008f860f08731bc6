// Tests for lib/dataset/labeled: the label and text of a labeled line.
#include <doctest/doctest.h>

#include "dataset/labeled.hpp"

using namespace lm::dataset;

TEST_CASE("line_label reads fastText, tab-separated and bare labels") {
  CHECK(line_label("__label__sports The match ended") == "sports");
  CHECK(line_label("__label__a __label__b two labels") == "a");
  CHECK(line_label("__label__x") == "x");
  CHECK(line_label("__label__ text") == "");
  CHECK(line_label("news\tThe jury said") == "news");
  CHECK(line_label(" news \tpadded") == "news");
  CHECK(line_label("news\t0.93") == "news");
  CHECK(line_label("news") == "news");
  CHECK(line_label("news\r") == "news");
  CHECK(line_label("two words") == "two words");
  CHECK(line_label("") == "");
  CHECK(line_label("\tno label") == "");
  // A bare label has no label field: a line to classify needs a tab or the fastText prefix.
  CHECK(has_label_field("__label__x text"));
  CHECK(has_label_field("news\tThe jury said"));
  CHECK_FALSE(has_label_field("two words"));
  CHECK_FALSE(has_label_field("x __label__y"));
}
