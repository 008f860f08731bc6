// A small JSON reader for JSON Lines inputs: the string members of one object.
#pragma once

#include <map>
#include <string>
#include <string_view>

namespace lm {

// Parses `text` as one JSON object and returns its members whose values are strings (escapes
// decoded, \uXXXX and surrogate pairs to UTF-8); members of other types are checked and
// skipped. Returns false with `error` set ("expected ':' at byte 12") if it is not valid JSON.
bool parse_json_strings(std::string_view text, std::map<std::string, std::string>& out, std::string& error);

}  // namespace lm
