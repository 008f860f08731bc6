// Tests for lib/tokenizer/wordpiece.cpp: BERT's basic tokenizer and greedy longest-match-first
// as llama.cpp applies them to a GGUF "bert" vocabulary. The expected ids follow llama.cpp's
// llm_tokenizer_wpm_session on the same small vocabulary.
#include <doctest/doctest.h>

#include <string>
#include <vector>

#include "base/error.hpp"
#include "tokenizer/engine.hpp"

using namespace lm;
using namespace lm::tok;

namespace {

// "▁" starts a word; continuation pieces have no prefix (the converters drop BERT's "##").
#define W "\xe2\x96\x81"

Vocab make_vocab(const std::vector<std::string>& pieces, std::optional<int> unk) {
  Vocab v;
  v.pieces = pieces;
  v.scores.assign(pieces.size(), 0.0f);
  v.types.assign(pieces.size(), PieceType::Normal);
  for (size_t i = 0; i < pieces.size(); ++i)
    if (pieces[i].front() == '[') v.types[i] = PieceType::Control;
  v.unk_id = unk;
  v.index();
  return v;
}

const std::vector<std::string> kPieces = {
    "[PAD]",           // 0
    "[UNK]",           // 1
    "[CLS]",           // 2
    W "hello",         // 3
    W "world",         // 4
    W "un",            // 5
    "aff",             // 6
    "able",            // 7
    W ",",             // 8
    W "!",             // 9
    W "cafe",          // 10
    W "\xe6\x9d\xb1",  // 11 "▁東"
    W "\xe4\xba\xac",  // 12 "▁京"
    W "a",             // 13
    W "$",             // 14
    W "naive",         // 15
    W "Hello",         // 16 (only a cased vocabulary reaches it)
    W "\xe1\x84\x92",  // 17 "▁ᄒ": the leading jamo, all llama.cpp keeps of a Hangul syllable
    "a",               // 18
    W "aa",            // 19
    W "\xc3\xa9t\xc3\xa9",  // 20 "▁été"
};

std::vector<int> encode(const Engine& e, const std::string& text) {
  std::vector<int> ids;
  e.encode(text, true, ids);
  return ids;
}

}  // namespace

TEST_CASE("wordpiece: lowercases, splits punctuation and takes the longest piece first") {
  auto e = make_wordpiece(make_vocab(kPieces, 1), "test.gguf");
  CHECK(std::string(e->name()) == "wordpiece");
  CHECK(encode(*e, "Hello, World!") == std::vector<int>{3, 8, 4, 9});
  CHECK(encode(*e, "unaffable") == std::vector<int>{5, 6, 7});
  CHECK(encode(*e, "aaa") == std::vector<int>{19, 18});  // "▁aa" before "▁a"
  CHECK(encode(*e, "a$a") == std::vector<int>{13, 14, 13});  // ASCII symbols are words of their own
  CHECK(encode(*e, "").empty());
  CHECK(encode(*e, " \t\n ").empty());
}

TEST_CASE("wordpiece: accents go, CJK ideographs are words, white space and control characters") {
  auto e = make_wordpiece(make_vocab(kPieces, 1), "test.gguf");
  CHECK(encode(*e, "Caf\xc3\xa9 na\xc3\xafve") == std::vector<int>{10, 15});          // "Café naïve"
  CHECK(encode(*e, "CAFE\xcc\x81") == std::vector<int>{10});                          // E + combining acute
  CHECK(encode(*e, "\xe6\x9d\xb1\xe4\xba\xac") == std::vector<int>{11, 12});          // "東京", no space
  CHECK(encode(*e, "\xed\x95\x9c") == std::vector<int>{17});                          // "한" -> "ᄒ"
  // U+3000 and U+00A0 separate words; U+200B (Cf), U+0001 and U+0000 vanish inside a word.
  CHECK(encode(*e, "hello\xe3\x80\x80world\xc2\xa0hel\xe2\x80\x8blo") == std::vector<int>{3, 4, 3});
  CHECK(encode(*e, std::string("hel\x01l\0o", 7)) == std::vector<int>{3});
  // A symbol outside ASCII (U+20AC, Sc) stays inside its word.
  CHECK(encode(*e, "a\xe2\x82\xac") == std::vector<int>{1});
}

