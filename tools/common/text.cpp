// JSON and TSV escaping for tool output; the waiting-for-the-terminal note.
#include "common/text.hpp"

#include <unistd.h>

#include <cmath>
#include <cstdint>
#include <cstdio>

#include "base/file.hpp"
#include "base/utf8.hpp"

namespace lm::tools {

std::string num(double x, const char* fmt) {
  if (!std::isfinite(x)) return "null";
  char b[64];
  std::snprintf(b, sizeof b, fmt, x);
  return b;
}

void append_tsv_field(std::string& out, std::string_view s) {
  for (char c : s) {
    switch (c) {
      case '\\': out += "\\\\"; break;
      case '\t': out += "\\t"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      default: out += c;
    }
  }
}

bool reads_terminal(const std::string& path, bool stdin_is_terminal) {
  return stdin_is_terminal && is_std_stream(path);
}

void note_terminal_input(const Logger& log, const std::string& path, const char* what) {
  if (reads_terminal(path, isatty(STDIN_FILENO) == 1))
    log.info("reading %s from standard input (end with Ctrl-D)", what);
}

}  // namespace lm::tools
