#include "sample/batch.hpp"

#include <algorithm>
#include <optional>
#include <string>

#include "base/error.hpp"
#include "sample/sequence.hpp"

namespace lm::sample {

struct BatchGenerator::Seq {
  uint64_t id = 0;
  SequenceSpec spec;
  Sampler sampler;
  std::optional<SequenceState> state;
  bool cancelled = false;
  Seq(uint64_t i, SequenceSpec s) : id(i), spec(std::move(s)), sampler(spec.opts.sampler, spec.seed) {}
};

BatchGenerator::BatchGenerator(const model::Weights& w, const Tokenizer& tok, int n_seq, int n_ctx, int n_batch,
                               const Logger& log)
    : tok_(tok), log_(log), n_ctx_(n_ctx) {
  if (n_seq < 1) throw UsageError("the number of parallel sequences " + std::to_string(n_seq) + " must be at least 1");
  if (n_batch < 1) throw UsageError("batch size " + std::to_string(n_batch) + " must be at least 1");
  n_chunk_ = std::min(n_batch, n_ctx);
  // A step holds one prompt chunk's worth of prompt tokens plus a decoding token of every other
  // sequence.
  session_ = std::make_unique<model::Session>(w, n_ctx, n_chunk_ + n_seq - 1, n_seq);
  slots_.resize(size_t(n_seq));
}

BatchGenerator::~BatchGenerator() = default;

int BatchGenerator::n_seq() const { return int(slots_.size()); }
int BatchGenerator::n_ctx() const { return n_ctx_; }
int BatchGenerator::running() const {
  return int(std::count_if(slots_.begin(), slots_.end(), [](const auto& s) { return s != nullptr; }));
}
size_t BatchGenerator::queued() const { return queue_.size(); }
int BatchGenerator::capacity() const { return session_->capacity(); }
size_t BatchGenerator::cache_bytes() const { return session_->cache_bytes(); }
size_t BatchGenerator::bytes() const { return session_->bytes(); }

uint64_t BatchGenerator::add(SequenceSpec s) {
  if (s.prompt.empty()) throw UsageError("the prompt is empty");
  for (int id : s.prompt)
    if (id < 0 || id >= session_->n_vocab())
      throw UsageError("token id " + std::to_string(id) + " is out of range [0, " + std::to_string(session_->n_vocab()) +
                       ")");
  s.opts.sampler.validate();
  auto seq = std::make_unique<Seq>(next_id_, std::move(s));
  seq->state.emplace(tok_, seq->spec.prompt, seq->spec.opts, n_ctx_, log_);  // may refuse the prompt
  queue_.push_back(std::move(seq));
  return next_id_++;
}

void BatchGenerator::cancel(uint64_t id) {
  for (auto& s : slots_)
    if (s && s->id == id) s->cancelled = true;
  for (auto it = queue_.begin(); it != queue_.end(); ++it)
    if ((*it)->id == id) {
      std::unique_ptr<Seq> s = std::move(*it);
      queue_.erase(it);
      s->state->result().stop_reason = "cancelled";
      finish(s, nullptr);
      return;
    }
}

void BatchGenerator::finish(std::unique_ptr<Seq>& s, std::exception_ptr err) {
  std::unique_ptr<Seq> done = std::move(s);  // frees the slot before the callback runs
  if (done->spec.on_done) done->spec.on_done(done->state->result(), err);
}

bool BatchGenerator::step() {
  // Queued sequences into free slots, in order.
  for (size_t i = 0; i < slots_.size() && !queue_.empty();) {
    if (slots_[i]) {
      ++i;
      continue;
    }
    slots_[i] = std::move(queue_.front());
    queue_.pop_front();
    SequenceState& st = *slots_[i]->state;
    if (st.finished()) {  // nothing to generate; the slot stays free
      finish(slots_[i], nullptr);
      continue;
    }
    if (slots_[i]->spec.on_start) slots_[i]->spec.on_start();
    const GenerateOptions& o = slots_[i]->spec.opts;
    // Room for the prompt and the new tokens asked for, once; with -1 the cache grows as it fills.
    // A larger need grows the cache by at least half: each growth allocates and copies every
    // slot's cache, and growing to each longer line's exact need did that 9 times in 300 Brown
    // lines (page faults over 15 MB each time); at most 1.5 times the longest need stays.
    try {
      const int need = int(std::min<size_t>(st.ctx().size() + size_t(std::max(o.max_tokens, 0)), size_t(n_ctx_)));
      if (need > session_->capacity()) session_->reserve(std::max(need, session_->capacity() * 3 / 2));
    } catch (const std::bad_alloc&) {
      finish(slots_[i], std::current_exception());
    }
  }
  for (auto& s : slots_)
    if (s && s->cancelled) {
      s->state->result().stop_reason = "cancelled";
      finish(s, nullptr);
    }
  // The batch: every sequence with one token to feed, then prompt chunks (cut as generate()
  // cuts them, so each row's result is the same as alone) while they fit in one chunk's rows.
  chunks_.clear();
  chunk_slot_.clear();
  auto add_chunk = [&](int i, int n) {
    Seq& s = *slots_[size_t(i)];
    if (s.state->fed() == 0) session_->keep(0, i);
    chunks_.push_back({i, s.state->ctx().data() + s.state->fed(), n, n == s.state->pending() ? n - 1 : n});
    chunk_slot_.push_back(i);
  };
  for (int i = 0; i < n_seq(); ++i)
    if (slots_[size_t(i)] && slots_[size_t(i)]->state->pending() == 1)
      add_chunk(i, 1);
  int prompt_rows = 0;
  for (int i = 0; i < n_seq(); ++i) {
    if (!slots_[size_t(i)]) continue;
    const SequenceState& st = *slots_[size_t(i)]->state;
    const int pending = st.pending();
    if (pending <= 1) continue;
    const int n = std::min(pending, n_chunk_);
    if (prompt_rows + n > n_chunk_) continue;  // next step
    add_chunk(i, n);
    prompt_rows += n;
  }
  if (chunks_.empty()) return !queue_.empty();
  const float* logits = nullptr;
  try {
    logits = session_->eval_batch(chunks_.data(), int(chunks_.size()));
  } catch (...) {  // the cache could not grow: every sequence of the batch ends with the error
    const std::exception_ptr err = std::current_exception();
    for (int i : chunk_slot_) finish(slots_[size_t(i)], err);
    return true;
  }
  const int V = session_->n_vocab();
  size_t n_draws = 0;
  for (size_t c = 0; c < chunks_.size(); ++c) {
    slots_[size_t(chunk_slot_[c])]->state->mark_fed(chunks_[c].n);
    if (chunks_[c].first_row == chunks_[c].n) continue;  // a prompt chunk before the last
    if (draws_.size() <= n_draws) draws_.resize(n_draws + 1);
    Draw& d = draws_[n_draws++];
    d.chunk = int(c);
    d.logits = logits;
    logits += V;
  }
  // Each sequence draws its token from its own row with its own sampler and state, so the draws
  // run in parallel (a serial draw is about 60 us at 8192 pieces; eight of them were a fifth of a
  // decoding step of 8 sequences while the other thread waited). The callbacks then run here,
  // in slot order.
#pragma omp parallel for schedule(dynamic, 1) if (n_draws > 1)
  for (size_t i = 0; i < n_draws; ++i) {
    Draw& d = draws_[i];
    Seq& s = *slots_[size_t(chunk_slot_[size_t(d.chunk)])];
    d.err = nullptr;
    try {
      d.done = s.state->next(d.logits, V, s.sampler, d.ev);
    } catch (...) {
      d.err = std::current_exception();
    }
  }
  for (size_t i = 0; i < n_draws; ++i) {
    Draw& d = draws_[i];
    std::unique_ptr<Seq>& s = slots_[size_t(chunk_slot_[size_t(d.chunk)])];
    if (d.err) {
      finish(s, d.err);
      continue;
    }
    bool done = d.done;
    if (s->spec.on_token && !s->spec.on_token(d.ev) && !done) {
      s->state->result().stop_reason = "cancelled";
      done = true;
    }
    if (done) finish(s, nullptr);
  }
  return true;
}

}  // namespace lm::sample
