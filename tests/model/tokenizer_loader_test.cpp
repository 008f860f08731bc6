// Tests for lib/model/tokenizer_loader: tokenizers travel inside GGUF files, with or without
// the SentencePiece model bytes, and come back identical.
#include <doctest/doctest.h>

#include <string>
#include <vector>

#include "base/error.hpp"
#include "base/file.hpp"
#include "format/gguf.hpp"
#include "model/tokenizer_loader.hpp"
#include "test_util.hpp"

using namespace lm;

namespace {

Tokenizer small_tokenizer() {
  std::vector<std::string> lines;
  for (int i = 0; i < 800; ++i)
    lines.push_back("the jury said " + std::to_string(i % 37) + " times that the county election was fair");
  return test::train_tokenizer(lines, 320);
}

std::string write_gguf(const std::string& dir, const std::string& name, const std::function<void(format::GgufWriter&)>& fill) {
  std::string path = dir + "/" + name;
  format::GgufWriter w;
  w.set_string(format::kKeyArchitecture, "llama");
  fill(w);
  w.save(path);
  return path;
}

}  // namespace

TEST_CASE("a tokenizer embedded in GGUF loads back identical, with or without its model bytes") {
  test::TempDir dir;
  Tokenizer tok = small_tokenizer();
  std::string with = write_gguf(dir.path(), "with.gguf", [&](auto& w) { model::add_tokenizer(tok, w, true); });
  std::string without = write_gguf(dir.path(), "without.gguf", [&](auto& w) { model::add_tokenizer(tok, w, false); });
  Tokenizer a = model::load_tokenizer(with);
  CHECK(a.fingerprint() == tok.fingerprint());
  Tokenizer b = model::load_tokenizer(without);
  CHECK(b.vocab_size() == tok.vocab_size());
  CHECK(b.bos_id() == tok.bos_id());
  CHECK(b.eos_id() == tok.eos_id());
  for (const std::string& text : {std::string("the jury said 12 times"), std::string("unseen words ☃ 東京"), std::string("")}) {
    std::vector<int> x, y, z;
    tok.encode(text, x);
    a.encode(text, y);
    b.encode(text, z);
    CHECK(x == y);
    CHECK(x == z);
  }
  std::string spm = dir.path() + "/tok.model";
  test::write_file(spm, tok.model_proto());
  CHECK(model::load_tokenizer(spm).fingerprint() == tok.fingerprint());
}

TEST_CASE("a GGUF without a tokenizer, or with an unsupported one, is refused by name") {
  test::TempDir dir;
  std::string none = write_gguf(dir.path(), "none.gguf", [](auto&) {});
  CHECK_THROWS_WITH_AS(model::load_tokenizer(none), doctest::Contains("has no tokenizer"), FormatError);
  std::string t5 = write_gguf(dir.path(), "t5.gguf", [](auto& w) {
    w.set_string(format::kKeyTokenizerModel, "t5");
    w.set_array_string(format::kKeyTokens, {"a", "b"});
  });
  CHECK_THROWS_WITH_AS(model::load_tokenizer(t5),
                       doctest::Contains("'t5' is not supported, expected llama (SentencePiece), gpt2"), FormatError);
  std::string no_merges = write_gguf(dir.path(), "gpt2.gguf", [](auto& w) {
    w.set_string(format::kKeyTokenizerModel, "gpt2");
    w.set_array_string(format::kKeyTokens, {"a", "b"});
  });
  CHECK_THROWS_WITH_AS(model::load_tokenizer(no_merges), doctest::Contains("has no key 'tokenizer.ggml.merges'"),
                       FormatError);
  std::string bad_types = write_gguf(dir.path(), "types.gguf", [](auto& w) {
    w.set_string(format::kKeyTokenizerModel, "llama");
    w.set_array_string(format::kKeyTokens, {"<unk>", "<s>", "</s>", "a"});
    w.set_array_i32(format::kKeyTokenType, {2, 3, 3, 9});
  });
  CHECK_THROWS_WITH_AS(model::load_tokenizer(bad_types), doctest::Contains("token 3 has type 9"), FormatError);
  std::string short_scores = write_gguf(dir.path(), "scores.gguf", [](auto& w) {
    w.set_string(format::kKeyTokenizerModel, "llama");
    w.set_array_string(format::kKeyTokens, {"<unk>", "<s>", "</s>", "a"});
    w.set_array_f32(format::kKeyScores, {0, 0});
  });
  CHECK_THROWS_WITH_AS(model::load_tokenizer(short_scores), doctest::Contains("differ in length"), FormatError);
  std::string bos = write_gguf(dir.path(), "bos.gguf", [](auto& w) {
    w.set_string(format::kKeyTokenizerModel, "llama");
    w.set_array_string(format::kKeyTokens, {"<unk>", "<s>", "</s>", "a"});
    w.set_u32(format::kKeyBosId, 4);
  });
  CHECK_THROWS_WITH_AS(model::load_tokenizer(bos), doctest::Contains("bos_token_id' is 4"), FormatError);
}

