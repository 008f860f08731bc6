// K-quant block rules (ggml's reference quantizers, same float operations in the same order)
// and their dot products with q8_K activations: AVX-512 VNNI and AVX2 paths chosen at run time,
// each exact in its integer sums, with plain `_ref` twins. The row API is in quant.cpp.
#include "quant/kquant.hpp"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <type_traits>

#include "base/cpu.hpp"
#include "quant/quant.hpp"
#include "quant/rules.hpp"
#include "quant/simd.hpp"

namespace lm::quant {

namespace {

using rules::kGroupMaxEps;
using rules::nearest_int;

// ggml's make_qkx2_quants for one q4_K sub-block: L in 0..15, 21 candidate scales.
float fit_q4_sub_block(const float* x, const float* w, uint8_t* L, float* neg_min) {
  return rules::fit_scale_min(32, 15, x, w, L, neg_min, -1.0f, 0.1f, 20, false);
}

// ggml's make_qx_quants for one q6_K sub-block (nmax 32, weights qw, or x^2 without): fits
// x[i] ~ scale * q with q in -32..31, trying 19 scales around the one that maps the largest |x|
// to -32. x, L, qw: [16]; L gets q + 32. Returns the scale (0 for an all-zero group).
float fit_q6_sub_block(const float* x, int8_t* L, const float* qw) {
  constexpr int kN = 16, kMax = 32;
  float amax = 0, max = 0;
  for (int i = 0; i < kN; ++i)
    if (std::fabs(x[i]) > amax) amax = std::fabs(x[i]), max = x[i];
  if (amax < kGroupMaxEps) {
    std::fill(L, L + kN, int8_t(0));
    return 0.0f;
  }
  auto level = [](float s) { return std::clamp(nearest_int(s), -kMax, kMax - 1); };
  float iscale = -kMax / max;
  float sum_lx = 0, sum_l2 = 0;
  for (int i = 0; i < kN; ++i) {
    const int l = level(iscale * x[i]);
    L[i] = int8_t(l + kMax);
    const float w = qw ? qw[i] : x[i] * x[i];
    sum_lx += w * x[i] * l;
    sum_l2 += w * l * l;
  }
  float scale = sum_l2 ? sum_lx / sum_l2 : 0.0f;
  float best = scale * sum_lx;
  for (int step = -9; step <= 9; ++step) {
    if (step == 0) continue;
    iscale = -(kMax + 0.1f * step) / max;
    sum_lx = sum_l2 = 0;
    for (int i = 0; i < kN; ++i) {
      const int l = level(iscale * x[i]);
      const float w = qw ? qw[i] : x[i] * x[i];
      sum_lx += w * x[i] * l;
      sum_l2 += w * l * l;
    }
    if (sum_l2 > 0 && sum_lx * sum_lx > best * sum_l2) {
      for (int i = 0; i < kN; ++i) L[i] = int8_t(kMax + level(iscale * x[i]));
      scale = sum_lx / sum_l2;
      best = scale * sum_lx;
    }
  }
  return scale;
}

using rules::byte_of;
using rules::unpack_q4_scales;

// The 256 signed levels (q - 32, in -32..31) of a q6_K block, in value order.
inline void q6_levels(const BlockQ6_K& b, int8_t* q) {
  for (int c = 0; c < 2; ++c, q += 128)
    for (int l = 0; l < 32; ++l) {
      const int lo0 = b.ql[64 * c + l], lo1 = b.ql[64 * c + 32 + l], h = b.qh[32 * c + l];
      q[l] = int8_t(((lo0 & 0x0f) | (h & 3) << 4) - 32);
      q[l + 32] = int8_t(((lo1 & 0x0f) | (h >> 2 & 3) << 4) - 32);
      q[l + 64] = int8_t(((lo0 >> 4) | (h >> 4 & 3) << 4) - 32);
      q[l + 96] = int8_t(((lo1 >> 4) | (h >> 6 & 3) << 4) - 32);
    }
}

}  // namespace

// ---- quantize / dequantize ----

void quantize_q4_K(const float* src, void* dst, size_t n) {
  auto* out = static_cast<uint8_t*>(dst);
  for (size_t blk = 0; blk < n / kSuperBlock; ++blk, src += kSuperBlock, out += sizeof(BlockQ4_K)) {
    BlockQ4_K b;
    uint8_t L[kSuperBlock];
    float scales[8], mins[8], w[32];
    float max_scale = 0, max_min = 0;
    for (int j = 0; j < 8; ++j) {
      const float* x = src + 32 * j;
      float sum_x2 = 0;
      for (int i = 0; i < 32; ++i) sum_x2 += x[i] * x[i];
      const float av_x = std::sqrt(sum_x2 / 32);
      for (int i = 0; i < 32; ++i) w[i] = av_x + std::fabs(x[i]);
      scales[j] = fit_q4_sub_block(x, w, L + 32 * j, &mins[j]);
      if (scales[j] > max_scale) max_scale = scales[j];
      if (mins[j] > max_min) max_min = mins[j];
    }
    // 6-bit scales and mins relative to the largest of each; the conversions through uint8_t
    // are ggml's (they matter only for inf / NaN inputs).
    const float inv_scale = max_scale > 0 ? 63.0f / max_scale : 0.0f;
    const float inv_min = max_min > 0 ? 63.0f / max_min : 0.0f;
    uint8_t ls[8], lm[8];
    for (int j = 0; j < 8; ++j) {
      ls[j] = std::min(uint8_t(63), uint8_t(nearest_int(inv_scale * scales[j])));
      lm[j] = std::min(uint8_t(63), uint8_t(nearest_int(inv_min * mins[j])));
    }
    for (int j = 0; j < 4; ++j) {
      b.scales[j] = uint8_t(ls[j] | (ls[j + 4] >> 4) << 6);
      b.scales[j + 4] = uint8_t(lm[j] | (lm[j + 4] >> 4) << 6);
      b.scales[j + 8] = uint8_t((ls[j + 4] & 0x0f) | (lm[j + 4] & 0x0f) << 4);
    }
    b.d = fp32_to_fp16(max_scale / 63.0f);
    b.dmin = fp32_to_fp16(max_min / 63.0f);
    // Requantize against the stored scales; a sub-block whose scale is 0 keeps the fit's levels.
    const float d_all = fp16_to_fp32(b.d), dmin_all = fp16_to_fp32(b.dmin);
    for (int j = 0; j < 8; ++j) {
      const float d = d_all * ls[j];
      if (!d) continue;
      const float dm = dmin_all * lm[j];
      for (int i = 0; i < 32; ++i)
        L[32 * j + i] = uint8_t(std::clamp(nearest_int((src[32 * j + i] + dm) / d), 0, 15));
    }
    // Each 32 bytes hold 64 values: the first 32 in the low nibbles, the next 32 in the high.
    for (int c = 0; c < 4; ++c)
      for (int l = 0; l < 32; ++l) b.qs[32 * c + l] = uint8_t(L[64 * c + l] | L[64 * c + 32 + l] << 4);
    std::memcpy(out, &b, sizeof b);
  }
}

void dequantize_q4_K(const void* src, float* dst, size_t n) {
  const auto* blocks = static_cast<const BlockQ4_K*>(src);
  for (size_t blk = 0; blk < n / kSuperBlock; ++blk) {
    const BlockQ4_K& b = blocks[blk];
    const float d = fp16_to_fp32(b.d), dmin = fp16_to_fp32(b.dmin);
    uint64_t sc, m;
    unpack_q4_scales(b.scales, &sc, &m);
    for (int c = 0; c < 4; ++c) {
      const float d1 = d * byte_of(sc, 2 * c), m1 = dmin * byte_of(m, 2 * c);
      const float d2 = d * byte_of(sc, 2 * c + 1), m2 = dmin * byte_of(m, 2 * c + 1);
      for (int l = 0; l < 32; ++l) dst[l] = d1 * (b.qs[32 * c + l] & 0x0f) - m1;
      for (int l = 0; l < 32; ++l) dst[32 + l] = d2 * (b.qs[32 * c + l] >> 4) - m2;
      dst += 64;
    }
  }
}

void quantize_q6_K(const float* src, void* dst, size_t n, const float* importance) {
  auto* out = static_cast<uint8_t*>(dst);
  for (size_t blk = 0; blk < n / kSuperBlock; ++blk, src += kSuperBlock, out += sizeof(BlockQ6_K)) {
    const float* qw = importance ? importance + blk * kSuperBlock : nullptr;
    BlockQ6_K b;
    int8_t L[kSuperBlock];
    float scales[16];
    float max_scale = 0, max_abs_scale = 0;
    for (int g = 0; g < 16; ++g) {
      scales[g] = fit_q6_sub_block(src + 16 * g, L + 16 * g, qw ? qw + 16 * g : nullptr);
      if (std::fabs(scales[g]) > max_abs_scale) max_abs_scale = std::fabs(scales[g]), max_scale = scales[g];
    }
    if (max_abs_scale < kGroupMaxEps) {
      std::memset(&b, 0, sizeof b);
      b.d = fp32_to_fp16(0.0f);
      std::memcpy(out, &b, sizeof b);
      continue;
    }
    // int8 scales relative to the largest, which maps to -128 (so +128 clips to 127).
    const float iscale = -128.0f / max_scale;
    b.d = fp32_to_fp16(1 / iscale);
    for (int g = 0; g < 16; ++g) b.scales[g] = int8_t(std::min(127, nearest_int(iscale * scales[g])));
    const float d_all = fp16_to_fp32(b.d);
    for (int g = 0; g < 16; ++g) {
      const float d = d_all * b.scales[g];
      if (!d) continue;
      for (int i = 0; i < 16; ++i)
        L[16 * g + i] = int8_t(std::clamp(nearest_int(src[16 * g + i] / d), -32, 31) + 32);
    }
    // Per 128 values: ql bytes 0..31 hold values 0..31 (low nibble) and 64..95 (high), bytes
    // 32..63 values 32..63 and 96..127; qh byte l holds bit pairs 4-5 of values l, l+32, l+64, l+96.
    for (int c = 0; c < 2; ++c) {
      const int8_t* q = L + 128 * c;
      for (int l = 0; l < 32; ++l) {
        b.ql[64 * c + l] = uint8_t((q[l] & 0x0f) | (q[l + 64] & 0x0f) << 4);
        b.ql[64 * c + 32 + l] = uint8_t((q[l + 32] & 0x0f) | (q[l + 96] & 0x0f) << 4);
        b.qh[32 * c + l] = uint8_t(q[l] >> 4 | (q[l + 32] >> 4) << 2 | (q[l + 64] >> 4) << 4 | (q[l + 96] >> 4) << 6);
      }
    }
    std::memcpy(out, &b, sizeof b);
  }
}

void dequantize_q6_K(const void* src, float* dst, size_t n) {
  const auto* blocks = static_cast<const BlockQ6_K*>(src);
  for (size_t blk = 0; blk < n / kSuperBlock; ++blk, dst += kSuperBlock) {
    const BlockQ6_K& b = blocks[blk];
    const float d = fp16_to_fp32(b.d);
    int8_t q[kSuperBlock];
    q6_levels(b, q);
    for (int i = 0; i < kSuperBlock; ++i) dst[i] = d * b.scales[i / 16] * q[i];
  }
}

namespace {
// One q8_K block by ggml's rule (the plain version; quantize_q8_K's AVX-512 one gives the same
// bytes for finite rows).
void quantize_q8_K_block_ref(const float* src, uint8_t* out) {
  BlockQ8_K b;
  float amax = 0, max = 0;
  for (int i = 0; i < kSuperBlock; ++i)
    if (std::fabs(src[i]) > amax) amax = std::fabs(src[i]), max = src[i];
  if (!amax) {
    std::memset(&b, 0, sizeof b);  // ggml leaves bsums unset here; zero is what they sum to
    std::memcpy(out, &b, sizeof b);
    return;
  }
  // The largest magnitude maps to -127 (not -128: ggml's choice, which keeps q symmetric).
  const float iscale = -127.0f / max;
  for (int i = 0; i < kSuperBlock; ++i) b.qs[i] = int8_t(std::min(127, nearest_int(iscale * src[i])));
  for (int g = 0; g < 16; ++g) {
    int sum = 0;
    for (int i = 0; i < 16; ++i) sum += b.qs[16 * g + i];
    b.bsums[g] = int16_t(sum);
  }
  b.d = 1 / iscale;
  std::memcpy(out, &b, sizeof b);
}
bool quantize_q8_K_block_avx512(const float* src, uint8_t* out);  // below, with the SIMD code
bool use_avx512_quantize();
}  // namespace

void quantize_q8_K(const float* src, void* dst, size_t n) {
  auto* out = static_cast<uint8_t*>(dst);
  const bool fast = use_avx512_quantize();
  for (size_t blk = 0; blk < n / kSuperBlock; ++blk, src += kSuperBlock, out += sizeof(BlockQ8_K))
    if (!fast || !quantize_q8_K_block_avx512(src, out)) quantize_q8_K_block_ref(src, out);
}

void dequantize_q8_K(const void* src, float* dst, size_t n) {
  const auto* blocks = static_cast<const BlockQ8_K*>(src);
  for (size_t blk = 0; blk < n / kSuperBlock; ++blk, dst += kSuperBlock) {
    const BlockQ8_K& b = blocks[blk];
    const float d = b.d;
    for (int i = 0; i < kSuperBlock; ++i) dst[i] = d * b.qs[i];
  }
}

// ---- dot products: plain twins ----
// Per block the integer sum is exact; it is scaled once by d (and dmin) in float.

float vec_dot_q4_K_q8_K_ref(const void* vx, const void* vy, size_t n) {
  const auto* xs = static_cast<const BlockQ4_K*>(vx);
  const auto* ys = static_cast<const BlockQ8_K*>(vy);
  float sum = 0;
  for (size_t blk = 0; blk < n / kSuperBlock; ++blk) {
    const BlockQ4_K& x = xs[blk];
    const BlockQ8_K& y = ys[blk];
    uint64_t sc, m;
    unpack_q4_scales(x.scales, &sc, &m);
    int32_t sum_q = 0, sum_m = 0;
    for (int c = 0; c < 4; ++c) {
      int32_t s_lo = 0, s_hi = 0, y_lo = 0, y_hi = 0;
      for (int l = 0; l < 32; ++l) {
        s_lo += (x.qs[32 * c + l] & 0x0f) * y.qs[64 * c + l];
        s_hi += (x.qs[32 * c + l] >> 4) * y.qs[64 * c + 32 + l];
        y_lo += y.qs[64 * c + l];
        y_hi += y.qs[64 * c + 32 + l];
      }
      sum_q += byte_of(sc, 2 * c) * s_lo + byte_of(sc, 2 * c + 1) * s_hi;
      sum_m += byte_of(m, 2 * c) * y_lo + byte_of(m, 2 * c + 1) * y_hi;
    }
    sum += y.d * fp16_to_fp32(x.d) * float(sum_q) - y.d * fp16_to_fp32(x.dmin) * float(sum_m);
  }
  return sum;
}

float vec_dot_q6_K_q8_K_ref(const void* vx, const void* vy, size_t n) {
  const auto* xs = static_cast<const BlockQ6_K*>(vx);
  const auto* ys = static_cast<const BlockQ8_K*>(vy);
  float sum = 0;
  for (size_t blk = 0; blk < n / kSuperBlock; ++blk) {
    const BlockQ6_K& x = xs[blk];
    const BlockQ8_K& y = ys[blk];
    int8_t q[kSuperBlock];
    q6_levels(x, q);
    int32_t sum_q = 0;
    for (int g = 0; g < 16; ++g) {
      int32_t s = 0;
      for (int i = 16 * g; i < 16 * g + 16; ++i) s += q[i] * y.qs[i];
      sum_q += x.scales[g] * s;
    }
    sum += y.d * fp16_to_fp32(x.d) * float(sum_q);
  }
  return sum;
}

// ---- dot products: SIMD paths ----
// Every int32 lane converted to float below stays under 2^24 in magnitude for any q8 (even
// -128), so the integer parts are exact; only the float sums' order differs from the twins.

namespace {

// x's d and dmin as floats, in lanes 0 and 1 (q4_K and q5_K blocks).
template <typename Block>
LM_TARGET_AVX2 inline __m128 q4_d_dmin_f32(const Block& x) {
  return _mm_cvtph_ps(_mm_cvtsi32_si128(int(uint32_t(x.d) | uint32_t(x.dmin) << 16)));
}
// x's d and dmin times y's d, in lanes 0 and 1.
LM_TARGET_AVX2 inline __m128 q4_scales_f32(const BlockQ4_K& x, float dy) {
  return _mm_mul_ps(q4_d_dmin_f32(x), _mm_set1_ps(dy));
}

// sum_g sc[g] * bsums[g] as 8 int32 lanes, for q6_K's offset of 32.
LM_TARGET_AVX2 inline __m256i q6_offset_sums(const int8_t* scales, const int16_t* bsums) {
  const __m256i sc16 = _mm256_cvtepi8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(scales)));
  return _mm256_madd_epi16(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(bsums)), sc16);
}

