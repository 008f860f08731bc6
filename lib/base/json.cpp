// JSON through nlohmann-json: one way to write numbers and strings, and the JSON Lines reader.
#include "base/json.hpp"

#include <cmath>

namespace lm {

std::string dump_json(const Json& j) {
  return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

Json json_number(double x) { return std::isfinite(x) ? Json(x) : Json(nullptr); }

// Parses `text` as one JSON object into `j`, or sets `error` to what went wrong and where.
static bool parse_object(std::string_view text, Json& j, std::string& error) {
  try {
    j = Json::parse(text.begin(), text.end());
  } catch (const nlohmann::json::parse_error& e) {
    // "[json.exception.parse_error.101] parse error at line 1, column 6: syntax error while
    // parsing value - invalid literal; last read: 'tru}'": keep what went wrong ("invalid
    // literal; last read: 'tru}'"), with the byte.
    std::string what = e.what();
    const size_t colon = what.find(": ");
    if (colon != std::string::npos) what = what.substr(colon + 2);
    const size_t dash = what.find(" - ");
    if (what.rfind("syntax error while parsing ", 0) == 0 && dash != std::string::npos) what = what.substr(dash + 3);
    error = what + " at byte " + std::to_string(e.byte);
    return false;
  } catch (const nlohmann::json::exception& e) {
    // out_of_range for a number past a double's range ("number overflow parsing '1e400'"), which
    // is no parse_error (found by the jsonl fuzz target: it ended the process).
    std::string what = e.what();
    const size_t bracket = what.find("] ");
    if (bracket != std::string::npos) what = what.substr(bracket + 2);
    if (what.size() > 120) what = what.substr(0, 117) + "...";
    error = what;
    return false;
  }
  if (!j.is_object()) {
    error = "expected an object, not " + std::string(j.type_name()) + " at byte 1";
    return false;
  }
  return true;
}

bool parse_json_strings(std::string_view text, std::map<std::string, std::string>& out, std::string& error) {
  out.clear();
  Json j;
  if (!parse_object(text, j, error)) return false;
  for (const auto& [key, value] : j.items())
    if (value.is_string()) out[key] = value.get<std::string>();
  return true;
}

bool parse_json_numbers(std::string_view text, std::map<std::string, double>& out, std::string& error) {
  out.clear();
  Json j;
  if (!parse_object(text, j, error)) return false;
  for (const auto& [key, value] : j.items()) {
    if (value.is_number()) out[key] = value.get<double>();
    else if (value.is_null()) out[key] = std::nan("");
  }
  return true;
}

}  // namespace lm
