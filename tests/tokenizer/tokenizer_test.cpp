// Tests for lib/tokenizer: SentencePiece-identical encoding, whole-text encoding, rebuild from
// vocabulary arrays, training options, and the bad-model catalogue (docs/reliability.md, C).
#include <doctest/doctest.h>
#include <sentencepiece_processor.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <string>
#include <vector>

#include "base/error.hpp"
#include "tokenizer/text_batch.hpp"
#include "tokenizer/tokenizer.hpp"
#include "test_util.hpp"

using namespace lm;

namespace {

std::vector<std::string> corpus_lines() {
  static const char* words[] = {"the", "of", "and", "jury", "said", "county", "election", "model", "token",
                                "river", "garden", "1961", "42", "café", "naïve", "東京", "x", "piece", "train"};
  std::vector<std::string> lines;
  uint64_t x = 7;
  for (int i = 0; i < 1500; ++i) {
    std::string s;
    for (int j = 0; j < 3 + i % 9; ++j) {
      x = x * 6364136223846793005ull + 1442695040888963407ull;
      if (j) s += ' ';
      s += words[(x >> 33) % (sizeof words / sizeof *words)];
    }
    lines.push_back(s);
  }
  return lines;
}

Tokenizer train_small(const std::string& type = "bpe", int vocab = 400) {
  TokenizerTrainOptions o;
  o.model_type = type;
  return test::train_tokenizer(corpus_lines(), vocab, o);
}

const Tokenizer& bpe() {
  static Tokenizer tok = train_small();
  return tok;
}

std::vector<int> whole_text_ids(const Tokenizer& tok, const std::string& text) {
  std::vector<int> ids;
  size_t pos = 0;
  bool first = true;
  while (pos <= text.size()) {
    size_t nl = text.find('\n', pos);
    bool has_nl = nl != std::string::npos;
    std::string line = text.substr(pos, has_nl ? nl - pos : std::string::npos);
    if (!has_nl && line.empty() && !first) break;
    tok.encode_line_of_text(line, first, has_nl, ids);
    first = false;
    if (!has_nl) break;
    pos = nl + 1;
  }
  return ids;
}

std::string varint(uint64_t v) {
  std::string s;
  while (v >= 0x80) s += char(uint8_t(v) | 0x80), v >>= 7;
  return s + char(v);
}
std::string field_bytes(int n, const std::string& b) { return varint(uint64_t(n) << 3 | 2) + varint(b.size()) + b; }
std::string field_uint(int n, uint64_t v) { return varint(uint64_t(n) << 3) + varint(v); }
std::string field_float(int n, float f) {
  char b[4];
  std::memcpy(b, &f, 4);
  return varint(uint64_t(n) << 3 | 5) + std::string(b, 4);
}
std::string piece(const std::string& p, float score, int type) {
  return field_bytes(1, field_bytes(1, p) + field_float(2, score) + field_uint(3, uint64_t(type)));
}
// A minimal valid unigram model without dummy prefix: <unk>, <s>, </s>, a, b.
std::string tiny_model(const std::string& extra_pieces = "", const std::string& trainer = "") {
  return piece("<unk>", 0, 2) + piece("<s>", 0, 3) + piece("</s>", 0, 3) + piece("a", -1, 1) + piece("b", -2, 1) +
         extra_pieces + field_bytes(2, field_uint(3, 1) + trainer) + field_bytes(3, field_bytes(1, "identity") + field_uint(3, 0));
}

}  // namespace

TEST_CASE("encode and decode equal SentencePiece's own processor") {
  const Tokenizer& tok = bpe();
  sentencepiece::SentencePieceProcessor sp;
  REQUIRE(sp.LoadFromSerializedProto(tok.model_proto()).ok());
  for (const std::string& text : {std::string("the jury said"), std::string("  two  spaces "), std::string("东京 café ☃"),
                                  std::string(""), std::string("zzz 1961 12345")}) {
    std::vector<int> ours;
    tok.encode(text, ours);
    CHECK(ours == sp.EncodeAsIds(text));
    std::vector<std::string> pieces;
    tok.encode_pieces(text, pieces);
    CHECK(pieces == sp.EncodeAsPieces(text));
    CHECK(tok.decode(ours) == sp.DecodeIds(ours));
  }
}

