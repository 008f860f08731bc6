// ggml's K-quants, bit-compatible with ggml-common.h: super-blocks of 256 values (QK_K).
//   q4_K  8 sub-blocks of 32; each has a 6-bit scale and a 6-bit min packed in `scales`
//         (ggml's get_scale_min_k4 layout); x = d * sc * q - dmin * m, q in 0..15.   144 bytes
//   q6_K  16 sub-blocks of 16; int8 scale each; 6-bit q = 4 low bits in ql, 2 high in qh;
//         x = d * sc * (q - 32).                                                      210 bytes
//   q2_K  16 sub-blocks of 16; byte scales[g] holds a 4-bit scale (low) and 4-bit min (high);
//         2-bit q, 4 per byte; x = d * sc * q - dmin * m.                              84 bytes
//   q3_K  16 sub-blocks of 16; 6-bit signed scales (stored + 32) packed in 12 bytes; q in
//         -4..3 as 2 low bits in qs and a high bit in hmask (set: +4 was not taken off);
//         x = d * sc * q.                                                             110 bytes
//   q5_K  as q4_K with a fifth bit of q in qh; q in 0..31.                           176 bytes
//   iq4_xs  8 sub-blocks of 32; 6-bit scales (stored + 32) in scales_l / scales_h;
//         nibbles index iq4_nl's 16 levels: x = d * sc * level[q].                   136 bytes
//   q8_K  the activations' format for dot products with K-quants: f32 d, 256 int8 q, and the
//         sums of each 16 q (bsums).                                                  292 bytes
// Quantizers are ggml's reference rules (quantize_row_*_ref, no importance matrix), so the same
// input gives the same bytes as llama-quantize; the importance-weighted rules are quant.hpp's
// quantize_row_weighted. Dot products come in a fast version (AVX-512 /
// AVX2 picked at run time) and a plain `_ref` twin.
#pragma once

#include <cstddef>
#include <cstdint>

