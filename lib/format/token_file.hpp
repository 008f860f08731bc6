// Token files: the output of `lm-tokenize encode --format bin` and the input of lm-train.
// Documented for users in man/lm-tokens.5. All multi-byte fields are little-endian.
//
//   offset size  field
//   0      8     magic "LMTOKENS"
//   8      4     u32 version = 1
//   12     4     u32 token_bytes: 2 (u16 tokens) or 4 (u32 tokens)
//   16     8     u64 n_tokens; 0xFFFFFFFFFFFFFFFF while the writer has not finished
//   24     4     u32 vocab_size of the tokenizer that wrote the file (every token < vocab_size)
//   28     4     u32 flags, 0 (reserved)
//   32     8     u64 tokenizer fingerprint: FNV-1a 64 of the SentencePiece model bytes
//   40     24    reserved, zero
//   64     n_tokens * token_bytes   the tokens
//
// The file size is exactly 64 + n_tokens * token_bytes. A file holds one token stream: the
// whole-text encoding of its input (Tokenizer::encode_line_of_text), newlines included.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "base/file.hpp"

namespace lm::format {

inline constexpr char kTokenFileMagic[8] = {'L', 'M', 'T', 'O', 'K', 'E', 'N', 'S'};
inline constexpr uint32_t kTokenFileVersion = 1;
inline constexpr size_t kTokenFileHeaderBytes = 64;
inline constexpr uint64_t kTokenFileIncomplete = ~uint64_t{0};

struct TokenFileInfo {
  uint32_t version = kTokenFileVersion;
  uint32_t token_bytes = 2;
  uint64_t n_tokens = 0;
  uint32_t vocab_size = 0;
  uint64_t fingerprint = 0;
};

// Token width for a vocabulary: 2 bytes up to 65536 pieces, else 4.
inline uint32_t token_bytes_for_vocab(uint32_t vocab_size) { return vocab_size <= 65536 ? 2 : 4; }

// Streams tokens into an OutputFile. On a seekable output the header is written first with
// n_tokens = "incomplete" and patched by finish(); on a pipe the tokens are kept in memory and
// written after the header by finish(). The caller commits the OutputFile after finish().
class TokenFileWriter {
 public:
  // Throws UsageError if vocab_size is 0 or above 2^31.
  TokenFileWriter(OutputFile& out, uint32_t vocab_size, uint64_t fingerprint);
  // Appends tokens; each must be < vocab_size (LM_ASSERT: the tokenizer produced them).
  void write(const int* ids, size_t n);
  void write(const std::vector<int>& ids) { write(ids.data(), ids.size()); }
  // Writes the final header. Throws IoError.
  void finish();
  uint64_t n_tokens() const { return n_tokens_; }

 private:
  OutputFile& out_;
  TokenFileInfo info_;
  uint64_t n_tokens_ = 0;
  bool buffered_;
  std::vector<uint8_t> pending_;  // tokens held back when the output is not seekable
  std::vector<uint8_t> scratch_;
};

// A validated, memory-mapped token file. Throws FormatError naming the file for a bad magic,
// version, width, an incomplete file, or a size that disagrees with the header.
class TokenFile {
 public:
  explicit TokenFile(const std::string& path);
  // Takes an already opened input (e.g. stdin read after peeking at its magic).
  explicit TokenFile(MappedFile file);
  const TokenFileInfo& info() const { return info_; }
  uint64_t size() const { return info_.n_tokens; }
  uint32_t token(uint64_t i) const;  // i < size()
  // Copies tokens [start, start + n) into out. Requires start + n <= size().
  void read(uint64_t start, size_t n, int* out) const;
  // Checks every token against vocab_size: FormatError "token T at index I >= vocab V".
  void check_range(uint32_t vocab_size) const;
  // FormatError if the file was written by a tokenizer with another fingerprint.
  void check_fingerprint(uint64_t fingerprint, const std::string& tokenizer_name) const;
  const std::string& path() const { return file_.path(); }

 private:
  void parse();
  MappedFile file_;
  TokenFileInfo info_;
  const uint8_t* tokens_ = nullptr;
};

}  // namespace lm::format