LM_TARGET_AVX2 float dot_q4_K_avx2(const BlockQ4_K* xs, const BlockQ8_K* ys, size_t nb) {
  const __m256i low4 = _mm256_set1_epi8(0x0f);
  __m256 acc = _mm256_setzero_ps(), acc_m = _mm256_setzero_ps();
  for (size_t blk = 0; blk < nb; ++blk) {
    const BlockQ4_K& x = xs[blk];
    const BlockQ8_K& y = ys[blk];
    uint64_t sc, m;
    unpack_q4_scales(x.scales, &sc, &m);
    // The scales as int16 in both 128-bit halves; shuffles pick sub-block s's into every lane.
    const __m256i sc16 = _mm256_broadcastsi128_si256(_mm_cvtepu8_epi16(_mm_cvtsi64_si128(int64_t(sc))));
    __m256i sum = _mm256_setzero_si256();
    for (int c = 0; c < 4; ++c) {
      const __m256i q = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(x.qs + 32 * c));
      const __m256i q_lo = _mm256_and_si256(q, low4), q_hi = _mm256_and_si256(_mm256_srli_epi16(q, 4), low4);
      const __m256i y_lo = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(y.qs + 64 * c));
      const __m256i y_hi = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(y.qs + 64 * c + 32));
      const __m256i s_lo = _mm256_shuffle_epi8(sc16, _mm256_set1_epi16(short(0x0100 + 0x0202 * (2 * c))));
      const __m256i s_hi = _mm256_shuffle_epi8(sc16, _mm256_set1_epi16(short(0x0100 + 0x0202 * (2 * c + 1))));
      // maddubs: pairs of 15 * |y| <= 3840, no saturation
      sum = _mm256_add_epi32(sum, _mm256_madd_epi16(_mm256_maddubs_epi16(q_lo, y_lo), s_lo));
      sum = _mm256_add_epi32(sum, _mm256_madd_epi16(_mm256_maddubs_epi16(q_hi, y_hi), s_hi));
    }
    const __m128i m8 = _mm_cvtsi64_si128(int64_t(m));
    const __m256i mins = _mm256_madd_epi16(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(y.bsums)),
                                           _mm256_cvtepu8_epi16(_mm_unpacklo_epi8(m8, m8)));  // m[j] twice
    const __m128 dd = q4_scales_f32(x, y.d);
    acc = _mm256_fmadd_ps(_mm256_broadcastss_ps(dd), _mm256_cvtepi32_ps(sum), acc);
    acc_m = _mm256_fmadd_ps(_mm256_broadcastss_ps(_mm_movehdup_ps(dd)), _mm256_cvtepi32_ps(mins), acc_m);
  }
  return hsum8(_mm256_sub_ps(acc, acc_m));
}

