// Small text helpers for tool output: JSON string escaping and tab-safe escaping.
#pragma once

#include <string>
#include <string_view>

namespace lm::tools {

// Appends `s` as a JSON string literal (with quotes); invalid UTF-8 bytes become U+FFFD.
void append_json_string(std::string& out, std::string_view s);
// Appends `s` with '\\', '\t', '\n' and '\r' escaped, so a field never breaks a TSV row.
void append_tsv_field(std::string& out, std::string_view s);

}  // namespace lm::tools
