// Number formats of ggml tensors, bit-compatible with ggml's block layouts (ggml-common.h):
//   f16   IEEE binary16; bf16 the top 16 bits of a binary32.
//   q8_0  blocks of 32 values: f16 scale d, then 32 int8 q; x = d * q.            34 bytes
//   q4_0  blocks of 32 values: f16 scale d, then 16 bytes; byte j holds value j in its low
//         nibble and value j + 16 in its high nibble; x = d * (nibble - 8).         18 bytes
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
#pragma pack(pop)
static_assert(sizeof(BlockQ8_0) == 34 && sizeof(BlockQ4_0) == 18);

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

// Any type lm reads and writes (is_supported): f32, f16, bf16, q8_0, q4_0, and the K-quants
// q4_K and q6_K (kquant.hpp). n is a multiple of the type's block (ggml_type_info().block).
bool is_supported(format::GgmlType t);
size_t row_size(format::GgmlType t, size_t n);  // bytes of n values
void quantize_row(format::GgmlType t, const float* src, void* dst, size_t n);
void dequantize_row(format::GgmlType t, const void* src, float* dst, size_t n);
// `rows` rows of n values each (row_size(t, n) bytes apart), in parallel over the rows.
void quantize_rows(format::GgmlType t, const float* src, void* dst, size_t rows, size_t n);
void dequantize_rows(format::GgmlType t, const void* src, float* dst, size_t rows, size_t n);

}  // namespace lm::quant
