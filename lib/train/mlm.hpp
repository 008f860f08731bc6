// Masked-language-model pretraining of an encoder (docs/encoder.md): BERT's objective on
// windows of the token stream, run by run_loop like every other job.
#pragma once

#include <cstdint>
#include <optional>
#include <vector>

#include "base/rng.hpp"
#include "train/run.hpp"

namespace lm::train {

struct MlmOptions {
  float mask_prob = 0.15f;  // share of the (non-special) tokens that are predicted
  bool whole_word = false;  // choose whole words: every piece of a chosen word is predicted
};

// Throws UsageError unless 0 < mask_prob < 1.
void check_mlm_options(const MlmOptions& o);

// The vocabulary's mask token: tokenizer.ggml.mask_token_id, else a piece spelled [MASK] or
// <mask>; nullopt when it has none.
std::optional<int> find_mask_token(const Tokenizer& tok);

// How windows of a token stream become an encoder's training rows (docs/encoder.md).
class MlmMasker {
 public:
  // Throws UsageError naming `tok_name` and the fix when the vocabulary has no mask token.
  MlmMasker(const Tokenizer& tok, const std::string& tok_name, const MlmOptions& o, int T);
  // Content tokens per row: T less the start token (BOS / [CLS]) and the end token
  // (SEP / EOS) the vocabulary has.
  int content() const { return K_; }
  // Row of T tokens: start, stream[0 .. content()), end; and its targets: at each position
  // chosen (mask_prob of the non-special tokens, or of the words with whole_word) the original
  // token, which becomes the mask token (80%), a uniformly random token (10%) or stays (10%);
  // -1 elsewhere. Draws from rng.
  void make_row(const int* stream, Rng& rng, int* tokens, int* targets) const;
  int mask_id() const { return mask_; }

 private:
  MlmOptions o_;
  int T_, K_, V_, mask_ = 0, start_ = -1, end_ = -1;
  std::vector<uint8_t> special_, word_start_;
};

// run_training for an encoder (arch "bert"): rows of --context tokens drawn at random offsets of
// the training stream (a hash of the seed and the row's number chooses its offset and masks, so
// a resumed run draws the same), the loss on the chosen positions only; validation over the
// first held-out windows with fixed masks (the same in every run). Params are the bert layout.
RunResult run_mlm_training(const ModelShape& shape, const TrainOptions& o, const MlmOptions& mlm, const RunInputs& in,
                           std::optional<model::Params>& params, const Logger& log);
// dry_run of an encoder shape.
DryRun dry_run_mlm(const ModelShape& shape, const TrainOptions& o, const MlmOptions& mlm, const Tokenizer& tok,
                   const std::string& tok_name);

}  // namespace lm::train
