// Non-cryptographic hashes for fingerprints and checksums (FNV-1a 64).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>

namespace lm {

// FNV-1a, 64-bit. Used for tokenizer fingerprints in token files: stable across platforms.
inline uint64_t fnv1a64(const void* data, size_t n, uint64_t h = 0xcbf29ce484222325ull) {
  const auto* p = static_cast<const uint8_t*>(data);
  for (size_t i = 0; i < n; ++i) {
    h ^= p[i];
    h *= 0x100000001b3ull;
  }
  return h;
}
inline uint64_t fnv1a64(std::string_view s) { return fnv1a64(s.data(), s.size()); }

// FNV-1a over 64-bit words (the tail bytewise), for checksums of large buffers: about 8 times
// faster than fnv1a64. Each step is a bijection of the running value, so changing any one word
// (a flipped bit, a torn write) always changes the result. Not the same values as fnv1a64.
inline uint64_t fnv1a64_words(const void* data, size_t n, uint64_t h = 0xcbf29ce484222325ull) {
  const auto* p = static_cast<const uint8_t*>(data);
  for (; n >= 8; p += 8, n -= 8) {
    uint64_t w;
    __builtin_memcpy(&w, p, 8);
    h = (h ^ w) * 0x100000001b3ull;
  }
  return fnv1a64(p, n, h);
}

}  // namespace lm
