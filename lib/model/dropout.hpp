// Dropout masks drawn from a hash of (seed, element index), so that backward redraws forward's
// mask without storing it and a resumed run draws the masks it would have drawn. Shared by the
// decoder (model.cpp) and the LSTM (lstm.cpp).
#pragma once

#include <cstddef>
#include <cstdint>

#include "base/rng.hpp"

namespace lm::model {

// Whether element i is kept at rate p.
inline bool dropout_keep(uint64_t seed, size_t i, float p) {
  uint64_t x = seed ^ (uint64_t(i) * 0x9e3779b97f4a7c15ull);
  const uint64_t h = splitmix64(x);
  return float(h >> 40) * (1.0f / 16777216.0f) >= p;
}

// y[i] = x[i] masked by dropout_keep(seed, i, p) and scaled by 1 / (1 - p), or y[i] += that with
// add; y may be x. The same call on a gradient is the mask's backward.
inline void apply_dropout(const float* x, float* y, size_t n, uint64_t seed, float p, bool add = false) {
  const float s = 1.0f / (1.0f - p);
#pragma omp parallel for schedule(static) if (n >= (1u << 16))
  for (size_t i = 0; i < n; ++i) {
    const float m = dropout_keep(seed, i, p) ? x[i] * s : 0.0f;
    y[i] = add ? y[i] + m : m;
  }
}

}  // namespace lm::model
