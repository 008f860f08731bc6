#include "sample/generate.hpp"

#include <algorithm>
#include <cmath>
#include <utility>

#include "base/error.hpp"
#include "sample/sequence.hpp"

namespace lm::sample {

size_t utf8_complete_prefix(const std::string& s) {
  // Look back at most 3 bytes for the lead byte of an unfinished sequence.
  const size_t n = s.size();
  for (size_t back = 1; back <= 4 && back <= n; ++back) {
    const unsigned char c = static_cast<unsigned char>(s[n - back]);
    if ((c & 0xc0) == 0x80) continue;  // continuation byte: keep looking for the lead
    const size_t need = c >= 0xf0 && c < 0xf8 ? 4 : c >= 0xe0 ? 3 : c >= 0xc0 ? 2 : 1;
    return need > back ? n - back : n;
  }
  return n;
}

bool TextStream::add(const std::string& bytes, std::string& released) {
  pending_ += bytes;
  for (const std::string& s : stop_) {
    const size_t at = s.empty() ? std::string::npos : pending_.find(s);
    if (at != std::string::npos) {
      released = pending_.substr(0, at);
      pending_.clear();
      return true;
    }
  }
  // Hold back the longest suffix that is a proper prefix of some stop string.
  size_t hold = 0;
  for (const std::string& s : stop_)
    for (size_t k = std::min(s.size() - (s.empty() ? 0 : 1), pending_.size()); k > hold; --k)
      if (pending_.compare(pending_.size() - k, k, s, 0, k) == 0) {
        hold = k;
        break;
      }
  size_t cut = pending_.size() - hold;
  cut = utf8_complete_prefix(pending_.substr(0, cut));
  released = pending_.substr(0, cut);
  pending_.erase(0, cut);
  return false;
}

std::string TextStream::flush() { return std::exchange(pending_, std::string()); }

namespace {

void check_finite(const float* logits, int V) {
  for (int i = 0; i < V; ++i)
    if (!std::isfinite(logits[i]))
      throw Error("the model produced a non-finite logit (" + std::to_string(logits[i]) + " for token " +
                  std::to_string(i) + "); its weights may be corrupt");
}

// Keeps the last n_ctx / 2 tokens of ctx (and a leading BOS, which the model saw first).
void shift_window(std::vector<int>& ctx, int n_ctx, std::optional<int> bos) {
  const bool keep_bos = bos && !ctx.empty() && ctx[0] == *bos;
  const size_t keep = size_t(std::max(1, n_ctx / 2)) - (keep_bos ? 1 : 0);
  if (ctx.size() <= keep + (keep_bos ? 1 : 0)) return;
  ctx.erase(ctx.begin() + (keep_bos ? 1 : 0), ctx.end() - long(keep));
}

}  // namespace

SequenceState::SequenceState(const Tokenizer& tok, const std::vector<int>& prompt, const GenerateOptions& opts,
                             int n_ctx, const Logger& log)
    : tok_(tok), opts_(opts), log_(log), n_ctx_(n_ctx), ctx_(prompt), out_(opts.stop) {
  LM_ASSERT(!prompt.empty());
  res_.prompt_tokens = int(ctx_.size());
  res_.stop_reason = "length";
  if (int(ctx_.size()) > n_ctx) {
    if (opts.overflow == Overflow::Stop)
      throw UsageError("the prompt has " + std::to_string(ctx_.size()) + " tokens, but the context holds " +
                       std::to_string(n_ctx) + " (use a larger --ctx-size or --overflow shift)");
    shift_window(ctx_, n_ctx, tok.bos_id());
    log.warn("the prompt has %d tokens, more than the context of %d: only its last %zu are used", res_.prompt_tokens,
             n_ctx, ctx_.size());
  }
  done_ = opts.max_tokens == 0;
  // SentencePiece drops the dummy prefix's space at the start of a text: when the prompt has no
  // text, the first space of the output is that space.
  for (int id : ctx_)
    if (!tok.token_bytes(id).empty()) at_text_start_ = false;
  history_ = ctx_;
}

bool SequenceState::next(const float* logits, int V, Sampler& sampler, TokenEvent& ev) {
  LM_ASSERT(!done_ && fed_ == int(ctx_.size()));
  check_finite(logits, V);
  ev.id = sampler.sample(logits, V, history_);
  ev.logprob = token_logprob(logits, V, ev.id);
  ev.top.clear();
  if (opts_.top_logprobs > 0) ev.top = top_logprobs(logits, V, opts_.top_logprobs);
  ev.text.clear();
  ++res_.tokens;
  history_.push_back(ev.id);
  if (tok_.ends_generation(ev.id) && !opts_.ignore_eos) {  // EOS, or an end-of-turn piece
    ev.text = out_.flush();
    res_.stop_reason = "eos", done_ = true;
  } else {
    std::string bytes = tok_.token_bytes(ev.id);
    if (at_text_start_ && !bytes.empty()) {
      if (bytes[0] == ' ' && tok_.add_dummy_prefix()) bytes.erase(0, 1);
      at_text_start_ = false;
    }
    if (out_.add(bytes, ev.text)) {
      res_.stop_reason = "stop", done_ = true;
    } else if (opts_.max_tokens >= 0 && res_.tokens == opts_.max_tokens) {
      ev.text += out_.flush();
      res_.stop_reason = "length", done_ = true;
    } else if (fed_ == n_ctx_ && opts_.overflow == Overflow::Stop) {
      ev.text += out_.flush();
      res_.stop_reason = "context", done_ = true;
    }
  }
  res_.text += ev.text;
  if (done_) return true;
  ctx_.push_back(ev.id);
  if (fed_ == n_ctx_) {  // the cache is full: keep the window's last half and recompute it
    shift_window(ctx_, n_ctx_, tok_.bos_id());
    fed_ = 0;
    ++res_.shifts;
    log_.debug("context full: recomputed the cache over the last %zu tokens", ctx_.size());
  }
  return false;
}

GenerateResult generate(model::Session& session, const Tokenizer& tok, const std::vector<int>& prompt,
                        const GenerateOptions& opts, Sampler& sampler, const std::function<void(const TokenEvent&)>& emit,
                        const Logger& log) {
  SequenceState seq(tok, prompt, opts, session.n_ctx(), log);
  TokenEvent ev;
  while (!seq.finished()) {
    if (seq.fed() == 0) session.keep(0);
    const int n = seq.pending();
    const float* logits = session.eval_all(seq.ctx().data() + seq.fed(), n);
    seq.mark_fed(n);
    const bool done = seq.next(logits, session.n_vocab(), sampler, ev);
    emit(ev);
    if (done) break;
  }
  return std::move(seq.result());
}

}  // namespace lm::sample