namespace lm::quant {

inline constexpr int kSuperBlock = 256;  // values per K-quant super-block

#pragma pack(push, 1)
struct BlockQ4_K {
  uint16_t d, dmin;  // f16
  uint8_t scales[12];
  uint8_t qs[kSuperBlock / 2];
};
struct BlockQ6_K {
  uint8_t ql[kSuperBlock / 2];
  uint8_t qh[kSuperBlock / 4];
  int8_t scales[kSuperBlock / 16];
  uint16_t d;  // f16
};
struct BlockQ2_K {
  uint8_t scales[kSuperBlock / 16];
  uint8_t qs[kSuperBlock / 4];
  uint16_t d, dmin;  // f16
};
struct BlockQ3_K {
  uint8_t hmask[kSuperBlock / 8];
  uint8_t qs[kSuperBlock / 4];
  uint8_t scales[12];
  uint16_t d;  // f16
};
struct BlockQ5_K {
  uint16_t d, dmin;  // f16
  uint8_t scales[12];
  uint8_t qh[kSuperBlock / 8];
  uint8_t qs[kSuperBlock / 2];
};
struct BlockIQ4_XS {
  uint16_t d;  // f16
  uint16_t scales_h;
  uint8_t scales_l[kSuperBlock / 64];
  uint8_t qs[kSuperBlock / 2];
};
struct BlockQ8_K {
  float d;
  int8_t qs[kSuperBlock];
  int16_t bsums[kSuperBlock / 16];
};
#pragma pack(pop)
static_assert(sizeof(BlockQ4_K) == 144 && sizeof(BlockQ6_K) == 210 && sizeof(BlockQ8_K) == 292);
static_assert(sizeof(BlockQ2_K) == 84 && sizeof(BlockQ3_K) == 110 && sizeof(BlockQ5_K) == 176 &&
              sizeof(BlockIQ4_XS) == 136);

// n values, n a multiple of kSuperBlock; pointers may be unaligned.
void quantize_q4_K(const float* src, void* dst, size_t n);
void dequantize_q4_K(const void* src, float* dst, size_t n);
// With `importance` (n values): ggml's quantize_q6_K with quant_weights (weights importance[i]).
void quantize_q6_K(const float* src, void* dst, size_t n, const float* importance);
inline void quantize_q6_K(const float* src, void* dst, size_t n) { quantize_q6_K(src, dst, n, nullptr); }
void dequantize_q6_K(const void* src, float* dst, size_t n);
// q2_K, q3_K, q5_K: ggml's quantize_row_*_ref; iq4_xs: ggml's quantize_iq4_xs without an
// importance matrix (= its quantize_row_iq4_xs_ref), what llama-quantize writes.
void quantize_q2_K(const float* src, void* dst, size_t n);
void dequantize_q2_K(const void* src, float* dst, size_t n);
void quantize_q3_K(const float* src, void* dst, size_t n);
void dequantize_q3_K(const void* src, float* dst, size_t n);
void quantize_q5_K(const float* src, void* dst, size_t n);
void dequantize_q5_K(const void* src, float* dst, size_t n);
// With `importance`: ggml's quantize_iq4_xs with quant_weights.
void quantize_iq4_xs(const float* src, void* dst, size_t n, const float* importance);
inline void quantize_iq4_xs(const float* src, void* dst, size_t n) { quantize_iq4_xs(src, dst, n, nullptr); }
void dequantize_iq4_xs(const void* src, float* dst, size_t n);
void quantize_q8_K(const float* src, void* dst, size_t n);
void dequantize_q8_K(const void* src, float* dst, size_t n);

// sum_i x[i] * y[i] over n values: x a q4_K / q6_K row, y the q8_K row of the activations
// (its bsums as quantize_q8_K writes them). The integer sums are exact on every path; the fast
// versions differ from `_ref` only in the order of the float sums. Never throw.
float vec_dot_q4_K_q8_K(const void* x, const void* y, size_t n);
float vec_dot_q4_K_q8_K_ref(const void* x, const void* y, size_t n);
float vec_dot_q6_K_q8_K(const void* x, const void* y, size_t n);
float vec_dot_q6_K_q8_K_ref(const void* x, const void* y, size_t n);
// The same for q2_K, q3_K, q5_K and iq4_xs rows (kquant_ext.cpp; y's levels in -127..127, as
// quantize_q8_K makes them). Their fast versions have an AVX2 path; on the AVX-512 VNNI path
// q5_K takes vec_dot_q5_K_q8_K_tile's kernel, the others the AVX2 one.
float vec_dot_q2_K_q8_K(const void* x, const void* y, size_t n);
float vec_dot_q2_K_q8_K_ref(const void* x, const void* y, size_t n);
float vec_dot_q3_K_q8_K(const void* x, const void* y, size_t n);
float vec_dot_q3_K_q8_K_ref(const void* x, const void* y, size_t n);
float vec_dot_q5_K_q8_K(const void* x, const void* y, size_t n);
float vec_dot_q5_K_q8_K_ref(const void* x, const void* y, size_t n);
float vec_dot_iq4_xs_q8_K(const void* x, const void* y, size_t n);
float vec_dot_iq4_xs_q8_K_ref(const void* x, const void* y, size_t n);

// Dot products of nx q4_K / q5_K / q6_K rows (row i at x + i * x_stride bytes) with ny q8_K
// activation rows (row j at y + j * y_stride) into out[i * ny + j], each equal to
// vec_dot_*_q8_K(row i, row j, n) to the bit. The AVX-512 VNNI path unpacks a weight row's
// blocks once for 8 activation rows; the others call vec_dot_*_q8_K per pair.
void vec_dot_q4_K_q8_K_tile(const void* x, size_t x_stride, int nx, const void* y, size_t y_stride, int ny, size_t n,
                            float* out);
void vec_dot_q6_K_q8_K_tile(const void* x, size_t x_stride, int nx, const void* y, size_t y_stride, int ny, size_t n,
                            float* out);
void vec_dot_q5_K_q8_K_tile(const void* x, size_t x_stride, int nx, const void* y, size_t y_stride, int ny, size_t n,
                            float* out);
// The same for q2_K, q3_K and iq4_xs rows (kquant_ext.cpp): their walks (AVX2, and q3_K's and
// iq4_xs's AVX-512 ones) unpack a weight block once for 8 activation rows; the plain path calls
// vec_dot_* per pair.
void vec_dot_q2_K_q8_K_tile(const void* x, size_t x_stride, int nx, const void* y, size_t y_stride, int ny, size_t n,
                            float* out);
void vec_dot_q3_K_q8_K_tile(const void* x, size_t x_stride, int nx, const void* y, size_t y_stride, int ny, size_t n,
                            float* out);
void vec_dot_iq4_xs_q8_K_tile(const void* x, size_t x_stride, int nx, const void* y, size_t y_stride, int ny, size_t n,
                              float* out);

// The paths vec_dot_* can take, slowest first: plain C++, AVX2 (with FMA, F16C), AVX-512 with
// VNNI's vpdpbusd (F, BW, VL, VNNI, with FMA, F16C and BMI2). The best the CPU has is chosen
// once, at first use.
enum class DotPath { Portable, Avx2, Avx512Vnni };
DotPath dot_path();  // the path vec_dot_* take now
// For tests and benchmarks: take at most `max` (or the best the CPU has, if lower), so every
// path is checked on one machine. Not thread-safe: call between dot products.
void limit_dot_path(DotPath max);

}  // namespace lm::quant
