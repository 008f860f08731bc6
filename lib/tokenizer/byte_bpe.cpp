// Byte-level BPE (tokenizer.ggml.model "gpt2"), the tokenization llama.cpp applies to these
// vocabularies: the pre-tokenizer splits the text into words, each byte of a word starts as the
// piece that spells it in GPT-2's byte-to-unicode alphabet, and adjacent pieces merge, the pair
// of lowest rank in tokenizer.ggml.merges first (the leftmost of equal pairs first), until no
// pair of the word is a merge.
//
// The pieces and merges are strings in that alphabet; here everything is kept as ids and raw
// bytes instead: merges become a table (left id, right id) -> (rank, merged id), and a word is
// merged on its bytes with no string built. A merge whose two sides are pieces but whose
// concatenation is not one still merges, as in llama.cpp; such a symbol can merge no further
// and is written out as llama.cpp does, as the pieces of its single alphabet bytes that exist.
#include <algorithm>
#include <array>
#include <atomic>
#include <climits>
#include <cstdio>
#include <cstring>
#include <unordered_map>

#include "base/error.hpp"
#include "base/utf8.hpp"
#include "tokenizer/engine.hpp"
#include "tokenizer/pretokenize.hpp"

namespace lm::tok {

namespace {

// GPT-2's byte-to-unicode mapping: the printable Latin-1 bytes stand for themselves, the other
// 68 bytes, in order, for U+0100 onwards.
std::array<uint32_t, 256> byte_code_points() {
  std::array<uint32_t, 256> cp{};
  std::array<bool, 256> printable{};
  for (int b = 0x21; b <= 0x7e; ++b) printable[b] = true;
  for (int b = 0xa1; b <= 0xac; ++b) printable[b] = true;
  for (int b = 0xae; b <= 0xff; ++b) printable[b] = true;
  uint32_t next = 256;
  for (int b = 0; b < 256; ++b) cp[b] = printable[b] ? uint32_t(b) : next++;
  return cp;
}

std::string utf8_of(uint32_t cp) {
  std::string s;
  if (cp < 0x80) {
    s += char(cp);
  } else if (cp < 0x800) {
    s += char(0xc0 | (cp >> 6));
    s += char(0x80 | (cp & 0x3f));
  } else {
    s += char(0xe0 | (cp >> 12));
    s += char(0x80 | ((cp >> 6) & 0x3f));
    s += char(0x80 | (cp & 0x3f));
  }
  return s;
}

// Decodes one UTF-8 character of s at i (advancing i); invalid bytes give 0xFFFFFFFF.
uint32_t next_code_point(std::string_view s, size_t& i) {
  const auto c = uint8_t(s[i]);
  size_t n = c < 0x80 ? 1 : (c >> 5) == 0x6 ? 2 : (c >> 4) == 0xe ? 3 : (c >> 3) == 0x1e ? 4 : 0;
  if (n == 0 || i + n > s.size()) {
    ++i;
    return 0xffffffffu;
  }
  uint32_t cp = n == 1 ? c : n == 2 ? c & 0x1f : n == 3 ? c & 0x0f : c & 0x07;
  for (size_t k = 1; k < n; ++k) {
    const auto d = uint8_t(s[i + k]);
    if ((d & 0xc0) != 0x80) {
      ++i;
      return 0xffffffffu;
    }
    cp = (cp << 6) | (d & 0x3f);
  }
  i += n;
  return cp;
}

// (left id, right id) -> (rank, merged id), open addressing: the lookup of every adjacent pair
// is the inner loop of encoding.
class MergeTable {
 public:
  struct Value {
    int32_t rank;
    int32_t merged;  // -1 when left+right is not a piece
  };
  void reserve(size_t n) {
    size_t cap = 16;
    while (cap < 2 * n) cap <<= 1;
    keys_.assign(cap, kEmpty);
    values_.assign(cap, Value{0, 0});
    mask_ = cap - 1;
  }
  // Keeps the first value inserted for a key (the lowest rank, as llama.cpp does).
  void insert(int left, int right, Value v) {
    const uint64_t key = pack(left, right);
    for (size_t i = slot(key);; i = (i + 1) & mask_) {
      if (keys_[i] == key) return;
      if (keys_[i] == kEmpty) {
        keys_[i] = key;
        values_[i] = v;
        return;
      }
    }
  }
  const Value* find(int left, int right) const {
    if (left < 0 || right < 0) return nullptr;
    const uint64_t key = pack(left, right);
    for (size_t i = slot(key);; i = (i + 1) & mask_) {
      if (keys_[i] == key) return &values_[i];
      if (keys_[i] == kEmpty) return nullptr;
    }
  }

