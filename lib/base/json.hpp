// A small JSON reader for JSON Lines inputs: the string or number members of one object.
#pragma once

#include <map>
#include <string>
#include <string_view>

namespace lm {

// Parses `text` as one JSON object and returns its members whose values are strings (escapes
// decoded, \uXXXX and surrogate pairs to UTF-8); members of other types are checked and
// skipped. Returns false with `error` set ("expected ':' at byte 12") if it is not valid JSON.
bool parse_json_strings(std::string_view text, std::map<std::string, std::string>& out, std::string& error);

// The same for numbers: members whose values are numbers, and null as NaN (a non-finite value
// written as JSON); members of other types are checked and skipped. A malformed number is an
// error ("bad number at byte 7").
bool parse_json_numbers(std::string_view text, std::map<std::string, double>& out, std::string& error);

}  // namespace lm
