// GGUF v3 reader and writer: the model file format shared with llama.cpp. The only code that
// parses GGUF bytes. Architecture checks (which tensors a llama model needs) live in lib/model.
//
// Byte layout (little-endian):
//   u32 magic "GGUF" | u32 version (3; 2 is read too) | u64 n_tensors | u64 n_kv
//   n_kv x { string key | u32 type | value }
//   n_tensors x { string name | u32 n_dims | n_dims x i64 ne | u32 ggml type | u64 offset }
//   zero padding to `general.alignment` (u32, default 32)
//   tensor data: each tensor at data_start + offset, offsets aligned, padded with zeros
// string = u64 length + bytes (no NUL). value = the type's bytes; bool is one byte 0 or 1;
// array = u32 element type + u64 count + elements (arrays of arrays are not allowed here).
// ne[0] is the fastest-varying dimension (a PyTorch [out, in] weight is ne = {in, out}).
// Keys are 1+ bytes of printable ASCII (0x20..0x7e), unique; tensor names 1..63 bytes, unique;
// n_dims 1..4; ne >= 0; ne[0] a multiple of the type's block; offset == the previous tensor's
// offset + bytes, padded to the alignment (first is 0); alignment is a u32 power of two <= 2^20.
// Bounds enforced by the reader (docs/reliability.md, GGUF reader bounds): strings <= 1 GiB,
// arrays <= 2^30 elements, counts never exceed what the remaining bytes can hold, all sizes
// checked for overflow.
// Versions 2 and 3 share this layout; bytes after the last tensor are accepted with a warning.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "base/file.hpp"

