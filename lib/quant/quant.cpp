#include "quant/quant.hpp"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "base/error.hpp"
#include "base/half.hpp"
#include "quant/kquant.hpp"

namespace lm::quant {

float fp16_to_fp32(uint16_t h) { return half_to_float(h); }

uint16_t fp32_to_fp16(float f) {
  uint32_t x;
  std::memcpy(&x, &f, 4);
  const uint16_t sign = uint16_t((x >> 16) & 0x8000);
  const uint32_t ax = x & 0x7fffffffu;
  if (ax > 0x7f800000u) return uint16_t(sign | 0x7e00);  // NaN
  if (ax >= 0x477ff000u) return uint16_t(sign | 0x7c00);  // rounds to >= 65520: inf
  if (ax < 0x38800000u) {                                 // below 2^-14: subnormal half or zero
    // Value = ax as float; half subnormal unit is 2^-24. Round |f| * 2^24 to nearest even.
    float a;
    std::memcpy(&a, &ax, 4);
    const float scaled = a * 16777216.0f;  // exact: a power-of-two scaling of a normal float
    return uint16_t(sign | uint16_t(std::nearbyint(scaled)));
  }
  // Normal: rebias the exponent, round the 13 dropped mantissa bits to nearest even.
  const uint32_t rebased = ax - (uint32_t(127 - 15) << 23);
  const uint32_t round = 0xfff + ((rebased >> 13) & 1);
  return uint16_t(sign | ((rebased + round) >> 13));
}

float bf16_to_fp32(uint16_t b) {
  const uint32_t bits = uint32_t(b) << 16;
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}

uint16_t fp32_to_bf16(float f) {
  uint32_t x;
  std::memcpy(&x, &f, 4);
  if ((x & 0x7fffffffu) > 0x7f800000u) return uint16_t((x >> 16) | 64);  // quiet NaN
  return uint16_t((x + (0x7fff + ((x >> 16) & 1))) >> 16);
}

static uint16_t load_u16(const uint8_t* p) { return uint16_t(p[0] | p[1] << 8); }

void dequantize_f16(const void* src, float* dst, size_t n) {
  const auto* p = static_cast<const uint8_t*>(src);
  for (size_t i = 0; i < n; ++i) dst[i] = fp16_to_fp32(load_u16(p + 2 * i));
}

void dequantize_bf16(const void* src, float* dst, size_t n) {
  const auto* p = static_cast<const uint8_t*>(src);
  for (size_t i = 0; i < n; ++i) dst[i] = bf16_to_fp32(load_u16(p + 2 * i));
}

void dequantize_q8_0(const void* src, float* dst, size_t n) {
  const auto* p = static_cast<const uint8_t*>(src);
  for (size_t b = 0; b < n / kBlock; ++b, p += sizeof(BlockQ8_0), dst += kBlock) {
    const float d = fp16_to_fp32(load_u16(p));
    for (int j = 0; j < kBlock; ++j) dst[j] = d * float(int8_t(p[2 + j]));
  }
}

void dequantize_q4_0(const void* src, float* dst, size_t n) {
  const auto* p = static_cast<const uint8_t*>(src);
  for (size_t b = 0; b < n / kBlock; ++b, p += sizeof(BlockQ4_0), dst += kBlock) {
    const float d = fp16_to_fp32(load_u16(p));
    for (int j = 0; j < kBlock / 2; ++j) {
      dst[j] = d * float((p[2 + j] & 0x0f) - 8);
      dst[j + kBlock / 2] = d * float((p[2 + j] >> 4) - 8);
    }
  }
}

void quantize_q8_0(const float* src, void* dst, size_t n) {
  auto* out = static_cast<uint8_t*>(dst);
  for (size_t b = 0; b < n / kBlock; ++b, src += kBlock, out += sizeof(BlockQ8_0)) {
    float amax = 0;
    for (int j = 0; j < kBlock; ++j) amax = std::max(amax, std::fabs(src[j]));
    const float d = amax / 127.0f, id = d != 0.0f ? 1.0f / d : 0.0f;
    const uint16_t dh = fp32_to_fp16(d);
    out[0] = uint8_t(dh), out[1] = uint8_t(dh >> 8);
    for (int j = 0; j < kBlock; ++j) out[2 + j] = uint8_t(int8_t(std::round(src[j] * id)));
  }
}

void quantize_q4_0(const float* src, void* dst, size_t n) {
  auto* out = static_cast<uint8_t*>(dst);
  for (size_t b = 0; b < n / kBlock; ++b, src += kBlock, out += sizeof(BlockQ4_0)) {
    // The value of largest magnitude maps to -8, keeping its sign (ggml's rule).
    float amax = 0, mx = 0;
    for (int j = 0; j < kBlock; ++j)
      if (std::fabs(src[j]) > amax) amax = std::fabs(src[j]), mx = src[j];
    const float d = mx / -8.0f, id = d != 0.0f ? 1.0f / d : 0.0f;
    const uint16_t dh = fp32_to_fp16(d);
    out[0] = uint8_t(dh), out[1] = uint8_t(dh >> 8);
    for (int j = 0; j < kBlock / 2; ++j) {
      const int q0 = std::min(15, int(int8_t(src[j] * id + 8.5f)));
      const int q1 = std::min(15, int(int8_t(src[j + kBlock / 2] * id + 8.5f)));
      out[2 + j] = uint8_t(q0 | q1 << 4);
    }
  }
}

using format::GgmlType;

bool is_supported(GgmlType t) {
  switch (t) {
    case GgmlType::F32: case GgmlType::F16: case GgmlType::BF16: case GgmlType::Q8_0: case GgmlType::Q4_0:
    case GgmlType::Q4_1: case GgmlType::Q5_0: case GgmlType::Q5_1: case GgmlType::IQ4_NL:
    case GgmlType::Q2_K: case GgmlType::Q3_K: case GgmlType::Q4_K: case GgmlType::Q5_K: case GgmlType::Q6_K:
    case GgmlType::IQ4_XS:
      return true;
    default:
      return false;
  }
}

size_t row_size(GgmlType t, size_t n) {
  const format::GgmlTypeInfo& info = format::ggml_type_info(t);
  return n / info.block * info.block_bytes;
}

void quantize_row(GgmlType t, const float* src, void* dst, size_t n) {
  switch (t) {
    case GgmlType::F32: std::memcpy(dst, src, n * sizeof(float)); break;
    case GgmlType::F16: {
      auto* out = static_cast<uint8_t*>(dst);
      for (size_t i = 0; i < n; ++i) {
        const uint16_t h = fp32_to_fp16(src[i]);
        out[2 * i] = uint8_t(h), out[2 * i + 1] = uint8_t(h >> 8);
      }
      break;
    }
    case GgmlType::BF16: {
      auto* out = static_cast<uint8_t*>(dst);
      for (size_t i = 0; i < n; ++i) {
        const uint16_t h = fp32_to_bf16(src[i]);
        out[2 * i] = uint8_t(h), out[2 * i + 1] = uint8_t(h >> 8);
      }
      break;
    }
    case GgmlType::Q8_0: quantize_q8_0(src, dst, n); break;
    case GgmlType::Q4_0: quantize_q4_0(src, dst, n); break;
    case GgmlType::Q4_1: quantize_q4_1(src, dst, n); break;
    case GgmlType::Q5_0: quantize_q5_0(src, dst, n); break;
    case GgmlType::Q5_1: quantize_q5_1(src, dst, n); break;
    case GgmlType::IQ4_NL: quantize_iq4_nl(src, dst, n); break;
    case GgmlType::Q2_K: quantize_q2_K(src, dst, n); break;
    case GgmlType::Q3_K: quantize_q3_K(src, dst, n); break;
    case GgmlType::Q4_K: quantize_q4_K(src, dst, n); break;
    case GgmlType::Q5_K: quantize_q5_K(src, dst, n); break;
    case GgmlType::Q6_K: quantize_q6_K(src, dst, n); break;
    case GgmlType::IQ4_XS: quantize_iq4_xs(src, dst, n); break;
    default: LM_ASSERT(!"quantize_row: unsupported type");
  }
}

void dequantize_row(GgmlType t, const void* src, float* dst, size_t n) {
  switch (t) {
    case GgmlType::F32: std::memcpy(dst, src, n * sizeof(float)); break;
    case GgmlType::F16: dequantize_f16(src, dst, n); break;
    case GgmlType::BF16: dequantize_bf16(src, dst, n); break;
    case GgmlType::Q8_0: dequantize_q8_0(src, dst, n); break;
    case GgmlType::Q4_0: dequantize_q4_0(src, dst, n); break;
    case GgmlType::Q4_1: dequantize_q4_1(src, dst, n); break;
    case GgmlType::Q5_0: dequantize_q5_0(src, dst, n); break;
    case GgmlType::Q5_1: dequantize_q5_1(src, dst, n); break;
    case GgmlType::IQ4_NL: dequantize_iq4_nl(src, dst, n); break;
    case GgmlType::Q2_K: dequantize_q2_K(src, dst, n); break;
    case GgmlType::Q3_K: dequantize_q3_K(src, dst, n); break;
    case GgmlType::Q4_K: dequantize_q4_K(src, dst, n); break;
    case GgmlType::Q5_K: dequantize_q5_K(src, dst, n); break;
    case GgmlType::Q6_K: dequantize_q6_K(src, dst, n); break;
    case GgmlType::IQ4_XS: dequantize_iq4_xs(src, dst, n); break;
    default: LM_ASSERT(!"dequantize_row: unsupported type");
  }
}

void quantize_rows(GgmlType t, const float* src, void* dst, size_t rows, size_t n, const float* importance) {
  const size_t rb = row_size(t, n);
  auto* d = static_cast<uint8_t*>(dst);
#pragma omp parallel for schedule(static) if (rows >= 64)
  for (int64_t r = 0; r < int64_t(rows); ++r)
    quantize_row_weighted(t, src + size_t(r) * n, d + size_t(r) * rb, n, importance);
}

void dequantize_rows(GgmlType t, const void* src, float* dst, size_t rows, size_t n) {
  const size_t rb = row_size(t, n);
  const auto* s = static_cast<const uint8_t*>(src);
#pragma omp parallel for schedule(static) if (rows >= 64)
  for (int64_t r = 0; r < int64_t(rows); ++r) dequantize_row(t, s + size_t(r) * rb, dst + size_t(r) * n, n);
}

GgmlType dot_activation_type(GgmlType t) {
  switch (t) {
    case GgmlType::Q4_1: case GgmlType::Q5_0: case GgmlType::Q5_1: case GgmlType::IQ4_NL:
      return GgmlType::Q8_0;
    case GgmlType::Q2_K: case GgmlType::Q3_K: case GgmlType::Q4_K: case GgmlType::Q5_K: case GgmlType::Q6_K:
    case GgmlType::IQ4_XS:
      return GgmlType::Q8_K;
    default:
      return GgmlType::F32;
  }
}

size_t activation_row_size(GgmlType t, size_t n) {
  const GgmlType a = dot_activation_type(t);
  return row_size(a, n) + (a == GgmlType::Q8_0 ? n / kBlock * 8 : 0);
}

void complete_q8_0_activations(void* row, size_t n) {
  auto* p = static_cast<uint8_t*>(row);
  const size_t nb = n / kBlock;
  uint8_t* extra = p + nb * sizeof(BlockQ8_0);
  for (size_t b = 0; b < nb; ++b) {
    const uint8_t* blk = p + b * sizeof(BlockQ8_0);
    const float d = fp16_to_fp32(load_u16(blk));
    int32_t sum = 0;
    for (int j = 0; j < kBlock; ++j) sum += int8_t(blk[2 + j]);
    std::memcpy(extra + 4 * b, &d, 4);
    std::memcpy(extra + 4 * (nb + b), &sum, 4);
  }
}

void quantize_activations(GgmlType t, const float* x, void* dst, size_t n) {
  if (dot_activation_type(t) == GgmlType::Q8_0) {
    quantize_q8_0(x, dst, n);
    complete_q8_0_activations(dst, n);
  } else {
    quantize_q8_K(x, dst, n);
  }
}

float vec_dot(GgmlType t, const void* x, const void* y, size_t n) {
  switch (t) {
    case GgmlType::Q4_1: return vec_dot_q4_1_q8_0(x, y, n);
    case GgmlType::Q5_0: return vec_dot_q5_0_q8_0(x, y, n);
    case GgmlType::Q5_1: return vec_dot_q5_1_q8_0(x, y, n);
    case GgmlType::IQ4_NL: return vec_dot_iq4_nl_q8_0(x, y, n);
    case GgmlType::Q2_K: return vec_dot_q2_K_q8_K(x, y, n);
    case GgmlType::Q3_K: return vec_dot_q3_K_q8_K(x, y, n);
    case GgmlType::Q4_K: return vec_dot_q4_K_q8_K(x, y, n);
    case GgmlType::Q5_K: return vec_dot_q5_K_q8_K(x, y, n);
    case GgmlType::Q6_K: return vec_dot_q6_K_q8_K(x, y, n);
    case GgmlType::IQ4_XS: return vec_dot_iq4_xs_q8_K(x, y, n);
    default: LM_ASSERT(!"vec_dot: no dot product for this type"); return 0;
  }
}

void vec_dot_tile(GgmlType t, const void* x, size_t x_stride, int nx, const void* y, size_t y_stride, int ny, size_t n,
                  float* out) {
  if (t == GgmlType::Q4_K) return vec_dot_q4_K_q8_K_tile(x, x_stride, nx, y, y_stride, ny, n, out);
  if (t == GgmlType::Q6_K) return vec_dot_q6_K_q8_K_tile(x, x_stride, nx, y, y_stride, ny, n, out);
  if (t == GgmlType::Q5_K) return vec_dot_q5_K_q8_K_tile(x, x_stride, nx, y, y_stride, ny, n, out);
  if (t == GgmlType::Q2_K) return vec_dot_q2_K_q8_K_tile(x, x_stride, nx, y, y_stride, ny, n, out);
  if (t == GgmlType::Q3_K) return vec_dot_q3_K_q8_K_tile(x, x_stride, nx, y, y_stride, ny, n, out);
  if (t == GgmlType::IQ4_XS) return vec_dot_iq4_xs_q8_K_tile(x, x_stride, nx, y, y_stride, ny, n, out);
  const auto* xb = static_cast<const uint8_t*>(x);
  const auto* yb = static_cast<const uint8_t*>(y);
  for (int i = 0; i < nx; ++i)
    for (int j = 0; j < ny; ++j) out[size_t(i) * ny + j] = vec_dot(t, xb + size_t(i) * x_stride, yb + size_t(j) * y_stride, n);
}

float vec_dot_ref(GgmlType t, const void* x, const void* y, size_t n) {
  switch (t) {
    case GgmlType::Q4_1: return vec_dot_q4_1_q8_0_ref(x, y, n);
    case GgmlType::Q5_0: return vec_dot_q5_0_q8_0_ref(x, y, n);
    case GgmlType::Q5_1: return vec_dot_q5_1_q8_0_ref(x, y, n);
    case GgmlType::IQ4_NL: return vec_dot_iq4_nl_q8_0_ref(x, y, n);
    case GgmlType::Q2_K: return vec_dot_q2_K_q8_K_ref(x, y, n);
    case GgmlType::Q3_K: return vec_dot_q3_K_q8_K_ref(x, y, n);
    case GgmlType::Q4_K: return vec_dot_q4_K_q8_K_ref(x, y, n);
    case GgmlType::Q5_K: return vec_dot_q5_K_q8_K_ref(x, y, n);
    case GgmlType::Q6_K: return vec_dot_q6_K_q8_K_ref(x, y, n);
    case GgmlType::IQ4_XS: return vec_dot_iq4_xs_q8_K_ref(x, y, n);
    default: LM_ASSERT(!"vec_dot_ref: no dot product for this type"); return 0;
  }
}

}  // namespace lm::quant
