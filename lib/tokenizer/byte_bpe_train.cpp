// Byte-level BPE training (GPT-2 style): count the pre-tokenizer's words, then learn merges
// incrementally. Pair counts are kept up to date merge by merge; a max-heap holds the pairs with
// lazy invalidation (an entry whose count is stale is pushed again with the current count), and
// an index from each pair to the words that hold it lets a merge touch only those words. The
// cost of a merge is the length of the words it rewrites, never a rescan of the vocabulary.
#include "tokenizer/byte_bpe_train.hpp"

#include <algorithm>
#include <array>
#include <cstdint>
#include <string_view>
#include <unordered_map>
#include <unordered_set>
#include <utility>
#include <vector>

#include "base/error.hpp"
#include "tokenizer/pretokenize.hpp"

namespace lm::tok {
namespace {

// GPT-2's bytes_to_unicode: the printable bytes '!'..'~', 0xA1..0xAC and 0xAE..0xFF stand for
// the code point of the same number; the other 68 bytes map to U+0100, U+0101, ... in byte
// order. Ids 0..255 follow the code points: the printable bytes first, then the others, which is
// the order of GPT-2's vocab.json and of the tokenizers library's byte-level alphabet.
struct ByteSymbols {
  std::array<std::string, 256> text;  // byte -> UTF-8 of its code point
  std::array<int32_t, 256> id;        // byte -> symbol id
};

const ByteSymbols& byte_symbols() {
  static const ByteSymbols s = [] {
    ByteSymbols t;
    auto printable = [](int b) { return (b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || b >= 0xAE; };
    int next_id = 0, extra = 0;
    std::array<uint32_t, 256> cp{};
    for (int b = 0; b < 256; ++b)
      if (printable(b)) cp[size_t(b)] = uint32_t(b), t.id[size_t(b)] = next_id++;
    for (int b = 0; b < 256; ++b)
      if (!printable(b)) cp[size_t(b)] = uint32_t(256 + extra++), t.id[size_t(b)] = next_id++;
    for (int b = 0; b < 256; ++b) {
      uint32_t c = cp[size_t(b)];  // < 0x800: one or two UTF-8 bytes
      t.text[size_t(b)] = c < 0x80 ? std::string(1, char(c))
                                   : std::string{char(0xC0 | (c >> 6)), char(0x80 | (c & 0x3F))};
    }
    return t;
  }();
  return s;
}

using PairKey = uint64_t;
PairKey pair_key(int32_t a, int32_t b) { return uint64_t(uint32_t(a)) << 32 | uint32_t(b); }
int32_t left_of(PairKey k) { return int32_t(k >> 32); }
int32_t right_of(PairKey k) { return int32_t(k & 0xFFFFFFFFu); }

struct Word {
  std::vector<int32_t> symbols;
  uint64_t freq;
};

struct HeapEntry {
  int64_t count;
  PairKey pair;
};

// A small generator of our own, so a seed samples the same lines on every platform.
struct SplitMix64 {
  uint64_t state;
  uint64_t next() {
    uint64_t z = (state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
  }
  uint64_t below(uint64_t n) { return uint64_t((unsigned __int128)next() * n >> 64); }
};

std::string join(const std::vector<std::string>& v) {
  std::string s;
  for (const auto& x : v) s += (s.empty() ? "" : ", ") + x;
  return s;
}

}  // namespace

VocabSpec train_byte_bpe(const TokenizerTrainOptions& o, const std::function<bool(std::string&)>& next_line,
                         const Logger& log) {
  std::vector<std::string> controls = o.control_symbols;
  if (controls.empty()) controls.push_back("<|endoftext|>");
  {
    std::unordered_set<std::string> seen;
    for (const auto& c : controls) {
      if (c.empty()) throw UsageError("--control-symbols holds an empty symbol, expected non-empty symbols");
      if (!seen.insert(c).second) throw UsageError("--control-symbols names '" + c + "' twice");
    }
  }
  // Pieces that are always kept whole would need the encoder to split them out of the text
  // before pre-tokenization; byte-level BPE training does not offer them.
  if (!o.user_defined_symbols.empty())
    throw UsageError("--user-defined-symbols is not available with --model-type bytebpe; use --control-symbols");
  const int64_t min_vocab = 256 + int64_t(controls.size()) + 1;
  if (o.vocab_size < min_vocab)
    throw UsageError("--vocab-size " + std::to_string(o.vocab_size) + ", expected at least " +
                     std::to_string(min_vocab) + " (256 byte pieces, " + std::to_string(controls.size()) +
                     " control piece" + (controls.size() == 1 ? "" : "s") + " and one merge)");
  // "gpt2", the default, names the family; llama.cpp calls GPT-2's own expressions "gpt-2", and
  // that is the name the vocabulary records (llama.cpp refuses a tokenizer.ggml.pre it does not know).
  const std::string pre_name = o.pre_tokenizer == "gpt2" ? "gpt-2" : o.pre_tokenizer;
  auto known = PreTokenizer::known();
  if (std::find(known.begin(), known.end(), pre_name) == known.end())
    throw UsageError("--pre-tokenizer '" + o.pre_tokenizer + "', expected one of " + join(known));
  PreTokenizer pre(pre_name, "--pre-tokenizer");

  // Words and their frequencies. Each line is seen with its newline, as in a text tokenized
  // whole. Lines longer than o.max_sentence_length bytes are skipped, as the SentencePiece
  // trainer does. o.max_sentences > 0 trains on a uniform random sample of that many lines
  // (reservoir sampling seeded with o.seed, so the same input and seed give the same sample),
  // not on the first lines; 0 trains on every line. o.threads is not used: one thread counts
  // the words of 5 MB of text and learns 8000 pieces in a quarter of a second.
  std::unordered_map<std::string, uint64_t> word_freq;
  std::vector<std::string_view> views;
  uint64_t n_words = 0;
  auto count_line = [&](std::string& line) {
    line += '\n';
    views.clear();
    pre.split(line, views);
    for (std::string_view w : views) ++word_freq[std::string(w)];
    n_words += views.size();
  };
  const uint64_t max_len = o.max_sentence_length > 0 ? uint64_t(o.max_sentence_length) : UINT64_MAX;
  uint64_t n_lines = 0, n_long = 0, n_kept = 0;
  std::vector<std::string> sample;
  SplitMix64 rng{o.seed};
  std::string line;
  while (next_line(line)) {
    ++n_lines;
    if (line.size() > max_len) {
      ++n_long;
      continue;
    }
    ++n_kept;
    if (o.max_sentences == 0) {
      count_line(line);
    } else if (sample.size() < o.max_sentences) {
      sample.push_back(std::move(line));
    } else if (uint64_t j = rng.below(n_kept); j < o.max_sentences) {
      sample[size_t(j)] = std::move(line);
    }
  }
  if (n_lines == 0) throw Error("no training data: the input has no lines");
  if (n_kept == 0)
    throw Error("no training data: all " + std::to_string(n_lines) + " lines are longer than --max-sentence-length " +
                std::to_string(o.max_sentence_length) + " bytes");
  for (auto& s : sample) count_line(s);
  std::vector<std::string>().swap(sample);
  if (n_long)
    log.info("skipped %llu of %llu lines longer than %d bytes (--max-sentence-length)", (unsigned long long)n_long,
             (unsigned long long)n_lines, o.max_sentence_length);
  log.debug("byte-level BPE: %llu lines%s, %llu words (%zu distinct) split by the '%s' pre-tokenizer",
            (unsigned long long)n_kept,
            o.max_sentences && o.max_sentences < n_kept
                ? (", sampled " + std::to_string(o.max_sentences)).c_str()
                : "",
            (unsigned long long)n_words, word_freq.size(), pre_name.c_str());

  const ByteSymbols& bs = byte_symbols();
  std::vector<std::string> pieces(256);
  for (int b = 0; b < 256; ++b) pieces[size_t(bs.id[size_t(b)])] = bs.text[size_t(b)];
  std::unordered_map<std::string, int32_t> id_of;
  for (int32_t i = 0; i < 256; ++i) id_of.emplace(pieces[size_t(i)], i);
  std::unordered_set<std::string> control_set(controls.begin(), controls.end());

  std::vector<Word> words;
  words.reserve(word_freq.size());
  for (auto& [text, freq] : word_freq) {
    Word w{{}, freq};
    w.symbols.reserve(text.size());
    for (unsigned char c : text) w.symbols.push_back(bs.id[c]);
    words.push_back(std::move(w));
  }
  std::unordered_map<std::string, uint64_t>().swap(word_freq);

  // Pair counts (weighted by word frequency) and, per pair, the words that held it when it was
  // counted: an entry may be stale (the word was rewritten since), never missing.
  std::unordered_map<PairKey, int64_t> pair_count;
  std::unordered_map<PairKey, std::vector<uint32_t>> pair_words;
  std::unordered_set<PairKey> forbidden;  // pairs whose text is a control symbol: never merged
  auto add_pair = [&](int32_t a, int32_t b, int64_t delta, uint32_t w) {
    PairKey k = pair_key(a, b);
    if (!forbidden.empty() && forbidden.count(k)) return;
    pair_count[k] += delta;
    if (delta > 0) {
      auto& ws = pair_words[k];
      if (ws.empty() || ws.back() != w) ws.push_back(w);
    }
  };
  for (uint32_t w = 0; w < words.size(); ++w) {
    const auto& s = words[w].symbols;
    for (size_t i = 0; i + 1 < s.size(); ++i) add_pair(s[i], s[i + 1], int64_t(words[w].freq), w);
  }

  // Most frequent pair first; on equal counts the pair whose left piece's text is smaller
  // (bytewise), then the right's. Pieces' texts are distinct, so this is a total order.
  auto lower = [&](const HeapEntry& x, const HeapEntry& y) {  // true if x comes after y
    if (x.count != y.count) return x.count < y.count;
    if (int c = pieces[size_t(left_of(x.pair))].compare(pieces[size_t(left_of(y.pair))])) return c > 0;
    return pieces[size_t(right_of(x.pair))] > pieces[size_t(right_of(y.pair))];
  };
  std::vector<HeapEntry> heap;
  heap.reserve(pair_count.size());
  for (auto [k, c] : pair_count) heap.push_back({c, k});
  std::make_heap(heap.begin(), heap.end(), lower);

  const size_t target = size_t(o.vocab_size) - controls.size();  // pieces before the control pieces
  std::vector<std::string> merges;
  std::unordered_set<PairKey> merged;  // a pair is written to merges once
  std::vector<uint32_t> stamp(words.size(), 0);
  std::vector<PairKey> grown;
  uint32_t step = 0;
  size_t reused = 0;
  while (pieces.size() < target && !heap.empty()) {
    std::pop_heap(heap.begin(), heap.end(), lower);
    HeapEntry top = heap.back();
    heap.pop_back();
    auto it = pair_count.find(top.pair);
    int64_t count = it == pair_count.end() ? 0 : it->second;
    if (count != top.count) {  // stale: a later entry or the current count decides
      if (count > 0) {
        heap.push_back({count, top.pair});
        std::push_heap(heap.begin(), heap.end(), lower);
      }
      continue;
    }
    if (count <= 0) continue;
    const int32_t a = left_of(top.pair), b = right_of(top.pair);
    std::string text = pieces[size_t(a)] + pieces[size_t(b)];
    if (control_set.count(text)) {
      forbidden.insert(top.pair);
      pair_count.erase(top.pair);
      pair_words.erase(top.pair);
      continue;
    }
    // Should two merges spell the same text ("ab"+"c" and "a"+"bc"; left-to-right merging made
    // it unreachable in every corpus tried), the second reuses the first's piece, so no text is
    // in the vocabulary twice, and its merge is still recorded, as the tokenizers library does.
    int32_t z;
    if (auto f = id_of.find(text); f != id_of.end()) {
      z = f->second;
      ++reused;
    } else {
      z = int32_t(pieces.size());
      id_of.emplace(text, z);
      pieces.push_back(std::move(text));
    }
    if (merged.insert(top.pair).second) merges.push_back(pieces[size_t(a)] + " " + pieces[size_t(b)]);
    ++step;

    std::vector<uint32_t> ws = std::move(pair_words[top.pair]);
    pair_words.erase(top.pair);
    grown.clear();
    for (uint32_t w : ws) {
      if (stamp[w] == step) continue;
      stamp[w] = step;
      auto& s = words[w].symbols;
      const int64_t f = int64_t(words[w].freq);
      size_t r = 0, out = 0;
      const size_t n = s.size();
      while (r < n) {
        if (r + 1 < n && s[r] == a && s[r + 1] == b) {
          if (out > 0) {
            add_pair(s[out - 1], a, -f, w);
            add_pair(s[out - 1], z, f, w);
            grown.push_back(pair_key(s[out - 1], z));
          }
          if (r + 2 < n) {
            add_pair(b, s[r + 2], -f, w);
            add_pair(z, s[r + 2], f, w);
            grown.push_back(pair_key(z, s[r + 2]));
          }
          s[out++] = z;
          r += 2;
        } else {
          s[out++] = s[r++];
        }
      }
      s.resize(out);
    }
    pair_count.erase(top.pair);
    std::sort(grown.begin(), grown.end());
    grown.erase(std::unique(grown.begin(), grown.end()), grown.end());
    for (PairKey k : grown) {
      auto g = pair_count.find(k);
      if (g == pair_count.end() || g->second <= 0) continue;
      heap.push_back({g->second, k});
      std::push_heap(heap.begin(), heap.end(), lower);
    }
    if (step % 1000 == 0)
      log.debug("%u merges, %zu of %zu pieces; the last, '%s', seen %lld times", step, pieces.size(), target,
                merges.back().c_str(), (long long)count);
  }
  const size_t n_merged = pieces.size() - 256;
  if (pieces.size() < target)
    log.warn("the text has no pair left to merge after %zu merges: the vocabulary has %zu pieces, not the %d of "
             "--vocab-size",
             merges.size(), pieces.size() + controls.size(), o.vocab_size);
  log.debug("byte-level BPE: %zu merges, %zu merged pieces (%zu merges spell a piece an earlier merge made), "
            "%zu control pieces",
            merges.size(), n_merged, reused, controls.size());

  VocabSpec v;
  v.family = "gpt2";
  v.add_dummy_prefix = false;
  v.byte_fallback = false;
  v.pre = pre_name;
  v.merges = std::move(merges);
  v.types.assign(pieces.size(), PieceType::Normal);
  const int first_control = int(pieces.size());
  for (const auto& c : controls) {
    pieces.push_back(c);
    v.types.push_back(PieceType::Control);
  }
  v.pieces = std::move(pieces);
  v.scores.assign(v.pieces.size(), 0.0f);
  v.bos_id = first_control;
  v.eos_id = first_control;
  return v;
}

}  // namespace lm::tok
