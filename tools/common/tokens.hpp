// A text file's tokens as the tools score them: the whole file encoded as one text (llama.cpp's
// tokenization of a file), read and handed on a line at a time so memory stays bounded.
#pragma once

#include <string>
#include <type_traits>
#include <vector>

#include "base/file.hpp"
#include "tokenizer/tokenizer.hpp"

namespace lm::tools {

// Calls sink(ids) with the token ids of each line of `path` ('-' = stdin) in order; their
// concatenation is the whole-text encoding of the file. A sink that also takes a size_t gets
// the line's bytes, newline included (for progress). Throws IoError.
//
// A GGUF vocabulary's pre-tokenizer may join a newline with the whitespace after it (blank
// lines, indented lines), so there lines are gathered and encoded together, and cut only
// before a line that starts with a byte other than whitespace: the ids are then exactly the
// whole file's. Memory is bounded by the longest run of such lines.
template <class Sink>
void stream_tokens(const std::string& path, const Tokenizer& tok, Sink&& sink) {
  LineReader in(path);
  std::string line, pending;
  std::vector<int> ids;
  bool first = true, nl = false, pending_nl = false;
  const bool gather = tok.vocab_spec() != nullptr;
  auto emit = [&](const std::string& text, bool newline) {
    ids.clear();
    tok.encode_line_of_text(text, first, newline, ids);
    first = false;
    if constexpr (std::is_invocable_v<Sink, const std::vector<int>&, size_t>) sink(ids, text.size() + newline);
    else sink(ids);
  };
  auto starts_word = [](const std::string& s) {
    return !s.empty() && s[0] != ' ' && s[0] != '\t' && s[0] != '\r' && s[0] != '\f' && s[0] != '\v';
  };
  bool have_pending = false;
  while (in.next(line, &nl)) {
    if (!gather) {
      emit(line, nl);
      continue;
    }
    if (have_pending && starts_word(line)) {
      emit(pending, pending_nl);
      have_pending = false;
    }
    if (have_pending) {
      pending += '\n';
      pending += line;
    } else {
      pending = line;
    }
    pending_nl = nl;
    have_pending = true;
  }
  if (have_pending) emit(pending, pending_nl);
}
}  // namespace lm::tools
