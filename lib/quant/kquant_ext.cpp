// q2_K, q3_K, q5_K and iq4_xs (super-blocks of 256, kquant.hpp): ggml's quantizers (same float
// operations in the same order), dequantizers, and dot products with q8_K activations: an AVX2
// path (and for q3_K an AVX-512 one) chosen at run time (dot_path) and plain `_ref` twins.
#include <algorithm>
#include <cmath>
#include <cstring>

#include "quant/kquant.hpp"
#include "quant/quant.hpp"
#include "quant/rules.hpp"
#include "quant/simd.hpp"

namespace lm::quant {

using rules::nearest_int;

namespace {

// 4 levels of 2 bits per byte: qs[32c + l] holds values 128c + l + 32k in bits 2k..2k+1.
inline void pack_2bit(const uint8_t* L, uint8_t* qs) {
  for (int c = 0; c < 2; ++c)
    for (int l = 0; l < 32; ++l) {
      const uint8_t* q = L + 128 * c + l;
      qs[32 * c + l] = uint8_t(q[0] | q[32] << 2 | q[64] << 4 | q[96] << 6);
    }
}

inline int level_2bit(const uint8_t* qs, int i) { return (qs[32 * (i / 128) + i % 32] >> (2 * (i % 128 / 32))) & 3; }

// Scale j (0..15) of a q3_K block, -32..31: low 4 bits in a nibble of bytes 0..7, top 2 bits
// in bytes 8..11.
inline int q3_scale(const uint8_t* scales, int j) {
  const int lo = j < 8 ? scales[j] & 0x0f : scales[j - 8] >> 4;
  return (lo | ((scales[8 + j % 4] >> (2 * (j / 4))) & 3) << 4) - 32;
}

// Value i (0..255) of a q3_K block, -4..3.
inline int q3_level(const BlockQ3_K& b, int i) {
  return level_2bit(b.qs, i) - ((b.hmask[i % 32] >> (i / 32)) & 1 ? 0 : 4);
}

// Value i of a q5_K block, 0..31: 64-value chunks c, low nibbles of qs[32c..] the first 32,
// high nibbles the next; qh[l] bit 2c / 2c + 1 the fifth bit.
inline int q5_level(const BlockQ5_K& b, int i) {
  const int c = i / 64, l = i % 32, hi = i % 64 / 32;
  const int nib = hi ? b.qs[32 * c + l] >> 4 : b.qs[32 * c + l] & 0x0f;
  return nib | ((b.qh[l] >> (2 * c + hi)) & 1) << 4;
}

inline int iq4_xs_scale(const BlockIQ4_XS& b, int j) {
  return (((b.scales_l[j / 2] >> (4 * (j % 2))) & 0x0f) | ((b.scales_h >> (2 * j)) & 3) << 4) - 32;
}

inline int iq4_xs_level(const BlockIQ4_XS& b, int i) {
  const uint8_t q = b.qs[16 * (i / 32) + i % 16];
  return rules::kIq4Levels[i % 32 < 16 ? q & 0x0f : q >> 4];
}

}  // namespace

// ---- q2_K ----

void quantize_q2_K(const float* src, void* dst, size_t n) {
  auto* out = static_cast<BlockQ2_K*>(dst);
  for (size_t blk = 0; blk < n / kSuperBlock; ++blk, src += kSuperBlock) {
    BlockQ2_K b;
    uint8_t L[kSuperBlock];
    float scales[16], mins[16], w[16];
    float max_scale = 0, max_min = 0;
    for (int j = 0; j < 16; ++j) {
      for (int l = 0; l < 16; ++l) w[l] = std::fabs(src[16 * j + l]);
      scales[j] = rules::fit_scale_min(16, 3, src + 16 * j, w, L + 16 * j, &mins[j], -0.5f, 0.1f, 15, true);
      if (scales[j] > max_scale) max_scale = scales[j];
      if (mins[j] > max_min) max_min = mins[j];
    }
    // 4-bit scales (low nibbles) and mins (high) relative to the largest of each.
    if (max_scale > 0) {
      const float iscale = 15.0f / max_scale;
      for (int j = 0; j < 16; ++j) b.scales[j] = uint8_t(nearest_int(iscale * scales[j]));
      b.d = fp32_to_fp16(max_scale / 15.0f);
    } else {
      std::memset(b.scales, 0, sizeof b.scales);
      b.d = fp32_to_fp16(0.0f);
    }
    if (max_min > 0) {
      const float iscale = 15.0f / max_min;
      for (int j = 0; j < 16; ++j) b.scales[j] = uint8_t(b.scales[j] | nearest_int(iscale * mins[j]) << 4);
      b.dmin = fp32_to_fp16(max_min / 15.0f);
    } else {
      b.dmin = fp32_to_fp16(0.0f);
    }
    for (int j = 0; j < 16; ++j) {
      const float d = fp16_to_fp32(b.d) * float(b.scales[j] & 0x0f);
      if (!d) continue;
      const float dm = fp16_to_fp32(b.dmin) * float(b.scales[j] >> 4);
      for (int i = 0; i < 16; ++i) L[16 * j + i] = uint8_t(std::clamp(nearest_int((src[16 * j + i] + dm) / d), 0, 3));
    }
    pack_2bit(L, b.qs);
    std::memcpy(out + blk, &b, sizeof b);
  }
}

void dequantize_q2_K(const void* src, float* dst, size_t n) {
  const auto* blocks = static_cast<const BlockQ2_K*>(src);
  for (size_t blk = 0; blk < n / kSuperBlock; ++blk) {
    BlockQ2_K b;
    std::memcpy(&b, blocks + blk, sizeof b);
    const float d = fp16_to_fp32(b.d), dmin = fp16_to_fp32(b.dmin);
    // Chunk c, shift k: values 128c + 32k + l from bits 2k of qs[32c + l]; 16 per scale.
    for (int c = 0; c < 2; ++c)
      for (int k = 0; k < 4; ++k)
        for (int h = 0; h < 2; ++h, dst += 16) {
          const uint8_t sc = b.scales[8 * c + 2 * k + h];
          const float dl = d * float(sc & 0x0f), ml = dmin * float(sc >> 4);
          const uint8_t* q = b.qs + 32 * c + 16 * h;
          for (int l = 0; l < 16; ++l) dst[l] = dl * float((q[l] >> (2 * k)) & 3) - ml;
        }
  }
}

// ---- q3_K ----

namespace {

// ggml's make_q3_quants (nmax 4, weights x^2, with its 5 rounds of single-level moves).
// x, L: [16]; L gets q + 4 in 0..7. Returns the scale (0 for an all-zero group).
float fit_q3_sub_block(const float* x, int8_t* L) {
  constexpr int kN = 16, kMax = 4;
  float amax = 0, max = 0;
  for (int i = 0; i < kN; ++i)
    if (std::fabs(x[i]) > amax) amax = std::fabs(x[i]), max = x[i];
  if (amax < rules::kGroupMaxEps) {
    std::fill(L, L + kN, int8_t(0));
    return 0.0f;
  }
  const float iscale = -kMax / max;
  float sum_lx = 0, sum_l2 = 0;
  for (int i = 0; i < kN; ++i) {
    const int l = std::clamp(nearest_int(iscale * x[i]), -kMax, kMax - 1);
    L[i] = int8_t(l);
    const float w = x[i] * x[i];
    sum_lx += w * x[i] * l;
    sum_l2 += w * l * l;
  }
  for (int round = 0; round < 5; ++round) {
    int changed = 0;
    for (int i = 0; i < kN; ++i) {
      const float w = x[i] * x[i];
      float slx = sum_lx - w * x[i] * L[i];
      if (slx > 0) {
        float sl2 = sum_l2 - w * L[i] * L[i];
        const int l = std::clamp(nearest_int(x[i] * sl2 / slx), -kMax, kMax - 1);
        if (l != L[i]) {
          slx += w * x[i] * l;
          sl2 += w * l * l;
          if (sl2 > 0 && slx * slx * sum_l2 > sum_lx * sum_lx * sl2) {
            L[i] = int8_t(l);
            sum_lx = slx;
            sum_l2 = sl2;
            ++changed;
          }
        }
      }
    }
    if (!changed) break;
  }
  for (int i = 0; i < kN; ++i) L[i] = int8_t(L[i] + kMax);
  return sum_l2 > 0.0f ? sum_lx / sum_l2 : 0.0f;
}

}  // namespace

void quantize_q3_K(const float* src, void* dst, size_t n) {
  auto* out = static_cast<BlockQ3_K*>(dst);
  for (size_t blk = 0; blk < n / kSuperBlock; ++blk, src += kSuperBlock) {
    BlockQ3_K b;
    int8_t L[kSuperBlock];
    float scales[16];
    float max_scale = 0, amax = 0;
    for (int j = 0; j < 16; ++j) {
      scales[j] = fit_q3_sub_block(src + 16 * j, L + 16 * j);
      if (std::fabs(scales[j]) > amax) amax = std::fabs(scales[j]), max_scale = scales[j];
    }
    std::memset(b.scales, 0, sizeof b.scales);
    if (max_scale) {
      // 6-bit scales relative to the largest, which maps to -32; int8_t wraps as ggml's does.
      const float iscale = -32.0f / max_scale;
      for (int j = 0; j < 16; ++j) {
        int8_t l = int8_t(nearest_int(iscale * scales[j]));
        l = int8_t(std::max(-32, std::min(31, int(l))) + 32);
        if (j < 8)
          b.scales[j] = uint8_t(l & 0x0f);
        else
          b.scales[j - 8] = uint8_t(b.scales[j - 8] | (l & 0x0f) << 4);
        l = int8_t(l >> 4);
        b.scales[j % 4 + 8] = uint8_t(b.scales[j % 4 + 8] | l << (2 * (j / 4)));
      }
      b.d = fp32_to_fp16(1 / iscale);
    } else {
      b.d = fp32_to_fp16(0.0f);
    }
    for (int j = 0; j < 16; ++j) {
      const float d = fp16_to_fp32(b.d) * float(int8_t(q3_scale(b.scales, j)));
      if (!d) continue;
      for (int i = 0; i < 16; ++i)
        L[16 * j + i] = int8_t(std::clamp(nearest_int(src[16 * j + i] / d), -4, 3) + 4);
    }
    // The high bit of value i (q + 4 > 3) goes to bit i / 32 of hmask[i % 32].
    std::memset(b.hmask, 0, sizeof b.hmask);
    uint8_t low[kSuperBlock];
    for (int i = 0; i < kSuperBlock; ++i) {
      int l = L[i];
      if (l > 3) {
        b.hmask[i % 32] = uint8_t(b.hmask[i % 32] | 1 << (i / 32));
        l -= 4;
      }
      low[i] = uint8_t(l);
    }
    pack_2bit(low, b.qs);
    std::memcpy(out + blk, &b, sizeof b);
  }
}

void dequantize_q3_K(const void* src, float* dst, size_t n) {
  const auto* blocks = static_cast<const BlockQ3_K*>(src);
  for (size_t blk = 0; blk < n / kSuperBlock; ++blk) {
    BlockQ3_K b;
    std::memcpy(&b, blocks + blk, sizeof b);
    const float d = fp16_to_fp32(b.d);
    for (int c = 0; c < 2; ++c)
      for (int k = 0; k < 4; ++k)
        for (int h = 0; h < 2; ++h, dst += 16) {
          const float dl = d * float(q3_scale(b.scales, 8 * c + 2 * k + h));
          const uint8_t* q = b.qs + 32 * c + 16 * h;
          const uint8_t* hm = b.hmask + 16 * h;
          const int bit = 4 * c + k;
          for (int l = 0; l < 16; ++l) dst[l] = dl * float(((q[l] >> (2 * k)) & 3) - ((hm[l] >> bit) & 1 ? 0 : 4));
        }
  }
}

// ---- q5_K ----

void quantize_q5_K(const float* src, void* dst, size_t n) {
  auto* out = static_cast<BlockQ5_K*>(dst);
  for (size_t blk = 0; blk < n / kSuperBlock; ++blk, src += kSuperBlock) {
    BlockQ5_K b;
    uint8_t L[kSuperBlock];
    float scales[8], mins[8], w[32];
    float max_scale = 0, max_min = 0;
    for (int j = 0; j < 8; ++j) {
      const float* x = src + 32 * j;
      float sum_x2 = 0;
      for (int i = 0; i < 32; ++i) sum_x2 += x[i] * x[i];
      const float av_x = std::sqrt(sum_x2 / 32);
      for (int i = 0; i < 32; ++i) w[i] = av_x + std::fabs(x[i]);
      scales[j] = rules::fit_scale_min(32, 31, x, w, L + 32 * j, &mins[j], -0.5f, 0.1f, 15, false);
      if (scales[j] > max_scale) max_scale = scales[j];
      if (mins[j] > max_min) max_min = mins[j];
    }
    const float inv_scale = max_scale > 0 ? 63.0f / max_scale : 0.0f;
    const float inv_min = max_min > 0 ? 63.0f / max_min : 0.0f;
    uint8_t ls[8], lm[8];
    for (int j = 0; j < 8; ++j) {
      ls[j] = std::min(uint8_t(63), uint8_t(nearest_int(inv_scale * scales[j])));
      lm[j] = std::min(uint8_t(63), uint8_t(nearest_int(inv_min * mins[j])));
    }
    rules::pack_q4_scales(ls, lm, b.scales);
    b.d = fp32_to_fp16(max_scale / 63.0f);
    b.dmin = fp32_to_fp16(max_min / 63.0f);
    const float d_all = fp16_to_fp32(b.d), dmin_all = fp16_to_fp32(b.dmin);
    for (int j = 0; j < 8; ++j) {
      const float d = d_all * ls[j];
      if (!d) continue;
      const float dm = dmin_all * lm[j];
      for (int i = 0; i < 32; ++i)
        L[32 * j + i] = uint8_t(std::clamp(nearest_int((src[32 * j + i] + dm) / d), 0, 31));
    }
    std::memset(b.qh, 0, sizeof b.qh);
    for (int c = 0; c < 4; ++c)
      for (int l = 0; l < 32; ++l) {
        const uint8_t q0 = L[64 * c + l], q1 = L[64 * c + 32 + l];
        b.qh[l] = uint8_t(b.qh[l] | (q0 >> 4) << (2 * c) | (q1 >> 4) << (2 * c + 1));
        b.qs[32 * c + l] = uint8_t((q0 & 0x0f) | (q1 & 0x0f) << 4);
      }
    std::memcpy(out + blk, &b, sizeof b);
  }
}

void dequantize_q5_K(const void* src, float* dst, size_t n) {
  const auto* blocks = static_cast<const BlockQ5_K*>(src);
  for (size_t blk = 0; blk < n / kSuperBlock; ++blk) {
    BlockQ5_K b;
    std::memcpy(&b, blocks + blk, sizeof b);
    const float d = fp16_to_fp32(b.d), dmin = fp16_to_fp32(b.dmin);
    uint64_t sc, m;
    rules::unpack_q4_scales(b.scales, &sc, &m);
    for (int c = 0; c < 4; ++c, dst += 64) {
      const float d1 = d * rules::byte_of(sc, 2 * c), m1 = dmin * rules::byte_of(m, 2 * c);
      const float d2 = d * rules::byte_of(sc, 2 * c + 1), m2 = dmin * rules::byte_of(m, 2 * c + 1);
      const uint8_t* q = b.qs + 32 * c;
      for (int l = 0; l < 32; ++l) dst[l] = d1 * float((q[l] & 0x0f) | ((b.qh[l] >> (2 * c)) & 1) << 4) - m1;
      for (int l = 0; l < 32; ++l) dst[32 + l] = d2 * float((q[l] >> 4) | ((b.qh[l] >> (2 * c + 1)) & 1) << 4) - m2;
    }
  }
}

// ---- iq4_xs ----

// ggml's quantize_row_iq4_nl_impl for super-blocks of 256 in 8 blocks of 32, 7 trials each way,
// no importance matrix: each block's least-squares scale as iq4_nl's, then 6-bit scales
// relative to the largest (which maps to -32) and the levels nearest x / (d * scale).
void quantize_iq4_xs(const float* src, void* dst, size_t n, const float* importance) {
  using rules::kIq4Levels;
  using rules::nearest_iq4_level;
  auto* out = static_cast<BlockIQ4_XS*>(dst);
  for (size_t blk = 0; blk < n / kSuperBlock; ++blk, src += kSuperBlock) {
    BlockIQ4_XS b;
    float scales[8], weight[32];
    float max_scale = 0, amax_scale = 0;
    float sigma2 = 0;
    if (importance) {
      for (int j = 0; j < kSuperBlock; ++j) sigma2 += src[j] * src[j];
      sigma2 *= 2.f / kSuperBlock;
    }
    for (int ib = 0; ib < 8; ++ib) {
      const float* x = src + 32 * ib;
      if (importance) {
        const float* qw = importance + blk * kSuperBlock + 32 * ib;
        for (int j = 0; j < 32; ++j) weight[j] = qw[j] * std::sqrt(sigma2 + x[j] * x[j]);
      } else {
        for (int j = 0; j < 32; ++j) weight[j] = x[j] * x[j];
      }
      float amax = 0, mx = 0;
      for (int j = 0; j < 32; ++j)
        if (std::fabs(x[j]) > amax) amax = std::fabs(x[j]), mx = x[j];
      if (amax < rules::kGroupMaxEps) {
        scales[ib] = 0;
        continue;
      }
      float d = -mx / kIq4Levels[0];
      float id = 1 / d;
      float sum_qx = 0, sum_q2 = 0;
      for (int j = 0; j < 32; ++j) {
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
        for (int j = 0; j < 32; ++j) {
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
      scales[ib] = d;
      if (std::fabs(d) > amax_scale) amax_scale = std::fabs(d), max_scale = d;
    }
    const float d = -max_scale / 32;
    b.d = fp32_to_fp16(d);
    b.scales_h = 0;
    const float id = d ? 1 / d : 0.0f;
    uint8_t L[kSuperBlock];
    for (int ib = 0; ib < 8; ++ib) {
      int l = std::clamp(nearest_int(id * scales[ib]), -32, 31);
      const float dl = d * l, idl = dl ? 1 / dl : 0.0f;
      for (int j = 0; j < 32; ++j) L[32 * ib + j] = uint8_t(nearest_iq4_level(idl * src[32 * ib + j]));
      l += 32;
      if (ib % 2 == 0)
        b.scales_l[ib / 2] = uint8_t(l & 0x0f);
      else
        b.scales_l[ib / 2] = uint8_t(b.scales_l[ib / 2] | (l & 0x0f) << 4);
      b.scales_h = uint16_t(b.scales_h | (l >> 4) << (2 * ib));
    }
    for (int i = 0; i < 8; ++i)
      for (int j = 0; j < 16; ++j) b.qs[16 * i + j] = uint8_t(L[32 * i + j] | L[32 * i + 16 + j] << 4);
    std::memcpy(out + blk, &b, sizeof b);
  }
}

void dequantize_iq4_xs(const void* src, float* dst, size_t n) {
  const auto* blocks = static_cast<const BlockIQ4_XS*>(src);
  for (size_t blk = 0; blk < n / kSuperBlock; ++blk) {
    BlockIQ4_XS b;
    std::memcpy(&b, blocks + blk, sizeof b);
    const float d = fp16_to_fp32(b.d);
    for (int j = 0; j < 8; ++j, dst += 32) {
      const float dl = d * float(iq4_xs_scale(b, j));
      const uint8_t* q = b.qs + 16 * j;
      for (int l = 0; l < 16; ++l) {
        dst[l] = dl * float(rules::kIq4Levels[q[l] & 0x0f]);
        dst[l + 16] = dl * float(rules::kIq4Levels[q[l] >> 4]);
      }
    }
  }
}

// ---- dot products: plain twins ----
// Per super-block the integer sum is exact; it is scaled once by d (and dmin) in float.

float vec_dot_q2_K_q8_K_ref(const void* vx, const void* vy, size_t n) {
  const auto* xs = static_cast<const BlockQ2_K*>(vx);
  const auto* ys = static_cast<const BlockQ8_K*>(vy);
  float sum = 0;
  for (size_t blk = 0; blk < n / kSuperBlock; ++blk) {
    BlockQ2_K x;
    std::memcpy(&x, xs + blk, sizeof x);
    const BlockQ8_K& y = ys[blk];
    int32_t sum_q = 0, sum_m = 0;
    for (int g = 0; g < 16; ++g) {
      int32_t s = 0;
      for (int i = 16 * g; i < 16 * g + 16; ++i) s += level_2bit(x.qs, i) * y.qs[i];
      sum_q += (x.scales[g] & 0x0f) * s;
      sum_m += (x.scales[g] >> 4) * y.bsums[g];
    }
    sum += y.d * fp16_to_fp32(x.d) * float(sum_q) - y.d * fp16_to_fp32(x.dmin) * float(sum_m);
  }
  return sum;
}

float vec_dot_q3_K_q8_K_ref(const void* vx, const void* vy, size_t n) {
  const auto* xs = static_cast<const BlockQ3_K*>(vx);
  const auto* ys = static_cast<const BlockQ8_K*>(vy);
  float sum = 0;
  for (size_t blk = 0; blk < n / kSuperBlock; ++blk) {
    BlockQ3_K x;
    std::memcpy(&x, xs + blk, sizeof x);
    const BlockQ8_K& y = ys[blk];
    int32_t sum_q = 0;
    for (int g = 0; g < 16; ++g) {
      int32_t s = 0;
      for (int i = 16 * g; i < 16 * g + 16; ++i) s += q3_level(x, i) * y.qs[i];
      sum_q += q3_scale(x.scales, g) * s;
    }
    sum += y.d * fp16_to_fp32(x.d) * float(sum_q);
  }
  return sum;
}

float vec_dot_q5_K_q8_K_ref(const void* vx, const void* vy, size_t n) {
  const auto* xs = static_cast<const BlockQ5_K*>(vx);
  const auto* ys = static_cast<const BlockQ8_K*>(vy);
  float sum = 0;
  for (size_t blk = 0; blk < n / kSuperBlock; ++blk) {
    BlockQ5_K x;
    std::memcpy(&x, xs + blk, sizeof x);
    const BlockQ8_K& y = ys[blk];
    uint64_t sc, m;
    rules::unpack_q4_scales(x.scales, &sc, &m);
    int32_t sum_q = 0, sum_m = 0;
    for (int j = 0; j < 8; ++j) {
      int32_t s = 0;
      for (int i = 32 * j; i < 32 * j + 32; ++i) s += q5_level(x, i) * y.qs[i];
      sum_q += rules::byte_of(sc, j) * s;
      sum_m += rules::byte_of(m, j) * (y.bsums[2 * j] + y.bsums[2 * j + 1]);
    }
    sum += y.d * fp16_to_fp32(x.d) * float(sum_q) - y.d * fp16_to_fp32(x.dmin) * float(sum_m);
  }
  return sum;
}

float vec_dot_iq4_xs_q8_K_ref(const void* vx, const void* vy, size_t n) {
  const auto* xs = static_cast<const BlockIQ4_XS*>(vx);
  const auto* ys = static_cast<const BlockQ8_K*>(vy);
  float sum = 0;
  for (size_t blk = 0; blk < n / kSuperBlock; ++blk) {
    BlockIQ4_XS x;
    std::memcpy(&x, xs + blk, sizeof x);
    const BlockQ8_K& y = ys[blk];
    int32_t sum_q = 0;
    for (int j = 0; j < 8; ++j) {
      int32_t s = 0;
      for (int i = 32 * j; i < 32 * j + 32; ++i) s += iq4_xs_level(x, i) * y.qs[i];
      sum_q += iq4_xs_scale(x, j) * s;
    }
    sum += y.d * fp16_to_fp32(x.d) * float(sum_q);
  }
  return sum;
}

// ---- dot products: AVX2 ----
// Levels are the unsigned side of maddubs (q2_K 0..3, q3_K q + 4 in 0..7, q5_K 0..31; iq4_xs
// |level| <= 127 with y's sign, y in -127..127): no pair sum saturates, and every int32 lane
// converted to float stays under 2^24, so the integer parts are exact.

namespace {

LM_TARGET_AVX2 inline __m256i load256(const void* p) { return _mm256_loadu_si256(static_cast<const __m256i*>(p)); }

// int16 lanes 0..7 = s[a], 8..15 = s[b], from 16 int16 scales in `sc16` (both 128-bit halves
// holding scales 0..7 or 8..15 as given by `half`).
LM_TARGET_AVX2 inline __m256i pick2(__m256i sc16, int a, int b) {
  const short lo = short(0x0100 + 0x0202 * a), hi = short(0x0100 + 0x0202 * b);
  return _mm256_shuffle_epi8(sc16, _mm256_setr_epi16(lo, lo, lo, lo, lo, lo, lo, lo, hi, hi, hi, hi, hi, hi, hi, hi));
}

// 16 int8 scales as int16, scales 0..7 in both halves (first) and 8..15 in both (second).
struct Scales16 {
  __m256i s[2];
};
LM_TARGET_AVX2 inline Scales16 scales16(__m128i sc8) {
  const __m256i all = _mm256_cvtepi8_epi16(sc8);
  return {{_mm256_permute2x128_si256(all, all, 0x00), _mm256_permute2x128_si256(all, all, 0x11)}};
}

// q2_K and q3_K share the walk: per 128-value chunk c, shift k gives values 128c + 32k + l
// (l 0..31), sub-blocks 8c + 2k (l < 16) and 8c + 2k + 1.
// Every walk below takes R activation rows (row r at y + r * y_stride) and unpacks a weight
// block once for all of them; each row's sums take the same steps as with R = 1, so a batch's
// products equal the single-row product to the bit (vec_dot is R = 1).
template <int R>
LM_TARGET_AVX2 inline __attribute__((always_inline)) void dot_q2_K_avx2(const BlockQ2_K* xs, const uint8_t* y,
                                                                         size_t y_stride, size_t nb, float* out) {
  const __m256i three = _mm256_set1_epi8(3);
  const __m128i low4 = _mm_set1_epi8(0x0f);
  __m256 acc[R], acc_m[R];
  for (int r = 0; r < R; ++r) acc[r] = _mm256_setzero_ps(), acc_m[r] = _mm256_setzero_ps();
  for (size_t blk = 0; blk < nb; ++blk) {
    const BlockQ2_K& x = xs[blk];
    const __m128i raw = _mm_loadu_si128(reinterpret_cast<const __m128i*>(x.scales));
    const __m128i sc8 = _mm_and_si128(raw, low4);
    const __m256i m16 = _mm256_cvtepu8_epi16(_mm_and_si128(_mm_srli_epi16(raw, 4), low4));
    const Scales16 sc = scales16(sc8);
    __m256i q[8], s[8];  // values 32i .. 32i + 31 (i = 4c + k) and their sub-blocks' scales
    for (int c = 0; c < 2; ++c) {
      const __m256i qc = load256(x.qs + 32 * c);
      for (int k = 0; k < 4; ++k) {
        q[4 * c + k] = _mm256_and_si256(_mm256_srli_epi16(qc, 2 * k), three);
        s[4 * c + k] = pick2(sc.s[c], 2 * k, 2 * k + 1);
      }
    }
    const float xd = _cvtsh_ss(x.d), xm = _cvtsh_ss(x.dmin);
    for (int r = 0; r < R; ++r) {
      const BlockQ8_K& yb = reinterpret_cast<const BlockQ8_K*>(y + size_t(r) * y_stride)[blk];
      __m256i sum = _mm256_setzero_si256();
      for (int i = 0; i < 8; ++i)
        sum = _mm256_add_epi32(sum, _mm256_madd_epi16(_mm256_maddubs_epi16(q[i], load256(yb.qs + 32 * i)), s[i]));
      const __m256i mins = _mm256_madd_epi16(load256(yb.bsums), m16);
      const float dy = yb.d;
      acc[r] = _mm256_fmadd_ps(_mm256_set1_ps(dy * xd), _mm256_cvtepi32_ps(sum), acc[r]);
      acc_m[r] = _mm256_fmadd_ps(_mm256_set1_ps(dy * xm), _mm256_cvtepi32_ps(mins), acc_m[r]);
    }
  }
  for (int r = 0; r < R; ++r) out[r] = hsum8(_mm256_sub_ps(acc[r], acc_m[r]));
}

// The 16 scales of a q3_K block (q3_scale) as int8 lanes: the low nibbles of bytes 0..7 for
// scales 0..7 and their high nibbles for 8..15, each with its 2 top bits from bytes 8..11.
LM_TARGET_AVX2 inline __m128i q3_scales_sse(const uint8_t* scales) {
  uint32_t w[3];
  std::memcpy(w, scales, 12);
  constexpr uint32_t low4 = 0x0f0f0f0fu, low2 = 0x03030303u;
  const uint32_t s0 = (w[0] & low4) | ((w[2] >> 0) & low2) << 4, s1 = (w[1] & low4) | ((w[2] >> 2) & low2) << 4;
  const uint32_t s2 = ((w[0] >> 4) & low4) | ((w[2] >> 4) & low2) << 4;
  const uint32_t s3 = ((w[1] >> 4) & low4) | ((w[2] >> 6) & low2) << 4;
  return _mm_sub_epi8(_mm_setr_epi32(int(s0), int(s1), int(s2), int(s3)), _mm_set1_epi8(32));
}

template <int R>
LM_TARGET_AVX2 inline __attribute__((always_inline)) void dot_q3_K_avx2(const BlockQ3_K* xs, const uint8_t* y,
                                                                         size_t y_stride, size_t nb, float* out) {
  const __m256i three = _mm256_set1_epi8(3), four = _mm256_set1_epi8(4);
  __m256 acc[R];
  for (int r = 0; r < R; ++r) acc[r] = _mm256_setzero_ps();
  for (size_t blk = 0; blk < nb; ++blk) {
    const BlockQ3_K& x = xs[blk];
    const __m128i sc8 = q3_scales_sse(x.scales);
    const __m256i off16 = _mm256_cvtepi8_epi16(sc8);
    const Scales16 sc = scales16(sc8);
    const __m256i hm = load256(x.hmask);
    __m256i q[8], s[8];
    for (int c = 0; c < 2; ++c) {
      const __m256i qc = load256(x.qs + 32 * c);
      for (int k = 0; k < 4; ++k) {
        // q + 4 = low 2 bits + 4 * high bit (bit 4c + k of hmask[l]).
        const __m256i bit = _mm256_set1_epi8(char(1 << (4 * c + k)));
        const __m256i high = _mm256_and_si256(_mm256_cmpeq_epi8(_mm256_and_si256(hm, bit), bit), four);
        q[4 * c + k] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(qc, 2 * k), three), high);
        s[4 * c + k] = pick2(sc.s[c], 2 * k, 2 * k + 1);
      }
    }
    const float xd = _cvtsh_ss(x.d);
    for (int r = 0; r < R; ++r) {
      const BlockQ8_K& yb = reinterpret_cast<const BlockQ8_K*>(y + size_t(r) * y_stride)[blk];
      __m256i sum = _mm256_setzero_si256();
      for (int i = 0; i < 8; ++i)
        sum = _mm256_add_epi32(sum, _mm256_madd_epi16(_mm256_maddubs_epi16(q[i], load256(yb.qs + 32 * i)), s[i]));
      // - 4 * sum_g sc[g] * bsums[g]
      const __m256i off = _mm256_madd_epi16(load256(yb.bsums), off16);
      sum = _mm256_sub_epi32(sum, _mm256_slli_epi32(off, 2));
      acc[r] = _mm256_fmadd_ps(_mm256_set1_ps(yb.d * xd), _mm256_cvtepi32_ps(sum), acc[r]);
    }
  }
  for (int r = 0; r < R; ++r) out[r] = hsum8(acc[r]);
}

LM_TARGET_AVX2 float dot_q5_K_avx2(const BlockQ5_K* xs, const BlockQ8_K* ys, size_t nb) {
  const __m256i low4 = _mm256_set1_epi8(0x0f), sixteen = _mm256_set1_epi8(0x10);
  __m256 acc = _mm256_setzero_ps(), acc_m = _mm256_setzero_ps();
  for (size_t blk = 0; blk < nb; ++blk) {
    const BlockQ5_K& x = xs[blk];
    const BlockQ8_K& y = ys[blk];
    uint64_t sc, m;
    rules::unpack_q4_scales(x.scales, &sc, &m);
    const __m256i sc16 = _mm256_broadcastsi128_si256(_mm_cvtepu8_epi16(_mm_cvtsi64_si128(int64_t(sc))));
    const __m256i qh = load256(x.qh);
    __m256i sum = _mm256_setzero_si256();
    for (int c = 0; c < 4; ++c) {
      const __m256i q = load256(x.qs + 32 * c);
      const __m256i b0 = _mm256_set1_epi8(char(1 << (2 * c))), b1 = _mm256_set1_epi8(char(2 << (2 * c)));
      const __m256i h0 = _mm256_and_si256(_mm256_cmpeq_epi8(_mm256_and_si256(qh, b0), b0), sixteen);
      const __m256i h1 = _mm256_and_si256(_mm256_cmpeq_epi8(_mm256_and_si256(qh, b1), b1), sixteen);
      const __m256i q_lo = _mm256_or_si256(_mm256_and_si256(q, low4), h0);
      const __m256i q_hi = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(q, 4), low4), h1);
      const __m256i y_lo = load256(y.qs + 64 * c), y_hi = load256(y.qs + 64 * c + 32);
      const __m256i s_lo = _mm256_shuffle_epi8(sc16, _mm256_set1_epi16(short(0x0100 + 0x0202 * (2 * c))));
      const __m256i s_hi = _mm256_shuffle_epi8(sc16, _mm256_set1_epi16(short(0x0100 + 0x0202 * (2 * c + 1))));
      sum = _mm256_add_epi32(sum, _mm256_madd_epi16(_mm256_maddubs_epi16(q_lo, y_lo), s_lo));
      sum = _mm256_add_epi32(sum, _mm256_madd_epi16(_mm256_maddubs_epi16(q_hi, y_hi), s_hi));
    }
    const __m128i m8 = _mm_cvtsi64_si128(int64_t(m));
    const __m256i mins = _mm256_madd_epi16(load256(y.bsums), _mm256_cvtepu8_epi16(_mm_unpacklo_epi8(m8, m8)));
    acc = _mm256_fmadd_ps(_mm256_set1_ps(y.d * _cvtsh_ss(x.d)), _mm256_cvtepi32_ps(sum), acc);
    acc_m = _mm256_fmadd_ps(_mm256_set1_ps(y.d * _cvtsh_ss(x.dmin)), _mm256_cvtepi32_ps(mins), acc_m);
  }
  return hsum8(_mm256_sub_ps(acc, acc_m));
}

