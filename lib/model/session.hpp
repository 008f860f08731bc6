// Inference over a KV cache (llama.cpp's "context"): one sequence, its keys and values cached
// per layer, prompt chunks evaluated as matrix products (GEMM) and single tokens as
// matrix-vector products that read each weight once (bandwidth-bound decoding). The activation
// buffers are allocated in the constructor; the KV cache holds only the positions a run has
// used (or reserve()d), so memory follows the work asked, not the model's context length: a
// model that claims a context of 2^20 tokens costs nothing until a run goes that far. eval()
// allocates only when the cache grows, geometrically, up to n_ctx.
#pragma once

#include <memory>
#include <vector>

#include "model/model.hpp"
#include "model/weights.hpp"

namespace lm::model {

class Session {
 public:
  // A session over `w` (which must outlive it) for sequences of up to n_ctx tokens, evaluated in
  // chunks of up to n_batch tokens. Throws UsageError unless 1 <= n_ctx <= the model's context
  // and 1 <= n_batch. The cache starts empty and grows as tokens come (or reserve() asks).
  Session(const Weights& w, int n_ctx, int n_batch);
  // The same over F32 parameters (which must outlive it), e.g. a model being trained.
  Session(const Params& p, int n_ctx, int n_batch);
  ~Session();
  Session(const Session&) = delete;
  Session& operator=(const Session&) = delete;

  int n_ctx() const { return n_ctx_; }
  int n_batch() const { return n_batch_; }
  int n_vocab() const { return cfg_.n_vocab; }
  // Tokens in the cache: the position the next token gets.
  int n_past() const { return n_past_; }

  // Appends n tokens (1 <= n <= n_batch, n_past() + n <= n_ctx; ids in [0, n_vocab), checked by
  // the caller) and returns their logits: n rows of n_vocab if all_logits, else the last row
  // only. The pointer stays valid until the next eval(). For an encoder (bert: bidirectional,
  // no head) the rows are the final hidden states (n_embd each), and the whole sequence must
  // come in one call on an empty cache.
  const float* eval(const int* tokens, int n, bool all_logits = false) {
    return eval_rows(tokens, n, all_logits ? 0 : n - 1);
  }
  // The same, with logits for rows first_row .. n - 1 only (0 <= first_row < n): scoring the
  // second half of a window skips half of the output layer.
  const float* eval_rows(const int* tokens, int n, int first_row);
  // eval() over any number of tokens in chunks of n_batch; returns the last token's logits.
  const float* eval_all(const int* tokens, int n);
  // Forgets all but the first n cached tokens (0 empties the cache).
  void keep(int n);
  // Makes room for n tokens (capped at n_ctx) in the cache now, e.g. prompt plus new tokens,
  // so that eval() does not grow it later. Never shrinks. Throws std::bad_alloc.
  void reserve(int n);
  // Tokens the cache has room for now (n_past() <= capacity() <= n_ctx()).
  int capacity() const { return cap_; }

  // Bytes held by the cache and the scratch buffers.
  size_t bytes() const;
  // Bytes held by the KV cache alone (keys and values of every layer).
  size_t cache_bytes() const;

 private:
  struct Buffers;
  Session(std::unique_ptr<Weights> own, const Weights* w, int n_ctx, int n_batch);
  std::unique_ptr<Weights> own_;  // the views of a Params
  const Weights& w_;
  ModelConfig cfg_;
  int n_ctx_, n_batch_, n_past_ = 0, cap_ = 0;
  std::unique_ptr<Buffers> b_;
};

}  // namespace lm::model
