// q4_1, q5_0, q5_1 and iq4_nl (blocks of 32, quant.hpp): ggml's quantizers (same float
// operations in the same order), dequantizers, and dot products with q8_0 activations, an AVX2
// path chosen at run time (kquant.hpp's dot_path) and plain `_ref` twins.
#include <algorithm>
#include <array>
#include <cfloat>
#include <cmath>
#include <cstring>
#include <type_traits>

#include "quant/kquant.hpp"
#include "quant/quant.hpp"
#include "quant/rules.hpp"
#include "quant/simd.hpp"

namespace lm::quant {

namespace {

inline void put_u16(uint16_t v, uint16_t* dst) { std::memcpy(dst, &v, 2); }

// The 5th bits of values j (bit j of qh) and j + 16 (bit j + 16), from q in 0..31.
inline uint32_t high_bits(const uint8_t* q) {
  uint32_t qh = 0;
  for (int j = 0; j < kBlock; ++j) qh |= uint32_t((q[j] & 0x10) >> 4) << j;
  return qh;
}

inline void pack_nibbles(const uint8_t* q, uint8_t* qs) {
  for (int j = 0; j < kBlock / 2; ++j) qs[j] = uint8_t((q[j] & 0x0f) | (q[j + kBlock / 2] & 0x0f) << 4);
}

// The 32 levels (0..31) of a block with 5-bit quants, in value order: the nibbles, with bit j
// of qh as 16. Bytes of qh are spread to 8 bytes each through a table (0x10 per set bit), so the
// loops have no variable shifts and vectorize.
inline void q5_levels(const uint8_t* qs, const uint8_t* qh, uint8_t* q) {
  static constexpr auto kSpread = [] {
    std::array<uint64_t, 256> t{};
    for (int v = 0; v < 256; ++v)
      for (int i = 0; i < 8; ++i)
        if (v >> i & 1) t[size_t(v)] |= uint64_t(0x10) << (8 * i);
    return t;
  }();
  uint8_t hi[kBlock];
  for (int k = 0; k < 4; ++k) std::memcpy(hi + 8 * k, &kSpread[qh[k]], 8);
  for (int j = 0; j < kBlock / 2; ++j) {
    q[j] = uint8_t((qs[j] & 0x0f) | hi[j]);
    q[j + 16] = uint8_t((qs[j] >> 4) | hi[j + 16]);
  }
}

// Level j (0..31) of a block with 5-bit quants.
inline int q5_level(const uint8_t* qs, uint32_t qh, int j) {
  const int nib = j < 16 ? qs[j] & 0x0f : qs[j - 16] >> 4;
  return nib | int((qh >> j) & 1) << 4;
}

inline uint32_t load_qh(const uint8_t* p) {
  uint32_t v;
  std::memcpy(&v, p, 4);
  return v;
}

}  // namespace

// ---- quantize / dequantize ----

// q4_1 and q5_1: d = (max - min) / nmax, q = trunc((x - min) / d + 0.5).
void quantize_q4_1(const float* src, void* dst, size_t n) {
  auto* out = static_cast<BlockQ4_1*>(dst);
  for (size_t b = 0; b < n / kBlock; ++b, src += kBlock) {
    float lo = FLT_MAX, hi = -FLT_MAX;
    for (int j = 0; j < kBlock; ++j) {
      if (src[j] < lo) lo = src[j];
      if (src[j] > hi) hi = src[j];
    }
    const float d = (hi - lo) / 15, id = d ? 1.0f / d : 0.0f;
    BlockQ4_1 blk;
    blk.d = fp32_to_fp16(d);
    blk.m = fp32_to_fp16(lo);
    for (int j = 0; j < kBlock / 2; ++j) {
      const uint8_t q0 = uint8_t(std::min(15, int(int8_t((src[j] - lo) * id + 0.5f))));
      const uint8_t q1 = uint8_t(std::min(15, int(int8_t((src[j + 16] - lo) * id + 0.5f))));
      blk.qs[j] = uint8_t(q0 | q1 << 4);
    }
    std::memcpy(out + b, &blk, sizeof blk);
  }
}

void dequantize_q4_1(const void* src, float* dst, size_t n) {
  const auto* blocks = static_cast<const BlockQ4_1*>(src);
  for (size_t b = 0; b < n / kBlock; ++b, dst += kBlock) {
    BlockQ4_1 blk;
    std::memcpy(&blk, blocks + b, sizeof blk);
    const float d = fp16_to_fp32(blk.d), m = fp16_to_fp32(blk.m);
    for (int j = 0; j < kBlock / 2; ++j) {
      dst[j] = float(blk.qs[j] & 0x0f) * d + m;
      dst[j + 16] = float(blk.qs[j] >> 4) * d + m;
    }
  }
}

// q5_0: the value of largest magnitude maps to -16, keeping its sign.
void quantize_q5_0(const float* src, void* dst, size_t n) {
  auto* out = static_cast<BlockQ5_0*>(dst);
  for (size_t b = 0; b < n / kBlock; ++b, src += kBlock) {
    float amax = 0, mx = 0;
    for (int j = 0; j < kBlock; ++j)
      if (amax < std::fabs(src[j])) amax = std::fabs(src[j]), mx = src[j];
    const float d = mx / -16, id = d ? 1.0f / d : 0.0f;
    BlockQ5_0 blk;
    blk.d = fp32_to_fp16(d);
    uint8_t q[kBlock];
    for (int j = 0; j < kBlock; ++j) q[j] = uint8_t(std::min(31, int(int8_t(src[j] * id + 16.5f))));
    pack_nibbles(q, blk.qs);
    const uint32_t qh = high_bits(q);
    std::memcpy(blk.qh, &qh, 4);
    std::memcpy(out + b, &blk, sizeof blk);
  }
}

void dequantize_q5_0(const void* src, float* dst, size_t n) {
  const auto* blocks = static_cast<const BlockQ5_0*>(src);
  for (size_t b = 0; b < n / kBlock; ++b, dst += kBlock) {
    BlockQ5_0 blk;
    std::memcpy(&blk, blocks + b, sizeof blk);
    const float d = fp16_to_fp32(blk.d);
    uint8_t q[kBlock];
    q5_levels(blk.qs, blk.qh, q);
    for (int j = 0; j < kBlock; ++j) dst[j] = float(int(q[j]) - 16) * d;
  }
}

void quantize_q5_1(const float* src, void* dst, size_t n) {
  auto* out = static_cast<BlockQ5_1*>(dst);
  for (size_t b = 0; b < n / kBlock; ++b, src += kBlock) {
    float lo = FLT_MAX, hi = -FLT_MAX;
    for (int j = 0; j < kBlock; ++j) {
      if (src[j] < lo) lo = src[j];
      if (src[j] > hi) hi = src[j];
    }
    const float d = (hi - lo) / 31, id = d ? 1.0f / d : 0.0f;
    BlockQ5_1 blk;
    blk.d = fp32_to_fp16(d);
    blk.m = fp32_to_fp16(lo);
    uint8_t q[kBlock];
    for (int j = 0; j < kBlock; ++j) q[j] = uint8_t((src[j] - lo) * id + 0.5f);
    pack_nibbles(q, blk.qs);
    const uint32_t qh = high_bits(q);
    std::memcpy(blk.qh, &qh, 4);
    std::memcpy(out + b, &blk, sizeof blk);
  }
}

void dequantize_q5_1(const void* src, float* dst, size_t n) {
  const auto* blocks = static_cast<const BlockQ5_1*>(src);
  for (size_t b = 0; b < n / kBlock; ++b, dst += kBlock) {
    BlockQ5_1 blk;
    std::memcpy(&blk, blocks + b, sizeof blk);
    const float d = fp16_to_fp32(blk.d), m = fp16_to_fp32(blk.m);
    uint8_t q[kBlock];
    q5_levels(blk.qs, blk.qh, q);
    for (int j = 0; j < kBlock; ++j) dst[j] = float(q[j]) * d + m;
  }
}

// iq4_nl, ggml's quantize_row_iq4_nl_impl for one block of 32 with 7 trials each way and no
// importance matrix (weights x^2): a least-squares scale for the levels nearest x / d, for
// d = max / 127 and max / (-127 + t), t in -7..7; then the levels nearest x / scale.
void quantize_iq4_nl(const float* src, void* dst, size_t n, const float* importance) {
  using rules::kIq4Levels;
  using rules::nearest_iq4_level;
  auto* out = static_cast<BlockIQ4_NL*>(dst);
  for (size_t b = 0; b < n / kBlock; ++b, src += kBlock) {
    const float* x = src;
    float weight[kBlock];
    if (importance) {  // the block is ggml's super-block here: sigma2 over its 32 values
      float sigma2 = 0;
      for (int j = 0; j < kBlock; ++j) sigma2 += x[j] * x[j];
      sigma2 *= 2.f / kBlock;
      const float* qw = importance + b * kBlock;
      for (int j = 0; j < kBlock; ++j) weight[j] = qw[j] * std::sqrt(sigma2 + x[j] * x[j]);
    } else {
      for (int j = 0; j < kBlock; ++j) weight[j] = x[j] * x[j];
    }
    float amax = 0, mx = 0;
    for (int j = 0; j < kBlock; ++j)
      if (std::fabs(x[j]) > amax) amax = std::fabs(x[j]), mx = x[j];
    float scale = 0;
    if (!(amax < rules::kGroupMaxEps)) {
      float d = -mx / kIq4Levels[0];
      float id = 1 / d;
      float sum_qx = 0, sum_q2 = 0;
      for (int j = 0; j < kBlock; ++j) {
        const float q = kIq4Levels[nearest_iq4_level(id * x[j])];
        const float w = weight[j];
        sum_qx += w * q * x[j];
        sum_q2 += w * q * q;
      }
      d = sum_q2 > 0 ? sum_qx / sum_q2 : 0.0f;
      float best = d * sum_qx;
      for (int t = -7; t <= 7; ++t) {
        id = float(t + kIq4Levels[0]) / mx;
        sum_qx = sum_q2 = 0;
        for (int j = 0; j < kBlock; ++j) {
          const float q = kIq4Levels[nearest_iq4_level(id * x[j])];
          const float w = weight[j];
          sum_qx += w * q * x[j];
          sum_q2 += w * q * q;
        }
        if (sum_q2 > 0 && sum_qx * sum_qx > best * sum_q2) {
          d = sum_qx / sum_q2;
          best = d * sum_qx;
        }
      }
      scale = d;
    }
    BlockIQ4_NL blk;
    blk.d = fp32_to_fp16(scale);
    const float id = scale ? 1 / scale : 0;
    uint8_t q[kBlock];
    for (int j = 0; j < kBlock; ++j) q[j] = uint8_t(nearest_iq4_level(id * x[j]));
    pack_nibbles(q, blk.qs);
    std::memcpy(out + b, &blk, sizeof blk);
  }
}

void dequantize_iq4_nl(const void* src, float* dst, size_t n) {
  const auto* blocks = static_cast<const BlockIQ4_NL*>(src);
  for (size_t b = 0; b < n / kBlock; ++b, dst += kBlock) {
    BlockIQ4_NL blk;
    std::memcpy(&blk, blocks + b, sizeof blk);
    const float d = fp16_to_fp32(blk.d);
    for (int j = 0; j < kBlock / 2; ++j) {
      dst[j] = d * float(rules::kIq4Levels[blk.qs[j] & 0x0f]);
      dst[j + 16] = d * float(rules::kIq4Levels[blk.qs[j] >> 4]);
    }
  }
}

// ---- dot products: plain twins ----
// Per block the integer sums are exact; they are scaled once in float.

namespace {

// sum_j q[j] * y[j] and sum_j y[j] for the unsigned levels q of block x (Level(x, j)).
template <typename Block, typename Level>
float dot_ref(const void* vx, const void* vy, size_t n, Level level) {
  const auto* xs = static_cast<const Block*>(vx);
  const auto* ys = static_cast<const BlockQ8_0*>(vy);
  float sum = 0;
  for (size_t b = 0; b < n / kBlock; ++b) {
    Block x;
    BlockQ8_0 y;
    std::memcpy(&x, xs + b, sizeof x);
    std::memcpy(&y, ys + b, sizeof y);
    int32_t sum_q = 0, sum_y = 0;
    for (int j = 0; j < kBlock; ++j) {
      sum_q += level(x, j) * y.qs[j];
      sum_y += y.qs[j];
    }
    const float dy = fp16_to_fp32(y.d);
    if constexpr (std::is_same_v<Block, BlockQ4_1> || std::is_same_v<Block, BlockQ5_1>)
      sum += fp16_to_fp32(x.d) * dy * float(sum_q) + fp16_to_fp32(x.m) * dy * float(sum_y);
    else
      sum += fp16_to_fp32(x.d) * dy * float(sum_q);
  }
  return sum;
}

}  // namespace

float vec_dot_q4_1_q8_0_ref(const void* x, const void* y, size_t n) {
  return dot_ref<BlockQ4_1>(x, y, n, [](const BlockQ4_1& b, int j) { return j < 16 ? b.qs[j] & 0x0f : b.qs[j - 16] >> 4; });
}

float vec_dot_q5_0_q8_0_ref(const void* x, const void* y, size_t n) {
  return dot_ref<BlockQ5_0>(x, y, n, [](const BlockQ5_0& b, int j) { return q5_level(b.qs, load_qh(b.qh), j) - 16; });
}

float vec_dot_q5_1_q8_0_ref(const void* x, const void* y, size_t n) {
  return dot_ref<BlockQ5_1>(x, y, n, [](const BlockQ5_1& b, int j) { return q5_level(b.qs, load_qh(b.qh), j); });
}

float vec_dot_iq4_nl_q8_0_ref(const void* x, const void* y, size_t n) {
  return dot_ref<BlockIQ4_NL>(x, y, n, [](const BlockIQ4_NL& b, int j) {
    return int(rules::kIq4Levels[j < 16 ? b.qs[j] & 0x0f : b.qs[j - 16] >> 4]);
  });
}

// ---- dot products: AVX2 ----
// Each block's 32 levels are spread over one 256-bit register in value order. maddubs takes
// the levels as the unsigned side (q4_1, q5_0, q5_1: 0..31; iq4_nl: |level| <= 127 with y's
// sign; y in -127..127), so no pair sum saturates.

namespace {

// 16 nibble bytes as 32 bytes in value order (low nibbles, then high), each 0..15.
LM_TARGET_AVX2 inline __m256i nibbles32(const uint8_t* qs) {
  const __m128i v = _mm_loadu_si128(reinterpret_cast<const __m128i*>(qs));
  const __m256i both = _mm256_inserti128_si256(_mm256_castsi128_si256(v), _mm_srli_epi16(v, 4), 1);
  return _mm256_and_si256(both, _mm256_set1_epi8(0x0f));
}

// Bit j of qh as 0x10 in byte j (0 otherwise).
LM_TARGET_AVX2 inline __m256i fifth_bits(const uint8_t* qh) {
  uint32_t bits;
  std::memcpy(&bits, qh, 4);
  // Byte j takes qh byte j / 8, then keeps bit j % 8 of it.
  const __m256i spread = _mm256_shuffle_epi8(_mm256_set1_epi32(int(bits)),
                                             _mm256_setr_epi64x(0, 0x0101010101010101LL, 0x0202020202020202LL,
                                                                0x0303030303030303LL));
  const __m256i mask = _mm256_set1_epi64x(int64_t(0x8040201008040201ULL));
  const __m256i set = _mm256_cmpeq_epi8(_mm256_and_si256(spread, mask), mask);
  return _mm256_and_si256(set, _mm256_set1_epi8(0x10));
}

LM_TARGET_AVX2 inline __m256i load_y(const BlockQ8_0& y) {
  return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(y.qs));
}

// The levels of one block as 32 bytes in value order: unsigned (q4_1, q5_1, q5_0) or signed
// (iq4_nl).
struct LevelsQ4_1 {
  static constexpr bool kSigned = false;
  LM_TARGET_AVX2 __m256i operator()(const BlockQ4_1& x) const { return nibbles32(x.qs); }
};
struct LevelsQ5_1 {
  static constexpr bool kSigned = false;
  LM_TARGET_AVX2 __m256i operator()(const BlockQ5_1& x) const { return _mm256_or_si256(nibbles32(x.qs), fifth_bits(x.qh)); }
};
// q5_0's levels unsigned (0..31); the dot product takes 16 * sum(y) off.
struct LevelsQ5_0 {
  static constexpr bool kSigned = false;
  LM_TARGET_AVX2 __m256i operator()(const BlockQ5_0& x) const { return _mm256_or_si256(nibbles32(x.qs), fifth_bits(x.qh)); }
};
struct LevelsIQ4_NL {
  static constexpr bool kSigned = true;
  LM_TARGET_AVX2 __m256i operator()(const BlockIQ4_NL& x) const {
    const __m256i table = _mm256_broadcastsi128_si256(_mm_loadu_si128(reinterpret_cast<const __m128i*>(rules::kIq4Levels)));
    return _mm256_shuffle_epi8(table, nibbles32(x.qs));
  }
};

// sum_j q[j] * y[j] of one block in 8 int32 lanes: unsigned levels straight into maddubs, signed
// ones as |q| * (y with q's sign).
template <bool Signed>
LM_TARGET_AVX2 inline __m256i block_dot(__m256i q, __m256i y) {
  const __m256i p =
      Signed ? _mm256_maddubs_epi16(_mm256_sign_epi8(q, q), _mm256_sign_epi8(y, q)) : _mm256_maddubs_epi16(q, y);
  return _mm256_madd_epi16(p, _mm256_set1_epi16(1));
}

// The 8-lane sums of four blocks: lanes 0..3 (and 4..7) hold blocks 0..3's sums over their low
// (high) 128 bits.
LM_TARGET_AVX2 inline __m256i sums4(__m256i a, __m256i b, __m256i c, __m256i d) {
  return _mm256_hadd_epi32(_mm256_hadd_epi32(a, b), _mm256_hadd_epi32(c, d));
}

// Four f16 values as floats in both 128-bit halves.
LM_TARGET_AVX2 inline __m256 f16x4(uint16_t a, uint16_t b, uint16_t c, uint16_t d) {
  const __m128 v = _mm_cvtph_ps(_mm_setr_epi16(short(a), short(b), short(c), short(d), 0, 0, 0, 0));
  return _mm256_set_m128(v, v);
}

// Four blocks per step, so one float conversion and one (two with mins) multiply-add serve four
// blocks; the rest one by one. y's scales and level sums come from the activation row's f32 and
// int32 arrays after its blocks. Blocks with a min m (q4_1, q5_1) add m * dy * sum(y), q5_0
// adds -16 d * dy * sum(y).
template <typename Block, typename Levels>
LM_TARGET_AVX2 float dot32_avx2(const Block* xs, const BlockQ8_0* ys, size_t nb) {
  constexpr bool kMin = !Levels::kSigned;
  constexpr bool kOffset = std::is_same_v<Block, BlockQ5_0>;
  const Levels levels;
  // The scales and sums follow 34-byte blocks, so they need not be 4-byte aligned: unaligned
  // vector loads, and memcpy for single values.
  const unsigned char* yd = reinterpret_cast<const unsigned char*>(ys + nb);
  const unsigned char* ysum = yd + 4 * nb;
  auto dy_at = [&](size_t i) {
    float v;
    std::memcpy(&v, yd + 4 * i, 4);
    return v;
  };
  auto sum_at = [&](size_t i) {
    int32_t v;
    std::memcpy(&v, ysum + 4 * i, 4);
    return v;
  };
  __m256 acc = _mm256_setzero_ps();
  __m128 acc_m = _mm_setzero_ps();
  size_t b = 0;
  for (; b + 4 <= nb; b += 4) {
    const Block* x = xs + b;
    const BlockQ8_0* y = ys + b;
    __m256i dots[4];
    for (int k = 0; k < 4; ++k) dots[k] = block_dot<Levels::kSigned>(levels(x[k]), load_y(y[k]));
    const __m128 dy = _mm_loadu_ps(reinterpret_cast<const float*>(yd + 4 * b));
    const __m128 dd = _mm_mul_ps(_mm_cvtph_ps(_mm_setr_epi16(short(x[0].d), short(x[1].d), short(x[2].d), short(x[3].d),
                                                             0, 0, 0, 0)), dy);
    acc = _mm256_fmadd_ps(_mm256_set_m128(dd, dd), _mm256_cvtepi32_ps(sums4(dots[0], dots[1], dots[2], dots[3])), acc);
    if constexpr (kMin) {
      const __m128i s = _mm_loadu_si128(reinterpret_cast<const __m128i*>(ysum + 4 * b));
      if constexpr (kOffset) {
        acc_m = _mm_fmadd_ps(_mm_mul_ps(_mm_set1_ps(-16.0f), dd), _mm_cvtepi32_ps(s), acc_m);
      } else {
        const __m128 m = _mm_cvtph_ps(_mm_setr_epi16(short(x[0].m), short(x[1].m), short(x[2].m), short(x[3].m), 0, 0,
                                                     0, 0));
        acc_m = _mm_fmadd_ps(_mm_mul_ps(m, dy), _mm_cvtepi32_ps(s), acc_m);
      }
    }
  }
  float tail = 0;
  for (; b < nb; ++b) {
    const __m256i dot = block_dot<Levels::kSigned>(levels(xs[b]), load_y(ys[b]));
    __m128 s4 = _mm_add_ps(_mm256_castps256_ps128(_mm256_cvtepi32_ps(dot)), _mm256_extractf128_ps(_mm256_cvtepi32_ps(dot), 1));
    s4 = _mm_add_ps(s4, _mm_movehl_ps(s4, s4));
    s4 = _mm_add_ss(s4, _mm_movehdup_ps(s4));
    tail += _cvtsh_ss(xs[b].d) * dy_at(b) * _mm_cvtss_f32(s4);
    if constexpr (kOffset)
      tail += -16.0f * _cvtsh_ss(xs[b].d) * dy_at(b) * float(sum_at(b));
    else if constexpr (kMin)
      tail += _cvtsh_ss(xs[b].m) * dy_at(b) * float(sum_at(b));
  }
  __m128 m4 = _mm_add_ps(acc_m, _mm_movehl_ps(acc_m, acc_m));
  m4 = _mm_add_ss(m4, _mm_movehdup_ps(m4));
  return hsum8(acc) + _mm_cvtss_f32(m4) + tail;
}

bool use_avx2() { return dot_path() >= DotPath::Avx2; }

}  // namespace