TEST_CASE("wordpiece: a word any part of which no piece matches is one unknown token") {
  auto e = make_wordpiece(make_vocab(kPieces, 1), "test.gguf");
  CHECK(encode(*e, "hello xyz world") == std::vector<int>{3, 1, 4});
  CHECK(encode(*e, "unaffablex") == std::vector<int>{1});  // "▁un aff able" then "x": all of it goes
  CHECK(encode(*e, "unaffable!") == std::vector<int>{5, 6, 7, 9});
}

TEST_CASE("wordpiece: a cased vocabulary keeps case and accents") {
  auto e = make_wordpiece(make_vocab(kPieces, 1), "test.gguf", WordPieceOptions{false, false});
  CHECK(encode(*e, "Hello hello") == std::vector<int>{16, 3});
  CHECK(encode(*e, "\xc3\xa9t\xc3\xa9") == std::vector<int>{20});  // "été"
  CHECK(encode(*e, "cafe\xcc\x81") == std::vector<int>{1});        // the combining accent stays
  auto lower_only = make_wordpiece(make_vocab(kPieces, 1), "test.gguf", WordPieceOptions{true, false});
  CHECK(encode(*lower_only, "\xc3\x89T\xc3\x89") == std::vector<int>{20});  // "ÉTÉ" -> "été"
}

TEST_CASE("wordpiece: invalid UTF-8 never fails; bad bytes vanish as llama.cpp's U+FFFD does") {
  auto e = make_wordpiece(make_vocab(kPieces, 1), "test.gguf");
  CHECK(encode(*e, "hel\xfflo") == std::vector<int>{3});
  CHECK(encode(*e, "hello\xc3") == std::vector<int>{3});
  CHECK(encode(*e, "\x80\xbf\xfe\xff").empty());
  CHECK(encode(*e, "\xc1\x81") == std::vector<int>{13});          // overlong "A", decoded as llama.cpp does
  CHECK(encode(*e, "a\xf4\x90\x80\x80" "a") == std::vector<int>{19});  // past U+10FFFF (llama.cpp throws)
  std::string all;
  for (int i = 0; i < 256; ++i) all += char(i);
  CHECK_NOTHROW(encode(*e, all + all));
}

TEST_CASE("wordpiece: token bytes, unknown token, duplicates, long words") {
  Vocab v = make_vocab(kPieces, std::nullopt);
  auto e = make_wordpiece(v, "test.gguf");  // no unk_id: the piece "[UNK]"
  CHECK(encode(*e, "xyz") == std::vector<int>{1});
  CHECK(e->token_bytes(3) == " hello");
  CHECK(e->token_bytes(6) == "aff");
  CHECK(e->token_bytes(1).empty());  // control

  v.types[0] = PieceType::Unknown;  // a piece of type unknown comes before "[UNK]"
  CHECK(encode(*make_wordpiece(v, "t.gguf"), "xyz") == std::vector<int>{0});

  Vocab none = make_vocab({W "a", "b"}, std::nullopt);
  CHECK_THROWS_WITH_AS(make_wordpiece(none, "none.gguf"), doctest::Contains("none.gguf: WordPiece vocabulary has no unknown token"),
                       FormatError);
  CHECK_THROWS_AS(make_wordpiece(make_vocab({W "a", "b"}, 7), "bad.gguf"), FormatError);
  Vocab short_types = make_vocab(kPieces, 1);
  short_types.types.pop_back();
  CHECK_THROWS_AS(make_wordpiece(short_types, "bad.gguf"), FormatError);

  // A piece listed twice answers with its last id, as llama.cpp's map does.
  auto dup = make_wordpiece(make_vocab({"[UNK]", W "a", "x", W "a"}, 0), "dup.gguf");
  CHECK(encode(*dup, "a") == std::vector<int>{3});

  // A word of a million letters: one pass, "▁aa" then the continuation "a" each time.
  const std::string word(1000000, 'a');
  const auto ids = encode(*e, word);
  CHECK(ids.size() == 999999);
  CHECK(ids.front() == 19);
  CHECK(ids.back() == 18);
}