LM_TARGET_AVX2 float dot_q6_K_avx2(const BlockQ6_K* xs, const BlockQ8_K* ys, size_t nb) {
  const __m256i low4 = _mm256_set1_epi8(0x0f), bits45 = _mm256_set1_epi8(0x30);
  __m256 acc = _mm256_setzero_ps(), acc_off = _mm256_setzero_ps();
  for (size_t blk = 0; blk < nb; ++blk) {
    const BlockQ6_K& x = xs[blk];
    const BlockQ8_K& y = ys[blk];
    const __m256 d = _mm256_set1_ps(y.d * _cvtsh_ss(x.d));
    for (int c = 0; c < 2; ++c) {
      const __m256i ql0 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(x.ql + 64 * c));
      const __m256i ql1 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(x.ql + 64 * c + 32));
      const __m256i qh = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(x.qh + 32 * c));
      // The four 32-value quarters, q in 0..63; each qh bit pair is moved to bits 4-5.
      const __m256i q[4] = {
          _mm256_or_si256(_mm256_and_si256(ql0, low4), _mm256_and_si256(_mm256_slli_epi16(qh, 4), bits45)),
          _mm256_or_si256(_mm256_and_si256(ql1, low4), _mm256_and_si256(_mm256_slli_epi16(qh, 2), bits45)),
          _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(ql0, 4), low4), _mm256_and_si256(qh, bits45)),
          _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(ql1, 4), low4),
                          _mm256_and_si256(_mm256_srli_epi16(qh, 2), bits45))};
      // The chunk's 8 scales as int16 in both halves; quarter k takes scale 2k in its low
      // 128 bits (values 0..15) and 2k + 1 in its high (16..31).
      const __m256i sc16 = _mm256_broadcastsi128_si256(
          _mm_cvtepi8_epi16(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(x.scales + 8 * c))));
      __m256i sum = _mm256_setzero_si256();
      for (int k = 0; k < 4; ++k) {
        const __m256i yk = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(y.qs + 128 * c + 32 * k));
        const short lo = short(0x0100 + 0x0202 * (2 * k)), hi = short(0x0100 + 0x0202 * (2 * k + 1));
        const __m256i s = _mm256_shuffle_epi8(sc16, _mm256_setr_epi16(lo, lo, lo, lo, lo, lo, lo, lo, hi, hi, hi, hi, hi, hi, hi, hi));
        sum = _mm256_add_epi32(sum, _mm256_madd_epi16(_mm256_maddubs_epi16(q[k], yk), s));
      }
      acc = _mm256_fmadd_ps(d, _mm256_cvtepi32_ps(sum), acc);
    }
    acc_off = _mm256_fmadd_ps(d, _mm256_cvtepi32_ps(q6_offset_sums(x.scales, y.bsums)), acc_off);
  }
  return hsum8(acc) - 32.0f * hsum8(acc_off);
}

