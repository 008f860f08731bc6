// Helpers shared by the kernel tests: random inputs and the error measure of fast against _ref.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

#include "base/rng.hpp"

namespace lm::test {

inline std::vector<float> randn(size_t n, uint64_t seed, float scale = 1.0f) {
  lm::Rng rng(seed);
  std::vector<float> v(n);
  for (auto& x : v) x = rng.normal() * scale;
  return v;
}

// Largest |a - b| / (1 + |b|) over the elements.
inline double max_rel_diff(const std::vector<float>& a, const std::vector<float>& b) {
  double m = 0;
  for (size_t i = 0; i < a.size(); ++i) m = std::max(m, std::fabs(double(a[i]) - b[i]) / (1.0 + std::fabs(double(b[i]))));
  return m;
}

}  // namespace lm::test