TEST_CASE("trained defaults: bpe, byte fallback, lossless, specials and a newline piece") {
  const Tokenizer& tok = bpe();
  CHECK(tok.vocab_size() == 400);
  CHECK(tok.model_type() == "bpe");
  CHECK(tok.byte_fallback());
  CHECK(tok.add_dummy_prefix());
  CHECK(tok.unk_id() == 0);
  CHECK(tok.bos_id() == 1);
  CHECK(tok.eos_id() == 2);
  CHECK_FALSE(tok.pad_id().has_value());
  CHECK(tok.type(0) == PieceType::Unknown);
  CHECK(tok.type(1) == PieceType::Control);
  REQUIRE(tok.newline_ids().size() == 1);
  CHECK(tok.piece(tok.newline_ids()[0]) == "<0x0A>");
  CHECK(tok.type(tok.newline_ids()[0]) == PieceType::Byte);
  std::string text = "  Ünïcödé  ☃ 東京\tx";
  std::vector<int> ids;
  tok.encode(text, ids);
  CHECK(tok.decode(ids) == text);
}

TEST_CASE("whole-text encoding equals encoding the text as one string, and decode_text inverts it") {
  sentencepiece::SentencePieceProcessor sp;
  for (const Tokenizer* tok : {&bpe()}) {
    REQUIRE(sp.LoadFromSerializedProto(tok->model_proto()).ok());
    for (const std::string& text :
         {std::string("the jury\nsaid the county\n"), std::string("\nleading newline"), std::string("a\n\n\nb"),
          std::string("  indented\n  more indent\n"), std::string("no newline at all"), std::string("\n"),
          std::string("\n\n"), std::string("café\r\n東京 ☃\n\x01\x02"), std::string("last line\nwithout newline")}) {
      CAPTURE(text);
      std::vector<int> ids = whole_text_ids(*tok, text);
      CHECK(ids == sp.EncodeAsIds(text));
      CHECK(tok->decode_text(ids) == text);
      std::vector<int> direct = {7};
      tok->encode_text(text, direct);
      CHECK(direct.front() == 7);
      CHECK(std::vector<int>(direct.begin() + 1, direct.end()) == ids);
    }
  }
}

TEST_CASE("unigram models train and round trip") {
  Tokenizer uni = train_small("unigram", 300);
  CHECK(uni.model_type() == "unigram");
  std::string text = "the river garden\n  said 東京\n";
  sentencepiece::SentencePieceProcessor sp;
  REQUIRE(sp.LoadFromSerializedProto(uni.model_proto()).ok());
  std::vector<int> ids = whole_text_ids(uni, text);
  CHECK(ids == sp.EncodeAsIds(text));
  CHECK(uni.decode_text(ids) == text);
}

TEST_CASE("from_vocab rebuilds a model that encodes identically") {
  const Tokenizer& tok = bpe();
  VocabSpec v;
  for (int i = 0; i < tok.vocab_size(); ++i) {
    v.pieces.push_back(tok.piece(i));
    v.scores.push_back(tok.score(i));
    v.types.push_back(tok.type(i));
  }
  v.unk_id = 0;
  v.bos_id = 1;
  v.eos_id = 2;
  // Rebuilt for the SentencePiece library, and tokenized from the arrays by merges (llama.cpp's
  // way): for a SentencePiece BPE model both give SentencePiece's ids.
  for (const char* how : {"bpe", ""}) {
    CAPTURE(how);
    v.sentencepiece_type = how;
    Tokenizer rebuilt = Tokenizer::from_vocab(v, "rebuilt");
    CHECK(rebuilt.model_type() == "bpe");
    CHECK((rebuilt.vocab_spec() == nullptr) == (*how != 0));
    CHECK(rebuilt.bos_id() == 1);
    CHECK(rebuilt.eos_id() == 2);
    for (const std::string& text :
         {std::string("the jury said 1961"), std::string("东京 café ☃ qqq"), std::string("\nx\n")}) {
      std::vector<int> a, b;
      tok.encode(text, a);
      rebuilt.encode(text, b);
      CHECK(a == b);
      CHECK(whole_text_ids(tok, text) == whole_text_ids(rebuilt, text));
      CHECK(rebuilt.decode_text(whole_text_ids(rebuilt, text)) == text);
    }
  }
}

