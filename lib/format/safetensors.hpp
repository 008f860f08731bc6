// Safetensors reader: Hugging Face's tensor file format, and model folders made of one file or
// of shards listed in model.safetensors.index.json. The only code that parses safetensors bytes;
// what it checks and its limits are in docs/formats.md (Safetensors) and docs/reliability.md
// (bad-input catalogue, B).
//
// Byte layout:
//   u64 N (little-endian) | N bytes of JSON (UTF-8, may end with spaces) | data section
// The JSON is one object: each key a tensor name whose value is
//   {"dtype": "F32", "shape": [2, 3], "data_offsets": [begin, end]}
// with begin and end counted from the first byte of the data section, and optionally a key
// "__metadata__" whose value is an object of string values. shape[0] is the slowest-varying
// dimension (PyTorch order, the reverse of GGUF's ne); a shape of [] is a scalar.
//
// Checks: N at most the file size - 8 and at most kMaxSafetensorsHeader; the JSON valid, an
// object, with no duplicate key at any level and nothing but the fields above; dtypes from the
// table below; at most 64 dimensions, each an integer in [0, 2^63); the element count times the dtype's
// size computed without overflow and equal to end - begin; begin <= end <= the data size; no
// two tensors' byte ranges overlapping. Gaps between tensors and bytes after the last one are
// accepted. Memory: the parse holds no JSON tree, only the tensor list, which may take at most
// the file's size + 64 MiB (a header of millions of empty tensors is refused).
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "base/file.hpp"

namespace lm::format {

// Largest JSON header read: far above real files (a 400-tensor Llama 3 70B shard has ~60 KB).
inline constexpr uint64_t kMaxSafetensorsHeader = uint64_t{100} << 20;
// Largest model.safetensors.index.json read (real ones are tens of KB).
inline constexpr uint64_t kMaxSafetensorsIndex = uint64_t{64} << 20;

// Most dimensions a tensor may have (PyTorch allows 64 at most in practice).
inline constexpr size_t kMaxSafetensorsDims = 64;

// The dtypes of the safetensors format. Sub-byte types (F4, F6_*) are read as packed bits; a
// tensor's bit count must then be a multiple of 8.
enum class SafetensorsDtype : uint8_t {
  BOOL, U8, I8, F8_E5M2, F8_E4M3, F8_E8M0, I16, U16, F16, BF16, I32, U32, F32, F64, I64, U64, C64, F4, F6_E2M3,
  F6_E3M2,
};
// "F32", "BF16", ... as written in the header.
const char* safetensors_dtype_name(SafetensorsDtype t);
// Bits per element (1 byte for BOOL).
unsigned safetensors_dtype_bits(SafetensorsDtype t);
// The dtype spelled `name` (exact, case-sensitive), false if the table has none.
bool safetensors_dtype_from_name(std::string_view name, SafetensorsDtype* out);

struct SafetensorsTensor {
  std::string name;
  SafetensorsDtype dtype = SafetensorsDtype::F32;
  std::vector<int64_t> shape;      // PyTorch order; empty for a scalar
  uint64_t elements = 1;           // product of shape; checked not to overflow
  uint64_t offset = 0;             // of the first byte, from the start of the file
  uint64_t bytes = 0;              // end - begin
  const uint8_t* data = nullptr;   // valid while its file lives; not aligned to anything
};

// A parsed, validated .safetensors file. Move-only; tensor data points into its mapping.
class SafetensorsFile {
 public:
  // Maps and parses `path` (a regular file). Throws IoError, FormatError naming the file and
  // the tensor, key or byte offset of the problem.
  static SafetensorsFile open(const std::string& path);
  // Parses bytes held in memory; `name` is used in messages. Throws FormatError.
  static SafetensorsFile from_bytes(std::string bytes, const std::string& name);

  const std::string& path() const { return path_; }
  uint64_t header_bytes() const { return header_bytes_; }  // N
  uint64_t data_offset() const { return 8 + header_bytes_; }
  // Tensors in the order of the JSON header.
  const std::vector<SafetensorsTensor>& tensors() const { return tensors_; }
  const SafetensorsTensor* find(std::string_view name) const;
  // The "__metadata__" strings (e.g. {"format": "pt"}); empty if the header has none.
  const std::map<std::string, std::string>& metadata() const { return metadata_; }

 private:
  SafetensorsFile() = default;
  void parse();

  std::string path_;
  MappedFile file_;
  std::vector<uint8_t> bytes_;  // from_bytes keeps its data here (its buffer survives moves)
  const uint8_t* data_ = nullptr;
  size_t size_ = 0;
  uint64_t header_bytes_ = 0;
  std::vector<SafetensorsTensor> tensors_;
  std::unordered_map<std::string_view, size_t> index_;
  std::map<std::string, std::string> metadata_;
};

// Whether a tensor of this dtype converts to float: F32, F16, BF16, F64, F8_E4M3, F8_E5M2, BOOL
// and the integer types (I8 to I64, U8 to U64; 64-bit values rounded to the nearest float).
bool safetensors_to_float_supported(SafetensorsDtype t);
// Converts elements [first, first + count) of `t` to float into dst[0, count). Throws
// FormatError naming `file` (the tensor's file, for the message) and the tensor if its dtype is
// not convertible, UsageError if the range is past the tensor's elements. NaN and Inf are kept
// (the caller checks finiteness).
void safetensors_to_float(const SafetensorsTensor& t, uint64_t first, uint64_t count, float* dst,
                          const std::string& file = "");
// All of the tensor: dst holds t.elements floats.
inline void safetensors_to_float(const SafetensorsTensor& t, float* dst, const std::string& file = "") {
  safetensors_to_float(t, 0, t.elements, dst, file);
}

// A Hugging Face model's weights: one .safetensors file, or the shards that a
// model.safetensors.index.json lists. Move-only; tensors stay valid while it lives.
class SafetensorsModel {
 public:
  // `path` is one of:
  //  - a directory: its model.safetensors.index.json if present, else its model.safetensors;
  //  - a file whose name ends in ".json": an index, {"weight_map": {tensor: shard file}, ...}
  //    (other top-level keys, such as "metadata", are not used);
  //  - any other file: a single .safetensors file.
  // For an index: shard names are plain file names in the index's directory (no '/', '\',
  // "..", not empty); each shard is opened once; every tensor of the weight map must be in its
  // shard; tensors a shard holds but the map does not list are left out (and counted in
  // warnings()). Throws IoError, FormatError naming the file and the tensor or shard.
  static SafetensorsModel open(const std::string& path);

  // The index file, or the single file.
  const std::string& path() const { return path_; }
  bool sharded() const { return sharded_; }
  // Every tensor: for an index, in weight_map order, each pointing into its shard.
  const std::vector<const SafetensorsTensor*>& tensors() const { return tensors_; }
  const SafetensorsTensor* find(std::string_view name) const;
  // The file that holds `t` (one of shards()).
  const SafetensorsFile& file_of(const SafetensorsTensor& t) const;
  const std::vector<SafetensorsFile>& shards() const { return shards_; }
  const std::vector<std::string>& warnings() const { return warnings_; }

 private:
  SafetensorsModel() = default;
  void add_file_tensors(size_t shard);

  std::string path_;
  bool sharded_ = false;
  std::vector<SafetensorsFile> shards_;
  std::vector<const SafetensorsTensor*> tensors_;
  std::vector<size_t> tensor_shard_;  // shard of tensors_[i]
  std::unordered_map<std::string_view, size_t> index_;
  std::vector<std::string> warnings_;
};

}  // namespace lm::format
