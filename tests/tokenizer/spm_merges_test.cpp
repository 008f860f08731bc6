// Tests for lib/tokenizer/spm_merges.cpp: SentencePiece-style merging by score straight from a
// GGUF "llama" vocabulary, as llama.cpp's llm_tokenizer_spm_session does. The expected ids
// follow that code on the same small vocabulary.
#include <doctest/doctest.h>

#include <random>
#include <string>
#include <vector>

#include "base/error.hpp"
#include "tokenizer/engine.hpp"

using namespace lm;
using namespace lm::tok;

namespace {

#define S "\xe2\x96\x81"  // "▁", SentencePiece's space

struct P {
  std::string piece;
  float score;
  PieceType type = PieceType::Normal;
};

Vocab make_vocab(const std::vector<P>& ps, std::optional<int> unk) {
  Vocab v;
  for (const P& p : ps) {
    v.pieces.push_back(p.piece);
    v.scores.push_back(p.score);
    v.types.push_back(p.type);
  }
  v.unk_id = unk;
  v.index();
  return v;
}

const std::vector<P> kPieces = {
    {"<unk>", 0, PieceType::Unknown},       // 0
    {"<s>", 0, PieceType::Control},         // 1
    {"</s>", 0, PieceType::Control},        // 2
    {"<0xC3>", 0, PieceType::Byte},         // 3
    {"<0xA9>", 0, PieceType::Byte},         // 4
    {"<0xFF>", 0, PieceType::Byte},         // 5
    {S, -10},                               // 6
    {"a", -10},                             // 7
    {"b", -10},                             // 8
    {"c", -10},                             // 9
    {"ab", -2},                             // 10
    {"bc", -1},                             // 11
    {"aa", -3},                             // 12
    {S "a", -4},                            // 13
    {S "b", -5},                            // 14
    {"<tool>", 0, PieceType::UserDefined},  // 15
    {S S, -6},                              // 16
    {"\xe6\x9d\xb1", -7},                   // 17 "東"
    {"x", -20, PieceType::Unused},          // 18
};

std::vector<int> encode(const Engine& e, const std::string& text, bool at_start = false) {
  std::vector<int> ids;
  e.encode(text, at_start, ids);
  return ids;
}

std::string decode(const Engine& e, const std::vector<int>& ids) {
  std::string s;
  for (int id : ids) s += e.token_bytes(id);
  return s;
}

}  // namespace

TEST_CASE("spm merges: the pair with the highest score first, the leftmost among equals") {
  auto e = make_spm_merges(make_vocab(kPieces, 0), true, "test.gguf");
  CHECK(std::string(e->name()) == "bpe");
  CHECK(encode(*e, "abc") == std::vector<int>{7, 11});  // "bc" (-1) beats "ab" (-2)
  CHECK(encode(*e, "ab") == std::vector<int>{10});
  CHECK(encode(*e, "aaa") == std::vector<int>{12, 7});  // equal scores: the left pair
  CHECK(encode(*e, "a b") == std::vector<int>{7, 14});  // spaces are "▁"
  CHECK(encode(*e, "a   b") == std::vector<int>{7, 16, 14});
  CHECK(encode(*e, "\xe6\x9d\xb1\xe6\x9d\xb1") == std::vector<int>{17, 17});
}

TEST_CASE("spm merges: the dummy prefix only at the start and only when the vocabulary asks") {
  auto e = make_spm_merges(make_vocab(kPieces, 0), true, "test.gguf");
  CHECK(encode(*e, "a", true) == std::vector<int>{13});
  CHECK(encode(*e, "a", false) == std::vector<int>{7});
  CHECK(encode(*e, "bc", true) == std::vector<int>{6, 11});  // "bc" (-1) before "▁b" (-5)
  CHECK(encode(*e, "", true).empty());                        // nothing to prefix
  auto no_prefix = make_spm_merges(make_vocab(kPieces, 0), false, "test.gguf");
  CHECK(encode(*no_prefix, "a", true) == std::vector<int>{7});
}