TEST_CASE("from_vocab rejects inconsistent arrays and special ids") {
  VocabSpec v;
  v.pieces = {"<unk>", "a"};
  v.scores = {0};
  v.types = {PieceType::Unknown, PieceType::Normal};
  CHECK_THROWS_WITH_AS(Tokenizer::from_vocab(v, "m.gguf"), doctest::Contains("differ in length"), FormatError);
  v.scores = {0, 0};
  v.bos_id = 7;
  CHECK_THROWS_WITH_AS(Tokenizer::from_vocab(v, "m.gguf"), doctest::Contains("special token id 7"), FormatError);
}

TEST_CASE("a model that cannot encode a text is a FormatError naming the file") {
  // tests/fuzz/regressions/spm/control_char.gguf: 'r' only as a control piece, no byte fallback.
  VocabSpec v;
  v.pieces = {"<unk>", "<s>", "</s>", "\xe2\x96\x81", "a", "r"};
  v.scores = {0, 0, 0, -1, -2, -3};
  v.types = {PieceType::Unknown, PieceType::Control, PieceType::Control, PieceType::Normal, PieceType::Normal,
             PieceType::Control};
  v.byte_fallback = false;
  v.unk_id = 0;
  v.sentencepiece_type = "bpe";  // through the SentencePiece library
  Tokenizer tok = Tokenizer::from_vocab(v, "m.gguf");
  std::vector<int> ids;
  tok.encode("a", ids);
  CHECK(ids.size() == 2);
  CHECK_THROWS_WITH_AS(tok.encode("ar", ids), doctest::Contains("m.gguf: encoding failed: "), FormatError);
}

TEST_CASE("training options are validated and failures explained") {
  Logger quiet("test", Logger::Level::Quiet);
  auto none = [](std::string&) { return false; };
  TokenizerTrainOptions o;
  CHECK_THROWS_WITH_AS(Tokenizer::train(o, none, quiet), doctest::Contains("no training data"), Error);
  o.model_type = "wordpiece";
  CHECK_THROWS_AS(Tokenizer::train(o, none, quiet), UsageError);
  o = {};
  o.vocab_size = 100000;
  o.threads = 1;
  auto lines = corpus_lines();
  size_t i = 0;
  auto next = [&](std::string& l) { return i < lines.size() ? (l = lines[i++], true) : false; };
  CHECK_THROWS_WITH_AS(Tokenizer::train(o, next, quiet), doctest::Contains("--vocab-size"), Error);
}

TEST_CASE("training honours user-defined and control symbols") {
  TokenizerTrainOptions o;
  o.user_defined_symbols = {"<sep>"};
  o.control_symbols = {"<cls>"};
  Tokenizer tok = test::train_tokenizer(corpus_lines(), 400, o);
  std::vector<std::string> pieces;
  tok.encode_pieces("jury<sep>said", pieces);
  CHECK(std::find(pieces.begin(), pieces.end(), "<sep>") != pieces.end());
  bool found = false;
  for (int id = 0; id < tok.vocab_size(); ++id) found |= tok.piece(id) == "<cls>" && tok.type(id) == PieceType::Control;
  CHECK(found);
}

TEST_CASE("decode rejects ids outside the vocabulary (F8)") {
  CHECK_THROWS_WITH_AS(bpe().decode({5, 400}), doctest::Contains("token id 400 out of range [0, 400)"), FormatError);
  CHECK_THROWS_AS(bpe().decode({-1}), FormatError);
  CHECK_THROWS_AS(bpe().decode_text({1, 99999}), FormatError);
}

TEST_CASE("encode_batch matches one-by-one encoding at any thread count") {
  auto lines = corpus_lines();
  std::vector<std::vector<int>> one, two;
  encode_batch(bpe(), lines, one, 1);
  encode_batch(bpe(), lines, two, 2);
  CHECK(one == two);
  std::vector<int> ids;
  bpe().encode(lines[17], ids);
  CHECK(one[17] == ids);
}

TEST_CASE("run_pipeline: every item once, batches written in order, at 1 and 2 threads") {
  // 10 batches of 1 .. 199 items (then the read returns 0); each item's value is its batch and
  // index, so the written sequence shows order and completeness.
  for (int threads : {1, 2}) {
    int next_batch = 0;
    std::vector<int> slot[2], written;
    int slot_batch[2] = {-1, -1};
    auto read = [&](int s) -> size_t {
      if (next_batch == 10) return 0;
      const size_t n = size_t(1 + next_batch * 22);
      slot_batch[s] = next_batch++;
      slot[s].assign(n, -1);
      return n;
    };
    auto encode = [&](int s, size_t i) { slot[s][i] = slot_batch[s] * 1000 + int(i); };
    auto write = [&](int s) { written.insert(written.end(), slot[s].begin(), slot[s].end()); };
    run_pipeline(threads, read, encode, write);
    std::vector<int> expected;
    for (int b = 0; b < 10; ++b)
      for (int i = 0; i < 1 + b * 22; ++i) expected.push_back(b * 1000 + i);
    CHECK(written == expected);
  }
}

