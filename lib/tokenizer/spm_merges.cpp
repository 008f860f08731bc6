// SentencePiece-style BPE straight from a GGUF vocabulary (tokenizer.ggml.model "llama"), as
// llama.cpp tokenizes it: spaces become "▁" (and one is put in front of the text at its start
// when the vocabulary asks for a dummy prefix), the text is cut into UTF-8 characters, then the
// adjacent pair whose concatenation is a piece with the highest score is merged, the leftmost
// pair first among equal scores, until no pair is a piece. A character that is not a piece
// becomes its byte pieces <0xNN>, or the unknown token when the vocabulary has none.
// docs/tokenizers.md describes the family.
//
// Cost: a priority queue of candidate pairs over a linked list of symbols, O(n log n) in the
// length of the stretch merged, about 40 bytes of scratch per byte of it. When no piece of the
// vocabulary has a "▁" after something other than "▁" (true of every SentencePiece vocabulary
// trained with the default split_by_whitespace, and of Llama 2's and Phi-3's), no merge can
// cross the start of a word, so each word is merged on its own with the same result. Otherwise
// the text is merged whole. Either way a stretch is cut after 1 MiB (at a character start), so
// a line of 100 MB needs about 40 MB of scratch; llama.cpp merges such a run whole, so ids may
// differ from its own next to each cut, and only in a run of over 1 MiB with no word start.
#include <algorithm>
#include <cstdio>
#include <cstring>
#include <limits>
#include <string>
#include <vector>

#include "base/error.hpp"
#include "tokenizer/engine.hpp"

namespace lm::tok {
namespace {

constexpr char kSpace[] = "\xe2\x96\x81";  // U+2581 "▁"
constexpr size_t kSpaceLen = 3;
constexpr size_t kMaxStretch = size_t(1) << 20;

// Bytes of the UTF-8 character that starts with byte c, as llama.cpp counts them from the high
// four bits alone (a continuation byte or a bad lead byte is not checked further).
inline size_t utf8_len(char c) {
  static constexpr uint8_t kLen[16] = {1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 3, 4};
  return kLen[uint8_t(c) >> 4];
}

bool starts_with_space(std::string_view s, size_t pos) {
  return pos + kSpaceLen <= s.size() && s.compare(pos, kSpaceLen, kSpace) == 0;
}


// Piece -> id in one flat open-addressing table (a chained std::unordered_map spent 70% of the
// time of encoding in its lookups). The pieces' bytes sit in one arena; a slot holds a 32-bit
// tag of the hash and the id. Adding a piece again replaces its id (llama.cpp keeps the last).
class PieceIndex {
 public:
  void build(const std::vector<std::string>& keys) {
    size_t cap = 16;
    while (cap < 2 * keys.size()) cap *= 2;
    slots_.assign(cap, Slot{0, -1});
    mask_ = cap - 1;
    offsets_.resize(keys.size() + 1);
    offsets_[0] = 0;
    for (size_t i = 0; i < keys.size(); ++i) offsets_[i + 1] = offsets_[i] + keys[i].size();
    arena_.clear();
    arena_.reserve(offsets_.back());
    for (const std::string& k : keys) arena_ += k;
    for (size_t i = 0; i < keys.size(); ++i) {
      const uint64_t h = hash(keys[i]);
      size_t at = h & mask_;
      while (slots_[at].id >= 0 && !(slots_[at].tag == uint32_t(h >> 32) && key(slots_[at].id) == keys[i])) at = (at + 1) & mask_;
      slots_[at] = Slot{uint32_t(h >> 32), int(i)};
    }
  }
  int find(std::string_view k) const {
    const uint64_t h = hash(k);
    for (size_t at = h & mask_;; at = (at + 1) & mask_) {
      const Slot& slot = slots_[at];
      if (slot.id < 0) return -1;
      if (slot.tag == uint32_t(h >> 32) && key(slot.id) == k) return slot.id;
    }
  }

