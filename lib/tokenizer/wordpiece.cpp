// WordPiece (tokenizer.ggml.model "bert"), as llama.cpp tokenizes it: BERT's basic tokenizer
// (white space splits words; control characters, U+0000 and U+FFFD go; accents go and letters
// are lowercased when the vocabulary is uncased; each punctuation character, ASCII symbol and
// CJK ideograph is a word of its own), then greedy longest-match-first inside each word, the
// word written with a leading "▁". A word with a part that matches no piece is one unknown
// token. docs/tokenizers.md describes the family.
#include <algorithm>
#include <cstdio>
#include <cstring>
#include <optional>
#include <utility>

#include "base/error.hpp"
#include "tokenizer/engine.hpp"
#include "tokenizer/unicode_tables.hpp"

namespace lm::tok {
namespace {

constexpr char kWordStart[] = "\xe2\x96\x81";  // U+2581 "▁"
constexpr size_t kWordStartLen = 3;

// Decodes the code point at s[pos] and moves pos past it, as llama.cpp's decoder does (it does
// not reject overlong forms or surrogates: "\xC1\x81" is "A", "\xED\xA0\x80" is U+D800). A
// byte that does not start a complete sequence is U+FFFD and moves pos by one byte, so every
// following continuation byte is U+FFFD too. Sequences past U+10FFFF are U+FFFD as well
// (llama.cpp throws on them later).
uint32_t next_code_point(std::string_view s, size_t& pos) {
  const size_t left = s.size() - pos;
  const auto b = [&](size_t i) { return uint32_t(uint8_t(s[pos + i])); };
  const auto cont = [&](size_t i) { return i < left && (b(i) & 0xC0) == 0x80; };
  const uint32_t c = b(0);
  uint32_t cpt = 0xFFFD;
  size_t len = 1;
  if (c < 0x80) {
    cpt = c;
  } else if ((c & 0xE0) == 0xC0 && cont(1)) {
    cpt = (c & 0x1F) << 6 | (b(1) & 0x3F);
    len = 2;
  } else if ((c & 0xF0) == 0xE0 && cont(1) && cont(2)) {
    cpt = (c & 0x0F) << 12 | (b(1) & 0x3F) << 6 | (b(2) & 0x3F);
    len = 3;
  } else if ((c & 0xF8) == 0xF0 && cont(1) && cont(2) && cont(3)) {
    const uint32_t v = (c & 0x07) << 18 | (b(1) & 0x3F) << 12 | (b(2) & 0x3F) << 6 | (b(3) & 0x3F);
    if (v < 0x110000) {
      cpt = v;
      len = 4;
    }
  }
  pos += len;
  return cpt;
}

void append_utf8(std::string& out, uint32_t cpt) {
  if (cpt < 0x80) {
    out += char(cpt);
  } else if (cpt < 0x800) {
    out += char(0xC0 | (cpt >> 6));
    out += char(0x80 | (cpt & 0x3F));
  } else if (cpt < 0x10000) {
    out += char(0xE0 | (cpt >> 12));
    out += char(0x80 | ((cpt >> 6) & 0x3F));
    out += char(0x80 | (cpt & 0x3F));
  } else {
    out += char(0xF0 | (cpt >> 18));
    out += char(0x80 | ((cpt >> 12) & 0x3F));
    out += char(0x80 | ((cpt >> 6) & 0x3F));
    out += char(0x80 | (cpt & 0x3F));
  }
}

// The CJK ideograph blocks BERT's basic tokenizer isolates (the bounds of Hugging Face's
// tokenizers, which llama.cpp copies, including its 0x2B920 for extension E).
bool is_cjk_ideograph(uint32_t c) {
  return (c >= 0x4E00 && c <= 0x9FFF) || (c >= 0x3400 && c <= 0x4DBF) || (c >= 0x20000 && c <= 0x2A6DF) ||
         (c >= 0x2A700 && c <= 0x2B73F) || (c >= 0x2B740 && c <= 0x2B81F) || (c >= 0x2B920 && c <= 0x2CEAF) ||
         (c >= 0xF900 && c <= 0xFAFF) || (c >= 0x2F800 && c <= 0x2FA1F);
}

// A byte trie over the pieces that answers "the longest piece that starts the text" in one
// walk. The children of a node are consecutive nodes sorted by byte; the root's are indexed
// directly.
class PieceTrie {
 public:
  explicit PieceTrie(const std::vector<std::string>& pieces) {
    std::vector<int> order(pieces.size());
    for (size_t i = 0; i < order.size(); ++i) order[i] = int(i);
    std::stable_sort(order.begin(), order.end(), [&](int a, int b) { return pieces[a] < pieces[b]; });
    nodes_.push_back(Node{});
    bytes_.push_back(0);
    // Each task: node, range [lo, hi) of `order` whose pieces share the node's prefix of `depth` bytes.
    struct Task { uint32_t node; size_t lo, hi, depth; };
    std::vector<Task> todo{{0, 0, order.size(), 0}};
    while (!todo.empty()) {
      Task t = todo.back();
      todo.pop_back();
      size_t i = t.lo;
      for (; i < t.hi && pieces[order[i]].size() == t.depth; ++i)
        nodes_[t.node].id = std::max(nodes_[t.node].id, order[i]);  // a piece listed twice: the last id, as llama.cpp
      const uint32_t first = uint32_t(nodes_.size());
      while (i < t.hi) {
        const uint8_t byte = uint8_t(pieces[order[i]][t.depth]);
        size_t j = i;
        while (j < t.hi && uint8_t(pieces[order[j]][t.depth]) == byte) ++j;
        const uint32_t child = uint32_t(nodes_.size());
        nodes_.push_back(Node{});
        bytes_.push_back(byte);
        todo.push_back({child, i, j, t.depth + 1});
        i = j;
      }
      nodes_[t.node].first_child = first;
      nodes_[t.node].n_children = uint32_t(nodes_.size()) - first;
    }
    for (uint32_t k = 0; k < nodes_[0].n_children; ++k) root_[bytes_[nodes_[0].first_child + k]] = nodes_[0].first_child + k;
  }

