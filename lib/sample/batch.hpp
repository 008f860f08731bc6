// Many sequences generated together (continuous batching, as llama.cpp's server does it).
//
// A BatchGenerator owns one Session with n_seq KV-cache slots. Sequences are queued with add();
// each step() takes every running sequence one step further in a single evaluation of the
// model: prompt chunks and decoding tokens of different sequences share each matrix product, so
// a decoding step reads every weight once for all of them instead of once per sequence.
// Sequences start when a slot is free and leave when they finish; the others go on.
//
// A sequence's tokens are exactly those generate() gives for the same prompt, options and seed:
// each sequence has its own sampler, stop strings, context and overflow handling, and the
// kernels compute every row of a batch independently of the other rows.
//
// Not thread-safe: one thread owns the generator (lm-serve's engine thread; lm-generate's main).
#pragma once

#include <cstdint>
#include <deque>
#include <exception>
#include <functional>
#include <memory>
#include <vector>

#include "base/log.hpp"
#include "model/session.hpp"
#include "model/weights.hpp"
#include "sample/generate.hpp"
#include "tokenizer/tokenizer.hpp"

namespace lm::sample {

struct SequenceSpec {
  std::vector<int> prompt;  // token ids, BOS included if wanted; not empty
  GenerateOptions opts;     // n_ctx and n_batch are the generator's; the rest is this sequence's
  uint64_t seed = 0;        // the sampler's seed
  // Called once per generated token (TokenEvent as generate() gives it). Returning false cancels
  // the sequence: it ends with stop_reason "cancelled" before its next step.
  std::function<bool(const TokenEvent&)> on_token;
  // Called exactly once when the sequence ends: with its result and a null error, or with what
  // ended it (a non-finite logit, an allocation failure) and the result so far.
  std::function<void(const GenerateResult&, std::exception_ptr)> on_done;
  // Called when the sequence gets a slot, before its prompt is evaluated (optional).
  std::function<void()> on_start;
};

class BatchGenerator {
 public:
  // Up to n_seq sequences at once, each of up to n_ctx tokens (prompt plus output); at most
  // n_batch tokens evaluated per step (prompts are fed in chunks that share it). `w`, `tok` and
  // `log` must outlive the generator. Throws UsageError for sizes out of range.
  BatchGenerator(const model::Weights& w, const Tokenizer& tok, int n_seq, int n_ctx, int n_batch, const Logger& log);
  ~BatchGenerator();
  BatchGenerator(const BatchGenerator&) = delete;
  BatchGenerator& operator=(const BatchGenerator&) = delete;

  // Queues a sequence and returns its id (1, 2, ...). Throws UsageError before queueing if its
  // options are invalid or, under Overflow::Stop, its prompt does not fit in n_ctx.
  uint64_t add(SequenceSpec s);
  // Ends a queued or running sequence with stop_reason "cancelled" (on_done is called now for a
  // queued one, at the next step() for a running one). Unknown or finished ids are ignored.
  void cancel(uint64_t id);
  // One evaluation over all running sequences (starting queued ones in free slots first), then
  // one sampled token for each sequence whose prompt is complete. Returns false, doing nothing,
  // when no sequence is queued or running.
  bool step();
  // step() until every sequence has finished.
  void run() {
    while (step()) {
    }
  }

  int n_seq() const;
  int n_ctx() const;
  int running() const;   // sequences holding a slot
  size_t queued() const; // sequences waiting for one
  // Tokens each slot's cache has room for now (it grows with the longest sequence held, and
  // each started sequence reserves its prompt plus max_tokens, up to n_ctx; a growth is by at
  // least half, so this is at most 1.5 times the longest need).
  int capacity() const;
  // Bytes of the KV cache (all slots: n_seq x capacity() tokens).
  size_t cache_bytes() const;
  size_t bytes() const;  // cache and scratch buffers

 private:
  struct Seq;
  void finish(std::unique_ptr<Seq>& s, std::exception_ptr err);

  const Tokenizer& tok_;
  const Logger& log_;
  int n_ctx_, n_chunk_;  // prompt tokens per evaluation, as generate() feeds them
  std::unique_ptr<model::Session> session_;
  std::vector<std::unique_ptr<Seq>> slots_;  // null: free
  std::deque<std::unique_ptr<Seq>> queue_;
  uint64_t next_id_ = 1;
  std::vector<model::Session::Chunk> chunks_;
  std::vector<int> chunk_slot_;
  // A step's sampling: per chunk that ends a prompt or decodes, its logits row, the event and
  // the outcome of SequenceState::next (reused from step to step).
  struct Draw {
    int chunk = 0;
    const float* logits = nullptr;
    TokenEvent ev;
    bool done = false;
    std::exception_ptr err;
  };
  std::vector<Draw> draws_;
};

}  // namespace lm::sample
