// Which type each tensor of a llama-arch model gets when the model is quantized: the file types
// lm writes, llama.cpp's mixing rules for them (llama_tensor_get_type in src/llama-quant.cpp),
// user overrides and the fallbacks for shapes a type cannot hold. The bytes are converted by
// model/quant_convert.hpp; reading and writing files is left to the callers.
#pragma once

#include <cstdint>
#include <optional>
#include <regex>
#include <string>
#include <string_view>
#include <vector>

#include "format/gguf.hpp"

namespace lm::quant {

// File types lm-quantize writes: the type of most 2-D weights, and its llama_ftype number
// (llama.h) for general.file_type.
enum class FileType { F32, F16, BF16, Q8_0, Q4_0, Q6_K, Q4_K_M, Q5_K_M, Q5_0, Q4_1, Q3_K_M, Q2_K };

struct FileTypeInfo {
  FileType type;
  const char* name;          // canonical lower-case name: "q4_k_m"
  uint32_t llama_ftype;      // general.file_type
  format::GgmlType base;     // the type of most 2-D weights
};

// Every file type, in the order of the tables in man lm-quantize.
const std::vector<FileTypeInfo>& file_types();
const FileTypeInfo& file_type_info(FileType t);
// The file type named `name`, case-insensitive; "q4_k" is q4_k_m, "q5_k" q5_k_m and "q3_k"
// q3_k_m (llama-quantize's aliases). nullopt if unknown.
std::optional<FileType> try_parse_file_type(std::string_view name);
// True unless every weight stays a float type (f32, f16, bf16).
bool is_quantized(FileType t);
// A llama_ftype number as a lower-case name ("q5_k_m"), also for types lm does not write;
// "unknown" for numbers llama.cpp does not define.
std::string llama_ftype_name(uint32_t ftype);

// A tensor type --tensor-type may name: f32 f16 bf16 and every block type lm writes (q8_0 q4_0
// q4_1 q5_0 q5_1 iq4_nl q2_K q3_K q4_K q5_K q6_K iq4_xs), case-insensitive.
std::optional<format::GgmlType> try_parse_tensor_type(std::string_view name);
// Their names, comma-separated, for messages.
const char* tensor_type_names();

// --tensor-type REGEX=TYPE: tensors whose name regex_search()es `pattern` (ECMAScript) get
// `type`, before the mixing rules; the first matching override wins.
struct TensorTypeOverride {
  std::string spec;  // as given, "attn_v=q8_0"
  std::string pattern;
  std::regex re;
  format::GgmlType type = format::GgmlType::F32;
};
// Parses "REGEX=TYPE" (split at the last '='). Throws UsageError naming the spec for a missing
// '=', an empty pattern, a bad regular expression or an unknown type.
TensorTypeOverride parse_tensor_type_override(const std::string& spec);

// llama.cpp's choice of the layers that get more bits in q4_k_m and q5_k_m (attn_v, ffn_down): the first
// and last eighth of the n_layer layers, and every third layer in between.
bool use_more_bits(int i_layer, int n_layer);

// Where a tensor's output type came from.
enum class Reason {
  Copy,      // not a weight matrix (norms, 1-D tensors): copied unchanged
  FileType,  // the file type's base type
  Output,    // output.weight, or token_embd.weight of a tied model: q6_K (q8_0 in q8_0 files)
  MoreBits,  // a mixture's rule for attn_v, ffn_down or attn_output (q4_k_m, q5_k_m, q3_k_m, q2_k;
             // q4_0 and q5_0 with an importance matrix)
  Override,  // a --tensor-type override
};
const char* reason_name(Reason r);  // "copy", "type", "output", "more bits", "override"

struct TensorPlan {
  std::string name;
  std::vector<int64_t> ne;          // ggml order: ne[0] values per row
  format::GgmlType in = format::GgmlType::F32, out = format::GgmlType::F32;
  uint64_t n_elements = 0, bytes_in = 0, bytes_out = 0;
  bool weight = false;              // a weight matrix the file type applies to (in the weights' bpw)
  Reason reason = Reason::Copy;
  int override_index = -1;          // Reason::Override: index into the overrides
  std::optional<format::GgmlType> fallback_from;  // the type ne[0] did not fit, if any
  // True when the tensor is converted from a quantized type (neither float nor the same type).
  bool requantized() const;
};

struct Plan {
  FileType type = FileType::F32;
  std::vector<TensorPlan> tensors;  // in the input's order
  std::vector<std::string> warnings;  // one per fallback, naming the tensor
  uint64_t n_elements = 0, bytes_in = 0, bytes_out = 0;              // all tensors' data
  uint64_t weight_elements = 0, weight_bytes_in = 0, weight_bytes_out = 0;  // weight matrices only
  double weight_bpw_out() const { return weight_elements ? 8.0 * double(weight_bytes_out) / double(weight_elements) : 0; }
  double weight_bpw_in() const { return weight_elements ? 8.0 * double(weight_bytes_in) / double(weight_elements) : 0; }
  // The first tensor converted from a quantized type, or nullptr.
  const TensorPlan* first_requantized() const;
};

// Decides every tensor's output type. A weight matrix is a tensor of 2+ dimensions whose name
// ends in "weight" and is not a norm; everything else is copied. For a weight:
//  1. the first override whose pattern matches the name, if any; else
//  2. the file type's base type, with llama.cpp's rules for quantized file types:
//     output.weight (token_embd.weight when there is no output.weight) is q6_K, or q8_0 when the
//     file type is q8_0 or ne[0] is not a multiple of 256; in q4_k_m and q5_k_m,
//     blk.N.attn_v and blk.N.ffn_down are q6_K when use_more_bits(N, n_layer); in q3_k_m,
//     attn_v is q5_K in layers 0 and 1 and q4_K after, ffn_down q5_K in the first n_layer / 16
//     layers and q4_K after, attn_output q4_K; in q2_k, attn_v is q4_K when n_gqa (heads per
//     kv head) >= 4 and q3_K otherwise, ffn_down and attn_output q3_K; with has_imatrix (an
//     importance matrix, as llama-quantize --imatrix), in q4_0 and q5_0 blk.N.ffn_down is q4_1 /
//     q5_1 in the first n_layer / 8 layers;
//  3. if ne[0] is not a multiple of the chosen type's block, llama.cpp's fallback: q2_K, q3_K to
//     q4_0, q4_K to q5_0, q5_K to q5_1, q6_K to q8_0, iq4_xs to iq4_nl, and f16 when that does
//     not fit either or for a type of 32-value blocks (where llama.cpp stops), with a warning
//     naming the tensor.
// Sizes come from ggml_type_info. Throws nothing but std::bad_alloc.
Plan make_plan(const std::vector<format::GgufTensorInfo>& tensors, FileType type,
               const std::vector<TensorTypeOverride>& overrides, int n_layer, int n_gqa = 1,
               bool has_imatrix = false);

}  // namespace lm::quant
