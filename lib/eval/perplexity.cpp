#include "eval/perplexity.hpp"

#include <algorithm>
#include <cmath>

#include "base/error.hpp"
#include "kernels/kernels.hpp"

namespace lm::eval {

void PerplexityOptions::validate(int session_ctx) const {
  const int ctx = n_ctx > 0 ? n_ctx : session_ctx;
  if (ctx < 2) throw UsageError("context " + std::to_string(ctx) + " is too short: at least 2 tokens are needed");
  if (ctx > session_ctx)
    throw UsageError("context " + std::to_string(ctx) + " is larger than the model's " + std::to_string(session_ctx));
  if (windows == Windows::Sliding && (stride < 0 || stride > ctx - 1))
    throw UsageError("stride " + std::to_string(stride) + " is out of range [1, " + std::to_string(ctx - 1) +
                     "] (0 = half the context)");
  if (n_batch < 1) throw UsageError("batch size must be at least 1");
}

double PerplexityStats::perplexity() const { return std::exp(mean_nll()); }

double PerplexityStats::perplexity_error() const {
  if (tokens < 2) return 0;
  const double m = mean_nll(), var = nll2 / double(tokens) - m * m;
  return var > 0 ? perplexity() * std::sqrt(var / double(tokens - 1)) : 0;
}

double PerplexityStats::bits_per_byte() const { return bytes ? nll / std::log(2.0) / double(bytes) : 0; }

double KldStats::mean_error() const {
  if (tokens < 2) return 0;
  const double m = mean(), var = kld2 / double(tokens) - m * m;
  return var > 0 ? std::sqrt(var / double(tokens - 1)) : 0;
}

double KldStats::quantile(double p) {
  if (values.empty()) return 0;
  std::sort(values.begin(), values.end());
  const double at = std::clamp(p, 0.0, 1.0) * double(values.size() - 1);
  const size_t lo = size_t(at), hi = std::min(lo + 1, values.size() - 1);
  return values[lo] + (at - double(lo)) * (values[hi] - values[lo]);
}

namespace {

// The batches of a window of n tokens evaluated nb at a time: f(b0, m, r0, r1) for the batch of
// m tokens at b0, where rows r0 .. r1 - 1 (none when r0 >= r1) are its rows from first_row on
// that predict a token of the window (row r predicts token r + 1).
template <class F>
void for_each_batch(int n, int nb, int first_row, F&& f) {
  for (int b0 = 0; b0 < n; b0 += nb) {
    const int m = std::min(nb, n - b0);
    f(b0, m, std::max(first_row, b0), std::min(b0 + m, n - 1));
  }
}

// Evaluates window w (n tokens) from an empty cache, in batches, and hands over the logits of
// rows first_row .. n - 2 as (row, logits, count) blocks.
template <class F>
void eval_window(model::Session& s, const int* w, int n, int first_row, F&& on_rows) {
  s.keep(0);
  for_each_batch(n, s.n_batch(), first_row, [&](int b0, int m, int r0, int r1) {
    if (r0 >= r1) {
      s.eval_rows(w + b0, m, m - 1);  // fills the cache; no scored rows here
      return;
    }
    on_rows(r0, s.eval_rows(w + b0, m, r0 - b0), r1 - r0);
  });
}

}  // namespace

struct PerplexityScorer::Impl {
  model::Session& s;
  const Tokenizer& tok;
  PerplexityOptions o;
  int ctx, stride;
  std::function<void(const TokenScore&)> per_token;
  std::vector<int> buf;      // the stream (with the leading BOS) from stream index `base`
  int64_t base = 0;          // stream index of buf[0] (-1 when buf[0] is the added BOS)
  int64_t scored_to = 0;     // Sliding: stream tokens before this index are scored
  std::vector<int> window, targets;
  std::vector<float> lse;
  // Chunks evaluated together: up to `group` windows of ctx tokens in `pending`, with the
  // stream index of each one's first token.
  int group = 1, n_pending = 0;
  std::vector<int> pending;
  std::vector<int64_t> pending_base;
  std::vector<model::Session::Chunk> chunks;
};

PerplexityScorer::PerplexityScorer(model::Session& session, const Tokenizer& tok, const PerplexityOptions& opts,
                                   std::function<void(const TokenScore&)> per_token)
    : impl_(new Impl{session, tok, opts, 0, 0, std::move(per_token), {}, 0, 0, {}, {}, {}, 1, 0, {}, {}, {}}) {
  opts.validate(session.n_ctx());
  Impl& m = *impl_;
  m.ctx = opts.n_ctx > 0 ? opts.n_ctx : session.n_ctx();
  m.stride = opts.stride > 0 ? opts.stride : std::max(1, m.ctx / 2);
  if (opts.add_bos && tok.bos_id()) {
    m.buf.push_back(*tok.bos_id());
    m.base = -1;
  }
  m.window.resize(size_t(m.ctx));
  m.lse.resize(size_t(session.n_batch()));
  if (opts.windows == Windows::Chunks)
    m.group = std::max(1, std::min(session.n_seq(), std::min(opts.n_batch, session.n_batch()) / m.ctx));
  if (m.group > 1) {
    m.pending.resize(size_t(m.group) * size_t(m.ctx));
    m.pending_base.resize(size_t(m.group));
    m.chunks.resize(size_t(m.group));
  }
}

int PerplexityScorer::chunks_per_eval() const { return impl_->group; }

PerplexityScorer::~PerplexityScorer() = default;

// Scores window buf[0 .. end) (a prefix of the buffer), targets at buffer indices
// first_target .. end - 1.
void PerplexityScorer::score_window(size_t first_target, size_t end) {
  Impl& m = *impl_;
  const int n = int(end);
  std::copy(m.buf.begin(), m.buf.begin() + long(end), m.window.begin());
  if (m.o.windows == Windows::Chunks && m.o.add_bos && m.tok.bos_id()) m.window[0] = *m.tok.bos_id();
  eval_window(m.s, m.window.data(), n, int(first_target) - 1, [&](int r0, const float* logits, int rows) {
    score_rows(m.window.data(), m.base, r0, logits, rows);
  });
}

// Scores rows r0 .. r0 + rows - 1 of a window whose first token is at stream index `base`: row
// r's logits (logits + (r - r0) V) predict window[r + 1].
void PerplexityScorer::score_rows(const int* window, int64_t base, int r0, const float* logits, int rows) {
  Impl& m = *impl_;
  const int V = m.s.n_vocab();
  kernels::logsumexp_rows(m.lse.data(), logits, rows, V);
  for (int i = 0; i < rows; ++i) {
    const int id = window[size_t(r0 + i + 1)];
    const float* l = logits + size_t(i) * V;
    const double nll = double(m.lse[size_t(i)]) - l[id];
    stats_.tokens += 1;
    stats_.nll += nll;
    stats_.nll2 += nll * nll;
    stats_.bytes += m.tok.token_bytes(id).size();
    if (m.per_token) {
      int rank = 1;
      double entropy = 0;
      for (int v = 0; v < V; ++v) {
        rank += l[v] > l[id] || (l[v] == l[id] && v < id);
        const double lp = double(l[v]) - m.lse[size_t(i)];
        entropy -= std::exp(lp) * lp;
      }
      m.per_token({uint64_t(base + r0 + i + 1), id, float(-nll), rank, float(entropy)});
    }
  }
}

// Evaluates the pending chunks together, one slot each, and scores their second halves in
// stream order.
void PerplexityScorer::score_group() {
  Impl& m = *impl_;
  if (m.n_pending == 0) return;
  const int ctx = m.ctx, first = ctx / 2, V = m.s.n_vocab();
  for (int i = 0; i < m.n_pending; ++i) {
    m.s.keep(0, i);
    m.chunks[size_t(i)] = {i, m.pending.data() + size_t(i) * size_t(ctx), ctx, first};
  }
  const float* logits = m.s.eval_batch(m.chunks.data(), m.n_pending);
  // Each chunk's wanted rows are first .. ctx - 1; the last predicts nothing in the chunk.
  for (int i = 0; i < m.n_pending; ++i)
    score_rows(m.chunks[size_t(i)].tokens, m.pending_base[size_t(i)], first,
               logits + size_t(i) * size_t(ctx - first) * size_t(V), ctx - 1 - first);
  m.n_pending = 0;
}

void PerplexityScorer::add(const int* ids, size_t n) {
  Impl& m = *impl_;
  fed_ += n;
  const size_t ctx = size_t(m.ctx);
  for (size_t i = 0; i < n; ++i) {
    m.buf.push_back(ids[i]);
    if (m.buf.size() < ctx) continue;
    if (m.o.windows == Windows::Chunks && m.group > 1) {
      int* w = m.pending.data() + size_t(m.n_pending) * ctx;
      std::copy(m.buf.begin(), m.buf.end(), w);
      if (m.o.add_bos && m.tok.bos_id()) w[0] = *m.tok.bos_id();
      m.pending_base[size_t(m.n_pending)] = m.base;
      if (++m.n_pending == m.group) score_group();
      m.buf.clear();
      m.base += int64_t(ctx);
    } else if (m.o.windows == Windows::Chunks) {
      score_window(ctx / 2 + 1, ctx);
      m.buf.clear();
      m.base += int64_t(ctx);
    } else {
      // A full window: score what no earlier window scored, then slide by the stride.
      const int64_t end = m.base + int64_t(ctx);
      const size_t first = size_t(std::max<int64_t>(m.scored_to, m.base + 1) - m.base);
      score_window(first, ctx);
      m.scored_to = end;
      m.buf.erase(m.buf.begin(), m.buf.begin() + m.stride);
      m.base += m.stride;
    }
  }
}

const PerplexityStats& PerplexityScorer::finish() {
  Impl& m = *impl_;
  score_group();
  if (m.o.windows == Windows::Sliding && m.base + int64_t(m.buf.size()) > m.scored_to && m.buf.size() >= 2) {
    const size_t first = size_t(std::max<int64_t>(m.scored_to, m.base + 1) - m.base);
    score_window(first, m.buf.size());
    m.scored_to = m.base + int64_t(m.buf.size());
  }
  return stats_;
}

struct KldScorer::Impl {
  model::Session &model, &ref;
  const Tokenizer& tok;
  int ctx;
  bool add_bos;
  std::vector<int> buf;
  std::vector<float> ref_logits, kl, lse_m, lse_r;
};

KldScorer::KldScorer(model::Session& model, model::Session& reference, const Tokenizer& tok,
                     const PerplexityOptions& opts)
    : impl_(new Impl{model, reference, tok, 0, opts.add_bos && tok.bos_id().has_value(), {}, {}, {}, {}, {}}) {
  opts.validate(std::min(model.n_ctx(), reference.n_ctx()));
  if (model.n_vocab() != reference.n_vocab())
    throw UsageError("the models' vocabularies differ (" + std::to_string(model.n_vocab()) + " and " +
                     std::to_string(reference.n_vocab()) + " tokens)");
  Impl& m = *impl_;
  m.ctx = opts.n_ctx > 0 ? opts.n_ctx : std::min(model.n_ctx(), reference.n_ctx());
  if (m.add_bos) m.buf.push_back(*tok.bos_id());
  const int nb = std::min(model.n_batch(), reference.n_batch());
  m.ref_logits.resize(size_t(nb) * size_t(model.n_vocab()));
  for (auto* v : {&m.kl, &m.lse_m, &m.lse_r}) v->resize(size_t(nb));
}

KldScorer::~KldScorer() = default;

void KldScorer::add(const int* ids, size_t n) {
  Impl& m = *impl_;
  const size_t ctx = size_t(m.ctx);
  const int V = m.model.n_vocab();
  for (size_t i = 0; i < n; ++i) {
    m.buf.push_back(ids[i]);
    if (m.buf.size() < ctx) continue;
    if (m.add_bos) m.buf[0] = *m.tok.bos_id();
    // The same rows of both models, batch by batch: the reference's are copied aside first.
    const int first_row = int(ctx / 2), nb = std::min(m.model.n_batch(), m.ref.n_batch());
    m.ref.keep(0);
    m.model.keep(0);
    for_each_batch(int(ctx), nb, first_row, [&](int b0, int mm, int r0, int r1) {
      const int fr = r0 < r1 ? r0 - b0 : mm - 1;
      const float* lr = m.ref.eval_rows(m.buf.data() + b0, mm, fr);
      if (r0 < r1) std::copy(lr, lr + size_t(r1 - r0) * V, m.ref_logits.begin());
      const float* lm = m.model.eval_rows(m.buf.data() + b0, mm, fr);
      if (r0 >= r1) return;
      const int rows = r1 - r0;
      kernels::logsumexp_rows(m.lse_r.data(), m.ref_logits.data(), rows, V);
      kernels::logsumexp_rows(m.lse_m.data(), lm, rows, V);
      kernels::kl_divergence_rows(m.kl.data(), m.ref_logits.data(), lm, m.lse_r.data(), m.lse_m.data(), rows, V);
      for (int k = 0; k < rows; ++k) {
        const int id = m.buf[size_t(r0 + k + 1)];
        const float *a = m.ref_logits.data() + size_t(k) * V, *b = lm + size_t(k) * V;
        const double kl = m.kl[size_t(k)];
        stats_.tokens += 1;
        stats_.kld += kl;
        stats_.kld2 += kl * kl;
        stats_.values.push_back(float(kl));
        stats_.top1_same += (std::max_element(a, a + V) - a) == (std::max_element(b, b + V) - b);
        const uint64_t bytes = m.tok.token_bytes(id).size();
        const double nr = double(m.lse_r[size_t(k)]) - a[id], nm = double(m.lse_m[size_t(k)]) - b[id];
        stats_.reference.tokens += 1, stats_.reference.bytes += bytes, stats_.reference.nll += nr,
            stats_.reference.nll2 += nr * nr;
        stats_.model.tokens += 1, stats_.model.bytes += bytes, stats_.model.nll += nm, stats_.model.nll2 += nm * nm;
      }
    });
    m.buf.clear();
  }
}

}  // namespace lm::eval
