// Importance-weighted quantizers: ggml's quantize_<type>(src, dst, nrow, n_per_row, quant_weights)
// with an importance matrix (what llama-quantize --imatrix writes), the same float operations in
// the same order, so the same row and weights give llama-quantize's bytes. q6_K, iq4_nl and
// iq4_xs share their rule with the unweighted quantizers (kquant.cpp, qblock32.cpp,
// kquant_ext.cpp: only the weights differ); q2_K..q5_K and q4_0..q5_1 take other rules here.
//
// Each weight is ggml's: importance[i] * sqrt(sigma2 + x[i]^2), sigma2 the mean square of the
// row (q4_0..q5_1) or of the super-block (K-quants; twice it for q3_K, q4_K, q5_K), so columns
// the calibration text drives harder are fitted more closely.
#include <algorithm>
#include <cmath>
#include <cstring>

#include "base/error.hpp"
#include "quant/kquant.hpp"
#include "quant/quant.hpp"
#include "quant/rules.hpp"

namespace lm::quant {

using format::GgmlType;
using rules::kGroupMaxEps;
using rules::nearest_int;

namespace {

// ggml's make_qx_quants with weights w (rmse_type 1): x[i] ~ scale * l, l in -nmax..nmax-1,
// trying 19 scales around nmax / max|x|; L gets l + nmax. Returns the scale.
float fit_signed(int n, int nmax, const float* x, int8_t* L, const float* w) {
  float max = 0, amax = 0;
  for (int i = 0; i < n; ++i)
    if (std::fabs(x[i]) > amax) amax = std::fabs(x[i]), max = x[i];
  if (amax < kGroupMaxEps) {
    std::fill(L, L + n, int8_t(0));
    return 0.0f;
  }
  auto level = [nmax](float s) { return std::max(-nmax, std::min(nmax - 1, nearest_int(s))); };
  float iscale = -nmax / max;
  float sum_lx = 0, sum_l2 = 0;
  for (int i = 0; i < n; ++i) {
    const int l = level(iscale * x[i]);
    L[i] = int8_t(l + nmax);
    sum_lx += w[i] * x[i] * l;
    sum_l2 += w[i] * l * l;
  }
  float scale = sum_l2 ? sum_lx / sum_l2 : 0.0f;
  float best = scale * sum_lx;
  for (int step = -9; step <= 9; ++step) {
    if (step == 0) continue;
    iscale = -(nmax + 0.1f * step) / max;
    sum_lx = sum_l2 = 0;
    for (int i = 0; i < n; ++i) {
      const int l = level(iscale * x[i]);
      sum_lx += w[i] * x[i] * l;
      sum_l2 += w[i] * l * l;
    }
    if (sum_l2 > 0 && sum_lx * sum_lx > best * sum_l2) {
      for (int i = 0; i < n; ++i) L[i] = int8_t(nmax + level(iscale * x[i]));
      scale = sum_lx / sum_l2;
      best = scale * sum_lx;
    }
  }
  return scale;
}

// ggml's make_qkx3_quants with weights w: x[i] ~ scale * L[i] - neg_min, L in 0..nmax, over
// nstep + 1 candidate scales (nmax + rmin + rdelta * step) / (max - min). n <= 32.
float fit_scale_min3(int n, int nmax, const float* x, const float* w, uint8_t* L, float* neg_min, float rmin,
                     float rdelta, int nstep) {
  float lo = x[0], hi = x[0], sum_w = w[0], sum_x = sum_w * x[0];
  for (int i = 1; i < n; ++i) {
    if (x[i] < lo) lo = x[i];
    if (x[i] > hi) hi = x[i];
    sum_w += w[i];
    sum_x += w[i] * x[i];
  }
  if (lo > 0) lo = 0;
  if (hi <= lo) {
    std::fill(L, L + n, uint8_t(0));
    *neg_min = -lo;
    return 0.0f;
  }
  float iscale = nmax / (hi - lo);
  float scale = 1 / iscale;
  float best = 0;
  for (int i = 0; i < n; ++i) {
    L[i] = uint8_t(std::max(0, std::min(nmax, nearest_int(iscale * (x[i] - lo)))));
    const float diff = scale * L[i] + lo - x[i];
    best += w[i] * (diff * diff);
  }
  uint8_t trial[32];
  for (int step = 0; step <= nstep; ++step) {
    iscale = (rmin + rdelta * step + nmax) / (hi - lo);
    float sum_l = 0, sum_l2 = 0, sum_xl = 0;
    for (int i = 0; i < n; ++i) {
      const int l = std::max(0, std::min(nmax, nearest_int(iscale * (x[i] - lo))));
      trial[i] = uint8_t(l);
      sum_l += w[i] * l;
      sum_l2 += w[i] * l * l;
      sum_xl += w[i] * l * x[i];
    }
    const float det = sum_w * sum_l2 - sum_l * sum_l;
    if (det > 0) {
      float trial_scale = (sum_w * sum_xl - sum_x * sum_l) / det;
      float trial_min = (sum_l2 * sum_x - sum_l * sum_xl) / det;
      if (trial_min > 0) {
        trial_min = 0;
        trial_scale = sum_xl / sum_l2;
      }
      float err = 0;
      for (int i = 0; i < n; ++i) {
        const float diff = trial_scale * trial[i] + trial_min - x[i];
        err += w[i] * (diff * diff);
      }
      if (err < best) {
        std::memcpy(L, trial, size_t(n));
        best = err;
        scale = trial_scale;
        lo = trial_min;
      }
    }
  }
  *neg_min = -lo;
  return scale;
}

// ggml's make_qp_quants: x[i] >= 0 ~ scale * L[i], L in 0..nmax, weights w: 9 trial scales, then
// up to 5 rounds of single-level moves that raise the fit. The super-block scales of q2_K,
// q4_K and q5_K. n <= 16. The uint8_t stores are ggml's (they wrap only for negative x).
float fit_positive(int n, int nmax, const float* x, uint8_t* L, const float* w) {
  float max = 0;
  for (int i = 0; i < n; ++i) max = std::max(max, x[i]);
  if (max < kGroupMaxEps) {
    std::fill(L, L + n, uint8_t(0));
    return 0.0f;
  }
  float iscale = nmax / max;
  for (int i = 0; i < n; ++i) L[i] = uint8_t(nearest_int(iscale * x[i]));
  const float scale = 1 / iscale;
  float best = 0;
  for (int i = 0; i < n; ++i) {
    const float diff = x[i] - scale * L[i];
    best += w[i] * diff * diff;
  }
  for (int step = -4; step <= 4; ++step) {
    if (step == 0) continue;
    const float iscale_s = (0.1f * step + nmax) / max;
    const float scale_s = 1 / iscale_s;
    float err = 0;
    for (int i = 0; i < n; ++i) {
      const int l = std::min(nmax, nearest_int(iscale_s * x[i]));
      const float diff = x[i] - scale_s * l;
      err += w[i] * diff * diff;
    }
    if (err < best) {
      best = err;
      iscale = iscale_s;
    }
  }
  float sum_lx = 0, sum_l2 = 0;
  for (int i = 0; i < n; ++i) {
    const int l = std::min(nmax, nearest_int(iscale * x[i]));
    L[i] = uint8_t(l);
    sum_lx += w[i] * x[i] * l;
    sum_l2 += w[i] * l * l;
  }
  for (int round = 0; round < 5; ++round) {
    int changed = 0;
    for (int i = 0; i < n; ++i) {
      float slx = sum_lx - w[i] * x[i] * L[i];
      float sl2 = sum_l2 - w[i] * L[i] * L[i];
      if (slx > 0 && sl2 > 0) {
        const int l = std::min(nmax, nearest_int(x[i] * sl2 / slx));
        if (l != L[i]) {
          slx += w[i] * x[i] * l;
          sl2 += w[i] * l * l;
          if (slx * slx * sum_l2 > sum_lx * sum_lx * sl2) {
            L[i] = uint8_t(l);
            sum_lx = slx;
            sum_l2 = sl2;
            ++changed;
          }
        }
      }
    }
    if (!changed) break;
  }
  return sum_l2 > 0.0f ? sum_lx / sum_l2 : 0.0f;
}

// Weights importance[i] * sqrt(sigma2 + x[i]^2) for n values.
inline void weigh(const float* x, const float* importance, float sigma2, int n, float* w) {
  for (int i = 0; i < n; ++i) w[i] = importance[i] * std::sqrt(sigma2 + x[i] * x[i]);
}

inline float sum_squares(const float* x, size_t n) {
  float s = 0;
  for (size_t i = 0; i < n; ++i) s += x[i] * x[i];
  return s;
}

inline void put_qh(uint8_t* dst, const uint8_t* L) {
  uint32_t qh = 0;
  for (int j = 0; j < 16; ++j) {
    qh |= uint32_t((L[j] & 0x10u) >> 4) << j;
    qh |= uint32_t((L[j + 16] & 0x10u) >> 4) << (j + 16);
  }
  std::memcpy(dst, &qh, 4);
}

// The 12 scale bytes of q4_K / q5_K as ggml's impl writes them (byte by byte, |= for the top bits).
inline void pack_k4_scales(const uint8_t* Ls, const uint8_t* Lm, uint8_t* scales) {
  for (int j = 0; j < 8; ++j) {
    const uint8_t ls = Ls[j], lm = Lm[j];
    if (j < 4) {
      scales[j] = ls;
      scales[j + 4] = lm;
    } else {
      scales[j + 4] = uint8_t((ls & 0x0f) | (lm & 0x0f) << 4);
      scales[j - 4] = uint8_t(scales[j - 4] | (ls >> 4) << 6);
      scales[j] = uint8_t(scales[j] | (lm >> 4) << 6);
    }
  }
}

// q4_K and q5_K (nmax 15 / 31): sub-block fits, super-block scales by fit_positive, then every
// value requantized against the stored scales. Levels in value order in L.
template <int Nmax>
void fit_k4_block(const float* x, const float* importance, uint8_t* scales, uint16_t* d, uint16_t* dmin, uint8_t* L) {
  const float sigma2 = 2 * sum_squares(x, kSuperBlock) / kSuperBlock;
  float w[32], sw[8], sub_scales[8], mins[8];
  for (int j = 0; j < 8; ++j) {
    weigh(x + 32 * j, importance + 32 * j, sigma2, 32, w);
    float sum_w = 0;
    for (int l = 0; l < 32; ++l) sum_w += w[l];
    sw[j] = sum_w;
    sub_scales[j] = fit_scale_min3(32, Nmax, x + 32 * j, w, L + 32 * j, &mins[j], -0.9f, 0.05f, 36);
  }
  uint8_t Ls[8], Lm[8];
  const float d_block = fit_positive(8, 63, sub_scales, Ls, sw);
  const float m_block = fit_positive(8, 63, mins, Lm, sw);
  if constexpr (Nmax == 31)
    for (int j = 0; j < 8; ++j) Ls[j] = std::min(uint8_t(63), Ls[j]), Lm[j] = std::min(uint8_t(63), Lm[j]);
  pack_k4_scales(Ls, Lm, scales);
  *d = fp32_to_fp16(d_block);
  *dmin = fp32_to_fp16(m_block);
  uint64_t sc, m;
  rules::unpack_q4_scales(scales, &sc, &m);
  for (int j = 0; j < 8; ++j) {
    const float dl = fp16_to_fp32(*d) * rules::byte_of(sc, j);
    if (!dl) continue;
    const float dm = fp16_to_fp32(*dmin) * rules::byte_of(m, j);
    for (int i = 0; i < 32; ++i)
      L[32 * j + i] = uint8_t(std::max(0, std::min(Nmax, nearest_int((x[32 * j + i] + dm) / dl))));
  }
}

void quantize_q4_K_weighted(const float* src, void* dst, size_t n, const float* imp) {
  auto* out = static_cast<uint8_t*>(dst);
  for (size_t blk = 0; blk < n / kSuperBlock; ++blk, src += kSuperBlock, imp += kSuperBlock, out += sizeof(BlockQ4_K)) {
    BlockQ4_K b;
    uint8_t L[kSuperBlock];
    fit_k4_block<15>(src, imp, b.scales, &b.d, &b.dmin, L);
    for (int c = 0; c < 4; ++c)
      for (int l = 0; l < 32; ++l) b.qs[32 * c + l] = uint8_t(L[64 * c + l] | L[64 * c + 32 + l] << 4);
    std::memcpy(out, &b, sizeof b);
  }
}

void quantize_q5_K_weighted(const float* src, void* dst, size_t n, const float* imp) {
  auto* out = static_cast<uint8_t*>(dst);
  for (size_t blk = 0; blk < n / kSuperBlock; ++blk, src += kSuperBlock, imp += kSuperBlock, out += sizeof(BlockQ5_K)) {
    BlockQ5_K b;
    uint8_t L[kSuperBlock];
    fit_k4_block<31>(src, imp, b.scales, &b.d, &b.dmin, L);
    std::memset(b.qh, 0, sizeof b.qh);
    for (int c = 0; c < 4; ++c)
      for (int l = 0; l < 32; ++l) {
        const uint8_t q0 = L[64 * c + l], q1 = L[64 * c + 32 + l];
        b.qh[l] = uint8_t(b.qh[l] | (q0 >> 4) << (2 * c) | (q1 >> 4) << (2 * c + 1));
        b.qs[32 * c + l] = uint8_t((q0 & 0x0f) | (q1 & 0x0f) << 4);
      }
    std::memcpy(out, &b, sizeof b);
  }
}

// 4 levels of 2 bits per byte: qs[32c + l] holds values 128c + l + 32k in bits 2k..2k+1.
inline void pack_2bit(const uint8_t* L, uint8_t* qs) {
  for (int c = 0; c < 2; ++c)
    for (int l = 0; l < 32; ++l) {
      const uint8_t* q = L + 128 * c + l;
      qs[32 * c + l] = uint8_t(q[0] | q[32] << 2 | q[64] << 4 | q[96] << 6);
    }
}

void quantize_q2_K_weighted(const float* src, void* dst, size_t n, const float* imp) {
  auto* out = static_cast<uint8_t*>(dst);
  for (size_t blk = 0; blk < n / kSuperBlock; ++blk, src += kSuperBlock, imp += kSuperBlock, out += sizeof(BlockQ2_K)) {
    BlockQ2_K b;
    uint8_t L[kSuperBlock];
    float w[16], sw[16], scales[16], mins[16];
    const float sigma2 = sum_squares(src, kSuperBlock) / kSuperBlock;
    for (int j = 0; j < 16; ++j) {
      weigh(src + 16 * j, imp + 16 * j, sigma2, 16, w);
      sw[j] = 0;
      for (int l = 0; l < 16; ++l) sw[j] += w[l];
      scales[j] = fit_scale_min3(16, 3, src + 16 * j, w, L + 16 * j, &mins[j], -0.9f, 0.05f, 36);
    }
    uint8_t Ls[16], Lm[16];
    const float dm = fit_positive(16, 15, scales, Ls, sw);
    const float mm = fit_positive(16, 15, mins, Lm, sw);
    b.d = fp32_to_fp16(dm);
    b.dmin = fp32_to_fp16(mm);
    const float d_all = fp16_to_fp32(b.d), m_all = fp16_to_fp32(b.dmin);
    for (int j = 0; j < 16; ++j) b.scales[j] = uint8_t(Ls[j] | Lm[j] << 4);
    for (int j = 0; j < 16; ++j) {
      const float d = d_all * float(b.scales[j] & 0x0f);
      if (!d) continue;
      const float m = m_all * float(b.scales[j] >> 4);
      for (int i = 0; i < 16; ++i)
        L[16 * j + i] = uint8_t(std::max(0, std::min(3, nearest_int((src[16 * j + i] + m) / d))));
    }
    pack_2bit(L, b.qs);
    std::memcpy(out, &b, sizeof b);
  }
}

void quantize_q3_K_weighted(const float* src, void* dst, size_t n, const float* imp) {
  auto* out = static_cast<uint8_t*>(dst);
  for (size_t blk = 0; blk < n / kSuperBlock; ++blk, src += kSuperBlock, imp += kSuperBlock, out += sizeof(BlockQ3_K)) {
    BlockQ3_K b;
    int8_t L[kSuperBlock];
    float w[16], sw[16], scales[16];
    const float sigma2 = 2 * sum_squares(src, kSuperBlock) / kSuperBlock;
    for (int j = 0; j < 16; ++j) {
      weigh(src + 16 * j, imp + 16 * j, sigma2, 16, w);
      float sum_w = 0;
      for (int l = 0; l < 16; ++l) sum_w += w[l];
      sw[j] = sum_w;
      scales[j] = fit_signed(16, 4, src + 16 * j, L + 16 * j, w);
    }
    std::memset(b.scales, 0, sizeof b.scales);
    int8_t Ls[16];
    const float d_block = fit_signed(16, 32, scales, Ls, sw);
    for (int j = 0; j < 16; ++j) {
      int l = Ls[j];
      if (j < 8)
        b.scales[j] = uint8_t(l & 0x0f);
      else
        b.scales[j - 8] = uint8_t(b.scales[j - 8] | (l & 0x0f) << 4);
      l >>= 4;
      b.scales[j % 4 + 8] = uint8_t(b.scales[j % 4 + 8] | l << (2 * (j / 4)));
    }
    b.d = fp32_to_fp16(d_block);
    for (int j = 0; j < 16; ++j) {
      int8_t sc = int8_t(j < 8 ? b.scales[j] & 0x0f : b.scales[j - 8] >> 4);
      sc = int8_t((sc | ((b.scales[8 + j % 4] >> (2 * (j / 4))) & 3) << 4) - 32);
      const float d = fp16_to_fp32(b.d) * sc;
      if (!d) continue;
      for (int i = 0; i < 16; ++i)
        L[16 * j + i] = int8_t(std::max(-4, std::min(3, nearest_int(src[16 * j + i] / d))) + 4);
    }
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
    std::memcpy(out, &b, sizeof b);
  }
}

// q4_0 and q5_0: each block's scale by fit_signed (nmax 8 / 16) with the row's sigma2.
template <typename Block, int Nmax>
void quantize_signed32_weighted(const float* src, void* dst, size_t n, const float* imp) {
  auto* out = static_cast<Block*>(dst);
  const float sigma2 = sum_squares(src, n) / float(n);
  float w[kBlock];
  int8_t L[kBlock];
  for (size_t b = 0; b < n / kBlock; ++b, src += kBlock, imp += kBlock) {
    weigh(src, imp, sigma2, kBlock, w);
    const float d = fit_signed(kBlock, Nmax, src, L, w);
    Block blk;
    blk.d = fp32_to_fp16(d);
    uint8_t q[kBlock];
    for (int j = 0; j < kBlock; ++j) q[j] = uint8_t(L[j]);
    for (int j = 0; j < 16; ++j) blk.qs[j] = uint8_t((q[j] & 0x0f) | (q[j + 16] & 0x0f) << 4);
    if constexpr (Nmax == 16) put_qh(blk.qh, q);
    std::memcpy(out + b, &blk, sizeof blk);
  }
}

// q4_1 and q5_1: each block's scale and min by fit_scale_min3 (nmax 15 / 31), the row's sigma2.
template <typename Block, int Nmax>
void quantize_min32_weighted(const float* src, void* dst, size_t n, const float* imp) {
  auto* out = static_cast<Block*>(dst);
  const float sigma2 = sum_squares(src, n) / float(n);
  float w[kBlock];
  uint8_t L[kBlock];
  for (size_t b = 0; b < n / kBlock; ++b, src += kBlock, imp += kBlock) {
    weigh(src, imp, sigma2, kBlock, w);
    float neg_min;
    const float d = fit_scale_min3(kBlock, Nmax, src, w, L, &neg_min, -0.9f, 0.05f, 36);
    Block blk;
    blk.d = fp32_to_fp16(d);
    blk.m = fp32_to_fp16(-neg_min);
    for (int j = 0; j < 16; ++j) blk.qs[j] = uint8_t((L[j] & 0x0f) | (L[j + 16] & 0x0f) << 4);
    if constexpr (Nmax == 31) put_qh(blk.qh, L);
    std::memcpy(out + b, &blk, sizeof blk);
  }
}

}  // namespace

bool takes_importance(GgmlType t) {
  switch (t) {
    case GgmlType::Q4_0: case GgmlType::Q4_1: case GgmlType::Q5_0: case GgmlType::Q5_1: case GgmlType::IQ4_NL:
    case GgmlType::Q2_K: case GgmlType::Q3_K: case GgmlType::Q4_K: case GgmlType::Q5_K: case GgmlType::Q6_K:
    case GgmlType::IQ4_XS:
      return true;
    default:
      return false;
  }
}

void quantize_row_weighted(GgmlType t, const float* src, void* dst, size_t n, const float* importance) {
  if (!importance || !takes_importance(t)) {
    quantize_row(t, src, dst, n);
    return;
  }
  switch (t) {
    case GgmlType::Q4_0: quantize_signed32_weighted<BlockQ4_0, 8>(src, dst, n, importance); break;
    case GgmlType::Q5_0: quantize_signed32_weighted<BlockQ5_0, 16>(src, dst, n, importance); break;
    case GgmlType::Q4_1: quantize_min32_weighted<BlockQ4_1, 15>(src, dst, n, importance); break;
    case GgmlType::Q5_1: quantize_min32_weighted<BlockQ5_1, 31>(src, dst, n, importance); break;
    case GgmlType::IQ4_NL: quantize_iq4_nl(src, dst, n, importance); break;
    case GgmlType::Q2_K: quantize_q2_K_weighted(src, dst, n, importance); break;
    case GgmlType::Q3_K: quantize_q3_K_weighted(src, dst, n, importance); break;
    case GgmlType::Q4_K: quantize_q4_K_weighted(src, dst, n, importance); break;
    case GgmlType::Q5_K: quantize_q5_K_weighted(src, dst, n, importance); break;
    case GgmlType::Q6_K: quantize_q6_K(src, dst, n, importance); break;
    case GgmlType::IQ4_XS: quantize_iq4_xs(src, dst, n, importance); break;
    default: LM_ASSERT(!"quantize_row_weighted: unsupported type");
  }
}

}  // namespace lm::quant