// The AVX-512 paths read the weights with 256-bit loads: on the development machine (Zen 5)
// a stream of 512-bit loads from DRAM ran at 27-31 GB/s on one core, 256-bit ones at 41-50.

// unpack_q4_scales in one 128-bit register: bytes 0..7 the scales, 8..15 the mins. Reads 16
// bytes from `packed` (the 12 scale bytes and the first 4 of the block's qs). Faster here than
// the scalar version for rows of a few blocks (4 ns against 4.2 per block at 1024 values).
LM_TARGET_AVX512 inline __m128i unpack_q4_scales_sse(const uint8_t* packed) {
  const __m128i w = _mm_loadu_si128(reinterpret_cast<const __m128i*>(packed));  // w0 w1 w2 -
  // dwords [w0, w2, w1, w2 >> 4] keep their low bits: [sc 0..3, sc 4..7 low 4, m 0..3, m 4..7 low 4]
  const __m128i lows = _mm_and_si128(_mm_srlv_epi32(_mm_shuffle_epi32(w, 0x98), _mm_setr_epi32(0, 0, 0, 4)),
                                     _mm_setr_epi32(0x3f3f3f3f, 0x0f0f0f0f, 0x3f3f3f3f, 0x0f0f0f0f));
  // dwords 1, 3: the top 2 bits of w0 / w1 moved to bits 4-5
  const __m128i tops = _mm_and_si128(_mm_srli_epi32(_mm_shuffle_epi32(w, 0x50), 2),
                                     _mm_setr_epi32(0, 0x30303030, 0, 0x30303030));
  return _mm_or_si128(lows, tops);
}

