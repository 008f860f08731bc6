// Number formats of ggml tensors, bit-compatible with ggml's block layouts (ggml-common.h):
//   f16   IEEE binary16; bf16 the top 16 bits of a binary32.
//   q8_0  blocks of 32 values: f16 scale d, then 32 int8 q; x = d * q.            34 bytes
//   q4_0  blocks of 32 values: f16 scale d, then 16 bytes; byte j holds value j in its low
//         nibble and value j + 16 in its high nibble; x = d * (nibble - 8).         18 bytes
//   q4_1  as q4_0 with an f16 min m after d: x = d * nibble + m.                     20 bytes
//   q5_0  f16 d, 4 bytes qh (bit j = the 5th bit of value j), 16 nibble bytes as q4_0;
//         x = d * (q - 16), q in 0..31.                                             22 bytes
//   q5_1  f16 d, f16 m, qh, nibbles: x = d * q + m, q in 0..31.                    24 bytes
//   iq4_nl  f16 d, nibbles as q4_0 that index 16 fixed levels (-127..113, ggml's
//         kvalues_iq4nl): x = d * level[nibble].                                     18 bytes
// Conversions round to nearest, ties to even. Quantizers are ggml's reference rules, so the
// same input gives the same bytes as llama-quantize.
#pragma once

#include <cstddef>
#include <cstdint>

#include "format/gguf.hpp"

