// One sequence's side of generation, shared by generate() and BatchGenerator: the tokens of its
// window, the tokens still to be fed to the model, and what happens to each sampled token
// (stop conditions, text released at UTF-8 and stop-string boundaries, context shifts). The
// model evaluation is the caller's, so one sequence alone and many in a batch take exactly the
// same steps.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "base/log.hpp"
#include "sample/generate.hpp"
#include "sample/sampler.hpp"
#include "tokenizer/tokenizer.hpp"

namespace lm::sample {

// Output text between the sampler and the caller: releases what can no longer change.
class TextStream {
 public:
  explicit TextStream(const std::vector<std::string>& stop) : stop_(stop) {}
  // Adds bytes; returns true if a stop string is now complete (the text before it is released).
  bool add(const std::string& bytes, std::string& released);
  std::string flush();

 private:
  std::vector<std::string> stop_;
  std::string pending_;
};

class SequenceState {
 public:
  // Throws UsageError if the prompt does not fit in n_ctx under Overflow::Stop (with a shift,
  // it keeps the prompt's last half-context tokens and warns).
  SequenceState(const Tokenizer& tok, const std::vector<int>& prompt, const GenerateOptions& opts, int n_ctx,
                const Logger& log);
  // Nothing to generate (max_tokens == 0): the result is final before any evaluation.
  bool finished() const { return done_; }
  // The tokens to evaluate next: ctx()[fed() ..]. When fed() is 0 the sequence's cache must be
  // emptied first (the start, or a context shift).
  const std::vector<int>& ctx() const { return ctx_; }
  int fed() const { return fed_; }
  int pending() const { return int(ctx_.size()) - fed_; }  // tokens still to evaluate
  void mark_fed(int n) { fed_ += n; }
  // With every pending token fed and `logits` those of the last one: samples a token, fills `ev`
  // (id, logprob, top alternatives, released text) and returns true if the sequence has ended.
  // Otherwise the new token is pending (and, with a full cache under Overflow::Shift, the window
  // is shifted and fed() becomes 0). Throws Error for a non-finite logit.
  bool next(const float* logits, int V, Sampler& sampler, TokenEvent& ev);
  GenerateResult& result() { return res_; }

 private:
  const Tokenizer& tok_;
  const GenerateOptions& opts_;
  const Logger& log_;
  int n_ctx_;
  std::vector<int> ctx_, history_;  // the window; everything (for the penalties; not cut by shifts)
  int fed_ = 0;
  TextStream out_;
  bool at_text_start_ = true, done_ = false;
  GenerateResult res_;
};

}  // namespace lm::sample
