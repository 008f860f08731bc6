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

void append_json_string(std::string& out, std::string_view s) {
  out += '"';
  for (size_t i = 0; i < s.size();) {
    char c = s[i];
    switch (c) {
      case '"': out += "\\\""; ++i; continue;
      case '\\': out += "\\\\"; ++i; continue;
      case '\n': out += "\\n"; ++i; continue;
      case '\r': out += "\\r"; ++i; continue;
      case '\t': out += "\\t"; ++i; continue;
      default: break;
    }
    if (uint8_t(c) < 0x20) {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\u%04x", unsigned(uint8_t(c)));
      out += buf;
      ++i;
      continue;
    }
    size_t n = utf8_sequence_length(s, i);
    if (n == 0) {
      out += "\xef\xbf\xbd";
      ++i;
    } else {
      out.append(s.data() + i, n);
      i += n;
    }
  }
  out += '"';
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
