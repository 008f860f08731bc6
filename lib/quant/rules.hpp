// Shared pieces of ggml's reference quantizers (internal to lib/quant): the float operations
// are ggml's, in ggml's order, so that lm's bytes equal llama-quantize's.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>

namespace lm::quant::rules {

// ggml's nearest_int: adding 1.5 * 2^23 leaves round(f) (ties to even) in the low mantissa
// bits. Exact for |f| <= 2^22; outside that (and for NaN) it gives ggml's wrapped values, which
// the callers clamp, so even inf and NaN scales encode to ggml's bytes.
inline int nearest_int(float f) {
  const float v = f + 12582912.0f;
  int32_t i;
  std::memcpy(&i, &v, 4);
  return (i & 0x007fffff) - 0x00400000;
}

inline constexpr float kGroupMaxEps = 1e-15f;  // ggml's GROUP_MAX_EPS: smaller groups count as zero

// ggml's make_qkx2_quants: fits x[i] ~ scale * L[i] - neg_min with L in 0..nmax, minimising
// sum w[i] * err (err squared, or absolute with mad) over nstep + 1 candidate scales
// (nmax + rmin + rdelta * step) / (max - min). n <= 32. Returns the scale, writes neg_min.
inline float fit_scale_min(int n, int nmax, const float* x, const float* w, uint8_t* L, float* neg_min, float rmin,
                           float rdelta, int nstep, bool mad) {
  float lo = x[0], hi = x[0], sum_w = w[0], sum_x = sum_w * x[0];
  for (int i = 1; i < n; ++i) {
    if (x[i] < lo) lo = x[i];
    if (x[i] > hi) hi = x[i];
    sum_w += w[i];
    sum_x += w[i] * x[i];
  }
  if (lo > 0) lo = 0;
  if (hi == lo) {
    std::fill(L, L + n, uint8_t(0));
    *neg_min = -lo;
    return 0.0f;
  }
  float iscale = nmax / (hi - lo);
  float scale = 1 / iscale;
  float best_err = 0;
  for (int i = 0; i < n; ++i) {
    L[i] = uint8_t(std::clamp(nearest_int(iscale * (x[i] - lo)), 0, nmax));
    float diff = scale * L[i] + lo - x[i];
    diff = mad ? std::fabs(diff) : diff * diff;
    best_err += w[i] * diff;
  }
  uint8_t trial[32];
  for (int step = 0; step <= nstep; ++step) {
    iscale = (rmin + rdelta * step + nmax) / (hi - lo);
    float sum_l = 0, sum_l2 = 0, sum_xl = 0;
    for (int i = 0; i < n; ++i) {
      const int l = std::clamp(nearest_int(iscale * (x[i] - lo)), 0, nmax);
      trial[i] = uint8_t(l);
      sum_l += w[i] * l;
      sum_l2 += w[i] * l * l;
      sum_xl += w[i] * l * x[i];
    }
    const float det = sum_w * sum_l2 - sum_l * sum_l;
    if (!(det > 0)) continue;
    float trial_scale = (sum_w * sum_xl - sum_x * sum_l) / det;
    float trial_min = (sum_l2 * sum_x - sum_l * sum_xl) / det;
    if (trial_min > 0) {
      trial_min = 0;
      trial_scale = sum_xl / sum_l2;
    }
    float err = 0;
    for (int i = 0; i < n; ++i) {
      float diff = trial_scale * trial[i] + trial_min - x[i];
      diff = mad ? std::fabs(diff) : diff * diff;
      err += w[i] * diff;
    }
    if (err < best_err) {
      std::memcpy(L, trial, size_t(n));
      best_err = err;
      scale = trial_scale;
      lo = trial_min;
    }
  }
  *neg_min = -lo;
  return scale;
}

// The 16 levels of iq4_nl / iq4_xs (ggml's kvalues_iq4nl), ascending.
inline constexpr int8_t kIq4Levels[16] = {-127, -104, -83, -65, -49, -35, -22, -10, 1, 13, 25, 38, 53, 69, 89, 113};

// Index of the level nearest x (ggml's best_index_int8: ties go up).
inline int nearest_iq4_level(float x) {
  const int8_t* v = kIq4Levels;
  if (x <= v[0]) return 0;
  if (x >= v[15]) return 15;
  int lo = 0, hi = 15;
  while (hi - lo > 1) {
    const int mid = (lo + hi) / 2;
    if (x < v[mid])
      hi = mid;
    else
      lo = mid;
  }
  return x - v[hi - 1] < v[hi] - x ? hi - 1 : hi;
}

// The 6-bit scales and mins of a q4_K / q5_K block (ggml's get_scale_min_k4 layout): sc[0..3]
// and m[0..3] are the low 6 bits of bytes 0..3 and 4..7; sc[4..7] and m[4..7] take their low
// 4 bits from the nibbles of bytes 8..11 and their top 2 bits from the top of bytes 0..3 and
// 4..7. Bytes of the results are sc[j] / m[j].
inline void unpack_q4_scales(const uint8_t* packed, uint64_t* sc, uint64_t* m) {
  uint32_t w0, w1, w2;
  std::memcpy(&w0, packed, 4);
  std::memcpy(&w1, packed + 4, 4);
  std::memcpy(&w2, packed + 8, 4);
  const uint32_t sc_lo = w0 & 0x3f3f3f3fu, m_lo = w1 & 0x3f3f3f3fu;
  const uint32_t sc_hi = (w2 & 0x0f0f0f0fu) | ((w0 >> 6) & 0x03030303u) << 4;
  const uint32_t m_hi = ((w2 >> 4) & 0x0f0f0f0fu) | ((w1 >> 6) & 0x03030303u) << 4;
  *sc = sc_lo | uint64_t(sc_hi) << 32;
  *m = m_lo | uint64_t(m_hi) << 32;
}

inline uint8_t byte_of(uint64_t v, int j) { return uint8_t(v >> (8 * j)); }

// The inverse: 8 scales and 8 mins (each 0..63) into 12 bytes.
inline void pack_q4_scales(const uint8_t* ls, const uint8_t* lm, uint8_t* packed) {
  for (int j = 0; j < 4; ++j) {
    packed[j] = uint8_t(ls[j] | (ls[j + 4] >> 4) << 6);
    packed[j + 4] = uint8_t(lm[j] | (lm[j + 4] >> 4) << 6);
    packed[j + 8] = uint8_t((ls[j + 4] & 0x0f) | (lm[j + 4] & 0x0f) << 4);
  }
}

}  // namespace lm::quant::rules