namespace lm::format {

inline constexpr std::string_view kKeyArchitecture = "general.architecture";
inline constexpr std::string_view kKeyAlignment = "general.alignment";
inline constexpr std::string_view kKeyName = "general.name";
inline constexpr std::string_view kKeyFileType = "general.file_type";
inline constexpr std::string_view kKeyTokenizerModel = "tokenizer.ggml.model";
inline constexpr std::string_view kKeyTokens = "tokenizer.ggml.tokens";
inline constexpr std::string_view kKeyScores = "tokenizer.ggml.scores";
inline constexpr std::string_view kKeyTokenType = "tokenizer.ggml.token_type";
inline constexpr std::string_view kKeyBosId = "tokenizer.ggml.bos_token_id";
inline constexpr std::string_view kKeyEosId = "tokenizer.ggml.eos_token_id";
inline constexpr std::string_view kKeyUnkId = "tokenizer.ggml.unknown_token_id";
inline constexpr std::string_view kKeyPadId = "tokenizer.ggml.padding_token_id";
inline constexpr std::string_view kKeyAddSpacePrefix = "tokenizer.ggml.add_space_prefix";
inline constexpr std::string_view kKeyMerges = "tokenizer.ggml.merges";
inline constexpr std::string_view kKeyPre = "tokenizer.ggml.pre";
inline constexpr std::string_view kKeyEotId = "tokenizer.ggml.eot_token_id";
inline constexpr std::string_view kKeySepId = "tokenizer.ggml.seperator_token_id";  // llama.cpp's spelling
inline constexpr std::string_view kKeyMaskId = "tokenizer.ggml.mask_token_id";
inline constexpr std::string_view kKeyAddBos = "tokenizer.ggml.add_bos_token";
inline constexpr std::string_view kKeyAddEos = "tokenizer.ggml.add_eos_token";
inline constexpr std::string_view kKeyAddSep = "tokenizer.ggml.add_sep_token";
inline constexpr std::string_view kKeyLowercase = "tokenizer.ggml.normalizer.lowercase";
inline constexpr std::string_view kKeyStripAccents = "tokenizer.ggml.normalizer.strip_accents";
inline constexpr std::string_view kKeyQuantizationVersion = "general.quantization_version";
// Ours: the exact SentencePiece model bytes (u8 array), so lm tools rebuild the same tokenizer.
inline constexpr std::string_view kKeySpmModel = "lm.tokenizer.spm_model";
// Ours, written by lm-quantize (man lm-quantize): where a quantized file came from and, after
// --eval, how it scored against its source. Every key under kKeyQuantizePrefix is replaced when
// a file is quantized again.
inline constexpr std::string_view kKeyQuantizePrefix = "lm.quantize.";
inline constexpr std::string_view kKeyQuantizeSource = "lm.quantize.source";                 // string, base name
inline constexpr std::string_view kKeyQuantizeSourceFileType = "lm.quantize.source_file_type"; // u32 llama ftype
inline constexpr std::string_view kKeyQuantizeType = "lm.quantize.type";                     // string, "q4_k_m"
inline constexpr std::string_view kKeyQuantizeOverrides = "lm.quantize.tensor_types";        // string array
inline constexpr std::string_view kKeyQuantizeTool = "lm.quantize.tool";                     // string, "lm 0.1.0"
inline constexpr std::string_view kKeyEvalFile = "lm.quantize.eval.file";                    // string, base name
inline constexpr std::string_view kKeyEvalTokens = "lm.quantize.eval.tokens";                // u64, scored tokens
inline constexpr std::string_view kKeyEvalCtx = "lm.quantize.eval.ctx";                      // u32
inline constexpr std::string_view kKeyEvalPerplexity = "lm.quantize.eval.perplexity";        // f32, this file
inline constexpr std::string_view kKeyEvalPerplexitySource = "lm.quantize.eval.perplexity_source";  // f32
inline constexpr std::string_view kKeyEvalKld = "lm.quantize.eval.kld";                      // f32, nats/token
inline constexpr std::string_view kKeyEvalTop1 = "lm.quantize.eval.top1_agreement";         // f32, 0..1

inline constexpr uint32_t kGgufVersion = 3;
inline constexpr uint32_t kGgufDefaultAlignment = 32;

// ggml tensor types, numbered as in ggml.h. Values not listed are invalid (4, 5, 31-33 and
// 36-38 were removed from ggml).
enum class GgmlType : uint32_t {
  F32 = 0, F16 = 1, Q4_0 = 2, Q4_1 = 3, Q5_0 = 6, Q5_1 = 7, Q8_0 = 8, Q8_1 = 9,
  Q2_K = 10, Q3_K = 11, Q4_K = 12, Q5_K = 13, Q6_K = 14, Q8_K = 15,
  IQ2_XXS = 16, IQ2_XS = 17, IQ3_XXS = 18, IQ1_S = 19, IQ4_NL = 20, IQ3_S = 21, IQ2_S = 22, IQ4_XS = 23,
  I8 = 24, I16 = 25, I32 = 26, I64 = 27, F64 = 28, IQ1_M = 29, BF16 = 30, TQ1_0 = 34, TQ2_0 = 35, MXFP4 = 39,
};

struct GgmlTypeInfo {
  const char* name;     // "f32", "q8_0", ...
  uint32_t block;       // elements per block
  uint32_t block_bytes; // bytes per block
};

// The type's traits, or nullptr if `raw` is not a valid ggml type. Never throws.
const GgmlTypeInfo* ggml_type_info(uint32_t raw);
inline const GgmlTypeInfo& ggml_type_info(GgmlType t) { return *ggml_type_info(uint32_t(t)); }
// Bytes of a tensor of type t and shape ne[0..n_dims); false on overflow or if ne[0] is not a
// multiple of the block size. Never throws.
bool ggml_tensor_bytes(GgmlType t, const int64_t* ne, uint32_t n_dims, uint64_t* bytes);

enum class GgufType : uint32_t {
  U8 = 0, I8 = 1, U16 = 2, I16 = 3, U32 = 4, I32 = 5, F32 = 6, BOOL = 7, STRING = 8, ARRAY = 9, U64 = 10, I64 = 11,
  F64 = 12,
};
const char* gguf_type_name(GgufType t);  // "u32", "string", "array", ...

// One metadata value. Scalars live in `bits` (little-endian, zero-extended), strings in `str`;
// arrays have `elem_type` and `count`, numeric elements as raw little-endian bytes in `str`
// (count x element size), string elements in `strings` (count of them).
struct GgufValue {
  GgufType type = GgufType::U8;
  GgufType elem_type = GgufType::U8;  // arrays only
  uint64_t bits = 0;
  uint64_t count = 0;
  std::string str;
  std::vector<std::string> strings;
};

struct GgufTensorInfo {
  std::string name;
  GgmlType type = GgmlType::F32;
  uint32_t n_dims = 0;
  int64_t ne[4] = {1, 1, 1, 1};
  uint64_t offset = 0;      // from the start of the data section
  uint64_t n_bytes = 0;
  const uint8_t* data = nullptr;  // valid while the GgufFile lives
  // Product of ne; the reader has checked that it does not overflow.
  uint64_t n_elements() const { return uint64_t(ne[0]) * uint64_t(ne[1]) * uint64_t(ne[2]) * uint64_t(ne[3]); }
};

// A parsed, validated GGUF file. Move-only; tensor data points into its mapping.
class GgufFile {
 public:
  // Maps and parses `path`. Throws IoError, FormatError (with the byte offset of the problem).
  static GgufFile open(const std::string& path);
  // Parses bytes held in memory; `name` is used in messages. Throws FormatError.
  static GgufFile from_bytes(std::string bytes, const std::string& name);

