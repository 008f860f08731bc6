// Small text helpers for tool output: numbers, JSON string escaping and tab-safe escaping.
#pragma once

#include <string>
#include <string_view>

namespace lm::tools {

// x printf-formatted with `fmt`, or "null" when it is not finite (for JSON and TSV alike).
std::string num(double x, const char* fmt = "%.6g");
// Appends `s` as a JSON string literal (with quotes); invalid UTF-8 bytes become U+FFFD.
void append_json_string(std::string& out, std::string_view s);
// Appends `s` with '\\', '\t', '\n' and '\r' escaped, so a field never breaks a TSV row.
void append_tsv_field(std::string& out, std::string_view s);

}  // namespace lm::tools
