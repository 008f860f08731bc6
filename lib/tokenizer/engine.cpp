// Shared parts of the GGUF-vocabulary tokenizer families (engine.hpp).
#include "tokenizer/engine.hpp"

#include <cstdio>

namespace lm::tok {

void Vocab::index() {
  ids.clear();
  ids.reserve(pieces.size());
  for (size_t i = 0; i < pieces.size(); ++i) ids.emplace(pieces[i], int(i));  // keeps the first id
}

std::string piece_text(const std::string& piece, PieceType type) {
  static constexpr char kSpace[] = "\xe2\x96\x81";  // U+2581, SentencePiece's space
  switch (type) {
    case PieceType::Normal: {
      std::string out;
      out.reserve(piece.size());
      for (size_t i = 0; i < piece.size(); ++i) {
        if (piece.compare(i, 3, kSpace) == 0) {
          out += ' ';
          i += 2;
        } else {
          out += piece[i];
        }
      }
      return out;
    }
    case PieceType::UserDefined:
      return piece;
    case PieceType::Byte: {
      unsigned v = 0;
      if (piece.size() == 6 && piece.compare(0, 3, "<0x") == 0 && piece[5] == '>' &&
          std::sscanf(piece.c_str() + 3, "%2x", &v) == 1)
        return std::string(1, char(v));
      return piece;
    }
    default:
      return "";
  }
}

}  // namespace lm::tok
