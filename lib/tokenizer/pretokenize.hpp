// Pre-tokenizers of byte-level BPE vocabularies: tokenizer.ggml.pre names a list of regular
// expressions that split text into words before BPE merges run inside each word, the same
// expressions llama.cpp applies for that name. Matching uses PCRE2 with Unicode properties
// (UCP) and its JIT compiler.
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace lm::tok {

class PreTokenizer {
 public:
  // Throws FormatError naming `source` if `name` is not known (the message lists the known
  // names); never falls back to another expression.
  PreTokenizer(const std::string& name, const std::string& source);
  PreTokenizer(PreTokenizer&&) noexcept;
  PreTokenizer& operator=(PreTokenizer&&) noexcept;
  ~PreTokenizer();

  // Appends the words of `text` to `words`, as views into `text`; their concatenation is
  // `text`. Each expression in turn splits every word the previous one produced; text between
  // matches is a word too. Invalid UTF-8 is matched byte by byte, never rejected.
  // Thread-safe (const).
  void split(std::string_view text, std::vector<std::string_view>& words) const;

  const std::string& name() const;
  // True for the names whose vocabularies llama.cpp marks ignore_merges (the llama3 family): a
  // word that is itself a piece becomes that piece without running the merges.
  bool ignore_merges() const;
  static std::vector<std::string> known();  // sorted
  // The expressions of `name` as listed in pretokenize.cpp (before \s is rewritten), one per
  // splitting step; empty for an unknown name. hf_tokenizer.cpp matches a tokenizer.json's
  // pre-tokenizer against them.
  static std::vector<std::string> expressions(const std::string& name);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace lm::tok