template <int R>
LM_TARGET_AVX2 inline __attribute__((always_inline)) void dot_iq4_xs_avx2(const BlockIQ4_XS* xs, const uint8_t* y,
                                                                           size_t y_stride, size_t nb, float* out) {
  const __m256i table = _mm256_broadcastsi128_si256(_mm_loadu_si128(reinterpret_cast<const __m128i*>(rules::kIq4Levels)));
  const __m256i low4 = _mm256_set1_epi8(0x0f);
  __m256 acc[R];
  for (int r = 0; r < R; ++r) acc[r] = _mm256_setzero_ps();
  for (size_t blk = 0; blk < nb; ++blk) {
    const BlockIQ4_XS& x = xs[blk];
    __m256i q[8], a[8];  // sub-block i's signed levels and their magnitudes
    short sc[8];
    for (int p = 0; p < 4; ++p) {  // sub-blocks 2p and 2p + 1
      const __m256i v = load256(x.qs + 32 * p);
      // Sub-block 2p's 16 bytes are v's low half: low nibbles values 0..15, high 16..31.
      const __m256i lo = _mm256_and_si256(v, low4), hi = _mm256_and_si256(_mm256_srli_epi16(v, 4), low4);
      q[2 * p] = _mm256_shuffle_epi8(table, _mm256_permute2x128_si256(lo, hi, 0x20));
      q[2 * p + 1] = _mm256_shuffle_epi8(table, _mm256_permute2x128_si256(lo, hi, 0x31));
    }
    for (int i = 0; i < 8; ++i) a[i] = _mm256_sign_epi8(q[i], q[i]), sc[i] = short(iq4_xs_scale(x, i));
    const float xd = _cvtsh_ss(x.d);
    for (int r = 0; r < R; ++r) {
      const BlockQ8_K& yb = reinterpret_cast<const BlockQ8_K*>(y + size_t(r) * y_stride)[blk];
      __m256i sum = _mm256_setzero_si256();
      for (int p = 0; p < 4; ++p) {
        const __m256i y0 = load256(yb.qs + 64 * p), y1 = load256(yb.qs + 64 * p + 32);
        const __m256i p0 = _mm256_madd_epi16(_mm256_maddubs_epi16(a[2 * p], _mm256_sign_epi8(y0, q[2 * p])),
                                             _mm256_set1_epi16(sc[2 * p]));
        const __m256i p1 = _mm256_madd_epi16(_mm256_maddubs_epi16(a[2 * p + 1], _mm256_sign_epi8(y1, q[2 * p + 1])),
                                             _mm256_set1_epi16(sc[2 * p + 1]));
        sum = _mm256_add_epi32(sum, _mm256_add_epi32(p0, p1));
      }
      acc[r] = _mm256_fmadd_ps(_mm256_set1_ps(yb.d * xd), _mm256_cvtepi32_ps(sum), acc[r]);
    }
  }
  for (int r = 0; r < R; ++r) out[r] = hsum8(acc[r]);
}

