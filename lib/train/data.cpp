// Token streams for training from token files or text.
#include "train/data.hpp"

#include <algorithm>
#include <cstring>

#include "base/error.hpp"
#include "base/file.hpp"
#include "format/token_file.hpp"
#include "tokenizer/text_batch.hpp"

namespace lm::train {

std::vector<int> load_tokens(const std::string& path, const Tokenizer& tok, const std::string& tok_name, int threads) {
  MappedFile file(path);
  std::vector<int> ids;
  if (file.size() >= 8 && std::memcmp(file.data(), format::kTokenFileMagic, 8) == 0) {
    format::TokenFile tf(std::move(file));
    tf.check_fingerprint(tok.fingerprint(), tok_name);
    tf.check_range(uint32_t(tok.vocab_size()));
    ids.resize(tf.size());
    tf.read(0, ids.size(), ids.data());
    return ids;
  }
  // Text from here on: refuse what is plainly not text rather than train on its bytes.
  if (file.size() >= 4 && std::memcmp(file.data(), "GGUF", 4) == 0)
    throw FormatError(path, "is a GGUF model file, not training text or a token file");
  const std::string_view head = file.view().substr(0, 4096);
  if (const size_t nul = head.find('\0'); nul != std::string_view::npos)
    throw FormatError(path, "has a NUL byte at offset " + std::to_string(nul) +
                                ": a binary file, not training text or a token file (UTF-16 text must be converted)");
  DocumentBatch doc(tok);
  std::string_view rest = file.view();
  size_t line_no = 0;
  while (!rest.empty()) {
    const size_t nl = rest.find('\n');
    // The line-length limit of every text reader: the tokenizer's memory grows with a line.
    if (++line_no, std::min(nl, rest.size()) > LineReader::kDefaultMaxLine)
      throw line_too_long(file.path(), line_no, LineReader::kDefaultMaxLine);
    doc.add(rest.substr(0, nl), line_no == 1, nl != std::string_view::npos);
    rest = nl == std::string_view::npos ? std::string_view() : rest.substr(nl + 1);
  }
  std::vector<std::vector<int>> per_line;
  doc.encode(per_line, threads, true);
  for (const auto& v : per_line) ids.insert(ids.end(), v.begin(), v.end());
  return ids;
}

void check_held_out(const std::vector<int>& valid, int context, const std::string& train_name,
                    const std::string& valid_name) {
  if (valid.empty() || valid.size() > size_t(context)) return;
  const std::string need = std::to_string(valid.size()) + " tokens, fewer than the " + std::to_string(context + 1) +
                           " one validation window needs";
  if (!valid_name.empty())
    throw FormatError(valid_name, "has " + need + "; give more held-out text or a shorter context");
  throw FormatError(train_name, "its held-out share (--valid-fraction) has " + need +
                                    "; give more text, a larger --valid-fraction or a --valid file");
}

void check_valid_fraction(double fraction) {
  if (!(fraction >= 0 && fraction <= 0.5))
    throw UsageError("--valid-fraction " + std::to_string(fraction) + " is out of range [0, 0.5]");
}

std::vector<int> split_validation(std::vector<int>& train, double fraction) {
  check_valid_fraction(fraction);
  const size_t n = size_t(double(train.size()) * fraction);
  std::vector<int> valid(train.end() - long(n), train.end());
  train.resize(train.size() - n);
  return valid;
}

}  // namespace lm::train