// Byte shuffle of unpack_q4_scales_sse's result (in each 128-bit half) that puts min j in
// int16 lanes 2j and 2j + 1, for vpmaddwd with q8_K's bsums (-128 selects a zero byte).
LM_TARGET_AVX512 inline __m256i q4_min_pick() {
  return _mm256_setr_epi8(8, -128, 8, -128, 9, -128, 9, -128, 10, -128, 10, -128, 11, -128, 11, -128,
                          12, -128, 12, -128, 13, -128, 13, -128, 14, -128, 14, -128, 15, -128, 15, -128);
}

// Byte shuffle of 8 scales (repeated in every 128-bit lane) for chunks c = 2h and 2h + 1 after
// vpackssdw of their dpbusd sums: 128-bit lane k holds int16 sums 0..3 from chunk 2h's int32
// lanes 4k..4k+3 (sub-block 4h + k / 2) and 4..7 from chunk 2h + 1's (sub-block 4h + 2 + k / 2);
// each int16 gets its sub-block's scale, zero-extended (0x80 selects a zero byte).
LM_TARGET_AVX512 inline __m512i q4_pair_pick(int h) {
  alignas(64) int8_t b[64];
  for (int k = 0; k < 4; ++k)
    for (int e = 0; e < 8; ++e) {
      b[16 * k + 2 * e] = int8_t(4 * h + (e >= 4 ? 2 : 0) + k / 2);
      b[16 * k + 2 * e + 1] = int8_t(0x80);
    }
  return _mm512_load_si512(b);
}

LM_TARGET_AVX512 inline __m512i load_twice(const uint8_t* p) {
  return _mm512_broadcast_i64x4(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)));
}

