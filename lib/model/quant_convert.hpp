// Writing a quantized copy of a GGUF model: converting tensor rows between types, the output's
// metadata (the input's keys, general.file_type, lm.quantize.*) and its tensors as a Plan
// (quant_policy.hpp) says. Opening files, the output's life cycle and evaluation are the caller's.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "format/gguf.hpp"
#include "model/quant_policy.hpp"

namespace lm::quant {

// Converts `rows` rows of n values each from type `in` at src to type `out` at dst (rows of
// row_size(in, n) and row_size(out, n) bytes), through f32, rows in parallel on the OpenMP
// threads; the same type is a copy. Both types must be is_supported and n a multiple of both
// blocks. Pointers may be unaligned. The result does not depend on the number of threads.
// `importance` (n values, or nullptr): per-column weights for quant::quantize_row_weighted.
void convert_rows(format::GgmlType in, const void* src, format::GgmlType out, void* dst, size_t rows, size_t n,
                  const float* importance = nullptr);

// Throws FormatError naming `in`'s file and the first tensor the plan converts from a type lm
// cannot read, or to a type this build cannot write.
void check_convertible(const format::GgufFile& in, const Plan& plan);

// What lm.quantize.* records besides the eval results.
struct QuantizeInfo {
  std::string source;                  // the input's base name
  std::vector<std::string> overrides;  // --tensor-type specs, as given
  // With --imatrix, llama-quantize's quantize.imatrix.* keys: file (as given), dataset (the
  // first), entries_count, chunks_count (when > 0).
  std::string imatrix_file, imatrix_dataset;
  int32_t imatrix_entries = 0, imatrix_chunks = 0;
};

// Sets up `w` as the quantized copy of `in`: every metadata key of `in` in order except
// lm.quantize.* and quantize.imatrix.* (they describe an earlier quantization), then general.file_type,
// general.quantization_version = 2 for quantized file types (as llama-quantize writes), and
// lm.quantize.source, .source_file_type (when `in` has general.file_type), .type,
// .tensor_types (when overrides were given), .tool; then every tensor of the plan, deferred:
// write_quantized_tensor() makes their bytes. `in` must be the file the plan was made from.
void add_quantized_model(format::GgufWriter& w, const format::GgufFile& in, const Plan& plan, const QuantizeInfo& info);

// Writes tensor i of the plan (of file `in`) in its output type to dst (plan.tensors[i].bytes_out
// bytes). Throws FormatError naming the file and tensor if a float input holds NaN or Inf.
// `importance`: ne[0] x ne[2] per-column weights (each ne[0] x ne[1] matrix its own ne[0]), or
// nullptr.
void write_quantized_tensor(const format::GgufFile& in, const Plan& plan, size_t i, uint8_t* dst,
                            const float* importance = nullptr);

// lm.quantize.eval.*: the quantized model against its source on a text, lm-eval's chunks.
struct QuantEval {
  std::string file;               // the text's base name
  uint64_t tokens = 0;            // scored tokens
  uint32_t ctx = 0;               // chunk length
  float perplexity = 0;           // of the quantized model
  float perplexity_source = 0;    // of the source model
  float kld = 0;                  // mean KL(source || quantized), nats per token
  float top1_agreement = 0;       // share of positions where both models' top tokens agree
};
// Sets the lm.quantize.eval.* keys. Values of another QuantEval with the same file name take
// the same bytes, so a header written with placeholders can be rewritten in place.
void set_quant_eval(format::GgufWriter& w, const QuantEval& e);
// The eval keys of a file, or nullopt if it has none (or they have unexpected types).
std::optional<QuantEval> try_get_quant_eval(const format::GgufFile& g);

}  // namespace lm::quant
