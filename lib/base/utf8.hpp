// UTF-8 validity, for text that must be UTF-8 where it goes (GGUF strings, JSON output).
#pragma once

#include <cstddef>
#include <cstdint>
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

}  // namespace lm
