// Tests for lib/dataset/mlm_mask: BERT's masking. Rows hold the start and end tokens around the
// text; the chosen share and the 80/10/10 split over many rows; special pieces are never chosen;
// whole-word masking chooses every piece of a word or none; the mask token found by name; a
// vocabulary without one refused with the fix.
#include <doctest/doctest.h>

#include <string>
#include <vector>

#include "base/error.hpp"
#include "dataset/mlm_mask.hpp"

using namespace lm;
using namespace lm::dataset;

namespace {

#define W "\xe2\x96\x81"

// <unk> <s> </s> [then mask] then words and continuations.
Tokenizer make_tok(bool with_mask) {
  VocabSpec v;
  v.pieces = {"<unk>", "<s>", "</s>"};
  v.types = {PieceType::Unknown, PieceType::Control, PieceType::Control};
  if (with_mask) v.pieces.push_back("<mask>"), v.types.push_back(PieceType::Control);
  for (const char* p : {W "the", W "cat", "s", "ing", W "run", W "a", "b"}) v.pieces.push_back(p), v.types.push_back(PieceType::Normal);
  v.scores.assign(v.pieces.size(), 0.0f);
  v.unk_id = 0, v.bos_id = 1, v.eos_id = 2;
  return Tokenizer::from_vocab(v, "test vocabulary");
}

}  // namespace

TEST_CASE("mlm masking: rows, the chosen share, the 80/10/10 split and special pieces") {
  const Tokenizer tok = make_tok(true);
  REQUIRE(find_mask_token(tok) == 3);
  const int T = 34;
  MlmMasker m(tok, "tok", MlmOptions{}, T);
  CHECK(m.content() == 32);
  CHECK(m.mask_id() == 3);
  // A stream of ordinary pieces with a BOS (special) every 8 tokens.
  std::vector<int> stream(32);
  for (int i = 0; i < 32; ++i) stream[size_t(i)] = i % 8 == 0 ? 1 : 4 + i % 7;
  std::vector<int> tokens(T), targets(T);
  long chosen = 0, eligible = 0, masked = 0, kept = 0, other = 0, bad = 0;
  for (uint64_t r = 0; r < 20000; ++r) {
    Rng rng(derive_seed(7, r));
    bad += m.make_row(stream.data(), 32, rng, tokens.data(), targets.data()) != T;
    bad += tokens[0] != 1 || tokens[T - 1] != 2 || targets[0] != -1 || targets[T - 1] != -1;
    for (int i = 0; i < 32; ++i) {
      const int id = stream[size_t(i)], t = tokens[size_t(i) + 1], g = targets[size_t(i) + 1];
      if (id == 1) {
        bad += g != -1 || t != 1;  // never chosen
        continue;
      }
      ++eligible;
      if (g < 0) {
        bad += t != id;
        continue;
      }
      bad += g != id;
      ++chosen;
      if (t == 3) ++masked;
      else if (t == id) ++kept;
      else ++other;
    }
  }
  CHECK(bad == 0);
  const double share = double(chosen) / double(eligible);
  CHECK(share == doctest::Approx(0.15).epsilon(0.03));
  CHECK(double(masked) / double(chosen) == doctest::Approx(0.8 + 0.1 / 11).epsilon(0.02));  // a random token may be the mask
  CHECK(double(other) / double(chosen) == doctest::Approx(0.1 * 9 / 11).epsilon(0.05));     // ... or the token itself
  CHECK(double(kept) / double(chosen) == doctest::Approx(0.1 + 0.1 / 11).epsilon(0.05));
  // A short row: the end token follows the text.
  Rng rng(1);
  CHECK(m.make_row(stream.data(), 5, rng, tokens.data(), targets.data()) == 7);
  CHECK(tokens[6] == 2);
  int first = -1;
  CHECK(m.plain_row(stream.data(), 5, tokens.data(), &first) == 7);
  CHECK(first == 1);
  CHECK(std::vector<int>(tokens.begin() + 1, tokens.begin() + 6) == std::vector<int>(stream.begin(), stream.begin() + 5));
}

TEST_CASE("mlm whole-word masking chooses every piece of a word or none") {
  const Tokenizer tok = make_tok(true);
  MlmOptions o;
  o.whole_word = true;
  o.mask_prob = 0.3f;
  MlmMasker m(tok, "tok", o, 12);
  // ▁the s ▁cat ing s ▁run ▁a b b ▁the: words of 2, 3, 1, 3, 1 pieces.
  const std::vector<int> stream = {4, 6, 5, 7, 6, 8, 9, 10, 10, 4};
  const std::vector<int> word = {0, 0, 1, 1, 1, 2, 3, 3, 3, 4};
  std::vector<int> tokens(12), targets(12);
  long words_chosen = 0, words = 0, split = 0;
  for (uint64_t r = 0; r < 5000; ++r) {
    Rng rng(derive_seed(3, r));
    m.make_row(stream.data(), 10, rng, tokens.data(), targets.data());
    for (size_t i = 1; i < stream.size(); ++i)
      if (word[i] == word[i - 1]) split += (targets[i + 1] >= 0) != (targets[i] >= 0);
    for (size_t i = 0; i < stream.size(); ++i)
      if (i == 0 || word[i] != word[i - 1]) ++words, words_chosen += targets[i + 1] >= 0;
  }
  CHECK(split == 0);
  CHECK(double(words_chosen) / double(words) == doctest::Approx(0.3).epsilon(0.05));
}

TEST_CASE("mlm masking: the mask token by name, or a clear error naming the fix") {
  CHECK_FALSE(find_mask_token(make_tok(false)).has_value());
  try {
    MlmMasker m(make_tok(false), "tok.model", MlmOptions{}, 16);
    FAIL("no error");
  } catch (const UsageError& e) {
    CHECK(std::string(e.what()).find("the vocabulary of tok.model has no mask token") != std::string::npos);
    CHECK(std::string(e.what()).find("--control-symbols '<mask>'") != std::string::npos);
  }
  CHECK_THROWS_AS(MlmMasker(make_tok(true), "tok", MlmOptions{}, 2), UsageError);  // no room for text
  MlmOptions bad;
  bad.mask_prob = 0;
  CHECK_THROWS_AS(check_mlm_options(bad), UsageError);
}
