// lm-eval mlm (mlm.hpp). The encoder's training forward pass scores the rows: the same code
// lm-train validates with, over F32 weights.
#include "eval/mlm.hpp"

#include <algorithm>
#include <cmath>
#include <limits>

#include "base/error.hpp"
#include "model/encoder.hpp"

namespace lm::eval {

double MlmStats::pseudo_perplexity() const {
  return pseudo_tokens ? std::exp(pseudo_nll / double(pseudo_tokens)) : std::numeric_limits<double>::quiet_NaN();
}

void MlmStats::add(const MlmStats& o) {
  rows += o.rows, predicted += o.predicted, correct += o.correct, nll += o.nll;
  pseudo_tokens += o.pseudo_tokens, pseudo_nll += o.pseudo_nll;
}

struct MlmEvaluator::Impl {
  Impl(const model::Params& p_, const Tokenizer& tok, const std::string& tok_name, const MlmEvalOptions& o_, int T_)
      : p(p_), o(o_), T(T_), masker(tok, tok_name, o_.mask, T_), net(p_.cfg, o_.batch, T_),
        tokens(size_t(o_.batch) * T_), targets(size_t(o_.batch) * T_), lengths(size_t(o_.batch)) {
    net.set_keep_logits(true);
  }
  // Runs the b rows in tokens/targets/lengths and adds their predicted tokens to s.
  void run(int b, MlmStats& s, bool pseudo) {
    net.forward(p, tokens.data(), lengths.data(), targets.data(), b, T);
    const int V = p.cfg.n_vocab, m = net.scored();
    const float* logits = net.scored_logits();
    const float* losses = net.scored_losses();
    for (int i = 0; i < m; ++i) {
      const float* row = logits + size_t(i) * V;
      const int want = targets[size_t(net.scored_positions()[i])];
      const int best = int(std::max_element(row, row + V) - row);
      if (pseudo) {
        s.pseudo_nll += losses[i], ++s.pseudo_tokens;
      } else {
        s.nll += losses[i], ++s.predicted;
        s.correct += best == want;
      }
    }
  }
  const model::Params& p;
  MlmEvalOptions o;
  int T;
  dataset::MlmMasker masker;
  model::EncoderModel net;
  std::vector<int> tokens, targets, lengths;
  uint64_t row = 0;  // rows scored so far: the masks' seed
};

MlmEvaluator::MlmEvaluator(const model::Params& p, const Tokenizer& tok, const std::string& tok_name,
                           const MlmEvalOptions& o) {
  if (!p.cfg.is_encoder()) throw UsageError("lm-eval mlm scores an encoder (bert); this is a '" + p.cfg.arch.name + "' model");
  if (o.batch < 1) throw UsageError("batch must be at least 1");
  const int T = o.n_ctx > 0 ? o.n_ctx : std::min(p.cfg.n_ctx, 512);
  if (T > p.cfg.n_ctx)
    throw UsageError("--ctx-size " + std::to_string(T) + " is larger than the model's context length " +
                     std::to_string(p.cfg.n_ctx));
  impl_ = std::make_unique<Impl>(p, tok, tok_name, o, T);
}

MlmEvaluator::~MlmEvaluator() = default;

int MlmEvaluator::content() const { return impl_->masker.content(); }

MlmStats MlmEvaluator::score(const std::vector<int>& stream) {
  Impl& a = *impl_;
  MlmStats s;
  const size_t K = size_t(a.masker.content()), B = size_t(a.o.batch), T = size_t(a.T);
  const size_t n_rows = (stream.size() + K - 1) / K;
  // Masked-token loss and accuracy: B rows per forward pass.
  for (size_t r0 = 0; r0 < n_rows; r0 += B) {
    const int b = int(std::min(B, n_rows - r0));
    for (int i = 0; i < b; ++i) {
      const size_t r = r0 + size_t(i), off = r * K;
      const int k = int(std::min(K, stream.size() - off));
      Rng rng(derive_seed(a.o.seed, a.row + r));
      std::fill(a.targets.begin() + ptrdiff_t(size_t(i) * T), a.targets.begin() + ptrdiff_t(size_t(i + 1) * T), -1);
      a.lengths[size_t(i)] = a.masker.make_row(stream.data() + off, k, rng, a.tokens.data() + size_t(i) * T,
                                               a.targets.data() + size_t(i) * T);
      for (size_t j = size_t(a.lengths[size_t(i)]); j < T; ++j) a.tokens[size_t(i) * T + j] = 0;  // padding
    }
    a.run(b, s, false);
  }
  // Pseudo-perplexity: every non-special token of a row masked alone, B copies per pass.
  if (a.o.pseudo) {
    std::vector<int> row(T);
    for (size_t r = 0; r < n_rows; ++r) {
      const size_t off = r * K;
      const int k = int(std::min(K, stream.size() - off));
      int first = 0;
      const int len = a.masker.plain_row(stream.data() + off, k, row.data(), &first);
      int b = 0;
      for (int j = 0; j < k; ++j) {
        if (a.masker.special(row[size_t(first + j)])) continue;
        int* t = a.tokens.data() + size_t(b) * T;
        int* g = a.targets.data() + size_t(b) * T;
        std::copy(row.begin(), row.begin() + len, t);
        std::fill(t + len, t + T, 0);
        std::fill(g, g + T, -1);
        g[first + j] = row[size_t(first + j)];
        t[first + j] = a.masker.mask_id();
        a.lengths[size_t(b)] = len;
        if (++b == int(B)) a.run(b, s, true), b = 0;
      }
      if (b > 0) a.run(b, s, true);
    }
  }
  s.rows = n_rows;
  a.row += n_rows;
  return s;
}

}  // namespace lm::eval
