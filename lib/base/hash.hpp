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

}  // namespace lm
