// Reads a golden fixture written by a reference script: raw little-endian arrays, in order.
#pragma once

#include <doctest/doctest.h>

#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

namespace lm::test {

struct GoldenReader {
  std::string bytes;
  size_t pos = 0;
  // The next n values of type T; fails the test if the file is shorter.
  template <class T>
  std::vector<T> take(size_t n) {
    REQUIRE(pos + n * sizeof(T) <= bytes.size());
    std::vector<T> v(n);
    std::memcpy(v.data(), bytes.data() + pos, n * sizeof(T));
    pos += n * sizeof(T);
    return v;
  }
  uint32_t u32() { return take<uint32_t>(1)[0]; }
};

}  // namespace lm::test