// ---- dot products: AVX-512 (q3_K, iq4_xs) ----
// Decoding reads a weight row once per token: on the qwen2 shape, whose 896-column matrices fall
// back on blocks of 32, these products are ffn_down's. q3_K's takes 64 values per instruction
// where the AVX2 walk takes 32 (bench/kquant_bench, qwen2's 896 x 4864: 14.6 GB/s against 10.9
// on one thread), and folds its 16 integer lanes into the AVX2 walk's 8 before any float
// operation: the integer sums are exact, so both give the same bits. The same walk for q2_K ran
// no faster than its AVX2 walk (14.3 against 15.0 GB/s), so it stays on that. iq4_xs's (below)
// gains by unpacking its scales in vector registers: 17.6 against 14.8 GB/s.

LM_TARGET_AVX512 inline __m256i fold(__m512i v) {
  return _mm256_add_epi32(_mm512_castsi512_si256(v), _mm512_extracti64x4_epi64(v, 1));
}

// int16 lanes: 128-bit lane L holds scale 4g + L of the 16 in `sc16` (int16, lanes 0..15).
LM_TARGET_AVX512 inline __m512i scales_of_group(__m512i sc16, int g) {
  const __m512i idx = _mm512_set_epi16(4 * g + 3, 4 * g + 3, 4 * g + 3, 4 * g + 3, 4 * g + 3, 4 * g + 3, 4 * g + 3,
                                       4 * g + 3, 4 * g + 2, 4 * g + 2, 4 * g + 2, 4 * g + 2, 4 * g + 2, 4 * g + 2,
                                       4 * g + 2, 4 * g + 2, 4 * g + 1, 4 * g + 1, 4 * g + 1, 4 * g + 1, 4 * g + 1,
                                       4 * g + 1, 4 * g + 1, 4 * g + 1, 4 * g, 4 * g, 4 * g, 4 * g, 4 * g, 4 * g, 4 * g,
                                       4 * g);
  return _mm512_permutexvar_epi16(idx, sc16);
}

