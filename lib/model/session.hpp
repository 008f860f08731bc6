// Inference over a KV cache (llama.cpp's "context"), or over the carried state of an LSTM: n_seq independent sequences, each with its
// own slot of the cache (keys and values per layer), prompt chunks evaluated as matrix products
// (GEMM) and single tokens as matrix-vector products that read each weight once
// (bandwidth-bound decoding). eval_batch() advances several sequences in one evaluation: their
// rows share every matrix product, so decoding k sequences reads each weight once, not k times. The activation
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

// Sees the input of every matrix product with a weight (importance matrices: lm-eval imatrix),
// just before the product: the weight's layer (-1 for the head), role and matrix, and the `rows`
// input rows of W.cols values each. Called on the evaluating thread; must not throw.
class MatmulObserver {
 public:
  virtual ~MatmulObserver() = default;
  virtual void observe(int layer, Role role, const kernels::QWeight& W, const float* x, int rows) = 0;
};

class Session {
 public:
  // A session over `w` (which must outlive it) for sequences of up to n_ctx tokens, evaluated in
  // chunks of up to n_batch tokens. Throws UsageError unless 1 <= n_ctx <= the model's context
  // and 1 <= n_batch. The cache starts empty and grows as tokens come (or reserve() asks).
  // With n_seq > 1 there are n_seq slots of n_ctx tokens each and n_batch is the rows of one
  // evaluation over all of them.
  Session(const Weights& w, int n_ctx, int n_batch, int n_seq = 1);
  // The same over F32 parameters (which must outlive it), e.g. a model being trained.
  Session(const Params& p, int n_ctx, int n_batch, int n_seq = 1);
  ~Session();
  Session(const Session&) = delete;
  Session& operator=(const Session&) = delete;

  int n_ctx() const { return n_ctx_; }
  int n_batch() const { return n_batch_; }
  int n_seq() const { return int(past_.size()); }
  int n_vocab() const { return cfg_.n_vocab; }
  // Tokens in sequence seq's cache: the position its next token gets.
  int n_past(int seq = 0) const { return past_[size_t(seq)]; }

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

  // Tokens of one sequence for eval_batch(): appended to slot `seq` at its n_past(); logits
  // wanted for rows first_row .. n - 1 (first_row == n: none).
  struct Chunk {
    int seq = 0;
    const int* tokens = nullptr;
    int n = 0;
    int first_row = 0;
  };
  // Evaluates chunks of distinct sequences together (1 <= total tokens <= n_batch, each chunk
  // 1 <= n and n_past(seq) + n <= n_ctx). Returns the wanted logits rows in chunk order (an
  // encoder: hidden states, as eval()), valid until the next evaluation. Every row's result
  // depends only on its own sequence: a chunk gives what it would alone, up to the order of
  // float additions in the matrix products of types whose batched kernels sum differently
  // (bit for bit the same for q8_0 and q4_0 weights).
  const float* eval_batch(const Chunk* chunks, int n_chunks);
  // With on, the wanted rows are the final hidden states (n_embd each: after the output norm
  // of a decoder, the last layer's output of an encoder) instead of logits: embeddings.
  void set_hidden_output(bool on) { hidden_out_ = on; }
  // The width of those rows: n_embd, or an LSTM's output width.
  int n_embd() const { return cfg_.out_width(); }
  // Forgets all but the first n cached tokens of sequence seq (0 empties its slot). An LSTM
  // (docs/lstm.md) keeps a state, not a cache: n must be 0 (start again) or n_past(seq)
  // (UsageError otherwise).
  void keep(int n, int seq = 0);
  // Makes room for n tokens (capped at n_ctx) in the cache now, e.g. prompt plus new tokens,
  // so that eval() does not grow it later. Never shrinks. Throws std::bad_alloc.
  void reserve(int n);
  // Tokens each slot has room for now (n_past(s) <= capacity() <= n_ctx()).
  int capacity() const { return cap_; }

  // Shows every later evaluation's matrix inputs to `o` (nullptr: none, the default; then the
  // cost is one pointer test per product). `o` must outlive its use.
  void set_observer(MatmulObserver* o) { observer_ = o; }

  // Bytes held by the cache and the scratch buffers.
  size_t bytes() const;
  // Bytes held by the KV cache alone (keys and values of every layer).
  size_t cache_bytes() const;

 private:
  struct Buffers;
  Session(std::unique_ptr<Weights> own, const Weights* w, int n_ctx, int n_batch, int n_seq);
  // eval_batch() at the thread count in force (eval_batch() chooses it when the count is tuned).
  const float* eval_batch_at(const Chunk* chunks, int n_chunks);
  // The same for an LSTM: the state of each slot instead of a cache (session.cpp).
  const float* eval_lstm(const Chunk* chunks, int n_chunks, int n, int out_rows);
  // The token embeddings of n tokens into x (n rows of n_embd), from any embedding type.
  void embed_tokens(float* x, const int* tokens, int n) const;
  // Sizes the scratch of the quantized products for every matrix at each row count they run at.
  void size_qscratch();
  std::unique_ptr<Weights> own_;  // the views of a Params
  const Weights& w_;
  ModelConfig cfg_;
  int n_ctx_, n_batch_, cap_ = 0;
  bool hidden_out_ = false;
  std::vector<int> past_;  // n_past of each slot
  std::unique_ptr<Buffers> b_;
  MatmulObserver* observer_ = nullptr;
};

}  // namespace lm::model
