// Linear layers over quantized weights, for inference (lm-generate, lm-eval).
//
// Weights stay in their file type. q8_0, q4_0, q4_1, q5_0, q5_1 and iq4_nl (the types with
// blocks of 32) are repacked once at load (pack_weight) into strips of 16 rows the integer
// kernels read with whole-vector loads; every other type keeps ggml's block rows. The
// activations are quantized per call, as llama.cpp does, so results equal llama.cpp's up to
// the order of float additions (q4_1 / q5_1: ggml's q8_1 activations round d * sum to f16,
// ours keep it in f32):
//   blocks of 32         activations in q8_0 blocks (f16-rounded scale, 32 int8), integer dot
//                        products per block (AVX-512 VNNI, or AVX2) of 16 weight rows at once
//                        against up to 8 activation rows, scaled and summed in float, in the
//                        same order on every path and at every batch size (the same bits);
//   q2_K, q3_K, q4_K, q5_K, q6_K, iq4_xs weights   activations in q8_K; dot products of
//                        quant::vec_dot_tile: q4_K, q5_K and q6_K at every batch size on
//                        AVX-512 VNNI (a weight row read once for 8 activation rows), the others
//                        up to 32 rows, longer batches dequantizing panels of rows into sgemm,
//                        each thread its own panels;
//   f32                  matmul_forward (sgemm, or its matrix-vector loop when decoding);
//   anything else        dequantized row panels into sgemm (correct, not tuned).
// Each fast path has a plain `_ref` twin over the same quantized activations.
#pragma once

#include <cstddef>
#include <cstdint>

#include "format/gguf.hpp"

namespace lm::kernels {

// A weight matrix W (OC = rows, C = cols) as the inference kernels read it.
//  f32             rows of C floats;
//  q8_0, q4_0, q4_1, q5_0, q5_1, iq4_nl   pack_weight()'s layout: rows in strips of 16 (the
//                  last one padded with zero rows), and per strip and block of 32 columns, the
//                  16 rows' values interleaved by 4: chunk k (64 bytes) holds values 4k..4k+3
//                  of rows 0..15. q8_0 stores 8 chunks, each value as q + 128 (unsigned); the
//                  others store 4 chunks of nibbles, chunk k in the low and k + 4 in the high
//                  nibbles (the file's byte i holds values i and i + 16), and q5_0 / q5_1 then
//                  8 64-bit masks of fifth bits (bit 4r + i of mask k: row r, value 4k + i).
//                  Then all strips' f16 block scales, 16 per strip and block (q4_1, q5_1: then
//                  16 mins).
//  other types     rows of ggml blocks, as in the file.
struct QWeight {
  format::GgmlType type = format::GgmlType::F32;
  int rows = 0, cols = 0;
  const void* data = nullptr;  // 64-byte aligned for the repacked types
};

// Bytes pack_weight() writes for a rows x cols matrix of type t (the file's bytes for types
// that are not repacked). cols is a multiple of t's block.
size_t packed_size(format::GgmlType t, int rows, int cols);
// Copies rows of ggml blocks (the tensor's bytes in the file, possibly unaligned) into dst in
// the QWeight layout above. dst holds packed_size() bytes.
void pack_weight(format::GgmlType t, const void* src, int rows, int cols, void* dst);
// Row `row` of W as floats (cols values): the embedding lookup of a quantized token_embd.
void dequantize_weight_row(const QWeight& W, int row, float* out);

// Scratch bytes qmatmul_forward needs for N input rows with W (the activations' quantized copy
// or a dequantized panel of W).
size_t qmatmul_scratch(const QWeight& W, int N);

// y (N, OC) = x (N, C) W^T + beta * y. scratch holds qmatmul_scratch(W, N) bytes, 64-byte aligned.
void qmatmul_forward(float* y, const float* x, const QWeight& W, int N, float beta, void* scratch);
// The same computation in plain loops (allocates its own scratch; for tests).
void qmatmul_forward_ref(float* y, const float* x, const QWeight& W, int N, float beta);

// Several weights on the same input (q, k, v; gate, up), up to 8: outs[i].y = x outs[i].W^T.
// When the weights share a type (or types whose dot products take the same activations, as
// q4_K and q6_K do) the activations are quantized once; decoding runs all of them in one
// parallel region. scratch holds the largest qmatmul_scratch of the outputs.
struct QLinearOut {
  float* y;
  const QWeight* W;
};
void qmatmul_forward_shared(const float* x, int N, const QLinearOut* outs, int n_outs, void* scratch);

// For tests: false makes the packed types' kernels take their AVX2 path (or the portable loops on
// CPUs without AVX2) on an AVX-512 VNNI machine; true restores the fastest. enable_avx2(false)
// with enable_vnni(false) takes the portable loops. Not thread-safe.
void enable_vnni(bool on);
void enable_avx2(bool on);

}  // namespace lm::kernels