TEST_CASE("spm merges: byte fallback, then the unknown token, for characters no piece covers") {
  auto e = make_spm_merges(make_vocab(kPieces, 0), true, "test.gguf");
  CHECK(encode(*e, "\xc3\xa9") == std::vector<int>{3, 4});  // "é" -> <0xC3> <0xA9>
  CHECK(encode(*e, "z") == std::vector<int>{0});
  CHECK(encode(*e, "\xc3\xbc") == std::vector<int>{0});  // "ü": <0xBC> is missing, so one unknown
  // Invalid UTF-8: a character is as long as its first byte says (llama.cpp's count), so
  // "\xFF" swallows the "a" after it; the bytes fall back to <0xFF> and then the piece "a".
  CHECK(encode(*e, "\xff") == std::vector<int>{5});
  CHECK(encode(*e, "\xff" "a") == std::vector<int>{5, 7});
  CHECK(encode(*e, "\xc3") == std::vector<int>{3});
  std::string all;
  for (int i = 0; i < 256; ++i) all += char(i);
  CHECK_NOTHROW(encode(*e, all + all, true));

  // Without byte pieces and without an unknown token there is nothing to give: an error, not a crash.
  auto bare = make_spm_merges(make_vocab({{"a", 0}, {"b", 0}}, std::nullopt), true, "bare.gguf");
  CHECK(encode(*bare, "ab") == std::vector<int>{0, 1});
  CHECK_THROWS_WITH_AS(encode(*bare, "z"), doctest::Contains("bare.gguf: vocabulary has no piece for the text's byte 0x"),
                       FormatError);
}

TEST_CASE("spm merges: token bytes give the text back") {
  auto e = make_spm_merges(make_vocab(kPieces, 0), true, "test.gguf");
  CHECK(e->token_bytes(6) == " ");
  CHECK(e->token_bytes(13) == " a");
  CHECK(e->token_bytes(3) == "\xc3");
  CHECK(e->token_bytes(15) == "<tool>");  // user-defined: as written
  CHECK(e->token_bytes(0).empty());       // unknown, as llama.cpp's token_to_piece without special tokens
  CHECK(e->token_bytes(1).empty());       // control
  CHECK(e->token_bytes(18).empty());      // unused
  for (const std::string text : {"a b", "abc  \xc3\xa9 \xff", "\xe6\x9d\xb1 bc aaa"})
    CHECK(decode(*e, encode(*e, text, true)) == " " + text);
}

TEST_CASE("spm merges: bad vocabularies are errors naming the file") {
  Vocab v = make_vocab(kPieces, 0);
  v.scores.pop_back();
  CHECK_THROWS_WITH_AS(make_spm_merges(v, true, "v.gguf"), doctest::Contains("v.gguf: vocabulary has 19 pieces, 18 scores"),
                       FormatError);
  CHECK_THROWS_AS(make_spm_merges(make_vocab(kPieces, 99), true, "v.gguf"), FormatError);
  // A piece listed twice answers with its last id, as llama.cpp's map does.
  auto dup = make_spm_merges(make_vocab({{"a", 0}, {"b", 0}, {"a", 0}}, std::nullopt), false, "dup.gguf");
  CHECK(encode(*dup, "ab") == std::vector<int>{2, 1});
}

TEST_CASE("spm merges: merging word by word gives what merging the whole text gives") {
  // With a piece that has "▁" after a letter, merges may cross words and the text is merged whole.
  std::vector<P> crossing = kPieces;
  crossing.push_back({"a" S, 4});      // 19
  crossing.push_back({"a" S "b", 5});  // 20
  auto whole = make_spm_merges(make_vocab(crossing, 0), true, "test.gguf");
  CHECK(encode(*whole, "a b") == std::vector<int>{20});
  CHECK(encode(*whole, "aa b") == std::vector<int>{7, 20});

  // A piece never formed from the text below forces whole-text merging without changing the ids.
  std::vector<P> never = kPieces;
  never.push_back({"q" S "q", 5});
  auto by_word = make_spm_merges(make_vocab(kPieces, 0), true, "test.gguf");
  auto at_once = make_spm_merges(make_vocab(never, 0), true, "test.gguf");
  std::mt19937 rng(7);
  const char* parts[] = {"a", "b", "c", " ", " ", "  ", "\xc3\xa9", "\xe6\x9d\xb1", "\xff", "z"};
  for (int t = 0; t < 200; ++t) {
    std::string text;
    for (int k = 0; k < 60; ++k) text += parts[rng() % 10];
    CHECK(encode(*by_word, text, t % 2) == encode(*at_once, text, t % 2));
  }
}

TEST_CASE("spm merges: long lines merge in time in proportion to their length") {
  auto e = make_spm_merges(make_vocab(kPieces, 0), false, "test.gguf");
  const std::string one_word(1000000, 'a');  // no space: merged as one stretch
  const auto ids = encode(*e, one_word);
  CHECK(ids.size() == 500000);
  CHECK(ids.front() == 12);
  // Past 1 MiB a run with no word start is cut (at an even length here, so "aa" pairs hold).
  const auto long_ids = encode(*e, std::string((3 << 20) + 1, 'a'));
  CHECK(long_ids.size() == (3 << 19) + 1);
  CHECK(long_ids.back() == 7);
  std::string words;
  for (int i = 0; i < 200000; ++i) words += "abc ";
  CHECK(encode(*e, words).size() == 400001);  // "a" "bc", then "▁a" "bc" per word, the last "▁" alone
}
