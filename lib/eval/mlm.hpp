// lm-eval mlm (docs/encoder.md, evaluation): an encoder's masked-token loss and accuracy on
// text, with BERT's masking from a fixed seed, and its pseudo-perplexity (each token masked in
// turn; Salazar et al. 2020).
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "dataset/mlm_mask.hpp"
#include "model/model.hpp"
#include "tokenizer/tokenizer.hpp"

namespace lm::eval {

struct MlmEvalOptions {
  dataset::MlmOptions mask;  // which tokens are predicted (mask_prob, whole_word)
  uint64_t seed = 0;         // row i's masks come from derive_seed(seed, i): the same for every model
  int n_ctx = 0;             // tokens per row (0: the model's context, at most 512)
  int batch = 8;             // rows per forward pass
  bool pseudo = false;       // also the pseudo-perplexity (one forward per token)
};

struct MlmStats {
  uint64_t rows = 0, predicted = 0, correct = 0;
  double nll = 0;                     // summed over the predicted tokens
  uint64_t pseudo_tokens = 0;
  double pseudo_nll = 0;
  double loss() const { return predicted ? nll / double(predicted) : 0.0; }
  double accuracy() const { return predicted ? double(correct) / double(predicted) : 0.0; }
  double pseudo_perplexity() const;  // exp(pseudo_nll / pseudo_tokens), NaN without tokens
  void add(const MlmStats& o);
};

class MlmEvaluator {
 public:
  // p: an encoder's F32 weights (model::load_encoder_params); p, tok must outlive it. Throws
  // UsageError for a model that is not an encoder, a vocabulary without a mask token (naming
  // tok_name) or bad sizes.
  MlmEvaluator(const model::Params& p, const Tokenizer& tok, const std::string& tok_name, const MlmEvalOptions& o);
  ~MlmEvaluator();
  // Scores a text's tokens: consecutive rows of content() tokens (the last one shorter), row
  // numbers continuing from the previous texts'.
  MlmStats score(const std::vector<int>& tokens);
  int content() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace lm::eval
