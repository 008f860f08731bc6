// Tests for lib/eval/perplexity: both window schemes against a direct computation with the
// training forward pass, independence from how the stream is fed, and KL divergence.
#include <doctest/doctest.h>

#include <cmath>
#include <tuple>
#include <vector>

#include "base/error.hpp"
#include "eval/perplexity.hpp"
#include "model/model.hpp"
#include "test_util.hpp"

using namespace lm;
using namespace lm::eval;

namespace {

struct Fixture {
  Tokenizer tok = test::train_tokenizer(std::vector<std::string>(200, "the jury said the county election was fair"), 300);
  model::Params p;
  std::vector<int> stream;
  Fixture() : p(cfg(), false) {
    Rng rng(23);
    p.init(rng);
    for (auto& w : p.w) w *= 15.0f;
    for (int i = 0; i < 157; ++i) stream.push_back(3 + int(rng.below(uint64_t(tok.vocab_size() - 3))));
  }
  model::ModelConfig cfg() const {
    model::ModelConfig c;
    c.n_vocab = tok.vocab_size(), c.n_ctx = 32, c.n_layer = 2, c.n_embd = 32, c.n_head = 4, c.n_head_kv = 2;
    c.n_ff = 48;
    return c;
  }
  // -log p(seq[t] | seq[0..t)) for t in [from, seq.size()), from the training forward pass.
  double nll(const std::vector<int>& seq, size_t from) {
    model::Model m(p.cfg, 1, int(seq.size()));
    m.forward(p, seq.data(), nullptr, 1, int(seq.size()));
    const int V = p.cfg.n_vocab;
    double sum = 0;
    for (size_t t = from; t < seq.size(); ++t) {
      const float* l = m.logits() + (t - 1) * size_t(V);
      double mx = l[0], z = 0;
      for (int v = 0; v < V; ++v) mx = std::max(mx, double(l[v]));
      for (int v = 0; v < V; ++v) z += std::exp(double(l[v]) - mx);
      sum += mx + std::log(z) - l[seq[t]];
    }
    return sum;
  }
};

}  // namespace

TEST_CASE("chunks: llama.cpp's scheme, BOS first in every chunk, second halves scored") {
  Fixture f;
  const int bos = *f.tok.bos_id(), ctx = 32;
  // The BOS-prefixed stream has 158 tokens: 4 full chunks of 32, the rest is not scored.
  std::vector<int> seq = {bos};
  seq.insert(seq.end(), f.stream.begin(), f.stream.end());
  double want = 0;
  for (int c = 0; c < 4; ++c) {
    std::vector<int> chunk(seq.begin() + c * ctx, seq.begin() + (c + 1) * ctx);
    chunk[0] = bos;
    want += f.nll(chunk, ctx / 2 + 1);
  }
  for (int batch : {32, 5}) {
    CAPTURE(batch);
    model::Session s(f.p, ctx, batch);
    PerplexityOptions o;
    PerplexityScorer sc(s, f.tok, o);
    // Fed in uneven pieces: the result does not depend on them.
    for (size_t i = 0; i < f.stream.size(); i += 13)
      sc.add(f.stream.data() + i, std::min<size_t>(13, f.stream.size() - i));
    const PerplexityStats st = sc.finish();
    CHECK(st.tokens == 4 * (ctx - 1 - ctx / 2));
    CHECK(st.nll == doctest::Approx(want).epsilon(1e-5));
    CHECK(st.perplexity() == doctest::Approx(std::exp(want / double(st.tokens))).epsilon(1e-5));
    CHECK(st.perplexity_error() > 0);
    CHECK(st.bits_per_byte() == doctest::Approx(st.nll / std::log(2.0) / double(st.bytes)));
  }
}