 private:
  static constexpr uint64_t kEmpty = ~uint64_t(0);
  static uint64_t pack(int left, int right) { return (uint64_t(uint32_t(left)) << 32) | uint32_t(right); }
  size_t slot(uint64_t key) const { return size_t((key * 0x9e3779b97f4a7c15ull) >> 32) & mask_; }
  std::vector<uint64_t> keys_;
  std::vector<Value> values_;
  size_t mask_ = 0;
};

// Words longer than this are merged in consecutive chunks of at most this many bytes, cut at
// character boundaries. llama.cpp merges any word whole (a heap over its pairs, n log n);
// chunking keeps the working memory of one word bounded (under 20 MB) for a pathological input
// such as a 100 MB line without a space, and changes the ids only around the cuts of words
// longer than 256 KiB, which natural text does not have.
constexpr size_t kMaxWordBytes = 256 * 1024;
// Words up to this many bytes are merged by scanning an array for the best pair (n^2, but
// with no heap); longer ones use a heap over linked symbols. Both take the same merges.
constexpr size_t kSmallWord = 48;

class ByteBpe final : public Engine {
 public:
  ByteBpe(const Vocab& vocab, const std::vector<std::string>& merges, const std::string& pre,
          const std::string& source)
      : pre_(pre, source), types_(vocab.types), pieces_(vocab.pieces) {
    const auto cps = byte_code_points();
    // Code point -> byte (GPT-2's symbols are below 0x144), -1 for the others.
    std::vector<int16_t> byte_of;
    for (int b = 0; b < 256; ++b) {
      if (cps[b] >= byte_of.size()) byte_of.resize(cps[b] + 1, -1);
      byte_of[cps[b]] = int16_t(b);
      const std::string sym = utf8_of(cps[b]);
      alphabet_[b] = sym;
      auto id = vocab.find(sym);
      // Real vocabularies lack some byte pieces (Falcon's has no 0x03, StarCoder's no 0xF1,
      // GPT-NeoX's no 0xC0); llama.cpp then drops such a byte from the ids, and so does this.
      // The space and the printable ASCII bytes must be there: without them this is no
      // byte-level vocabulary.
      const bool required = b >= 0x20 && b <= 0x7e;
      if (!id && !required) {
        byte_id_[b] = -1;
        continue;
      }
      if (!id) {
        char hex[8];
        std::snprintf(hex, sizeof hex, "%02x", b);
        throw FormatError(source, "byte-level BPE vocabulary lacks the piece '" + sym + "' of byte 0x" + hex);
      }
      byte_id_[b] = *id;
    }
    for (int e = 0; e < 256; ++e) {
      auto id = vocab.find(std::string(1, char(e)));
      single_byte_id_[e] = id ? *id : -1;
    }

    // The bytes each piece stands for; pieces outside the alphabet keep their characters.
    const int n = vocab.size();
    bytes_.resize(size_t(n));
    std::vector<bool> in_alphabet(size_t(n), true);
    for (int id = 0; id < n; ++id) {
      const std::string& p = vocab.pieces[size_t(id)];
      std::string out;
      out.reserve(p.size());
      for (size_t i = 0; i < p.size();) {
        const size_t at = i;
        const uint32_t cp = next_code_point(p, i);
        if (cp >= byte_of.size() || byte_of[cp] < 0) {  // also an invalid sequence (0xffffffff)
          out.append(p, at, i - at);
          in_alphabet[size_t(id)] = false;
        } else {
          out += char(byte_of[cp]);
        }
      }
      bytes_[size_t(id)] = std::move(out);
    }
    if (pre_.ignore_merges()) {
      whole_.reserve(size_t(n));
      for (int id = 0; id < n; ++id)
        if (in_alphabet[size_t(id)] && !bytes_[size_t(id)].empty()) {
          // Only the first id of a piece listed twice is found, as in Vocab::ids.
          if (vocab.find(vocab.pieces[size_t(id)]) == id) whole_.emplace(bytes_[size_t(id)], id);
        }
    }

    table_.reserve(merges.size());
    std::string joined;
    for (size_t r = 0; r < merges.size(); ++r) {
      const std::string& m = merges[r];
      const size_t sp = m.find(' ', 1);
      if (sp == std::string::npos)
        throw FormatError(source, "merge " + std::to_string(r) + " '" + escape_bytes(m) +
                                      "' is not two pieces separated by a space");
      const std::string_view left = std::string_view(m).substr(0, sp), right = std::string_view(m).substr(sp + 1);
      auto l = vocab.find(left), rt = vocab.find(right);
      if (!l || !rt)
        throw FormatError(source, "merge " + std::to_string(r) + " '" + escape_bytes(m) + "' names '" +
                                      escape_bytes(std::string(!l ? left : right)) +
                                      "', which is not a piece of the vocabulary");
      joined.assign(left).append(right);
      auto merged = vocab.find(joined);
      table_.insert(*l, *rt, MergeTable::Value{int32_t(r), merged ? int32_t(*merged) : -1});
    }
  }