// quantize_q8_K_block_ref's bytes with AVX-512: the first value of the largest magnitude sets
// the scale, vcvtps2dq rounds to nearest even as nearest_int does for |v| <= 127, and each
// 16-value group's sum is one vector's. Blocks with NaN or infinity, or whose largest magnitude
// is subnormal (an infinite scale), are left to the plain version, since vcvtps2dq and
// nearest_int disagree there: returns false.
LM_TARGET_AVX512 bool quantize_q8_K_block_avx512(const float* src, uint8_t* out) {
  __m512 m = _mm512_setzero_ps();
  __mmask16 unordered = 0;
  for (int i = 0; i < 16; ++i) {
    const __m512 v = _mm512_loadu_ps(src + 16 * i);
    unordered |= _mm512_cmp_ps_mask(v, v, _CMP_UNORD_Q);
    m = _mm512_max_ps(m, _mm512_abs_ps(v));
  }
  const float amax = _mm512_reduce_max_ps(m);
  if (unordered || !(amax <= std::numeric_limits<float>::max())) return false;
  BlockQ8_K b;
  if (amax == 0) {
    std::memset(&b, 0, sizeof b);
    std::memcpy(out, &b, sizeof b);
    return true;
  }
  int first = 0;
  for (int i = 0; i < 16; ++i) {
    const __mmask16 hit = _mm512_cmp_ps_mask(_mm512_abs_ps(_mm512_loadu_ps(src + 16 * i)), _mm512_set1_ps(amax), _CMP_EQ_OQ);
    if (hit) {
      first = 16 * i + __builtin_ctz(hit);
      break;
    }
  }
  const float iscale = -127.0f / src[first];
  if (!(std::fabs(iscale) <= std::numeric_limits<float>::max())) return false;  // a subnormal largest value
  const __m512 is = _mm512_set1_ps(iscale);
  for (int i = 0; i < 16; ++i) {
    const __m512i q = _mm512_min_epi32(_mm512_cvtps_epi32(_mm512_mul_ps(is, _mm512_loadu_ps(src + 16 * i))),
                                       _mm512_set1_epi32(127));
    _mm_storeu_si128(reinterpret_cast<__m128i*>(b.qs + 16 * i), _mm512_cvtsepi32_epi8(q));
    b.bsums[i] = int16_t(_mm512_reduce_add_epi32(q));
  }
  b.d = 1 / iscale;
  std::memcpy(out, &b, sizeof b);
  return true;
}

// A weight block's integer sum with one q8_K block: q holds the block's 4 chunks of 64
// unsigned levels (up to 63) in y's order, sc the int16 scales of chunk pairs (0, 1) and (2, 3)
// as vpackssdw lays their sums out. Each dpbusd lane sums 4 products, |.| <= 63 * 128 * 4 =
// 32256, so two chunks' sums pack into int16 without saturating and one vpdpwssd scales both.
LM_TARGET_AVX512 inline __attribute__((always_inline)) __m512i block_sum_avx512(const __m512i* q, const __m512i* sc,
                                                                                 const int8_t* yq) {
  __m512i sum = _mm512_setzero_si512();
  for (int h = 0; h < 2; ++h) {
    const __m512i p0 = _mm512_dpbusd_epi32(_mm512_setzero_si512(), q[2 * h], _mm512_loadu_si512(yq + 128 * h));
    const __m512i p1 = _mm512_dpbusd_epi32(_mm512_setzero_si512(), q[2 * h + 1], _mm512_loadu_si512(yq + 128 * h + 64));
    sum = _mm512_dpwssd_epi32(sum, _mm512_packs_epi32(p0, p1), sc[h]);
  }
  return sum;
}

