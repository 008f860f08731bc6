#include "sample/generate.hpp"

#include <algorithm>
#include <cmath>
#include <utility>

#include "base/error.hpp"

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

namespace {

// Output text between the sampler and the caller: releases what can no longer change.
class TextStream {
 public:
  explicit TextStream(const std::vector<std::string>& stop) : stop_(stop) {}
  // Adds bytes; returns true if a stop string is now complete (the text before it is released).
  bool add(const std::string& bytes, std::string& released) {
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
  std::string flush() { return std::exchange(pending_, std::string()); }

 private:
  const std::vector<std::string>& stop_;
  std::string pending_;
};

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

GenerateResult generate(model::Session& session, const Tokenizer& tok, const std::vector<int>& prompt,
                        const GenerateOptions& opts, Sampler& sampler, const std::function<void(const TokenEvent&)>& emit,
                        const Logger& log) {
  LM_ASSERT(!prompt.empty());
  const int n_ctx = session.n_ctx(), V = session.n_vocab();
  std::vector<int> ctx = prompt;  // the tokens in the window: prompt, then output
  GenerateResult res;
  res.prompt_tokens = int(ctx.size());
  res.stop_reason = "length";
  if (int(ctx.size()) > n_ctx) {
    if (opts.overflow == Overflow::Stop)
      throw UsageError("the prompt has " + std::to_string(ctx.size()) + " tokens, but the context holds " +
                       std::to_string(n_ctx) + " (use a larger --ctx-size or --overflow shift)");
    shift_window(ctx, n_ctx, tok.bos_id());
    log.warn("the prompt has %d tokens, more than the context of %d: only its last %zu are used", res.prompt_tokens,
             n_ctx, ctx.size());
  }
  if (opts.max_tokens == 0) return res;
  session.keep(0);
  const float* logits = session.eval_all(ctx.data(), int(ctx.size()));
  TextStream out(opts.stop);
  // SentencePiece drops the dummy prefix's space at the start of a text: when the prompt has no
  // text, the first space of the output is that space.
  bool at_text_start = true;
  for (int id : ctx)
    if (!tok.token_bytes(id).empty()) at_text_start = false;
  std::vector<int> history = ctx;  // for the penalties; not cut by shifts
  TokenEvent ev;
  for (;;) {
    check_finite(logits, V);
    ev.id = sampler.sample(logits, V, history);
    ev.logprob = token_logprob(logits, V, ev.id);
    if (opts.top_logprobs > 0) ev.top = top_logprobs(logits, V, opts.top_logprobs);
    ++res.tokens;
    history.push_back(ev.id);
    bool done = false;
    if (tok.ends_generation(ev.id) && !opts.ignore_eos) {  // EOS, or an end-of-turn piece
      ev.text = out.flush();
      res.stop_reason = "eos", done = true;
    } else {
      std::string bytes = tok.token_bytes(ev.id);
      if (at_text_start && !bytes.empty()) {
        if (bytes[0] == ' ' && tok.add_dummy_prefix()) bytes.erase(0, 1);
        at_text_start = false;
      }
      if (out.add(bytes, ev.text)) {
        res.stop_reason = "stop", done = true;
      } else if (opts.max_tokens >= 0 && res.tokens == opts.max_tokens) {
        ev.text += out.flush();
        res.stop_reason = "length", done = true;
      } else if (session.n_past() == n_ctx && opts.overflow == Overflow::Stop) {
        ev.text += out.flush();
        res.stop_reason = "context", done = true;
      }
    }
    res.text += ev.text;
    emit(ev);
    if (done) return res;
    ctx.push_back(ev.id);
    if (session.n_past() < n_ctx) {
      logits = session.eval(&ctx.back(), 1);
      continue;
    }
    shift_window(ctx, n_ctx, tok.bos_id());
    session.keep(0);
    logits = session.eval_all(ctx.data(), int(ctx.size()));
    ++res.shifts;
    log.debug("context full: recomputed the cache over the last %zu tokens", ctx.size());
  }
}

}  // namespace lm::sample