 private:
  struct Slot {
    uint32_t tag;
    int id;  // -1: empty
  };
  std::string_view key(int id) const {
    return std::string_view(arena_).substr(offsets_[size_t(id)], offsets_[size_t(id) + 1] - offsets_[size_t(id)]);
  }
  static uint64_t hash(std::string_view k) {
    const char* p = k.data();
    size_t n = k.size();
    uint64_t h = 0x9E3779B97F4A7C15ull ^ n;
    for (; n >= 8; p += 8, n -= 8) {
      uint64_t w;
      std::memcpy(&w, p, 8);
      h = (h ^ w) * 0xBF58476D1CE4E5B9ull;
      h ^= h >> 31;
    }
    uint64_t w = 0;
    std::memcpy(&w, p, n);
    h = (h ^ w) * 0x94D049BB133111EBull;
    h ^= h >> 29;
    h *= 0xBF58476D1CE4E5B9ull;
    return h ^ (h >> 32);
  }
  std::vector<Slot> slots_;
  size_t mask_ = 0;
  std::vector<size_t> offsets_;
  std::string arena_;
};

class SpmMerges final : public Engine {
 public:
  SpmMerges(const Vocab& vocab, bool add_space_prefix, const std::string& source)
      : pieces_(vocab.pieces), scores_(vocab.scores), types_(vocab.types), add_space_prefix_(add_space_prefix),
        source_(source) {
    const size_t n = pieces_.size();
    if (scores_.size() != n || types_.size() != n)
      throw FormatError(source, "vocabulary has " + std::to_string(n) + " pieces, " + std::to_string(scores_.size()) +
                                    " scores and " + std::to_string(types_.size()) + " token types, expected as many of each");
    if (n > size_t(std::numeric_limits<int>::max()))
      throw FormatError(source, "vocabulary has " + std::to_string(n) + " pieces, expected at most 2^31 - 1");
    if (vocab.unk_id && (*vocab.unk_id < 0 || size_t(*vocab.unk_id) >= n))
      throw FormatError(source, "unknown token id " + std::to_string(*vocab.unk_id) + " is outside the vocabulary of " +
                                    std::to_string(n) + " pieces");
    unk_ = vocab.unk_id.value_or(-1);
    // llama.cpp gives an empty piece the text "[EMPTY_<id>]"; its map keeps the last id of a
    // piece listed twice.
    std::vector<std::string> keys = pieces_;
    word_safe_ = true;
    for (size_t i = 0; i < n; ++i) {
      if (keys[i].empty()) keys[i] = "[EMPTY_" + std::to_string(i) + "]";
      const std::string& key = keys[i];
      for (size_t p = key.find(kSpace, 1); p != std::string::npos; p = key.find(kSpace, p + 1))
        if (p < kSpaceLen || key.compare(p - kSpaceLen, kSpaceLen, kSpace) != 0) word_safe_ = false;
    }
    index_.build(keys);
    // Byte fallback, as llama.cpp: the piece <0xNN>, else the piece that is the byte itself.
    for (int b = 0; b < 256; ++b) {
      char hex[8];
      std::snprintf(hex, sizeof hex, "<0x%02X>", b);
      int id = find(hex);
      const char byte = char(b);
      if (id < 0) id = find(std::string_view(&byte, 1));
      byte_id_[b] = id;
      char_id_[b] = find(std::string_view(&byte, 1));
    }
  }

  void encode(std::string_view text, bool at_start, std::vector<int>& ids) const override {
    if (text.empty()) return;  // llama.cpp never tokenizes an empty stretch, prefix or not
    std::string s;
    s.reserve(text.size() + kSpaceLen);
    if (add_space_prefix_ && at_start) s = kSpace;
    for (char c : text) {
      if (c == ' ')
        s += kSpace;
      else
        s += c;
    }
    Scratch scratch;
    // Stretches end at character starts (as the whole text is cut) and, when the vocabulary
    // allows it, at each "▁" that follows something other than "▁".
    size_t begin = 0, pos = 0;
    const auto word_start = [&](size_t at) {
      return starts_with_space(s, at) && !(at >= begin + kSpaceLen && starts_with_space(s, at - kSpaceLen));
    };
    while (pos < s.size()) {
      const size_t next = std::min(s.size(), pos + utf8_len(s[pos]));
      const bool cut = next < s.size() && ((word_safe_ && word_start(next)) || next - begin >= kMaxStretch);
      pos = next;
      if (cut) {
        merge(std::string_view(s).substr(begin, pos - begin), scratch, ids);
        begin = pos;
      }
    }
    if (begin < s.size()) merge(std::string_view(s).substr(begin), scratch, ids);
  }