  uint32_t version() const { return version_; }
  uint32_t alignment() const { return alignment_; }
  const std::string& path() const { return path_; }
  uint64_t data_offset() const { return data_offset_; }
  // Notes about accepted oddities (e.g. trailing bytes after the data) for the caller to print.
  const std::vector<std::string>& warnings() const { return warnings_; }

  bool has(std::string_view key) const { return find(key) != nullptr; }
  const GgufValue* find(std::string_view key) const;
  const std::vector<std::pair<std::string, GgufValue>>& metadata() const { return kv_; }

  // Typed getters: FormatError naming the key if it is missing or has another type.
  // Integer getters accept any integer type whose value fits.
  uint32_t get_u32(std::string_view key) const;
  uint64_t get_u64(std::string_view key) const;
  int32_t get_i32(std::string_view key) const;
  float get_f32(std::string_view key) const;
  bool get_bool(std::string_view key) const;
  const std::string& get_string(std::string_view key) const;
  const std::vector<std::string>& get_string_array(std::string_view key) const;
  std::vector<float> get_f32_array(std::string_view key) const;
  std::vector<int32_t> get_i32_array(std::string_view key) const;
  std::string_view get_u8_array(std::string_view key) const;  // u8 or i8 elements, as bytes
  // As above, but std::nullopt when the key is missing (a wrong type still throws).
  std::optional<uint32_t> try_get_u32(std::string_view key) const;
  std::optional<uint64_t> try_get_u64(std::string_view key) const;
  std::optional<int32_t> try_get_i32(std::string_view key) const;
  std::optional<float> try_get_f32(std::string_view key) const;
  std::optional<bool> try_get_bool(std::string_view key) const;
  std::optional<std::string> try_get_string(std::string_view key) const;
  // nullptr when missing; the vector lives as long as the GgufFile.
  const std::vector<std::string>* try_get_string_array(std::string_view key) const;
  std::optional<std::vector<float>> try_get_f32_array(std::string_view key) const;
  std::optional<std::vector<int32_t>> try_get_i32_array(std::string_view key) const;
  std::optional<std::string_view> try_get_u8_array(std::string_view key) const;

  const std::vector<GgufTensorInfo>& tensors() const { return tensors_; }
  const GgufTensorInfo* find_tensor(std::string_view name) const;

 private:
  GgufFile() = default;
  void parse();
  const GgufValue& need(std::string_view key, GgufType type) const;
  [[noreturn]] void type_error(std::string_view key, const GgufValue& v, const char* expected) const;