  // The length and id of the longest piece that is a prefix of s; {0, -1} if none is.
  std::pair<size_t, int> longest_prefix(std::string_view s) const {
    std::pair<size_t, int> best{0, -1};
    if (s.empty()) return best;
    uint32_t node = root_[uint8_t(s[0])];
    for (size_t i = 1; node != 0; ++i) {
      if (nodes_[node].id >= 0) best = {i, nodes_[node].id};
      if (i == s.size()) break;
      node = child(node, uint8_t(s[i]));
    }
    return best;
  }

 private:
  struct Node {
    int id = -1;  // the piece ending here, if any
    uint32_t first_child = 0, n_children = 0;
  };
  uint32_t child(uint32_t node, uint8_t byte) const {
    const Node& n = nodes_[node];
    const uint8_t* begin = bytes_.data() + n.first_child;
    const uint8_t* end = begin + n.n_children;
    const uint8_t* it = n.n_children <= 8 ? std::find(begin, end, byte) : std::lower_bound(begin, end, byte);
    return it != end && *it == byte ? n.first_child + uint32_t(it - begin) : 0;
  }
  std::vector<Node> nodes_;
  std::vector<uint8_t> bytes_;  // the byte leading to each node
  uint32_t root_[256] = {};     // 0: no child
};


class WordPiece final : public Engine {
 public:
  WordPiece(const Vocab& vocab, const std::string& source, const WordPieceOptions& options)
      : types_(vocab.types), options_(options), trie_(indexed_pieces(vocab)) {
    pieces_ = vocab.pieces;
    if (vocab.types.size() != vocab.pieces.size())
      throw FormatError(source, "WordPiece vocabulary has " + std::to_string(vocab.pieces.size()) + " pieces but " +
                                    std::to_string(vocab.types.size()) + " token types, expected as many");
    std::optional<int> unk = vocab.unk_id;
    for (int i = 0; i < vocab.size() && !unk; ++i)
      if (vocab.types[i] == PieceType::Unknown) unk = i;
    if (!unk) unk = vocab.find("[UNK]");
    if (!unk || *unk < 0 || *unk >= vocab.size())
      throw FormatError(source, unk ? "WordPiece unknown token id " + std::to_string(*unk) + " is outside the vocabulary of " +
                                          std::to_string(vocab.size()) + " pieces"
                                    : "WordPiece vocabulary has no unknown token (no unknown_token_id, no piece of type "
                                      "unknown, no \"[UNK]\"), expected one for words no piece covers");
    unk_ = *unk;
  }

  void encode(std::string_view text, bool /*at_start*/, std::vector<int>& ids) const override {
    std::string word(kWordStart);  // "▁" + the word so far
    const auto flush = [&] {
      if (word.size() > kWordStartLen) {
        encode_word(word, ids);
        word.resize(kWordStartLen);
      }
    };
    for (size_t pos = 0; pos < text.size();) {
      uint32_t cpt = next_code_point(text, pos);
      if (options_.strip_accents) cpt = unicode::nfd_first(cpt);
      const unicode::CharClass cls = unicode::char_class(cpt);
      if (cls == unicode::CharClass::Whitespace) {
        flush();
        continue;
      }
      if (cpt == 0 || cpt == 0xFFFD || cls == unicode::CharClass::Control) continue;
      if (options_.strip_accents && cls == unicode::CharClass::Mark) continue;
      const uint32_t out = options_.lowercase ? unicode::to_lower(cpt) : cpt;
      if (cls == unicode::CharClass::Punctuation || (cpt < 0x7F && cls == unicode::CharClass::Symbol) ||
          is_cjk_ideograph(cpt)) {
        flush();
        append_utf8(word, out);
        flush();
      } else {
        append_utf8(word, out);
      }
    }
    flush();
  }

  std::string token_bytes(int id) const override { return piece_text(pieces_[size_t(id)], types_[size_t(id)]); }
  const char* name() const override { return "wordpiece"; }

 private:
  // llama.cpp gives an empty piece the text "[EMPTY_<id>]"; so does the index here.
  static std::vector<std::string> indexed_pieces(const Vocab& vocab) {
    std::vector<std::string> p = vocab.pieces;
    for (size_t i = 0; i < p.size(); ++i)
      if (p[i].empty()) p[i] = "[EMPTY_" + std::to_string(i) + "]";
    return p;
  }

  // Greedy longest match over "▁word": a part no piece starts makes the whole word unknown.
  void encode_word(std::string_view word, std::vector<int>& ids) const {
    const size_t before = ids.size();
    for (size_t i = 0; i < word.size();) {
      const auto [len, id] = trie_.longest_prefix(word.substr(i));
      if (len == 0) {
        ids.resize(before);
        break;
      }
      ids.push_back(id);
      i += len;
    }
    if (ids.size() == before) ids.push_back(unk_);
  }

  std::vector<std::string> pieces_;
  std::vector<PieceType> types_;
  WordPieceOptions options_;
  PieceTrie trie_;
  int unk_ = 0;
};

}  // namespace

std::unique_ptr<Engine> make_wordpiece(const Vocab& vocab, const std::string& source, const WordPieceOptions& options) {
  return std::make_unique<WordPiece>(vocab, source, options);
}

}  // namespace lm::tok