  void encode(std::string_view text, bool /*at_start*/, std::vector<int>& ids) const override {
    thread_local std::vector<std::string_view> words;
    words.clear();
    pre_.split(text, words);
    for (std::string_view w : words) {
      while (w.size() > kMaxWordBytes) {
        size_t cut = kMaxWordBytes;
        for (int k = 0; k < 3 && (uint8_t(w[cut]) & 0xc0) == 0x80; ++k) --cut;
        encode_word(w.substr(0, cut), ids);
        w.remove_prefix(cut);
      }
      encode_word(w, ids);
    }
    // A huge text leaves a huge list; give it back rather than keep it for the thread's life.
    if (words.capacity() > (size_t(1) << 20)) std::vector<std::string_view>().swap(words);
  }

  std::string token_bytes(int id) const override {
    switch (types_[size_t(id)]) {
      case PieceType::Control:
      case PieceType::Unknown:
        return {};
      case PieceType::UserDefined:
        return pieces_[size_t(id)];
      case PieceType::Byte: {
        const std::string& p = pieces_[size_t(id)];
        unsigned v = 0;
        if (p.size() == 6 && p.compare(0, 3, "<0x") == 0 && p[5] == '>' && std::sscanf(p.c_str() + 3, "%2x", &v) == 1)
          return std::string(1, char(v));
        return bytes_[size_t(id)];
      }
      default:
        return bytes_[size_t(id)];
    }
  }

  const char* name() const override { return "bytebpe"; }

 private:
  // Writes the ids of a symbol covering word[start, start+len) whose piece is `id` (or -1).
  void emit(int id, std::string_view word, size_t start, size_t len, std::vector<int>& ids) const {
    if (id >= 0) {
      ids.push_back(id);
      return;
    }
    for (size_t i = start; i < start + len; ++i)
      for (char e : alphabet_[uint8_t(word[i])]) {
        const int b = single_byte_id_[uint8_t(e)];
        if (b >= 0) ids.push_back(b);
      }
  }