float vec_dot_q4_1_q8_0(const void* x, const void* y, size_t n) {
  if (use_avx2())
    return dot32_avx2<BlockQ4_1, LevelsQ4_1>(static_cast<const BlockQ4_1*>(x), static_cast<const BlockQ8_0*>(y), n / kBlock);
  return vec_dot_q4_1_q8_0_ref(x, y, n);
}

float vec_dot_q5_0_q8_0(const void* x, const void* y, size_t n) {
  if (use_avx2())
    return dot32_avx2<BlockQ5_0, LevelsQ5_0>(static_cast<const BlockQ5_0*>(x), static_cast<const BlockQ8_0*>(y), n / kBlock);
  return vec_dot_q5_0_q8_0_ref(x, y, n);
}

float vec_dot_q5_1_q8_0(const void* x, const void* y, size_t n) {
  if (use_avx2())
    return dot32_avx2<BlockQ5_1, LevelsQ5_1>(static_cast<const BlockQ5_1*>(x), static_cast<const BlockQ8_0*>(y), n / kBlock);
  return vec_dot_q5_1_q8_0_ref(x, y, n);
}

float vec_dot_iq4_nl_q8_0(const void* x, const void* y, size_t n) {
  if (use_avx2())
    return dot32_avx2<BlockIQ4_NL, LevelsIQ4_NL>(static_cast<const BlockIQ4_NL*>(x), static_cast<const BlockQ8_0*>(y),
                                                 n / kBlock);
  return vec_dot_iq4_nl_q8_0_ref(x, y, n);
}

}  // namespace lm::quant
