// JSON in and out, through nlohmann-json: every --json result, JSON Lines stream and metrics
// file is built as a Json value and written by dump_json, and JSON Lines inputs are read with
// parse_json_strings.
#pragma once

#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>

namespace lm {

// Objects keep their members in insertion order, so output reads in the order it is built.
using Json = nlohmann::ordered_json;

// `j` as one line of JSON. Numbers are written with the fewest digits that read back to the
// same double (0.1, 245503.17, 1e-05); NaN and infinities are written as null; bytes of a
// string that are not valid UTF-8 become U+FFFD.
std::string dump_json(const Json& j);

// A double for a Json value: itself, or null when it is not finite.
Json json_number(double x);

// Parses `text` as one JSON object and returns its members whose values are strings (escapes
// decoded, \uXXXX and surrogate pairs to UTF-8); members of other types are skipped. Returns
// false with `error` set ("... at byte 12") if it is not one valid JSON object.
bool parse_json_strings(std::string_view text, std::map<std::string, std::string>& out, std::string& error);

// The same for numbers: members whose values are numbers, and null as NaN (a non-finite value
// written by dump_json); members of other types are skipped.
bool parse_json_numbers(std::string_view text, std::map<std::string, double>& out, std::string& error);

}  // namespace lm
