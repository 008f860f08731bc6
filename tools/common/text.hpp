// Small text helpers for tool output: numbers, JSON string escaping, tab-safe escaping, and the
// line that says a tool is waiting for text typed on the terminal.
#pragma once

#include <string>
#include <string_view>

#include "base/log.hpp"

namespace lm::tools {

// x printf-formatted with `fmt`, or "null" when it is not finite (for JSON and TSV alike).
std::string num(double x, const char* fmt = "%.6g");
// Appends `s` with '\\', '\t', '\n' and '\r' escaped, so a field never breaks a TSV row.
void append_tsv_field(std::string& out, std::string_view s);

// True when reading `path` means reading a terminal: the path is standard input ("-" or empty)
// and standard input is a terminal. A tool that starts reading it then would wait without a
// word, which a newcomer takes for a hang.
bool reads_terminal(const std::string& path, bool stdin_is_terminal);
// Before a tool reads `path`: if reads_terminal() (with isatty(0)), prints on stderr, unless
// -q, "TOOL: reading WHAT from standard input (end with Ctrl-D)". Nothing when stdin is a pipe
// or a file, so scripts see no change.
void note_terminal_input(const Logger& log, const std::string& path, const char* what);

}  // namespace lm::tools
