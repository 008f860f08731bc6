// Tests for lib/tokenizer/byte_bpe_train: the merges learned on a corpus worked out by hand, the
// byte symbols, control pieces, determinism, option checks and a text that runs out of pairs.
#include <doctest/doctest.h>

#include <algorithm>
#include <cstdint>
#include <set>
#include <string>
#include <vector>

#include "base/error.hpp"
#include "tokenizer/byte_bpe_train.hpp"

using namespace lm;

namespace {

VocabSpec train(const std::vector<std::string>& lines, int vocab, TokenizerTrainOptions o = {}) {
  o.model_type = "bytebpe";
  o.vocab_size = vocab;
  size_t i = 0;
  Logger log("lm-tokenize", Logger::Level::Quiet);
  return tok::train_byte_bpe(
      o,
      [&](std::string& s) {
        if (i == lines.size()) return false;
        s = lines[i++];
        return true;
      },
      log);
}

std::string error_of(const std::vector<std::string>& lines, int vocab, TokenizerTrainOptions o = {}) {
  try {
    train(lines, vocab, o);
  } catch (const UsageError& e) {
    return std::string("usage: ") + e.what();
  } catch (const Error& e) {
    return e.what();
  }
  return "no error";
}

// 2000 lines of made-up words (syllables drawn by a fixed generator), some with digits,
// punctuation and non-ASCII letters: thousands of distinct words, enough for 600 pieces.
std::vector<std::string> corpus() {
  static const char* syl[] = {"ka", "ro", "mi", "tu", "sel", "an", "de", "vo", "ri", "qu", "é", "ß", "东", "ing", "th",
                              "er", "42", "7", ",", "'s"};
  std::vector<std::string> lines;
  uint64_t x = 7;
  auto next = [&] { return (x = x * 6364136223846793005ull + 1442695040888963407ull) >> 33; };
  for (int i = 0; i < 2000; ++i) {
    std::string s;
    for (int j = 0; j < 3 + i % 9; ++j) {
      s += j ? " " : "";
      for (int k = 0, n = 1 + int(next() % 4); k < n; ++k) s += syl[next() % (sizeof syl / sizeof *syl)];
    }
    lines.push_back(s);
  }
  return lines;
}

const std::string kG = "\xC4\xA0";  // Ġ, GPT-2's symbol for the space byte
const std::string kC = "\xC4\x8A";  // Ċ, for '\n'

}  // namespace

TEST_CASE("byte-level BPE: the merges of a corpus worked out by hand, in order") {
  // The gpt2 pre-tokenizer splits "hug hug\n" and "pug hugs\n" into the words hug, Ġhug, pug,
  // Ġhugs and Ċ (twice). Pair counts: u g 4, h u 3, Ġ h 2, p u 1, g s 1 -> merge "u g". Then
  // h ug 3 -> "h ug"; Ġ hug 2 -> "Ġ hug"; then p ug 1 and Ġhug s 1 tie, and "p" < "Ġhug" bytewise.
  VocabSpec v = train({"hug hug", "pug hugs"}, 256 + 5 + 1);
  std::vector<std::string> expected = {"u g", "h ug", kG + " hug", "p ug", kG + "hug s"};
  CHECK(v.merges == expected);
  REQUIRE(v.pieces.size() == 262);
  CHECK(std::vector<std::string>(v.pieces.begin() + 256, v.pieces.end()) ==
        std::vector<std::string>{"ug", "hug", kG + "hug", "pug", kG + "hugs", "<|endoftext|>"});
  CHECK(v.family == "gpt2");
  CHECK(v.pre == "gpt-2");  // llama.cpp's name for GPT-2's expressions, for the default "gpt2"
  CHECK(v.scores == std::vector<float>(262, 0.0f));
  for (size_t i = 0; i < 261; ++i) CHECK(v.types[i] == PieceType::Normal);
  CHECK(v.types[261] == PieceType::Control);
  CHECK(v.bos_id == 261);
  CHECK(v.eos_id == 261);
  CHECK_FALSE(v.add_bos);
  CHECK_FALSE(v.add_eos);

  // A smaller vocabulary keeps the first merges.
  VocabSpec small = train({"hug hug", "pug hugs"}, 256 + 2 + 1);
  CHECK(small.merges == std::vector<std::string>{"u g", "h ug"});
  CHECK(small.pieces.size() == 259);
  CHECK(small.pieces[258] == "<|endoftext|>");
}

TEST_CASE("byte-level BPE: a text that runs out of pairs gives a smaller vocabulary, not a failure") {
  VocabSpec v = train({"hug hug", "pug hugs"}, 300);
  CHECK(v.merges.size() == 5);
  CHECK(v.pieces.size() == 262);
  CHECK(v.pieces.back() == "<|endoftext|>");
  CHECK(v.bos_id == 261);

  // One-byte words only: no merge at all.
  VocabSpec none = train({"a", "b", "!"}, 1000);
  CHECK(none.merges.empty());
  CHECK(none.pieces.size() == 257);
}

TEST_CASE("byte-level BPE: the 256 byte symbols in GPT-2's order") {
  VocabSpec v = train({"hello"}, 258);
  REQUIRE(v.pieces.size() >= 256);
  std::set<std::string> distinct(v.pieces.begin(), v.pieces.begin() + 256);
  CHECK(distinct.size() == 256);
  // As GPT-2's vocab.json numbers them.
  CHECK(v.pieces[0] == "!");
  CHECK(v.pieces[93] == "~");
  CHECK(v.pieces[94] == "\xC2\xA1");   // ¡, byte 0xA1
  CHECK(v.pieces[187] == "\xC3\xBF");  // ÿ, byte 0xFF
  CHECK(v.pieces[188] == "\xC4\x80");  // Ā, byte 0x00
  CHECK(v.pieces[198] == kC);          // byte 0x0A
  CHECK(v.pieces[220] == kG);          // byte 0x20
  CHECK(v.pieces[255] == "\xC5\x83");  // Ń, byte 0xAD
}