// q3_K: the 32 bytes of chunk c broadcast to both halves, the low half shifted by 2k and the
// high half by 2k + 2 (k = 2j): values 128c + 64j .. + 63, against 64 contiguous activations;
// sub-blocks 8c + 4j .. + 3 in the four 128-bit lanes.
template <int R>
LM_TARGET_AVX512 inline __attribute__((always_inline)) void dot_q3_K_avx512(const BlockQ3_K* xs, const uint8_t* y,
                                                                             size_t y_stride, size_t nb, float* out) {
  const __m512i three = _mm512_set1_epi8(3), four = _mm512_set1_epi8(4);
  const __m512i shift[2] = {_mm512_inserti64x4(_mm512_set1_epi16(0), _mm256_set1_epi16(2), 1),
                            _mm512_inserti64x4(_mm512_set1_epi16(4), _mm256_set1_epi16(6), 1)};
  __m256 acc[R];
  for (int r = 0; r < R; ++r) acc[r] = _mm256_setzero_ps();
  for (size_t blk = 0; blk < nb; ++blk) {
    const BlockQ3_K& x = xs[blk];
    const __m128i sc8 = q3_scales_sse(x.scales);
    const __m256i off16 = _mm256_cvtepi8_epi16(sc8);
    const __m512i sc16 = _mm512_castsi256_si512(off16);
    const __m512i hm = _mm512_broadcast_i64x4(load256(x.hmask));
    __m512i q[4], s[4];
    for (int c = 0; c < 2; ++c) {
      const __m512i qc = _mm512_broadcast_i64x4(load256(x.qs + 32 * c));
      for (int j = 0; j < 2; ++j) {
        // q + 4 = low 2 bits + 4 * high bit (bit 4c + k of hmask[l], k = 2j low half, 2j + 1 high).
        const int k = 4 * c + 2 * j;
        const __m512i bit = _mm512_inserti64x4(_mm512_set1_epi8(char(1 << k)), _mm256_set1_epi8(char(1 << (k + 1))), 1);
        const __m512i low = _mm512_and_si512(_mm512_srlv_epi16(qc, shift[j]), three);
        q[2 * c + j] = _mm512_mask_add_epi8(low, _mm512_test_epi8_mask(hm, bit), low, four);
        s[2 * c + j] = scales_of_group(sc16, 2 * c + j);
      }
    }
    const float xd = _cvtsh_ss(x.d);
    for (int r = 0; r < R; ++r) {
      const BlockQ8_K& yb = reinterpret_cast<const BlockQ8_K*>(y + size_t(r) * y_stride)[blk];
      __m512i p[4];
      for (int i = 0; i < 4; ++i) p[i] = _mm512_madd_epi16(_mm512_maddubs_epi16(q[i], _mm512_loadu_si512(yb.qs + 64 * i)), s[i]);
      const __m512i sum = _mm512_add_epi32(_mm512_add_epi32(p[0], p[1]), _mm512_add_epi32(p[2], p[3]));
      // - 4 * sum_g sc[g] * bsums[g]
      const __m256i off = _mm256_madd_epi16(load256(yb.bsums), off16);
      const __m256i sm = _mm256_sub_epi32(fold(sum), _mm256_slli_epi32(off, 2));
      acc[r] = _mm256_fmadd_ps(_mm256_set1_ps(yb.d * xd), _mm256_cvtepi32_ps(sm), acc[r]);
    }
  }
  for (int r = 0; r < R; ++r) out[r] = hsum8(acc[r]);
}

