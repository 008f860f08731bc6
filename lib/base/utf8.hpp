// UTF-8 validity, for text that must be UTF-8 where it goes (GGUF strings, JSON output).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace lm {

// Length (1 to 4) of the valid UTF-8 sequence at s[i], or 0 if the bytes there are not one:
// stray continuation bytes, truncated sequences, overlong forms, surrogates and code points
// past U+10FFFF are all invalid. i < s.size().
inline size_t utf8_sequence_length(std::string_view s, size_t i) {
  const auto c = uint8_t(s[i]);
  const size_t n = c < 0x80 ? 1 : (c >> 5) == 0x6 ? 2 : (c >> 4) == 0xe ? 3 : (c >> 3) == 0x1e ? 4 : 0;
  if (n == 0 || i + n > s.size()) return 0;
  for (size_t k = 1; k < n; ++k)
    if ((uint8_t(s[i + k]) & 0xc0) != 0x80) return 0;
  uint32_t cp = n == 1 ? c : n == 2 ? c & 0x1f : n == 3 ? c & 0x0f : c & 0x07;
  for (size_t k = 1; k < n; ++k) cp = (cp << 6) | (uint8_t(s[i + k]) & 0x3f);
  static constexpr uint32_t kMin[5] = {0, 0, 0x80, 0x800, 0x10000};
  if (cp < kMin[n] || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return 0;
  return n;
}

// True if all of s is valid UTF-8. On false, *bad (if given) is the offset of the first invalid byte.
inline bool valid_utf8(std::string_view s, size_t* bad = nullptr) {
  for (size_t i = 0; i < s.size();) {
    const size_t n = utf8_sequence_length(s, i);
    if (n == 0) {
      if (bad) *bad = i;
      return false;
    }
    i += n;
  }
  return true;
}

// Bytes quoted from a file for a one-line message: valid UTF-8 text stays as it is; a backslash,
// tab, newline and carriage return become \\, \t, \n and \r, and every other control byte
// and every byte that is not valid UTF-8 becomes \xNN. A terminal shows the result as printed,
// and a NUL cannot cut the message short.
inline std::string escape_bytes(std::string_view s) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  for (size_t i = 0; i < s.size();) {
    const auto c = uint8_t(s[i]);
    const size_t n = utf8_sequence_length(s, i);
    const bool c1 = n == 2 && c == 0xc2 && uint8_t(s[i + 1]) < 0xa0;  // U+0080 to U+009F, controls too
    if (n > 1 && !c1) {
      out.append(s.substr(i, n));
      i += n;
      continue;
    }
    if (c == '\\') out += "\\\\";
    else if (c == '\t') out += "\\t";
    else if (c == '\n') out += "\\n";
    else if (c == '\r') out += "\\r";
    else if (n == 1 && c >= 0x20 && c != 0x7f) out += char(c);
    else out += {'\\', 'x', kHex[c >> 4], kHex[c & 15]};
    ++i;
  }
  return out;
}

}  // namespace lm