TEST_CASE("byte-level BPE: the same input and options give the same vocabulary") {
  auto lines = corpus();
  VocabSpec a = train(lines, 600), b = train(lines, 600);
  CHECK(a.pieces == b.pieces);
  CHECK(a.merges == b.merges);
  CHECK(a.pieces.size() == 600);
  CHECK(a.merges.size() >= 600 - 257);
  std::set<std::string> distinct(a.pieces.begin(), a.pieces.end());
  CHECK(distinct.size() == a.pieces.size());
  // Every merge joins two pieces that exist, into a piece that exists.
  std::set<std::string> all(a.pieces.begin(), a.pieces.end());
  for (const auto& m : a.merges) {
    size_t sp = m.find(' ');
    REQUIRE(sp != std::string::npos);
    CHECK(all.count(m.substr(0, sp)));
    CHECK(all.count(m.substr(sp + 1)));
    CHECK(all.count(m.substr(0, sp) + m.substr(sp + 1)));
  }
}

TEST_CASE("byte-level BPE: no piece twice on words of one or two letters repeated") {
  // Words of a's and b's of every length: the pieces are runs and alternations of every kind.
  std::vector<std::string> lines;
  uint64_t x = 1;
  for (int i = 0; i < 3000; ++i) {
    x = x * 6364136223846793005ull + 1442695040888963407ull;
    std::string w;
    for (int j = 0; j < 2 + int(x >> 60); ++j) w += "ab"[(x >> (20 + j)) & 1];
    lines.push_back(w);
  }
  VocabSpec v = train(lines, 1000);
  std::set<std::string> distinct(v.pieces.begin(), v.pieces.end());
  CHECK(distinct.size() == v.pieces.size());
  std::set<std::string> merges(v.merges.begin(), v.merges.end());
  CHECK(merges.size() == v.merges.size());
  CHECK(v.merges.size() == v.pieces.size() - 257);
}

TEST_CASE("byte-level BPE: control symbols come last; the first is BOS and EOS") {
  TokenizerTrainOptions o;
  o.control_symbols = {"<s>", "</s>", "<pad>"};
  VocabSpec v = train(corpus(), 400, o);
  REQUIRE(v.pieces.size() == 400);
  CHECK(v.pieces[397] == "<s>");
  CHECK(v.pieces[398] == "</s>");
  CHECK(v.pieces[399] == "<pad>");
  for (int i = 397; i < 400; ++i) CHECK(v.types[size_t(i)] == PieceType::Control);
  CHECK(v.types[396] == PieceType::Normal);
  CHECK(v.bos_id == 397);
  CHECK(v.eos_id == 397);

  // A pair whose text is a control symbol is never merged: "ab" stays the control piece only.
  o.control_symbols = {"ab"};
  VocabSpec c = train({"ab ab ab", "abab"}, 270, o);
  CHECK(std::count(c.pieces.begin(), c.pieces.end(), "ab") == 1);
  CHECK(c.pieces.back() == "ab");
  for (const auto& m : c.merges) CHECK(m != "a b");
}

TEST_CASE("byte-level BPE: option and input checks") {
  CHECK(error_of({"x"}, 257) ==
        "usage: --vocab-size 257, expected at least 258 (256 byte pieces, 1 control piece and one merge)");
  TokenizerTrainOptions o;
  o.control_symbols = {"<s>", "</s>"};
  CHECK(error_of({"x"}, 258, o) ==
        "usage: --vocab-size 258, expected at least 259 (256 byte pieces, 2 control pieces and one merge)");
  o.control_symbols = {"<s>", "<s>"};
  CHECK(error_of({"x"}, 1000, o) == "usage: --control-symbols names '<s>' twice");
  CHECK(error_of({}, 1000) == "no training data: the input has no lines");
  o = {};
  o.pre_tokenizer = "no-such-pre";
  CHECK(error_of({"x"}, 1000, o).rfind("usage: --pre-tokenizer 'no-such-pre', expected one of ", 0) == 0);
  o = {};
  o.user_defined_symbols = {"<x>"};
  CHECK(error_of({"x"}, 1000, o).rfind("usage: --user-defined-symbols ", 0) == 0);
  o = {};
  o.max_sentence_length = 3;
  CHECK(error_of({"abcdef", "ghij"}, 1000, o) ==
        "no training data: all 2 lines are longer than --max-sentence-length 3 bytes");
}

TEST_CASE("byte-level BPE: long lines are skipped and --max-sentences samples lines") {
  TokenizerTrainOptions o;
  o.max_sentence_length = 3;
  VocabSpec v = train({"abcdef", "xy"}, 1000, o);
  CHECK(v.merges == std::vector<std::string>{"x y"});

  o = {};
  o.max_sentences = 1;
  for (uint64_t seed : {0, 1, 2, 3}) {
    o.seed = seed;
    VocabSpec s = train({"xy", "zw"}, 1000, o);
    REQUIRE(s.merges.size() == 1);
    CHECK((s.merges[0] == "x y" || s.merges[0] == "z w"));
    CHECK(train({"xy", "zw"}, 1000, o).merges == s.merges);
  }
}
