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
  std::string gpt2 = write_gguf(dir.path(), "gpt2.gguf", [](auto& w) {
    w.set_string(format::kKeyTokenizerModel, "gpt2");
    w.set_array_string(format::kKeyTokens, {"a", "b"});
  });
  CHECK_THROWS_WITH_AS(model::load_tokenizer(gpt2), doctest::Contains("'gpt2' is not supported"), FormatError);
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
