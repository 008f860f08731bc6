// Token file writer and validating reader; the byte layout is documented in token_file.hpp.
#include "format/token_file.hpp"

#include <algorithm>
#include <cstdio>
#include <cstring>

#include "base/error.hpp"
#include "base/utf8.hpp"

namespace lm::format {

namespace {

void put_u32(uint8_t* p, uint32_t v) {
  for (int i = 0; i < 4; ++i) p[i] = uint8_t(v >> (8 * i));
}
void put_u64(uint8_t* p, uint64_t v) {
  for (int i = 0; i < 8; ++i) p[i] = uint8_t(v >> (8 * i));
}
uint32_t get_u32(const uint8_t* p) {
  uint32_t v = 0;
  for (int i = 3; i >= 0; --i) v = (v << 8) | p[i];
  return v;
}
uint64_t get_u64(const uint8_t* p) {
  uint64_t v = 0;
  for (int i = 7; i >= 0; --i) v = (v << 8) | p[i];
  return v;
}

void encode_header(const TokenFileInfo& info, uint64_t n_tokens, uint8_t* h) {
  std::memset(h, 0, kTokenFileHeaderBytes);
  std::memcpy(h, kTokenFileMagic, 8);
  put_u32(h + 8, info.version);
  put_u32(h + 12, info.token_bytes);
  put_u64(h + 16, n_tokens);
  put_u32(h + 24, info.vocab_size);
  put_u64(h + 32, info.fingerprint);
}

// Names what a file that is not a token file looks like, for the first error line.
std::string describe_magic(const uint8_t* p, size_t n) {
  std::string_view s(reinterpret_cast<const char*>(p), n);
  if (s.substr(0, 4) == "GGUF") return "it is a GGUF model file; pass it with -m, and a token file or text as input";
  if (s.substr(0, 24) == "version https://git-lfs.") return "it is a Git LFS pointer, not data; run 'git lfs pull'";
  bool text = true;
  for (size_t i = 0; i < std::min<size_t>(n, 8); ++i)
    if (p[i] < 0x09 || (p[i] > 0x0d && p[i] < 0x20)) text = false;
  const std::string found = "magic '" + escape_bytes(s.substr(0, 8)) + "'";
  if (text) return found + ", expected 'LMTOKENS': it looks like text; make a token file with 'lm-tokenize encode --format bin'";
  return found + ", expected 'LMTOKENS'; make one with 'lm-tokenize encode --format bin'";
}

}  // namespace

TokenFileWriter::TokenFileWriter(OutputFile& out, uint32_t vocab_size, uint64_t fingerprint)
    : out_(out), buffered_(!out.seekable()) {
  if (vocab_size == 0 || vocab_size > (uint32_t{1} << 31))
    throw UsageError("token file vocabulary size " + std::to_string(vocab_size) + " is out of range [1, 2^31]");
  info_.vocab_size = vocab_size;
  info_.token_bytes = token_bytes_for_vocab(vocab_size);
  info_.fingerprint = fingerprint;
  if (!buffered_) {
    uint8_t h[kTokenFileHeaderBytes];
    encode_header(info_, kTokenFileIncomplete, h);
    out_.write(h, sizeof h);
  }
}

void TokenFileWriter::write(const int* ids, size_t n) {
  std::vector<uint8_t>& dst = buffered_ ? pending_ : scratch_;
  if (!buffered_) dst.clear();
  size_t at = dst.size();
  dst.resize(at + n * info_.token_bytes);
  uint8_t* p = dst.data() + at;
  for (size_t i = 0; i < n; ++i) {
    auto v = uint32_t(ids[i]);
    LM_ASSERT(v < info_.vocab_size);
    p[0] = uint8_t(v);
    p[1] = uint8_t(v >> 8);
    if (info_.token_bytes == 4) {
      p[2] = uint8_t(v >> 16);
      p[3] = uint8_t(v >> 24);
    }
    p += info_.token_bytes;
  }
  if (!buffered_) out_.write(dst.data(), dst.size());
  n_tokens_ += n;
}

void TokenFileWriter::finish() {
  uint8_t h[kTokenFileHeaderBytes];
  encode_header(info_, n_tokens_, h);
  if (buffered_) {
    out_.write(h, sizeof h);
    out_.write(pending_.data(), pending_.size());
    pending_.clear();
  } else {
    out_.write_at(0, h, sizeof h);
  }
}

TokenFile::TokenFile(const std::string& path) : file_(path) { parse(); }

TokenFile::TokenFile(MappedFile file) : file_(std::move(file)) { parse(); }

void TokenFile::parse() {
  const std::string& path = file_.path();
  const uint8_t* h = file_.data();
  const size_t size = file_.size();
  if (size == 0) throw FormatError(path, "file is empty, expected a token file header");
  if (std::memcmp(h, kTokenFileMagic, std::min<size_t>(size, 8)) != 0)
    throw FormatError(path, "not a token file: " + describe_magic(h, size), 0);
  if (size < kTokenFileHeaderBytes)
    throw FormatError(path, "truncated header: need " + std::to_string(kTokenFileHeaderBytes) + " bytes, file has " +
                                std::to_string(size));
  info_.version = get_u32(h + 8);
  info_.token_bytes = get_u32(h + 12);
  info_.n_tokens = get_u64(h + 16);
  info_.vocab_size = get_u32(h + 24);
  info_.fingerprint = get_u64(h + 32);
  if (info_.version != kTokenFileVersion)
    throw FormatError(path, "unsupported token file version " + std::to_string(info_.version) + ", expected " +
                                std::to_string(kTokenFileVersion) + "; re-encode it with this lm-tokenize", 8);
  if (info_.token_bytes != 2 && info_.token_bytes != 4)
    throw FormatError(path, "token width " + std::to_string(info_.token_bytes) + " bytes, expected 2 or 4", 12);
  if (info_.n_tokens == kTokenFileIncomplete)
    throw FormatError(path, "token file is incomplete: the writer did not finish; re-run lm-tokenize encode", 16);
  if (info_.vocab_size == 0) throw FormatError(path, "vocabulary size 0, expected at least 1", 24);
  if (info_.token_bytes == 2 && info_.vocab_size > 65536)
    throw FormatError(path, "vocabulary size " + std::to_string(info_.vocab_size) +
                                " does not fit 2-byte tokens, expected at most 65536", 24);
  if (get_u32(h + 28) != 0) throw FormatError(path, "flags " + std::to_string(get_u32(h + 28)) + ", expected 0", 28);
  for (size_t i = 40; i < kTokenFileHeaderBytes; ++i)
    if (h[i] != 0) throw FormatError(path, "reserved header bytes are not zero", int64_t(i));
  uint64_t body = 0, expected = 0;
  if (__builtin_mul_overflow(info_.n_tokens, uint64_t(info_.token_bytes), &body) ||
      __builtin_add_overflow(body, uint64_t(kTokenFileHeaderBytes), &expected))
    throw FormatError(path, "token count " + std::to_string(info_.n_tokens) + " overflows the file size", 16);
  if (expected != size)
    throw FormatError(path, std::string(size < expected ? "truncated: " : "trailing bytes: ") + "header says " +
                                std::to_string(info_.n_tokens) + " tokens, expected " + std::to_string(expected) +
                                " bytes, file has " + std::to_string(size));
  tokens_ = h + kTokenFileHeaderBytes;
}

uint32_t TokenFile::token(uint64_t i) const {
  LM_ASSERT(i < info_.n_tokens);
  const uint8_t* p = tokens_ + i * info_.token_bytes;
  return info_.token_bytes == 2 ? uint32_t(p[0] | (p[1] << 8)) : get_u32(p);
}

void TokenFile::read(uint64_t start, size_t n, int* out) const {
  LM_ASSERT(start <= info_.n_tokens && n <= info_.n_tokens - start);
  if (info_.token_bytes == 2) {
    const uint8_t* p = tokens_ + start * 2;
    for (size_t i = 0; i < n; ++i) out[i] = int(p[2 * i] | (p[2 * i + 1] << 8));
  } else {
    const uint8_t* p = tokens_ + start * 4;
    for (size_t i = 0; i < n; ++i) out[i] = int(get_u32(p + 4 * i));
  }
}

void TokenFile::check_range(uint32_t vocab_size) const {
  const uint64_t n = info_.n_tokens;
  uint32_t max = 0;
  if (info_.token_bytes == 2) {
    for (uint64_t i = 0; i < n; ++i) max = std::max<uint32_t>(max, uint32_t(tokens_[2 * i] | (tokens_[2 * i + 1] << 8)));
  } else {
    for (uint64_t i = 0; i < n; ++i) max = std::max(max, get_u32(tokens_ + 4 * i));
  }
  if (n == 0 || max < vocab_size) return;
  for (uint64_t i = 0; i < n; ++i)  // the slow pass runs only to name the first bad token
    if (token(i) >= vocab_size)
      throw FormatError(path(), "token " + std::to_string(token(i)) + " at index " + std::to_string(i) +
                                    " >= vocabulary size " + std::to_string(vocab_size) +
                                    "; the file was made with a larger vocabulary",
                        int64_t(kTokenFileHeaderBytes + i * info_.token_bytes));
}

void TokenFile::check_fingerprint(uint64_t fingerprint, const std::string& tokenizer_name) const {
  if (fingerprint == info_.fingerprint) return;
  auto hex = [](uint64_t v) {
    char buf[17];
    std::snprintf(buf, sizeof buf, "%016llx", (unsigned long long)v);
    return std::string(buf);
  };
  throw FormatError(path(), "tokenizer fingerprint " + hex(info_.fingerprint) + ", but " + tokenizer_name + " has " +
                                hex(fingerprint) + "; the tokens were made by another tokenizer: use the model that encoded them",
                    32);
}

}  // namespace lm::format