// iq4_xs: a block's 128 bytes of nibbles in two 64-byte loads, each four sub-blocks' 16 bytes
// (low nibbles values 0..15, high 16..31), put in value order two sub-blocks a register
// (vpermt2q) against 64 contiguous activations. The products run as the AVX2 walk's: |level|
// (looked up by nibble) * (activation with the level's sign: nibbles 0..7 are the negative
// levels), pairs summed to int16 and then scaled into int32 (vpdpwssd, the AVX2 walk's madd and
// add in one), and the 16 lanes folded to the AVX2 walk's 8 before any float operation, so both
// give the same bits. The scales come from two pdeps (BMI2, which every AVX-512 CPU has) where
// the AVX2 walk extracts them one at a time: without that, this walk was no faster than AVX2's.
// The 8 scales as int16: scales_l's nibbles and scales_h's bit pairs spread into bytes.
LM_TARGET_AVX512_BMI2 inline __m128i iq4_xs_scales_sse(const BlockIQ4_XS& x) {
  uint32_t l;
  std::memcpy(&l, x.scales_l, 4);
  const uint64_t b = _pdep_u64(l, 0x0f0f0f0f0f0f0f0full) | _pdep_u64(x.scales_h, 0x3030303030303030ull);
  return _mm_sub_epi16(_mm_cvtepu8_epi16(_mm_cvtsi64_si128(int64_t(b))), _mm_set1_epi16(32));
}

