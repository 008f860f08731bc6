// Perplexity, bits per byte and KL divergence of a model over a stream of token ids, with
// memory bounded by the context (tokens are fed as they are read, never held whole).
//
// Chunks (llama.cpp's llama-perplexity): the stream, after a BOS token if the model adds one,
// is cut into non-overlapping chunks of n_ctx tokens; each chunk starts with BOS (replacing its
// first token) when add_bos, and only its second half is scored: positions n_ctx/2 .. n_ctx-2
// predict tokens n_ctx/2+1 .. n_ctx-1. A final partial chunk is not scored. The numbers compare
// with llama-perplexity -c n_ctx on the same file. When the session has several sequence slots
// (Session's n_seq) and n_batch holds several chunks, up to min(n_seq, n_batch / n_ctx) chunks
// are evaluated together, one slot each, as llama-perplexity does with n_seq = n_batch / n_ctx:
// the same rows in fewer, larger matrix products (the per-token scores are the same, up to the
// order of float additions for types whose batched kernels sum differently).
// Sliding (Hugging Face's "perplexity of fixed-length models"): windows of n_ctx tokens start
// every `stride` tokens; each scores the tokens no earlier window scored, with the rest of the
// window as context; every token but the first is scored once.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "model/session.hpp"
#include "tokenizer/tokenizer.hpp"

namespace lm::eval {

enum class Windows { Chunks, Sliding };

struct PerplexityOptions {
  Windows windows = Windows::Chunks;
  int n_ctx = 0;     // window length; 0 = the model's context length
  int stride = 0;    // Sliding only: tokens between window starts; 0 = n_ctx / 2
  int n_batch = 512; // tokens per forward pass (Chunks: several chunks per pass when it holds them)
  bool add_bos = true;
  // Throws UsageError for bad values (given the session's context).
  void validate(int session_ctx) const;
};

// Sums over scored tokens. Natural logarithms throughout.
struct PerplexityStats {
  uint64_t tokens = 0;  // scored
  uint64_t bytes = 0;   // bytes of the scored tokens' text (Tokenizer::token_bytes)
  double nll = 0;       // sum of -log p(token)
  double nll2 = 0;      // sum of squares, for the uncertainty
  void add(const PerplexityStats& o) { tokens += o.tokens, bytes += o.bytes, nll += o.nll, nll2 += o.nll2; }
  double mean_nll() const { return tokens ? nll / double(tokens) : 0; }
  double perplexity() const;
  // llama.cpp's "+/-": perplexity x the standard error of the mean NLL.
  double perplexity_error() const;
  double bits_per_byte() const;
};

// One scored token, for --per-token output.
struct TokenScore {
  uint64_t position;  // index in the stream (0 = the first token after the optional BOS)
  int id;
  float logprob;
  int rank;           // 1 = the most likely token
  float entropy;      // of the predicted distribution, nats
};

class PerplexityScorer {
 public:
  // `session` and `tok` must outlive the scorer. per_token, if set, gets every scored token.
  PerplexityScorer(model::Session& session, const Tokenizer& tok, const PerplexityOptions& opts,
                   std::function<void(const TokenScore&)> per_token = {});
  ~PerplexityScorer();
  // Feeds the next ids of the stream; windows are scored as soon as they are complete.
  void add(const int* ids, size_t n);
  void add(const std::vector<int>& ids) { add(ids.data(), ids.size()); }
  // Ends the stream: Sliding scores the last window. Returns the totals.
  const PerplexityStats& finish();
  // Tokens fed so far (BOS not counted).
  uint64_t fed() const { return fed_; }
  // Chunks evaluated together (1 unless the session has several slots and n_batch holds
  // several chunks).
  int chunks_per_eval() const;

 private:
  void score_window(size_t first_target, size_t end);
  void score_group();
  void score_rows(const int* window, int64_t base, int r0, const float* logits, int rows);
  struct Impl;
  std::unique_ptr<Impl> impl_;
  PerplexityStats stats_;
  uint64_t fed_ = 0;
};

// KL divergence of a model from a reference, over the same chunks as perplexity (Chunks mode).
struct KldStats {
  uint64_t tokens = 0;
  double kld = 0, kld2 = 0;   // sums of KL(P_ref || P_model) in nats, and of squares
  uint64_t top1_same = 0;     // positions where both models' most likely tokens agree
  PerplexityStats model, reference;
  std::vector<float> values;  // every position's KL, for percentiles (4 bytes per token)
  double mean() const { return tokens ? kld / double(tokens) : 0; }
  double mean_error() const;  // standard error of the mean
  double top1_agreement() const { return tokens ? double(top1_same) / double(tokens) : 0; }
  // The p-quantile (0..1) of the per-token values, by linear interpolation. Sorts `values`.
  double quantile(double p);
};

class KldScorer {
 public:
  // Both sessions must share the vocabulary (the caller checks the tokenizers).
  KldScorer(model::Session& model, model::Session& reference, const Tokenizer& tok, const PerplexityOptions& opts);
  ~KldScorer();
  void add(const int* ids, size_t n);
  void add(const std::vector<int>& ids) { add(ids.data(), ids.size()); }
  KldStats& finish() { return stats_; }

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
  KldStats stats_;
};

}  // namespace lm::eval