namespace {

// GPT-2's printable stand-in for each byte: the printable Latin-1 bytes stand for themselves,
// the others for U+0100 onwards in byte order.
std::vector<std::string> byte_symbols() {
  std::vector<std::string> out;
  int next = 256;
  for (int b = 0; b < 256; ++b) {
    const bool printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
    const int cp = printable ? b : next++;
    std::string s;
    if (cp < 0x80) {
      s += char(cp);
    } else {
      s += char(0xC0 | (cp >> 6));
      s += char(0x80 | (cp & 0x3F));
    }
    out.push_back(s);
  }
  return out;
}

// A small byte-level BPE vocabulary: bytes, merges for " the", "ab", then specials.
std::string write_bpe_vocab(const std::string& dir) {
  return write_gguf(dir, "bpe.gguf", [](auto& w) {
    std::vector<std::string> tokens = byte_symbols();
    const std::string sp = tokens[' '];  // "Ġ"
    std::vector<std::string> merges = {sp + " t", "h e", sp + "t he", "a b"};
    for (const char* t : {"Ġt", "he", "Ġthe", "ab"}) tokens.push_back(t);
    tokens.push_back("<|endoftext|>");  // 260: control
    tokens.push_back("<tool>");         // 261: user-defined
    tokens.push_back("<|im_end|>");     // 262: control, an end of turn
    std::vector<int32_t> types(tokens.size(), 1);
    types[260] = types[262] = 3;
    types[261] = 4;
    w.set_string(format::kKeyTokenizerModel, "gpt2");
    w.set_string(format::kKeyPre, "gpt-2");
    w.set_array_string(format::kKeyTokens, tokens);
    w.set_array_i32(format::kKeyTokenType, types);
    w.set_array_string(format::kKeyMerges, merges);
    w.set_u32(format::kKeyBosId, 260);
    w.set_u32(format::kKeyEosId, 260);
  });
}

}  // namespace

TEST_CASE("a byte-level BPE vocabulary: merges, special pieces, defaults, lossless decoding, round trip") {
  test::TempDir dir;
  Tokenizer tok = model::load_tokenizer(write_bpe_vocab(dir.path()));
  CHECK(tok.family() == "gpt2");
  CHECK(tok.model_type() == "bytebpe");
  CHECK(tok.vocab_size() == 263);
  CHECK_FALSE(tok.add_bos());  // gpt-2's default: no BOS
  CHECK(tok.bos_id() == 260);
  std::vector<int> ids;
  tok.encode(" the ab", ids);
  CHECK(ids == std::vector<int>{258, ' ', 259});  // " the" merged whole; " ab" is the space byte, then "ab"
  CHECK(tok.decode(ids) == " the ab");

  // A user-defined piece is always found in the text, a control piece only with parse_special.
  tok.encode("x<tool>y", ids);
  CHECK(ids == std::vector<int>{'x', 261, 'y'});
  tok.encode("a<|endoftext|>", ids);
  CHECK(ids.size() > 2);
  CHECK(tok.decode(ids) == "a<|endoftext|>");
  tok.encode("a<|endoftext|>", ids, true);
  CHECK(ids == std::vector<int>{'a', 260});
  CHECK(tok.ends_generation(260));  // EOS
  CHECK(tok.ends_generation(262));  // <|im_end|>
  CHECK_FALSE(tok.ends_generation(261));

  // Every byte string comes back: invalid UTF-8, NUL, newlines.
  static constexpr char kBytes[] = "\xff\xfe a\0b\n\n  \xe2\x82 the\xc3\xa9";
  const std::string bytes(kBytes, sizeof kBytes - 1);
  std::vector<int> all;
  tok.encode_text(bytes, all);
  CHECK(tok.decode_text(all) == bytes);

  // Written back, the vocabulary is the same: same ids, same fingerprint.
  std::string copy = write_gguf(dir.path(), "copy.gguf", [&](auto& w) { model::add_tokenizer(tok, w); });
  Tokenizer back = model::load_tokenizer(copy);
  CHECK(back.fingerprint() == tok.fingerprint());
  CHECK(back.family() == "gpt2");
  std::vector<int> again;
  back.encode_text(bytes, again);
  CHECK(again == all);
}

