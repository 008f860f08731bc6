#include "eval/embed.hpp"

#include <algorithm>
#include <cmath>
#include <memory>

#include "base/error.hpp"
#include "model/session.hpp"

namespace lm::eval {

Pooling parse_pooling(const std::string& name) {
  if (name == "mean") return Pooling::Mean;
  if (name == "cls") return Pooling::Cls;
  if (name == "last") return Pooling::Last;
  throw UsageError("pooling '" + name + "' is not one of mean, cls, last");
}

const char* pooling_name(Pooling p) { return p == Pooling::Mean ? "mean" : p == Pooling::Cls ? "cls" : "last"; }

std::optional<Pooling> file_pooling(const format::GgufFile& g, const std::string& path) {
  const std::string arch = g.try_get_string("general.architecture").value_or("llama");
  const auto v = g.try_get_u32(arch + ".pooling_type");
  if (!v) return std::nullopt;
  if (*v == 1 || *v == 2 || *v == 3) return Pooling(*v);
  throw FormatError(path, "key '" + arch + ".pooling_type' is " + std::to_string(*v) +
                              ", not a sentence pooling (1 mean, 2 cls, 3 last)");
}

double cosine(const float* a, const float* b, int n) {
  double ab = 0, aa = 0, bb = 0;
  for (int i = 0; i < n; ++i) ab += double(a[i]) * b[i], aa += double(a[i]) * a[i], bb += double(b[i]) * b[i];
  return aa > 0 && bb > 0 ? ab / std::sqrt(aa * bb) : 0.0;
}

struct Embedder::Impl {
  const Tokenizer& tok;
  EmbedOptions o;
  const Logger& log;
  int n_ctx, C;
  std::unique_ptr<model::Session> s;
};

Embedder::Embedder(const model::Weights& w, const Tokenizer& tok, const EmbedOptions& o, const Logger& log)
    : impl_(std::make_unique<Impl>(
          Impl{tok, o, log, o.n_ctx > 0 ? o.n_ctx : std::min(w.cfg.n_ctx, 512), w.cfg.n_embd, nullptr})) {
  if (o.n_ctx > w.cfg.n_ctx)
    throw UsageError("context " + std::to_string(o.n_ctx) + " is larger than the model's " + std::to_string(w.cfg.n_ctx));
  if (o.n_seq < 1) throw UsageError("texts per evaluation must be at least 1");
  // Each evaluation holds whole texts (an encoder reads a text in one pass): rows for the
  // longest text at least.
  const int rows = std::max(impl_->n_ctx, o.n_batch);
  impl_->s = std::make_unique<model::Session>(w, impl_->n_ctx, rows, o.n_seq);
  impl_->s->set_hidden_output(true);
  impl_->C = impl_->s->n_embd();  // an LSTM's rows are its output width
}

Embedder::~Embedder() = default;
int Embedder::dim() const { return impl_->C; }

std::vector<int> Embedder::tokens(const std::string& text) const {
  const Tokenizer& tok = impl_->tok;
  std::vector<int> ids;
  if (tok.add_bos() && tok.bos_id()) ids.push_back(*tok.bos_id());
  tok.encode_text(text, ids);
  if (tok.add_sep() && tok.sep_id())
    ids.push_back(*tok.sep_id());
  else if (tok.add_eos() && tok.eos_id())
    ids.push_back(*tok.eos_id());
  return ids;
}

void Embedder::embed(const std::vector<std::string>& texts, std::vector<float>& out, const std::string& what) {
  Impl& m = *impl_;
  const int C = m.C;
  out.assign(texts.size() * size_t(C), 0.0f);
  std::vector<std::vector<int>> ids(texts.size());
  for (size_t i = 0; i < texts.size(); ++i) {
    ids[i] = tokens(texts[i]);
    if (int(ids[i].size()) > m.n_ctx) {
      m.log.warn("%s %zu has %zu tokens: only its first %d (the context) are embedded", what.c_str(), i + 1,
                 ids[i].size(), m.n_ctx);
      ids[i].resize(size_t(m.n_ctx));
    }
  }
  const int rows_max = m.s->n_batch();
  std::vector<model::Session::Chunk> chunks;
  std::vector<size_t> which;
  size_t next = 0;
  while (next < texts.size()) {
    // Whole texts while they fit in one evaluation.
    chunks.clear();
    which.clear();
    int rows = 0;
    for (; next < texts.size() && int(chunks.size()) < m.s->n_seq(); ++next) {
      const int n = int(ids[next].size());
      if (n == 0) continue;  // zeros
      if (rows + n > rows_max) break;
      m.s->keep(0, int(chunks.size()));
      chunks.push_back({int(chunks.size()), ids[next].data(), n, 0});
      which.push_back(next);
      rows += n;
    }
    if (chunks.empty()) continue;
    const float* h = m.s->eval_batch(chunks.data(), int(chunks.size()));
    for (size_t c = 0; c < chunks.size(); ++c) {
      const int n = chunks[c].n;
      float* e = out.data() + which[c] * size_t(C);
      if (m.o.pooling == Pooling::Mean) {
        std::vector<double> sum(size_t(C), 0.0);
        for (int r = 0; r < n; ++r)
          for (int k = 0; k < C; ++k) sum[size_t(k)] += h[size_t(r) * C + k];
        for (int k = 0; k < C; ++k) e[k] = float(sum[size_t(k)] / n);
      } else {
        const float* row = h + size_t(m.o.pooling == Pooling::Cls ? 0 : n - 1) * C;
        std::copy(row, row + C, e);
      }
      if (m.o.normalize) {
        double norm = 0;
        for (int k = 0; k < C; ++k) norm += double(e[k]) * e[k];
        if (norm > 0)
          for (int k = 0; k < C; ++k) e[k] = float(e[k] / std::sqrt(norm));
      }
      h += size_t(n) * C;
    }
  }
}

}  // namespace lm::eval