  std::string path_;
  MappedFile file_;
  std::string bytes_;  // from_bytes keeps its data here; >= 24 bytes, so heap-held and stable across moves
  const uint8_t* data_ = nullptr;
  size_t size_ = 0;
  uint32_t version_ = 0;
  uint32_t alignment_ = kGgufDefaultAlignment;
  uint64_t data_offset_ = 0;
  std::vector<std::pair<std::string, GgufValue>> kv_;
  std::unordered_map<std::string_view, size_t> kv_index_;
  std::vector<GgufTensorInfo> tensors_;
  std::unordered_map<std::string_view, size_t> tensor_index_;
  std::vector<std::string> warnings_;
};

// Throws FormatError naming the tensor and element index of the first NaN or Inf in an F32,
// F16 or BF16 tensor, with its byte offset in the file (other types are not scanned).
void check_finite(const GgufFile& file, const GgufTensorInfo& tensor);

// Collects metadata and tensors, then writes a GGUF v3 file. Keys keep insertion order; setting
// a key again replaces its value. Tensor data is copied only when written.
class GgufWriter {
 public:
  void set_u8(std::string_view key, uint8_t v);
  void set_u32(std::string_view key, uint32_t v);
  void set_i32(std::string_view key, int32_t v);
  void set_u64(std::string_view key, uint64_t v);
  void set_f32(std::string_view key, float v);
  void set_bool(std::string_view key, bool v);
  void set_string(std::string_view key, std::string_view v);
  void set_array_string(std::string_view key, const std::vector<std::string>& v);
  void set_array_f32(std::string_view key, const std::vector<float>& v);
  void set_array_i32(std::string_view key, const std::vector<int32_t>& v);
  void set_array_u8(std::string_view key, std::string_view bytes);
  // Any value, e.g. one copied from a GgufFile. All setters throw UsageError for a key the reader
  // would reject (empty, bytes outside 0x20..0x7e), an inconsistent value (count not matching the
  // elements, bool not 0/1, array of arrays), or a general.alignment that is not a u32 power of
  // two in [1, 2^20].
  void set_value(std::string_view key, GgufValue v);
  // Adds a tensor; `data` must hold ggml_tensor_bytes(type, ne) bytes and stay valid until
  // write(). Throws UsageError for a bad name, shape or type.
  void add_tensor(std::string_view name, GgmlType type, const std::vector<int64_t>& ne, const void* data);
  // Adds a tensor whose bytes are produced while the file is written, by write()'s `fill`.
  // Throws UsageError as add_tensor.
  void add_tensor_deferred(std::string_view name, GgmlType type, const std::vector<int64_t>& ne);
  size_t n_tensors() const { return tensors_.size(); }
  uint64_t tensor_bytes(size_t i) const { return tensors_[i].n_bytes; }
  // The bytes add_tensor was given for tensor i (nullptr for a deferred one).
  const void* tensor_data(size_t i) const { return tensors_[i].data; }
  // The exact size write() will produce.
  uint64_t file_size() const;
  // What write() puts before the tensor data: metadata, tensor infos, padding. Setting values of
  // the same size keeps its size, so it can be written again over a finished file (write_at).
  std::string header() const { return header_bytes(); }
  // Writes the whole file to `out` (the caller commits it). Tensors added with
  // add_tensor_deferred get their bytes from fill(i, dst), called in tensor order, which must
  // write exactly tensor_bytes(i) bytes to dst (a buffer of the writer's). Throws IoError, and
  // whatever fill throws.
  void write(OutputFile& out, const std::function<void(size_t i, uint8_t* dst)>& fill = {}) const;
  // Writes the file to `path` atomically (temp file, fsync, rename). Throws IoError.
  void save(const std::string& path) const;

 private:
  struct Tensor {
    std::string name;
    GgmlType type;
    std::vector<int64_t> ne;
    uint64_t n_bytes;
    const void* data;
    bool deferred;  // bytes from write()'s fill
  };
  uint32_t alignment() const;
  std::string header_bytes() const;
  std::vector<std::pair<std::string, GgufValue>> kv_;
  std::vector<Tensor> tensors_;
};

}  // namespace lm::format