namespace lm::quant {

inline constexpr int kBlock = 32;  // values per q8_0 / q4_0 block

#pragma pack(push, 1)
struct BlockQ8_0 {
  uint16_t d;
  int8_t qs[kBlock];
};
struct BlockQ4_0 {
  uint16_t d;
  uint8_t qs[kBlock / 2];
};
struct BlockQ4_1 {
  uint16_t d, m;
  uint8_t qs[kBlock / 2];
};
struct BlockQ5_0 {
  uint16_t d;
  uint8_t qh[4];
  uint8_t qs[kBlock / 2];
};
struct BlockQ5_1 {
  uint16_t d, m;
  uint8_t qh[4];
  uint8_t qs[kBlock / 2];
};
struct BlockIQ4_NL {
  uint16_t d;
  uint8_t qs[kBlock / 2];
};
#pragma pack(pop)
static_assert(sizeof(BlockQ8_0) == 34 && sizeof(BlockQ4_0) == 18);
static_assert(sizeof(BlockQ4_1) == 20 && sizeof(BlockQ5_0) == 22 && sizeof(BlockQ5_1) == 24 &&
              sizeof(BlockIQ4_NL) == 18);

float fp16_to_fp32(uint16_t h);
uint16_t fp32_to_fp16(float f);  // overflow gives +-inf, NaN stays NaN
float bf16_to_fp32(uint16_t b);
uint16_t fp32_to_bf16(float f);  // NaN stays NaN (quiet)

// Row conversions of n values; for the block types n is a multiple of kBlock. `src` may be
// unaligned (tensor data in a mapped file); values are read little-endian.
void dequantize_f16(const void* src, float* dst, size_t n);
void dequantize_bf16(const void* src, float* dst, size_t n);
void dequantize_q8_0(const void* src, float* dst, size_t n);
void dequantize_q4_0(const void* src, float* dst, size_t n);
void quantize_q8_0(const float* src, void* dst, size_t n);
void quantize_q4_0(const float* src, void* dst, size_t n);
// q4_1, q5_0, q5_1: ggml's quantize_row_*_ref. iq4_nl: what llama-quantize writes without an
// importance matrix (ggml's quantize_iq4_nl: 15 trial scales per block; its
// quantize_row_iq4_nl_ref tries none and gives other bytes).
void quantize_q4_1(const float* src, void* dst, size_t n);
void dequantize_q4_1(const void* src, float* dst, size_t n);
void quantize_q5_0(const float* src, void* dst, size_t n);
void dequantize_q5_0(const void* src, float* dst, size_t n);
void quantize_q5_1(const float* src, void* dst, size_t n);
void dequantize_q5_1(const void* src, float* dst, size_t n);
// With `importance` (n values, see quantize_row_weighted): ggml's quantize_iq4_nl with quant_weights.
void quantize_iq4_nl(const float* src, void* dst, size_t n, const float* importance);
inline void quantize_iq4_nl(const float* src, void* dst, size_t n) { quantize_iq4_nl(src, dst, n, nullptr); }
void dequantize_iq4_nl(const void* src, float* dst, size_t n);

// sum_i x[i] * y[i] over n values: x a q4_1 / q5_0 / q5_1 / iq4_nl row, y an activation row
// (quantize_activations: q8_0 blocks with levels in -127..127, then their f32 scales and sums;
// `_ref` reads only the blocks). Integer sums per block are exact on every
// path; the fast versions (AVX2 picked at run time, see kquant.hpp's dot_path; no AVX-512 path
// yet) differ from `_ref` only in the order of the float sums.
float vec_dot_q4_1_q8_0(const void* x, const void* y, size_t n);
float vec_dot_q4_1_q8_0_ref(const void* x, const void* y, size_t n);
float vec_dot_q5_0_q8_0(const void* x, const void* y, size_t n);
float vec_dot_q5_0_q8_0_ref(const void* x, const void* y, size_t n);
float vec_dot_q5_1_q8_0(const void* x, const void* y, size_t n);
float vec_dot_q5_1_q8_0_ref(const void* x, const void* y, size_t n);
float vec_dot_iq4_nl_q8_0(const void* x, const void* y, size_t n);
float vec_dot_iq4_nl_q8_0_ref(const void* x, const void* y, size_t n);

// Any type lm reads and writes (is_supported): f32, f16, bf16, q8_0, q4_0, q4_1, q5_0, q5_1,
// iq4_nl, the K-quants q2_K, q3_K, q4_K, q5_K, q6_K and iq4_xs (kquant.hpp). n is a multiple of
// the type's block (ggml_type_info().block).
bool is_supported(format::GgmlType t);
size_t row_size(format::GgmlType t, size_t n);  // bytes of n values
void quantize_row(format::GgmlType t, const float* src, void* dst, size_t n);
void dequantize_row(format::GgmlType t, const void* src, float* dst, size_t n);
// Importance-weighted quantization, ggml's quantize_<type>(..., quant_weights) (what
// llama-quantize --imatrix writes; weighted.cpp): `importance` holds one weight per value of the
// row (n, e.g. an importance matrix's mean squared activation per column), and the rules fit
// each value with weight importance[i] * sqrt(sigma2 + x[i]^2), bit for bit as ggml does.
// takes_importance: q4_0, q4_1, q5_0, q5_1, iq4_nl, q2_K..q6_K, iq4_xs; the other types (and a
// null `importance`) quantize as quantize_row (ggml ignores the weights for them too).
bool takes_importance(format::GgmlType t);
void quantize_row_weighted(format::GgmlType t, const float* src, void* dst, size_t n, const float* importance);
// `rows` rows of n values each (row_size(t, n) bytes apart), in parallel over the rows; with
// `importance` (n values, shared by every row) through quantize_row_weighted.
void quantize_rows(format::GgmlType t, const float* src, void* dst, size_t rows, size_t n,
                   const float* importance = nullptr);
void dequantize_rows(format::GgmlType t, const void* src, float* dst, size_t rows, size_t n);

// Dot products of a weight row of type t with activations: the activations' type (Q8_0 for
// q4_1, q5_0, q5_1, iq4_nl; Q8_K for the K-quants and iq4_xs; F32 when t has no dot product
// here), and the dot product's fast and plain versions. quantize_activations writes n values
// of x as an activation row of activation_row_size(t, n) bytes: the row in that type, and for
// Q8_0 after it each block's scale as f32 and the sum of its levels as int32 (the fast dot
// products read those; complete_q8_0_activations computes them for a row of q8_0 blocks).
format::GgmlType dot_activation_type(format::GgmlType t);
size_t activation_row_size(format::GgmlType t, size_t n);
void quantize_activations(format::GgmlType t, const float* x, void* dst, size_t n);
void complete_q8_0_activations(void* row, size_t n);
float vec_dot(format::GgmlType t, const void* x, const void* y, size_t n);
float vec_dot_ref(format::GgmlType t, const void* x, const void* y, size_t n);
// vec_dot of nx weight rows (row i at x + i * x_stride bytes) with ny activation rows (row j at
// y + j * y_stride) into out[i * ny + j], each equal to vec_dot(t, row i, row j, n) to the bit.
// q4_K, q5_K and q6_K (on AVX-512 VNNI) and q2_K, q3_K and iq4_xs (AVX2 and up) read each
// weight row once for 8 activation rows.
void vec_dot_tile(format::GgmlType t, const void* x, size_t x_stride, int nx, const void* y, size_t y_stride, int ny,
                  size_t n, float* out);

}  // namespace lm::quant