template <int R>
LM_TARGET_AVX512_BMI2 inline __attribute__((always_inline)) void dot_iq4_xs_avx512(const BlockIQ4_XS* xs, const uint8_t* y,
                                                                               size_t y_stride, size_t nb, float* out) {
  // |level| by nibble; nibbles 0..7 are the negative levels.
  static_assert(rules::kIq4Levels[7] < 0 && rules::kIq4Levels[8] > 0);
  const __m512i table =
      _mm512_broadcast_i32x4(_mm_abs_epi8(_mm_loadu_si128(reinterpret_cast<const __m128i*>(rules::kIq4Levels))));
  const __m512i low4 = _mm512_set1_epi8(0x0f), eight = _mm512_set1_epi8(8), zero = _mm512_setzero_si512();
  // Sub-blocks 4h + 2i, 4h + 2i + 1 (i = 0, 1) from the low and high nibbles' 128-bit lanes.
  const __m512i pick[2] = {_mm512_setr_epi64(0, 1, 8, 9, 2, 3, 10, 11), _mm512_setr_epi64(4, 5, 12, 13, 6, 7, 14, 15)};
  // int16 lanes: scale 2g in the low 256 bits, 2g + 1 in the high (vpshufb on the 8 scales in every lane).
  __m512i spread[4];
  for (int g = 0; g < 4; ++g)
    spread[g] = _mm512_inserti64x4(_mm512_set1_epi16(short(0x0101 * 4 * g + 0x0100)),
                                   _mm256_set1_epi16(short(0x0101 * (4 * g + 2) + 0x0100)), 1);
  __m256 acc[R];
  for (int r = 0; r < R; ++r) acc[r] = _mm256_setzero_ps();
  for (size_t blk = 0; blk < nb; ++blk) {
    const BlockIQ4_XS& x = xs[blk];
    const __m512i sc16 = _mm512_broadcast_i32x4(iq4_xs_scales_sse(x));
    __m512i a[4], s[4];
    __mmask64 neg[4];
    for (int h = 0; h < 2; ++h) {
      const __m512i v = _mm512_loadu_si512(x.qs + 64 * h);
      const __m512i lo = _mm512_and_si512(v, low4), hi = _mm512_and_si512(_mm512_srli_epi16(v, 4), low4);
      for (int i = 0; i < 2; ++i) {
        const int g = 2 * h + i;  // sub-blocks 2g, 2g + 1
        const __m512i nib = _mm512_permutex2var_epi64(lo, pick[i], hi);
        a[g] = _mm512_shuffle_epi8(table, nib);
        neg[g] = _mm512_cmplt_epu8_mask(nib, eight);
        s[g] = _mm512_shuffle_epi8(sc16, spread[g]);
      }
    }
    const float xd = _cvtsh_ss(x.d);
    for (int r = 0; r < R; ++r) {
      const BlockQ8_K& yb = reinterpret_cast<const BlockQ8_K*>(y + size_t(r) * y_stride)[blk];
      __m512i sum = zero;
      for (int g = 0; g < 4; ++g) {
        const __m512i yv = _mm512_loadu_si512(yb.qs + 64 * g);
        const __m512i ys = _mm512_mask_sub_epi8(yv, neg[g], zero, yv);
        sum = _mm512_dpwssd_epi32(sum, _mm512_maddubs_epi16(a[g], ys), s[g]);
      }
      acc[r] = _mm256_fmadd_ps(_mm256_set1_ps(yb.d * xd), _mm256_cvtepi32_ps(fold(sum)), acc[r]);
    }
  }
  for (int r = 0; r < R; ++r) out[r] = hsum8(acc[r]);
}