// One q4_K or q5_K weight row against R activation rows (row r at y + r * y_stride): the
// weights' levels, scales and mins are unpacked once per block for all R rows, and each row's
// sums take the same steps as with R = 1, so every result equals the single-row product to the
// bit. q5_K is q4_K with a fifth bit per value (qh[l] bit 2c for value l of chunk c's first
// half, 2c + 1 for its second): levels 0..31.
template <int R, typename Block>
LM_TARGET_AVX512 inline __attribute__((always_inline)) void dot_q45_K_avx512(const Block* xs, const uint8_t* y, size_t y_stride, size_t nb, float* out) {
  constexpr bool kQ5 = std::is_same_v<Block, BlockQ5_K>;
  static_assert(kQ5 || std::is_same_v<Block, BlockQ4_K>);
  const __m512i low4 = _mm512_set1_epi8(0x0f);
  // Shift counts for 16-bit lanes: 0 in the low 256 bits, 4 in the high.
  const __m512i nibble_shift = _mm512_inserti64x4(_mm512_setzero_si512(), _mm256_set1_epi16(4), 1);
  const __m512i half_one = _mm512_inserti64x4(_mm512_setzero_si512(), _mm256_set1_epi16(1), 1);  // 0 low, 1 high
  const __m512i pick[2] = {q4_pair_pick(0), q4_pair_pick(1)};
  const __m256i pick_min = q4_min_pick();
  __m512 acc[R];
  __m256 acc_m[R];
  for (int r = 0; r < R; ++r) acc[r] = _mm512_setzero_ps(), acc_m[r] = _mm256_setzero_ps();
  for (size_t blk = 0; blk < nb; ++blk) {
    const Block& x = xs[blk];
    const __m512i sm = _mm512_broadcast_i32x4(unpack_q4_scales_sse(x.scales));
    __m512i q[4];
    for (int c = 0; c < 4; ++c) {
      // 32 bytes hold values 64c..64c+31 in their low nibbles and 64c+32..64c+63 in their high:
      // the same bytes in both halves, shifted by 0 and 4, give the 64 values in y's order.
      q[c] = _mm512_and_si512(_mm512_srlv_epi16(load_twice(x.qs + 32 * c), nibble_shift), low4);
      if constexpr (kQ5) {
        // qh shifted right by 2c (low half) / 2c + 1 (high half) in 16-bit lanes: bit 0 of each
        // byte is that byte's own bit; moved to bit 4 (0xf8: a | (b & c)).
        const __m512i h = _mm512_srlv_epi16(load_twice(x.qh), _mm512_add_epi16(half_one, _mm512_set1_epi16(short(2 * c))));
        q[c] = _mm512_ternarylogic_epi32(q[c], _mm512_slli_epi16(h, 4), _mm512_set1_epi8(0x10), 0xf8);
      }
    }
    const __m512i sc[2] = {_mm512_shuffle_epi8(sm, pick[0]), _mm512_shuffle_epi8(sm, pick[1])};
    const __m256i mins_pick = _mm256_shuffle_epi8(_mm512_castsi512_si256(sm), pick_min);
    const __m128 xd = q4_d_dmin_f32(x);
    for (int r = 0; r < R; ++r) {
      const BlockQ8_K& yb = reinterpret_cast<const BlockQ8_K*>(y + size_t(r) * y_stride)[blk];
      const __m512i sum = block_sum_avx512(q, sc, yb.qs);  // levels 0..31: |dpbusd lane| <= 15872
      const __m256i mins = _mm256_madd_epi16(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(yb.bsums)), mins_pick);
      const __m128 dd = _mm_mul_ps(xd, _mm_set1_ps(yb.d));  // x's d and dmin times y's d
      acc[r] = _mm512_fmadd_ps(_mm512_broadcastss_ps(dd), _mm512_cvtepi32_ps(sum), acc[r]);
      acc_m[r] = _mm256_fmadd_ps(_mm256_broadcastss_ps(_mm_movehdup_ps(dd)), _mm256_cvtepi32_ps(mins), acc_m[r]);
    }
  }
  for (int r = 0; r < R; ++r) {
    const __m256 hi = _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(acc[r]), 1));
    out[r] = hsum8(_mm256_sub_ps(_mm256_add_ps(_mm512_castps512_ps256(acc[r]), hi), acc_m[r]));
  }
}

template <int R>
LM_TARGET_AVX512 inline __attribute__((always_inline)) void dot_q6_K_avx512(const BlockQ6_K* xs, const uint8_t* y, size_t y_stride, size_t nb, float* out) {
  const __m512i low4 = _mm512_set1_epi8(0x0f), bits45 = _mm512_set1_epi8(0x30);
  // Per-half shift counts for 16-bit lanes: qh's pair 0 / 1 to bits 4-5 (left 4 / 2), and pair
  // 2 / 3 to bits 4-5 (right 0 / 2).
  const __m512i shl = _mm512_inserti64x4(_mm512_set1_epi16(4), _mm256_set1_epi16(2), 1);
  const __m512i shr = _mm512_inserti64x4(_mm512_setzero_si512(), _mm256_set1_epi16(2), 1);
  // vpackssdw of chunks 2h and 2h + 1's dpbusd sums leaves in 128-bit lane j int16 sums 0..3
  // from chunk 2h (sub-block 8h + j) and 4..7 from chunk 2h + 1 (sub-block 8h + 4 + j): the int16
  // scales for them, picked from the block's 16 by vpermw.
  alignas(64) int16_t idx[2][32];
  for (int h = 0; h < 2; ++h)
    for (int j = 0; j < 4; ++j)
      for (int e = 0; e < 8; ++e) idx[h][8 * j + e] = int16_t(4 * (2 * h + (e >= 4)) + j);
  const __m512i pick[2] = {_mm512_load_si512(idx[0]), _mm512_load_si512(idx[1])};
  __m512 acc[R];
  __m256 acc_off[R];
  for (int r = 0; r < R; ++r) acc[r] = _mm512_setzero_ps(), acc_off[r] = _mm256_setzero_ps();
  for (size_t blk = 0; blk < nb; ++blk) {
    const BlockQ6_K& x = xs[blk];
    const __m256i sc16 = _mm256_cvtepi8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(x.scales)));
    const __m512i sc[2] = {_mm512_permutexvar_epi16(pick[0], _mm512_castsi256_si512(sc16)),
                           _mm512_permutexvar_epi16(pick[1], _mm512_castsi256_si512(sc16))};
    __m512i q[4];
    for (int c = 0; c < 2; ++c) {
      // The low nibbles of ql's 64 bytes are the chunk's values 0..63 in order, the high
      // nibbles values 64..127; their top bits are qh's pairs 0, 1 (bytes 0..31, 32..63 of the
      // low vector) and 2, 3 (of the high vector).
      const __m512i ql = _mm512_inserti64x4(
          _mm512_castsi256_si512(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(x.ql + 64 * c))),
          _mm256_loadu_si256(reinterpret_cast<const __m256i*>(x.ql + 64 * c + 32)), 1);
      const __m512i qh = load_twice(x.qh + 32 * c);
      // 0xea: (a & b) | c
      q[2 * c] = _mm512_ternarylogic_epi32(ql, low4, _mm512_and_si512(_mm512_sllv_epi16(qh, shl), bits45), 0xea);
      q[2 * c + 1] = _mm512_ternarylogic_epi32(_mm512_srli_epi16(ql, 4), low4, _mm512_and_si512(_mm512_srlv_epi16(qh, shr), bits45), 0xea);
    }
    const float xd = _cvtsh_ss(x.d);
    for (int r = 0; r < R; ++r) {
      const BlockQ8_K& yb = reinterpret_cast<const BlockQ8_K*>(y + size_t(r) * y_stride)[blk];
      const __m512i sum = block_sum_avx512(q, sc, yb.qs);  // levels 0..63: |dpbusd lane| <= 32256
      const __m256i off = _mm256_madd_epi16(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(yb.bsums)), sc16);
      const float d = yb.d * xd;
      acc[r] = _mm512_fmadd_ps(_mm512_set1_ps(d), _mm512_cvtepi32_ps(sum), acc[r]);
      acc_off[r] = _mm256_fmadd_ps(_mm256_set1_ps(d), _mm256_cvtepi32_ps(off), acc_off[r]);
    }
  }
  for (int r = 0; r < R; ++r) {
    const __m256 hi = _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(acc[r]), 1));
    out[r] = hsum8(_mm256_fnmadd_ps(_mm256_set1_ps(32.0f), acc_off[r], _mm256_add_ps(_mm512_castps512_ps256(acc[r]), hi)));
  }
}

