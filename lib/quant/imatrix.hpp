// Importance matrices in llama.cpp's imatrix GGUF format (what llama-imatrix writes and
// llama-quantize --imatrix reads), so either tool's file works with the other's:
//   general.type = "imatrix"; imatrix.datasets (string array: the texts it was computed on),
//   imatrix.chunk_count (u32: chunks evaluated), imatrix.chunk_size (u32: tokens per chunk);
//   per weight matrix NAME (its tensor name in the model, "blk.0.attn_q.weight"), two F32 tensors:
//   NAME.in_sum2 {cols, n_mat}: the sum over tokens of each input column's squared activation,
//   NAME.counts  {1, n_mat}:    the number of tokens summed (n_mat > 1 only for experts).
// Tensors are written in name order, as llama-imatrix does. llama.cpp's older .dat format is
// not read.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace lm::quant {

struct ImatrixEntry {
  int64_t cols = 0;
  std::vector<float> sums;      // n_mat x cols, matrix-major
  std::vector<int64_t> counts;  // n_mat (stored as F32 in the file; read back rounded)
  int n_mat() const { return int(counts.size()); }
};

struct Imatrix {
  std::map<std::string, ImatrixEntry> entries;  // by weight name
  std::vector<std::string> datasets;
  uint32_t chunk_count = 0, chunk_size = 0;

  // Adds `rows` input rows of `cols` activations (row-major) that matrix `name` multiplied:
  // sums[j] += x[j]^2 row after row in float, counts += rows, as llama-imatrix accumulates
  // them. Throws Error if `name` was seen with another width.
  void accumulate(const std::string& name, const float* x, int rows, int cols);
  // The weights llama-quantize gives the quantizers: each column's sum over its count, per
  // matrix (1 for a matrix with count 0), n_mat x cols values.
  static std::vector<float> importance(const ImatrixEntry& e);
};

// Reads an imatrix GGUF file. Throws IoError, or FormatError naming the file for a file that
// is not one (no NAME.in_sum2 / NAME.counts pairs, a pair without its other half, types other
// than F32, shapes that disagree, non-finite values or negative counts).
Imatrix read_imatrix(const std::string& path);
// Writes m to `path` atomically. Throws IoError.
void save_imatrix(const std::string& path, const Imatrix& m);

}  // namespace lm::quant