// The tiles (simd.hpp), one per walk and target.
LM_QUANT_TILE(tile_q2_K_avx2, LM_TARGET_AVX2, BlockQ2_K, dot_q2_K_avx2)
LM_QUANT_TILE(tile_q3_K_avx2, LM_TARGET_AVX2, BlockQ3_K, dot_q3_K_avx2)
LM_QUANT_TILE(tile_q3_K_avx512, LM_TARGET_AVX512, BlockQ3_K, dot_q3_K_avx512)
LM_QUANT_TILE(tile_iq4_xs_avx2, LM_TARGET_AVX2, BlockIQ4_XS, dot_iq4_xs_avx2)
LM_QUANT_TILE(tile_iq4_xs_avx512, LM_TARGET_AVX512_BMI2, BlockIQ4_XS, dot_iq4_xs_avx512)

// One weight row, one activation row.
template <TileKernel Tile>
float one_row(const void* x, const void* y, size_t n) {
  float out;
  Tile(static_cast<const uint8_t*>(x), 0, 1, static_cast<const uint8_t*>(y), 0, 1, n / kSuperBlock, &out);
  return out;
}

bool use_avx2() { return dot_path() >= DotPath::Avx2; }

}  // namespace

float vec_dot_q2_K_q8_K(const void* x, const void* y, size_t n) {
  if (use_avx2()) return one_row<tile_q2_K_avx2>(x, y, n);
  return vec_dot_q2_K_q8_K_ref(x, y, n);
}

