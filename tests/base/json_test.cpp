// Tests for lib/base/json: string members, escapes, skipped members and errors with positions;
// numbers and strings as every tool writes them.
#include <doctest/doctest.h>

#include <cmath>

#include "base/json.hpp"

#include <cmath>

using namespace lm;

TEST_CASE("JSON objects give their string members; other members are checked and skipped") {
  std::map<std::string, std::string> m;
  std::string err;
  REQUIRE(parse_json_strings(R"( {"prompt": "Q: 2+2?\nA:", "n": -1.5e3, "x": [1, {"a": null}], "completion": " 4\u00e9\ud83d\ude00\"", "ok": true} )", m, err));
  CHECK(m.size() == 2);
  CHECK(m["prompt"] == "Q: 2+2?\nA:");
  CHECK(m["completion"] == " 4\xc3\xa9\xf0\x9f\x98\x80\"");
  CHECK(parse_json_strings("{}", m, err));
  CHECK(m.empty());
  for (const char* bad : {"", "[1]", "{\"a\" 1}", "{\"a\": \"x}", "{\"a\": 1,}", "{\"a\": tru}", "{} x", "{\"a\": \"\x01\"}"}) {
    CAPTURE(bad);
    CHECK_FALSE(parse_json_strings(bad, m, err));
    CHECK(err.find("at byte") != std::string::npos);
  }
}

TEST_CASE("dump_json writes numbers that read back exactly, null for NaN, and U+FFFD for bad UTF-8") {
  CHECK(dump_json(Json{{"p", 245503.17}}) == R"({"p":245503.17})");
  CHECK(dump_json(Json{{"a", 0.1}, {"b", 1e-5}, {"n", 3}}) == R"({"a":0.1,"b":1e-05,"n":3})");
  const double x = 2.0 / 3.0;
  CHECK(Json::parse(dump_json(Json(x))).get<double>() == x);
  CHECK(dump_json(Json{{"x", json_number(std::nan(""))}, {"y", json_number(INFINITY)}}) == R"({"x":null,"y":null})");
  CHECK(dump_json(Json(std::string("a\xff\"\n\x01"))) == "\"a\xef\xbf\xbd\\\"\\n\\u0001\"");
}

TEST_CASE("JSON objects give their number members, null as NaN; bad numbers are errors") {
  std::map<std::string, double> m;
  std::string err;
  REQUIRE(parse_json_numbers(R"({"step":12,"loss":3.25e-1,"neg":-0.5,"lr":null,"s":"7","ok":true,"a":[1,2]})", m, err));
  CHECK(m.size() == 4);
  CHECK(m["step"] == 12);
  CHECK(m["loss"] == 0.325);
  CHECK(m["neg"] == -0.5);
  CHECK(std::isnan(m["lr"]));
  CHECK(m.count("s") == 0);
  for (const char* bad : {"{\"a\":1.}", "{\"a\":-}", "{\"a\":01}", "{\"a\":1e}", "{\"a\":.5}", "{\"a\":1 2}", "{\"a\":nan}"}) {
    CAPTURE(bad);
    CHECK_FALSE(parse_json_numbers(bad, m, err));
    CHECK(err.find("at byte") != std::string::npos);
  }
}

TEST_CASE("a number past a double's range is an error, not an exception (fuzz finding)") {
  // nlohmann-json throws out_of_range, not parse_error, for these: it escaped the parser and
  // ended the process (tests/fuzz/regressions/jsonl/number_overflow.jsonl).
  std::map<std::string, std::string> s;
  std::map<std::string, double> d;
  std::string err;
  for (const char* bad : {"{\"a\": 1e400}", "{\"prompt\": \"x\", \"n\": -3333333333E333333333333}", "[1e999]"}) {
    CAPTURE(bad);
    CHECK_FALSE(parse_json_strings(bad, s, err));
    CHECK(err.find("number overflow parsing") != std::string::npos);
    CHECK_FALSE(parse_json_numbers(bad, d, err));
    CHECK(err.find("number overflow parsing") != std::string::npos);
  }
  const std::string long_number = "{\"a\": 1" + std::string(300, '0') + "e999}";
  CHECK_FALSE(parse_json_strings(long_number, s, err));
  CHECK(err.size() <= 120);
}

TEST_CASE("deep nesting within the line limit is parsed without exhausting the stack") {
  const size_t depth = 400000;  // 800 kB: under the 1 MiB line limit
  const std::string text = "{\"prompt\":\"p\",\"x\":" + std::string(depth, '[') + std::string(depth, ']') + "}";
  std::map<std::string, std::string> m;
  std::string err;
  CHECK(parse_json_strings(text, m, err));
  CHECK(m["prompt"] == "p");
}
