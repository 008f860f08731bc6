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
template <class Sink>
void stream_tokens(const std::string& path, const Tokenizer& tok, Sink&& sink) {
  LineReader in(path);
  std::string line;
  std::vector<int> ids;
  bool first = true, nl = false;
  while (in.next(line, &nl)) {
    ids.clear();
    tok.encode_line_of_text(line, first, nl, ids);
    first = false;
    if constexpr (std::is_invocable_v<Sink, const std::vector<int>&, size_t>) sink(ids, line.size() + nl);
    else sink(ids);
  }
}

}  // namespace lm::tools