  std::string token_bytes(int id) const override { return piece_text(pieces_[size_t(id)], types_[size_t(id)]); }
  const char* name() const override { return "bpe"; }

 private:
  struct Symbol {
    int prev, next;
    uint32_t offset, len;  // len 0: merged into the symbol on its left
    int id;                // the piece it is, -1 if none
  };
  struct Pair {
    float score;
    int left, right;
    uint32_t len;  // of left + right when the pair was queued; stale when it no longer is
    int id;
  };
  // The highest score first, the leftmost pair among equal scores.
  struct PairOrder {
    bool operator()(const Pair& a, const Pair& b) const { return a.score < b.score || (a.score == b.score && a.left > b.left); }
  };
  struct Scratch {
    std::vector<Symbol> symbols;
    std::vector<Pair> queue;
  };

  int find(std::string_view piece) const { return index_.find(piece); }

  void merge(std::string_view s, Scratch& scratch, std::vector<int>& ids) const {
    auto& sym = scratch.symbols;
    auto& queue = scratch.queue;
    sym.clear();
    queue.clear();
    for (size_t off = 0; off < s.size();) {
      const size_t len = std::min(utf8_len(s[off]), s.size() - off);
      const int i = int(sym.size());
      const int id = len == 1 ? char_id_[uint8_t(s[off])] : find(s.substr(off, len));
      sym.push_back(Symbol{i - 1, i + 1, uint32_t(off), uint32_t(len), id});
      off += len;
    }
    if (sym.empty()) return;
    sym.back().next = -1;
    const auto try_pair = [&](int left, int right) {
      if (left < 0 || right < 0) return;
      const uint32_t len = sym[left].len + sym[right].len;
      const int id = find(s.substr(sym[left].offset, len));
      if (id < 0) return;
      queue.push_back(Pair{scores_[size_t(id)], left, right, len, id});
      std::push_heap(queue.begin(), queue.end(), PairOrder{});
    };
    for (int i = 1; i < int(sym.size()); ++i) try_pair(i - 1, i);
    while (!queue.empty()) {
      std::pop_heap(queue.begin(), queue.end(), PairOrder{});
      const Pair p = queue.back();
      queue.pop_back();
      Symbol& left = sym[p.left];
      Symbol& right = sym[p.right];
      if (left.len == 0 || right.len == 0 || left.len + right.len != p.len) continue;
      left.len += right.len;
      left.id = p.id;
      right.len = 0;
      left.next = right.next;
      if (right.next >= 0) sym[right.next].prev = p.left;
      try_pair(left.prev, p.left);
      try_pair(p.left, left.next);
    }
    for (int i = 0; i >= 0; i = sym[i].next) {
      const Symbol& x = sym[i];
      if (x.id >= 0) {
        ids.push_back(x.id);
        continue;
      }
      bool bytes = true;
      for (uint32_t k = 0; k < x.len && bytes; ++k) bytes = byte_id_[uint8_t(s[x.offset + k])] >= 0;
      if (bytes) {
        for (uint32_t k = 0; k < x.len; ++k) ids.push_back(byte_id_[uint8_t(s[x.offset + k])]);
      } else if (unk_ >= 0) {
        ids.push_back(unk_);
      } else {
        char hex[8];
        std::snprintf(hex, sizeof hex, "%02X", unsigned(uint8_t(s[x.offset])));
        throw FormatError(source_, std::string("vocabulary has no piece for the text's byte 0x") + hex +
                                       ", no byte piece <0x" + hex + "> and no unknown token");
      }
    }
  }

  std::vector<std::string> pieces_;
  std::vector<float> scores_;
  std::vector<PieceType> types_;
  PieceIndex index_;
  int byte_id_[256];  // the byte fallback of each byte, -1 if none
  int char_id_[256];  // the piece that is the byte itself, -1 if none
  int unk_ = -1;
  bool add_space_prefix_;
  bool word_safe_ = true;
  std::string source_;
};

}  // namespace

std::unique_ptr<Engine> make_spm_merges(const Vocab& vocab, bool add_space_prefix, const std::string& source) {
  return std::make_unique<SpmMerges>(vocab, add_space_prefix, source);
}

}  // namespace lm::tok