float vec_dot_q3_K_q8_K(const void* x, const void* y, size_t n) {
  if (dot_path() == DotPath::Avx512Vnni) return one_row<tile_q3_K_avx512>(x, y, n);
  if (use_avx2()) return one_row<tile_q3_K_avx2>(x, y, n);
  return vec_dot_q3_K_q8_K_ref(x, y, n);
}

float vec_dot_q5_K_q8_K(const void* x, const void* y, size_t n) {
  if (dot_path() == DotPath::Avx512Vnni) {  // kquant.cpp's tile, so one product equals a batch's
    float out;
    vec_dot_q5_K_q8_K_tile(x, 0, 1, y, 0, 1, n, &out);
    return out;
  }
  if (use_avx2()) return dot_q5_K_avx2(static_cast<const BlockQ5_K*>(x), static_cast<const BlockQ8_K*>(y), n / kSuperBlock);
  return vec_dot_q5_K_q8_K_ref(x, y, n);
}

float vec_dot_iq4_xs_q8_K(const void* x, const void* y, size_t n) {
  if (dot_path() == DotPath::Avx512Vnni) return one_row<tile_iq4_xs_avx512>(x, y, n);
  if (use_avx2()) return one_row<tile_iq4_xs_avx2>(x, y, n);
  return vec_dot_iq4_xs_q8_K_ref(x, y, n);
}

void vec_dot_q2_K_q8_K_tile(const void* x, size_t x_stride, int nx, const void* y, size_t y_stride, int ny, size_t n,
                            float* out) {
  dot_tile(nullptr, tile_q2_K_avx2, vec_dot_q2_K_q8_K, x, x_stride, nx, y, y_stride, ny, n, out);
}
void vec_dot_q3_K_q8_K_tile(const void* x, size_t x_stride, int nx, const void* y, size_t y_stride, int ny, size_t n,
                            float* out) {
  dot_tile(tile_q3_K_avx512, tile_q3_K_avx2, vec_dot_q3_K_q8_K, x, x_stride, nx, y, y_stride, ny, n, out);
}
void vec_dot_iq4_xs_q8_K_tile(const void* x, size_t x_stride, int nx, const void* y, size_t y_stride, int ny, size_t n,
                              float* out) {
  dot_tile(tile_iq4_xs_avx512, tile_iq4_xs_avx2, vec_dot_iq4_xs_q8_K, x, x_stride, nx, y, y_stride, ny, n, out);
}

}  // namespace lm::quant