TEST_CASE("run_pipeline: an exception in any stage is rethrown and nothing after it is written") {
  // Six batches of 100. While batch k is encoded, batch k - 1 is written and batch k + 1 read.
  for (int threads : {1, 2})
    for (int failing : {0, 1, 2}) {  // read of batch 3, encoding of batch 3, the third write
      int batches = 0, slot_batch[2] = {-1, -1};
      size_t writes = 0;
      auto read = [&](int s) -> size_t {
        if (failing == 0 && batches == 3) throw FormatError("in.txt", "bad line");
        slot_batch[s] = batches;
        return batches++ < 6 ? 100 : 0;
      };
      auto encode = [&](int s, size_t i) {
        if (failing == 1 && slot_batch[s] == 3 && i == 50) throw FormatError("in.txt", "bad line");
      };
      auto write = [&](int) {
        if (failing == 2 && writes == 2) throw IoError("out.txt", "cannot write", 28);
        ++writes;
      };
      CAPTURE(threads);
      CAPTURE(failing);
      CHECK_THROWS_AS(run_pipeline(threads, read, encode, write), Error);
      CHECK(writes == (failing == 1 ? 3u : 2u));
    }
  // Empty input: nothing is encoded or written.
  bool called = false;
  run_pipeline(2, [](int) -> size_t { return 0; }, [&](int, size_t) { called = true; }, [&](int) { called = true; });
  CHECK_FALSE(called);
}

TEST_CASE("the hand-built tiny model loads") {
  Tokenizer tok = Tokenizer::from_model_proto(tiny_model(), "tiny");
  CHECK(tok.vocab_size() == 5);
  CHECK(tok.model_type() == "unigram");
  std::vector<int> ids;
  tok.encode("ab", ids);
  CHECK(tok.decode(ids) == "ab");
}

TEST_CASE("C1 random bytes and truncated protobuf are rejected") {
  std::string junk = "\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\x07garbage";
  CHECK_THROWS_WITH_AS(Tokenizer::from_model_proto(junk, "junk.model"), doctest::Contains("junk.model"), FormatError);
  std::string good = tiny_model();
  CHECK_THROWS_WITH_AS(Tokenizer::from_model_proto(good.substr(0, good.size() - 3), "cut.model"),
                       doctest::Contains("could not parse"), FormatError);
  CHECK_THROWS_WITH_AS(Tokenizer::from_model_proto("", "empty.model"), doctest::Contains("empty"), FormatError);
  CHECK_THROWS_WITH_AS(Tokenizer::from_model_proto("version https://git-lfs.github.com/spec/v1\n", "lfs.model"),
                       doctest::Contains("Git LFS"), FormatError);
}

TEST_CASE("C2 a piece of 200000 bytes is rejected") {
  CHECK_THROWS_WITH_AS(Tokenizer::from_model_proto(tiny_model(piece(std::string(200000, 'x'), 0, 1)), "long.model"),
                       doctest::Contains("piece #5 is 200000 bytes"), FormatError);
}

TEST_CASE("C3 empty and duplicate pieces are rejected") {
  CHECK_THROWS_WITH_AS(Tokenizer::from_model_proto(tiny_model(piece("", 0, 1)), "m"), doctest::Contains("piece #5 is empty"),
                       FormatError);
  CHECK_THROWS_WITH_AS(Tokenizer::from_model_proto(tiny_model(piece("a", 0, 1)), "m"), doctest::Contains("duplicate"),
                       FormatError);
}

TEST_CASE("C3 a piece with a NUL byte is rejected before SentencePiece builds its trie") {
  // tests/fuzz/regressions/spm/nul_piece.model: SentencePiece aborted the process on it.
  const size_t at = (piece("<unk>", 0, 2) + piece("<s>", 0, 3) + piece("</s>", 0, 3) + piece("a", -1, 1) +
                     piece("b", -2, 1)).size();
  const std::string want = "m: piece #5 has a NUL byte, expected none (at byte " + std::to_string(at) + ")";
  for (const std::string& p : {std::string("\0c", 2), std::string("c\0", 2)})
    CHECK_THROWS_WITH_AS(Tokenizer::from_model_proto(tiny_model(piece(p, 0, 1)), "m"), want.c_str(), FormatError);
}