// One weight row, one activation row: vec_dot.
LM_TARGET_AVX512 float dot_q4_K_avx512_1(const BlockQ4_K* x, const BlockQ8_K* y, size_t nb) {
  float out;
  dot_q45_K_avx512<1>(x, reinterpret_cast<const uint8_t*>(y), 0, nb, &out);
  return out;
}
LM_TARGET_AVX512 float dot_q6_K_avx512_1(const BlockQ6_K* x, const BlockQ8_K* y, size_t nb) {
  float out;
  dot_q6_K_avx512<1>(x, reinterpret_cast<const uint8_t*>(y), 0, nb, &out);
  return out;
}

LM_QUANT_TILE(dot_tile_q4_K_avx512, LM_TARGET_AVX512, BlockQ4_K, dot_q45_K_avx512)
LM_QUANT_TILE(dot_tile_q6_K_avx512, LM_TARGET_AVX512, BlockQ6_K, dot_q6_K_avx512)
LM_QUANT_TILE(dot_tile_q5_K_avx512, LM_TARGET_AVX512, BlockQ5_K, dot_q45_K_avx512)

DotPath best_dot_path() {
  __builtin_cpu_init();
  if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
      __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512vnni") &&
      __builtin_cpu_supports("fma") && __builtin_cpu_supports("bmi2") && cpu_has_f16c())
    return DotPath::Avx512Vnni;
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && cpu_has_f16c())
    return DotPath::Avx2;
  return DotPath::Portable;
}

DotPath& current_dot_path() {
  static DotPath path = best_dot_path();
  return path;
}

bool use_avx512_quantize() { return current_dot_path() == DotPath::Avx512Vnni; }

}  // namespace

DotPath dot_path() { return current_dot_path(); }

void limit_dot_path(DotPath max) { current_dot_path() = std::min(max, best_dot_path()); }

float vec_dot_q4_K_q8_K(const void* x, const void* y, size_t n) {
  const auto* xs = static_cast<const BlockQ4_K*>(x);
  const auto* ys = static_cast<const BlockQ8_K*>(y);
  switch (current_dot_path()) {
    case DotPath::Avx512Vnni: return dot_q4_K_avx512_1(xs, ys, n / kSuperBlock);
    case DotPath::Avx2: return dot_q4_K_avx2(xs, ys, n / kSuperBlock);
    case DotPath::Portable: break;
  }
  return vec_dot_q4_K_q8_K_ref(x, y, n);
}

float vec_dot_q6_K_q8_K(const void* x, const void* y, size_t n) {
  const auto* xs = static_cast<const BlockQ6_K*>(x);
  const auto* ys = static_cast<const BlockQ8_K*>(y);
  switch (current_dot_path()) {
    case DotPath::Avx512Vnni: return dot_q6_K_avx512_1(xs, ys, n / kSuperBlock);
    case DotPath::Avx2: return dot_q6_K_avx2(xs, ys, n / kSuperBlock);
    case DotPath::Portable: break;
  }
  return vec_dot_q6_K_q8_K_ref(x, y, n);
}

void vec_dot_q4_K_q8_K_tile(const void* x, size_t x_stride, int nx, const void* y, size_t y_stride, int ny, size_t n,
                            float* out) {
  dot_tile(dot_tile_q4_K_avx512, nullptr, vec_dot_q4_K_q8_K, x, x_stride, nx, y, y_stride, ny, n, out);
}
void vec_dot_q5_K_q8_K_tile(const void* x, size_t x_stride, int nx, const void* y, size_t y_stride, int ny, size_t n,
                            float* out) {
  dot_tile(dot_tile_q5_K_avx512, nullptr, vec_dot_q5_K_q8_K, x, x_stride, nx, y, y_stride, ny, n, out);
}
void vec_dot_q6_K_q8_K_tile(const void* x, size_t x_stride, int nx, const void* y, size_t y_stride, int ny, size_t n,
                            float* out) {
  dot_tile(dot_tile_q6_K_avx512, nullptr, vec_dot_q6_K_q8_K, x, x_stride, nx, y, y_stride, ny, n, out);
}

}  // namespace lm::quant