  void encode_word(std::string_view w, std::vector<int>& ids) const {
    const size_t n = w.size();
    if (n == 0) return;
    if (n == 1) {  // what ignore_merges would find too
      emit(byte_id_[uint8_t(w[0])], w, 0, 1, ids);
      return;
    }
    if (n > WordCache::kMaxBytes) {
      merge_word(w, ids);
      return;
    }
    // Most words of a text are words seen before: their ids come from a per-thread cache.
    WordCache& cache = word_cache();
    uint64_t h = 0xcbf29ce484222325ull;
    for (char c : w) h = (h ^ uint8_t(c)) * 0x100000001b3ull;
    WordCache::Slot& slot = cache.slots[size_t(h >> 50)];
    if (slot.owner == serial_ && slot.len == n && std::memcmp(slot.key, w.data(), n) == 0) {
      ids.insert(ids.end(), slot.ids, slot.ids + slot.n_ids);
      return;
    }
    const size_t before = ids.size();
    merge_word(w, ids);
    const size_t got = ids.size() - before;
    if (got <= WordCache::kMaxIds) {
      slot.owner = serial_;
      slot.len = uint8_t(n);
      slot.n_ids = uint8_t(got);
      std::memcpy(slot.key, w.data(), n);
      for (size_t i = 0; i < got; ++i) slot.ids[i] = ids[before + i];
    }
  }

  // A direct-mapped cache of words' ids, one per thread, shared by the engines of the thread:
  // a slot names the engine that filled it by its serial number (never reused, unlike an
  // address), so an engine only finds its own words.
  struct WordCache {
    static constexpr size_t kMaxBytes = 22, kMaxIds = 6;
    struct Slot {
      uint64_t owner = 0;
      uint8_t len = 0xff, n_ids = 0;
      char key[kMaxBytes];
      int32_t ids[kMaxIds];
    };
    std::vector<Slot> slots = std::vector<Slot>(size_t(1) << 14);  // 1 MiB
  };
  static WordCache& word_cache() {
    thread_local WordCache cache;
    return cache;
  }

  void merge_word(std::string_view w, std::vector<int>& ids) const {
    const size_t n = w.size();
    if (pre_.ignore_merges()) {
      auto it = whole_.find(w);
      if (it != whole_.end()) {
        ids.push_back(it->second);
        return;
      }
    }
    if (n == 1) {
      emit(byte_id_[uint8_t(w[0])], w, 0, 1, ids);
      return;
    }
    if (n <= kSmallWord) {
      merge_small(w, ids);
    } else {
      merge_large(w, ids);
    }
  }

  // Scans for the pair of lowest rank (the leftmost on ties), merges it, repeats.
  void merge_small(std::string_view w, std::vector<int>& ids) const {
    int sym[kSmallWord];
    uint32_t start[kSmallWord + 1];
    int32_t rank[kSmallWord];
    int32_t merged[kSmallWord];
    size_t m = w.size();
    for (size_t i = 0; i < m; ++i) {
      sym[i] = byte_id_[uint8_t(w[i])];
      start[i] = uint32_t(i);
    }
    start[m] = uint32_t(m);
    auto look = [&](size_t i) {
      const MergeTable::Value* v = table_.find(sym[i], sym[i + 1]);
      rank[i] = v ? v->rank : INT32_MAX;
      merged[i] = v ? v->merged : -1;
    };
    for (size_t i = 0; i + 1 < m; ++i) look(i);
    while (m > 1) {
      size_t best = 0;
      for (size_t i = 1; i + 1 < m; ++i)
        if (rank[i] < rank[best]) best = i;
      if (rank[best] == INT32_MAX) break;
      sym[best] = merged[best];
      // Symbol best+1 and pair best go; pair best+1 becomes pair best.
      const size_t tail = m - (best + 2);
      std::memmove(sym + best + 1, sym + best + 2, tail * sizeof(int));
      std::memmove(start + best + 1, start + best + 2, (tail + 1) * sizeof(uint32_t));
      if (tail > 0) {
        std::memmove(rank + best + 1, rank + best + 2, (tail - 1) * sizeof(int32_t));
        std::memmove(merged + best + 1, merged + best + 2, (tail - 1) * sizeof(int32_t));
      }
      --m;
      if (best > 0) look(best - 1);
      if (best + 1 < m) look(best);
    }
    for (size_t i = 0; i < m; ++i) emit(sym[i], w, start[i], start[i + 1] - start[i], ids);
  }