TEST_CASE("a byte-level BPE vocabulary with a bad merge or an unknown pre-tokenizer is refused by name") {
  test::TempDir dir;
  auto with = [&](const char* name, const std::vector<std::string>& merges, const char* pre) {
    return write_gguf(dir.path(), name, [&](auto& w) {
      std::vector<std::string> tokens = byte_symbols();
      tokens.push_back("ab");
      w.set_string(format::kKeyTokenizerModel, "gpt2");
      w.set_string(format::kKeyPre, pre);
      w.set_array_string(format::kKeyTokens, tokens);
      w.set_array_string(format::kKeyMerges, merges);
    });
  };
  CHECK_THROWS_WITH_AS(model::load_tokenizer(with("m1.gguf", {"a b", "a zz"}, "gpt-2")), doctest::Contains("merge"),
                       FormatError);
  CHECK_THROWS_WITH_AS(model::load_tokenizer(with("p.gguf", {"a b"}, "klingon")), doctest::Contains("klingon"),
                       FormatError);
  // llama-bpe prompts start with BOS; without the key, llama.cpp's default id 11.
  Tokenizer ok = model::load_tokenizer(with("ok.gguf", {"a b"}, "llama-bpe"));
  CHECK(ok.add_bos());
  CHECK(ok.bos_id() == 11);
}

TEST_CASE("WordPiece and SentencePiece-merges vocabularies from arrays: llama.cpp's defaults") {
  test::TempDir dir;
  std::string bert = write_gguf(dir.path(), "bert.gguf", [](auto& w) {
    std::vector<std::string> tokens(104, "[unused]");
    for (int i = 0; i < 104; ++i) tokens[size_t(i)] = "[unused" + std::to_string(i) + "]";
    tokens[0] = "[PAD]", tokens[100] = "[UNK]", tokens[101] = "[CLS]", tokens[102] = "[SEP]", tokens[103] = "[MASK]";
    for (const char* t : {"\xe2\x96\x81hello", "\xe2\x96\x81world", "ing", "\xe2\x96\x81play", "\xe2\x96\x81!"})
      tokens.push_back(t);
    std::vector<int32_t> types(tokens.size(), 1);
    types[0] = types[101] = types[102] = types[103] = 3;
    types[100] = 2;
    w.set_string(format::kKeyTokenizerModel, "bert");
    w.set_array_string(format::kKeyTokens, tokens);
    w.set_array_i32(format::kKeyTokenType, types);
  });
  Tokenizer b = model::load_tokenizer(bert);
  CHECK(b.family() == "bert");
  CHECK(b.add_bos());
  CHECK(b.add_sep());
  CHECK(b.bos_id() == 101);
  CHECK(b.sep_id() == 102);
  CHECK(b.unk_id() == 100);
  std::vector<int> ids;
  b.encode("Hello PLAYING world!", ids);
  CHECK(ids == std::vector<int>{104, 107, 106, 105, 108});
  b.encode("[CLS] hello", ids, true);
  CHECK(ids == std::vector<int>{101, 104});

  std::string spm = write_gguf(dir.path(), "spm.gguf", [](auto& w) {
    w.set_string(format::kKeyTokenizerModel, "llama");
    // Phi-3's case: a piece listed twice, which the SentencePiece library refuses.
    w.set_array_string(format::kKeyTokens, {"<unk>", "<s>", "</s>", "\xe2\x96\x81", "a", "b", "\xe2\x96\x81" "a", "ab", "</s>"});
    w.set_array_f32(format::kKeyScores, {0, 0, 0, -1, -2, -3, -4, -5, 0});
    w.set_array_i32(format::kKeyTokenType, {2, 3, 3, 1, 1, 1, 1, 1, 4});
  });
  Tokenizer s = model::load_tokenizer(spm);
  CHECK(s.family() == "llama");
  CHECK(s.add_bos());
  CHECK(s.bos_id() == 1);
  CHECK(s.add_dummy_prefix());
  s.encode("ab a", ids);
  CHECK(ids == std::vector<int>{6, 5, 6});  // "▁a" "b" "▁a": "▁a" (-4) merges before "ab" (-5)
  CHECK(s.decode(ids) == "ab a");
}