TEST_CASE("chunks evaluated together in a session's slots score as one at a time") {
  Fixture f;
  const int ctx = 32;
  // One slot, then groups of 4 (the 4 chunks in one evaluation) and 3 (a group of 3, then one),
  // and 4 slots with a batch of 2 chunks; the per-token scores come in stream order.
  std::vector<TokenScore> one;
  PerplexityStats want;
  {
    model::Session s(f.p, ctx, ctx);
    PerplexityScorer sc(s, f.tok, PerplexityOptions{}, [&](const TokenScore& t) { one.push_back(t); });
    sc.add(f.stream);
    want = sc.finish();
    CHECK(sc.chunks_per_eval() == 1);
  }
  REQUIRE(want.tokens == 4 * (ctx - 1 - ctx / 2));
  for (auto [slots, batch, group] : {std::tuple{4, 4 * ctx, 4}, std::tuple{3, 3 * ctx + 5, 3}, std::tuple{4, 2 * ctx, 2}}) {
    CAPTURE(slots);
    CAPTURE(batch);
    model::Session s(f.p, ctx, batch, slots);
    PerplexityOptions o;
    o.n_batch = batch;
    std::vector<TokenScore> got;
    PerplexityScorer sc(s, f.tok, o, [&](const TokenScore& t) { got.push_back(t); });
    CHECK(sc.chunks_per_eval() == group);
    for (size_t i = 0; i < f.stream.size(); i += 7) sc.add(f.stream.data() + i, std::min<size_t>(7, f.stream.size() - i));
    const PerplexityStats st = sc.finish();
    CHECK(st.tokens == want.tokens);
    CHECK(st.bytes == want.bytes);
    CHECK(st.nll == doctest::Approx(want.nll).epsilon(1e-5));
    REQUIRE(got.size() == one.size());
    for (size_t i = 0; i < got.size(); ++i) {
      CHECK(got[i].position == one[i].position);
      CHECK(got[i].id == one[i].id);
      CHECK(got[i].logprob == doctest::Approx(one[i].logprob).epsilon(1e-4));
    }
  }
  // Sliding windows are scored one at a time whatever the slots.
  model::Session s(f.p, ctx, 4 * ctx, 4);
  PerplexityOptions o;
  o.windows = Windows::Sliding, o.n_batch = 4 * ctx;
  CHECK(PerplexityScorer(s, f.tok, o).chunks_per_eval() == 1);
}

TEST_CASE("sliding windows: every token after the first scored once, with the window as context") {
  Fixture f;
  const int ctx = 32, stride = 10, n = int(f.stream.size());
  // Hugging Face's loop over the stream without BOS.
  double want = 0;
  size_t count = 0;
  int prev_end = 0;
  for (int begin = 0; begin < n; begin += stride) {
    const int end = std::min(begin + ctx, n), trg = end - prev_end;
    std::vector<int> w(f.stream.begin() + begin, f.stream.begin() + end);
    const size_t from = std::max<size_t>(1, w.size() - size_t(trg));
    want += f.nll(w, from);
    count += w.size() - from;
    prev_end = end;
    if (end == n) break;
  }
  CHECK(count == size_t(n - 1));
  model::Session s(f.p, ctx, 16);
  PerplexityOptions o;
  o.windows = Windows::Sliding, o.stride = stride, o.add_bos = false;
  PerplexityScorer sc(s, f.tok, o);
  std::vector<uint64_t> positions;
  PerplexityScorer sc2(s, f.tok, o, [&](const TokenScore& t) {
    positions.push_back(t.position);
    CHECK(t.rank >= 1);
    CHECK(t.logprob <= 0.0f);
    CHECK(t.entropy >= 0.0f);
  });
  sc.add(f.stream);
  const PerplexityStats st = sc.finish();
  CHECK(st.tokens == count);
  CHECK(st.nll == doctest::Approx(want).epsilon(1e-5));
  for (int id : f.stream) sc2.add(&id, 1);
  CHECK(sc2.finish().nll == doctest::Approx(want).epsilon(1e-5));
  REQUIRE(positions.size() == count);
  for (size_t i = 0; i < positions.size(); ++i) CHECK(positions[i] == i + 1);
}

TEST_CASE("KL divergence: zero against itself, positive against another model; both perplexities") {
  Fixture f;
  model::Params q = f.p;
  Rng rng(5);
  for (auto& w : q.w) w += 0.05f * rng.normal();
  model::Session a(f.p, 32, 32), b(f.p, 32, 32), c(q, 32, 32);
  PerplexityOptions o;
  KldScorer same(a, b, f.tok, o);
  same.add(f.stream);
  KldStats& s0 = same.finish();
  CHECK(s0.tokens == 4 * 15);
  CHECK(s0.mean() < 1e-5);
  CHECK(s0.top1_agreement() == 1.0);
  KldScorer diff(c, a, f.tok, o);
  diff.add(f.stream);
  KldStats& s1 = diff.finish();
  CHECK(s1.mean() > 1e-3);
  CHECK(s1.quantile(1.0) >= s1.quantile(0.5));
  CHECK(s1.quantile(0.0) >= 0.0);
  model::Session d(f.p, 32, 32);
  PerplexityScorer ppl(d, f.tok, o);
  ppl.add(f.stream);
  CHECK(s1.reference.nll == doctest::Approx(ppl.finish().nll).epsilon(1e-5));
  CHECK(s1.model.nll != doctest::Approx(s1.reference.nll));
}

TEST_CASE("perplexity options are validated") {
  Fixture f;
  model::Session s(f.p, 32, 32);
  PerplexityOptions o;
  o.n_ctx = 64;
  CHECK_THROWS_AS(PerplexityScorer(s, f.tok, o), UsageError);
  o.n_ctx = 1;
  CHECK_THROWS_AS(PerplexityScorer(s, f.tok, o), UsageError);
  o.n_ctx = 16, o.windows = Windows::Sliding, o.stride = 16;
  CHECK_THROWS_AS(PerplexityScorer(s, f.tok, o), UsageError);
}