  // The same merges with a heap of candidate pairs over symbols linked in a list: symbol i
  // starts at byte i; a pair popped after one of its symbols changed is stale and skipped.
  void merge_large(std::string_view w, std::vector<int>& ids) const {
    struct Sym {
      int32_t prev, next, id;
      uint32_t len;  // 0 once merged into the symbol on its left
    };
    struct Cand {
      int32_t rank, left, right;
      uint32_t len;  // of left + right when pushed
    };
    thread_local std::vector<Sym> syms;
    thread_local std::vector<Cand> heap;
    const size_t n = w.size();
    syms.resize(n);
    heap.clear();
    for (size_t i = 0; i < n; ++i) syms[i] = Sym{int32_t(i) - 1, i + 1 < n ? int32_t(i + 1) : -1, byte_id_[uint8_t(w[i])], 1};
    auto later = [](const Cand& a, const Cand& b) { return a.rank > b.rank || (a.rank == b.rank && a.left > b.left); };
    auto push = [&](int32_t l, int32_t r) {
      if (l < 0 || r < 0) return;
      const MergeTable::Value* v = table_.find(syms[size_t(l)].id, syms[size_t(r)].id);
      if (!v) return;
      heap.push_back(Cand{v->rank, l, r, syms[size_t(l)].len + syms[size_t(r)].len});
      std::push_heap(heap.begin(), heap.end(), later);
    };
    for (size_t i = 0; i + 1 < n; ++i) push(int32_t(i), int32_t(i + 1));
    while (!heap.empty()) {
      std::pop_heap(heap.begin(), heap.end(), later);
      const Cand c = heap.back();
      heap.pop_back();
      Sym& l = syms[size_t(c.left)];
      Sym& r = syms[size_t(c.right)];
      if (l.len == 0 || r.len == 0 || l.len + r.len != c.len) continue;  // stale
      const MergeTable::Value* v = table_.find(l.id, r.id);
      l.id = v->merged;
      l.len += r.len;
      r.len = 0;
      l.next = r.next;
      if (r.next >= 0) syms[size_t(r.next)].prev = c.left;
      push(l.prev, c.left);
      push(c.left, l.next);
    }
    for (int32_t i = 0; i >= 0; i = syms[size_t(i)].next) emit(syms[size_t(i)].id, w, size_t(i), syms[size_t(i)].len, ids);
  }

  static uint64_t next_serial() {
    static std::atomic<uint64_t> serial{0};
    return ++serial;
  }

  const uint64_t serial_ = next_serial();
  PreTokenizer pre_;
  std::vector<PieceType> types_;
  std::vector<std::string> pieces_;
  std::vector<std::string> bytes_;  // what each piece stands for
  std::array<int, 256> byte_id_{};
  std::array<int, 256> single_byte_id_{};
  std::array<std::string, 256> alphabet_;
  MergeTable table_;
  std::unordered_map<std::string_view, int> whole_;  // bytes -> id, for ignore_merges
};

}  // namespace

std::unique_ptr<Engine> make_byte_bpe(const Vocab& vocab, const std::vector<std::string>& merges,
                                      const std::string& pre, const std::string& source) {
  if (vocab.types.size() != vocab.pieces.size())
    throw FormatError(source, "the token types and the pieces differ in number");
  return std::make_unique<ByteBpe>(vocab, merges, pre, source);
}

std::vector<std::string> known_pre_tokenizers() { return PreTokenizer::known(); }

}  // namespace lm::tok
