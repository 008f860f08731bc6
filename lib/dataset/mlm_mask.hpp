// BERT's masking (docs/encoder.md, the objective): how windows of a token stream become an
// encoder's rows and targets. lm-train --objective mlm trains on them and lm-eval mlm scores
// them, so it sits below train/ and eval/.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "base/rng.hpp"
#include "tokenizer/tokenizer.hpp"

namespace lm::dataset {

struct MlmOptions {
  float mask_prob = 0.15f;  // share of the (non-special) tokens that are predicted
  bool whole_word = false;  // choose whole words: every piece of a chosen word is predicted
};

// Throws UsageError unless 0 < mask_prob < 1.
void check_mlm_options(const MlmOptions& o);

// The vocabulary's mask token: tokenizer.ggml.mask_token_id, else a piece spelled [MASK] or
// <mask>; nullopt when it has none.
std::optional<int> find_mask_token(const Tokenizer& tok);

class MlmMasker {
 public:
  // Rows of T tokens. Throws UsageError naming `tok_name` and the fix when the vocabulary has no
  // mask token, or when T leaves no room for text.
  MlmMasker(const Tokenizer& tok, const std::string& tok_name, const MlmOptions& o, int T);
  // Content tokens per row: T less the start token (BOS / [CLS]) and the end token (SEP / EOS)
  // the vocabulary has.
  int content() const { return K_; }
  // A row of k <= content() stream tokens: start, stream[0 .. k), end, written to tokens; its
  // targets: at each chosen position (mask_prob of the non-special tokens, or of the words with
  // whole_word) the original token, which becomes the mask token (80%), a uniformly random token
  // (10%) or stays (10%); -1 elsewhere. Draws from rng. Returns the row's length.
  int make_row(const int* stream, int k, Rng& rng, int* tokens, int* targets) const;
  // The same row with no position chosen (targets all -1): what pseudo-perplexity masks one
  // position of at a time. Returns the row's length; *first is the position of stream[0].
  int plain_row(const int* stream, int k, int* tokens, int* first) const;
  bool special(int id) const { return special_[size_t(id)] != 0; }
  int mask_id() const { return mask_; }

 private:
  MlmOptions o_;
  int T_, K_, V_, mask_ = 0, start_ = -1, end_ = -1;
  std::vector<uint8_t> special_, word_start_;
};

}  // namespace lm::dataset
