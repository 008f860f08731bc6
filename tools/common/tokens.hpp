// A text file's tokens as the tools score them: the whole file encoded as one text (llama.cpp's
// tokenization of a file), read and handed on a line at a time so memory stays bounded.
#pragma once

#include <string>
#include <type_traits>
#include <vector>

#include "base/file.hpp"
#include "tokenizer/text_batch.hpp"
#include "tokenizer/tokenizer.hpp"

namespace lm::tools {

// Calls sink(ids) with the token ids of each line of `path` ('-' = stdin) in order; their
// concatenation is the whole-text encoding of the file. A sink that also takes a size_t gets
// the line's bytes, newline included (for progress). Throws IoError.
//
// A GGUF vocabulary's pre-tokenizer may join a newline with the whitespace after it (blank
// lines, indented lines), so lines are gathered where the text cannot be cut
// (can_cut_before): the ids are then exactly the whole file's. Memory is bounded by the
// longest run of such lines.
template <class Sink>
void stream_tokens(const std::string& path, const Tokenizer& tok, Sink&& sink) {
  LineReader in(path);
  std::string line, pending;
  std::vector<int> ids;
  bool first = true, nl = false, pending_nl = false, have_pending = false;
  auto emit = [&] {
    ids.clear();
    tok.encode_line_of_text(pending, first, pending_nl, ids);
    first = false;
    if constexpr (std::is_invocable_v<Sink, const std::vector<int>&, size_t>) sink(ids, pending.size() + pending_nl);
    else sink(ids);
  };
  while (in.next(line, &nl)) {
    if (have_pending && pending_nl && !can_cut_before(tok, line)) {  // joins the line before
      pending += '\n';
      pending += line;
    } else {
      if (have_pending) emit();
      pending.swap(line);
      have_pending = true;
    }
    pending_nl = nl;
  }
  if (have_pending) emit();
}

}  // namespace lm::tools