TEST_CASE("C4 special ids beyond the vocabulary are rejected") {
  CHECK_THROWS_WITH_AS(Tokenizer::from_model_proto(tiny_model("", field_uint(41, 9)), "m"),
                       doctest::Contains("bos_id 9 >= vocabulary size 5"), FormatError);
}

TEST_CASE("C5 NaN scores and unknown piece types are rejected") {
  CHECK_THROWS_WITH_AS(Tokenizer::from_model_proto(tiny_model(piece("c", NAN, 1)), "m"), doctest::Contains("score"),
                       FormatError);
  CHECK_THROWS_WITH_AS(Tokenizer::from_model_proto(tiny_model(piece("c", 0, 9)), "m"), doctest::Contains("type 9"),
                       FormatError);
}

TEST_CASE("C6 a broken precompiled_charsmap is rejected before SentencePiece reads it") {
  auto with_charsmap = [](const std::string& map) {
    return piece("<unk>", 0, 2) + piece("a", -1, 1) + field_bytes(2, field_uint(3, 1)) +
           field_bytes(3, field_bytes(1, "custom") + field_bytes(2, map));
  };
  std::string oversized = std::string("\xff\xff\x00\x00", 4) + std::string(8, 'x') + std::string(1, '\0');
  CHECK_THROWS_WITH_AS(Tokenizer::from_model_proto(with_charsmap(oversized), "m"), doctest::Contains("trie size 65535 exceeds"),
                       FormatError);
  std::string odd = std::string("\x06\x00\x00\x00", 4) + std::string(8, 'x') + std::string(1, '\0');
  CHECK_THROWS_WITH_AS(Tokenizer::from_model_proto(with_charsmap(odd), "m"), doctest::Contains("not a multiple of 4"),
                       FormatError);
  std::string no_nul = std::string("\x04\x00\x00\x00", 4) + std::string(8, 'x');
  CHECK_THROWS_WITH_AS(Tokenizer::from_model_proto(with_charsmap(no_nul), "m"), doctest::Contains("do not end with NUL"),
                       FormatError);
  CHECK_THROWS_WITH_AS(Tokenizer::from_model_proto(with_charsmap("abc"), "m"), doctest::Contains("expected more than 4"),
                       FormatError);
}

TEST_CASE("C7 a model without pieces or without an unknown piece is rejected") {
  CHECK_THROWS_WITH_AS(Tokenizer::from_model_proto(field_bytes(2, field_uint(3, 1)), "m"), doctest::Contains("no pieces"),
                       FormatError);
  std::string no_unk = piece("a", 0, 1) + piece("b", 0, 1) + piece("c", 0, 1) + field_bytes(2, field_uint(3, 1));
  CHECK_THROWS_WITH_AS(Tokenizer::from_model_proto(no_unk, "m"), doctest::Contains("no unknown piece"), FormatError);
}

TEST_CASE("fingerprints identify the model bytes") {
  Tokenizer a = Tokenizer::from_model_proto(tiny_model(), "a");
  Tokenizer b = Tokenizer::from_model_proto(tiny_model(), "b");
  Tokenizer c = Tokenizer::from_model_proto(tiny_model(piece("c", -3, 1)), "c");
  CHECK(a.fingerprint() == b.fingerprint());
  CHECK(a.fingerprint() != c.fingerprint());
}

TEST_CASE("token_bytes concatenated over a text's ids is the text after the dummy prefix's space") {
  const Tokenizer& tok = bpe();
  REQUIRE(tok.add_dummy_prefix());
  // ☃ and 東京 fall back to byte pieces: each carries part of a UTF-8 character.
  for (const std::string& text : {std::string("the jury said"), std::string("café\n\n東京 ☃  x\t42"),
                                  std::string("  two leading spaces"), std::string("\x01")}) {
    CAPTURE(text);
    std::string joined;
    for (int id : whole_text_ids(tok, text)) joined += tok.token_bytes(id);
    CHECK(joined == " " + text);
  }
  CHECK(tok.token_bytes(*tok.bos_id()).empty());
  CHECK(tok.token_bytes(*tok.unk_id()) == tok.decode({*tok.unk_id()}));
}
