// Tests for lib/model/encoder: the masked-language-model encoder (llama.cpp's bert layout).
// The loss, logits, gradients and hidden states against PyTorch (golden fixture written by
// tests/model/make_encoder_golden.py), gradients of every tensor against finite differences (with padding and dropout), the hidden
// states against inference (model::Session over the same weights, already checked against
// llama-embedding), padding that does not leak into a row, and frozen tensors.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <vector>

#include "base/file.hpp"
#include "base/rng.hpp"
#include "golden_reader.hpp"
#include "model/encoder.hpp"
#include "model/grad_check.hpp"
#include "model/session.hpp"

using namespace lm;
using namespace lm::model;

namespace {

ModelConfig tiny_encoder() {
  ModelConfig c;
  c.n_vocab = 29, c.n_ctx = 8, c.n_layer = 2, c.n_embd = 8, c.n_head = 2, c.n_ff = 12;
  return encoder_config(c);
}

// Random weights with gains and biases away from 1 and 0, so that their gradients are checked
// at a generic point.
void randomize(Params& p, uint64_t seed) {
  Rng rng(seed);
  for (const ParamView& v : p.views) {
    float* w = p.w.data() + v.offset;
    const size_t n = size_t(v.rows) * size_t(v.cols);
    for (size_t i = 0; i < n; ++i) w[i] = v.rows == 1 && !v.name.ends_with(".bias") ? 1.0f + 0.2f * rng.normal() : 0.3f * rng.normal();
  }
}

struct Batch {
  int b = 3, t = 6;
  std::vector<int> tokens, lengths{6, 4, 5}, targets;
};

Batch make_batch(int V) {
  Batch d;
  Rng rng(7);
  d.tokens.resize(size_t(d.b) * d.t);
  d.targets.assign(d.tokens.size(), -1);
  for (int i = 0; i < d.b; ++i)
    for (int j = 0; j < d.t; ++j) {
      const size_t n = size_t(i) * d.t + size_t(j);
      d.tokens[n] = int(rng.below(uint64_t(V)));
      if (j < d.lengths[size_t(i)] && (j % 2 == i % 2)) d.targets[n] = int(rng.below(uint64_t(V)));
    }
  return d;
}

}  // namespace

TEST_CASE("encoder matches PyTorch: loss, the scored positions' logits, every gradient and the hidden states") {
  lm::test::GoldenReader r{load_file(std::string(LM_TEST_DATA_DIR) + "/encoder_golden.bin")};
  REQUIRE(r.bytes.substr(0, 8) == std::string("LMENC01\0", 8));
  r.pos = 8;
  const auto d = r.take<int32_t>(8);
  ModelConfig c;
  c.n_vocab = d[0], c.n_ctx = d[1], c.n_layer = d[2], c.n_embd = d[3], c.n_head = d[4], c.n_ff = d[5];
  const ModelConfig cfg = encoder_config(c);
  const int B = d[6], t = d[7];
  const auto lengths = r.take<int32_t>(size_t(B));
  const auto tokens = r.take<int32_t>(size_t(B) * t), targets = r.take<int32_t>(size_t(B) * t);
  Params p(cfg);
  const auto w = r.take<float>(p.w.size());
  std::copy(w.begin(), w.end(), p.w.begin());
  const float loss = r.take<float>(1)[0];
  const int M = int(std::count_if(targets.begin(), targets.end(), [](int x) { return x >= 0; }));
  const auto logits = r.take<float>(size_t(M) * cfg.n_vocab);
  const auto grads = r.take<float>(p.w.size());
  const auto hidden = r.take<float>(size_t(B) * t * cfg.n_embd);
  CHECK(r.pos == r.bytes.size());

  EncoderModel m(cfg, B, t);
  auto rel = [](const float* a, const std::vector<float>& b) {
    double e = 0, scale = 0;
    for (float x : b) scale = std::max(scale, double(std::fabs(x)));
    for (size_t i = 0; i < b.size(); ++i) e = std::max(e, std::fabs(double(a[i]) - b[i]) / scale);
    return e;
  };
  m.set_keep_logits(true);
  CHECK(m.forward(p, tokens.data(), lengths.data(), targets.data(), B, t) == doctest::Approx(loss).epsilon(1e-5));
  CHECK(m.scored() == M);
  CHECK(rel(m.scored_logits(), logits) < 1e-4);
  CHECK(rel(m.hidden(), hidden) < 1e-4);
  m.set_keep_logits(false);
  m.forward(p, tokens.data(), lengths.data(), targets.data(), B, t);
  m.backward(p);
  double gmax = 0;
  for (float x : grads) gmax = std::max(gmax, double(std::fabs(x)));
  for (size_t v = 0; v < p.views.size(); ++v) {
    const ParamView& pv = p.views[v];
    CAPTURE(pv.name);
    const std::vector<float> want(grads.begin() + ptrdiff_t(pv.offset),
                                  grads.begin() + ptrdiff_t(pv.offset + size_t(pv.rows) * pv.cols));
    double scale = 0, err = 0;
    for (float x : want) scale = std::max(scale, double(std::fabs(x)));
    if (scale == 0) {  // unused rows: token type 1, the last position
      CHECK(std::all_of(p.grad_of(v), p.grad_of(v) + want.size(), [](float x) { return x == 0.0f; }));
      continue;
    }
    // The key biases' gradient is 0 in exact arithmetic (a query's scores all move by q.b): it
    // is measured against the largest gradient of the model instead of its own.
    for (size_t i = 0; i < want.size(); ++i) err = std::max(err, std::fabs(double(p.grad_of(v)[i]) - want[i]));
    CHECK(err / std::max(scale, 1e-3 * gmax) < 1e-4);
  }
}

TEST_CASE("encoder: every gradient matches finite differences, over padded rows, with and without dropout") {
  const ModelConfig cfg = tiny_encoder();
  CHECK(param_layout(cfg).size() == kEncTop + size_t(cfg.n_layer) * kEncLayerParams);
  for (float dropout : {0.0f, 0.3f}) {
    CAPTURE(dropout);
    Params p(cfg);
    randomize(p, 11);
    const Batch d = make_batch(cfg.n_vocab);
    EncoderModel m(cfg, 4, 8);
    m.set_dropout(dropout);
    m.set_training(true, 99);
    const float loss = m.forward(p, d.tokens.data(), d.lengths.data(), d.targets.data(), d.b, d.t);
    CHECK(std::isfinite(loss));
    CHECK(loss > 0);
    std::fill(p.grad.begin(), p.grad.end(), 0.0f);
    m.backward(p);
    Rng rng(5);
    lm::test::check_param_grads(
        p, [&] { return double(m.forward(p, d.tokens.data(), d.lengths.data(), d.targets.data(), d.b, d.t)); }, rng, 6);
    // token type 1 and positions past every row's length take no gradient
    const float* dT = p.grad_of(kEncTypes) + cfg.n_embd;
    CHECK(std::all_of(dT, dT + cfg.n_embd, [](float x) { return x == 0.0f; }));
    const float* dP = p.grad_of(kEncPos) + size_t(d.t) * cfg.n_embd;
    CHECK(std::all_of(dP, dP + size_t(cfg.n_ctx - d.t) * cfg.n_embd, [](float x) { return x == 0.0f; }));
  }
}

TEST_CASE("encoder: hidden states equal inference's (Session), and padding does not reach a row") {
  const ModelConfig cfg = tiny_encoder();
  Params p(cfg, false);
  randomize(p, 12);
  const Batch d = make_batch(cfg.n_vocab);
  EncoderModel m(cfg, d.b, d.t);
  m.forward(p, d.tokens.data(), d.lengths.data(), nullptr, d.b, d.t);
  const int C = cfg.n_embd;
  for (int i = 0; i < d.b; ++i) {
    CAPTURE(i);
    const int n = d.lengths[size_t(i)];
    Session s(p, cfg.n_ctx, cfg.n_ctx);
    const float* h = s.eval(d.tokens.data() + size_t(i) * d.t, n, true);
    double err = 0;
    for (int j = 0; j < n * C; ++j) err = std::max(err, double(std::fabs(h[j] - m.hidden()[size_t(i) * d.t * C + j])));
    CHECK(err < 2e-5);
  }
}

TEST_CASE("encoder: frozen tensors take no gradient and leave the others' unchanged") {
  const ModelConfig cfg = tiny_encoder();
  Params p(cfg);
  randomize(p, 13);
  const Batch d = make_batch(cfg.n_vocab);
  EncoderModel m(cfg, d.b, d.t);
  m.forward(p, d.tokens.data(), d.lengths.data(), d.targets.data(), d.b, d.t);
  m.backward(p);
  const std::vector<float> full(p.grad.begin(), p.grad.end());
  std::vector<uint8_t> keep(p.views.size(), 1);
  keep[encoder_param(0, kEncUp)] = keep[encoder_param(1, kEncQB)] = keep[kEncPos] = 0;
  p.alloc_grad(keep);
  m.forward(p, d.tokens.data(), d.lengths.data(), d.targets.data(), d.b, d.t);
  m.backward(p);
  Params q(cfg);
  for (size_t v = 0; v < p.views.size(); ++v) {
    if (!keep[v]) {
      CHECK(p.grad_of(v) == nullptr);
      continue;
    }
    const ParamView& pv = p.views[v];
    CAPTURE(pv.name);
    const float* g = p.grad_of(v);
    CHECK(std::equal(g, g + size_t(pv.rows) * pv.cols, full.begin() + ptrdiff_t(q.grad_of(v) - q.grad.data())));
  }
}

TEST_CASE("encoder: no scored position gives loss 0 and a zero gradient") {
  const ModelConfig cfg = tiny_encoder();
  Params p(cfg);
  randomize(p, 14);
  Batch d = make_batch(cfg.n_vocab);
  std::fill(d.targets.begin(), d.targets.end(), -1);
  EncoderModel m(cfg, d.b, d.t);
  CHECK(m.forward(p, d.tokens.data(), d.lengths.data(), d.targets.data(), d.b, d.t) == 0.0f);
  CHECK(m.scored() == 0);
  m.backward(p);
  CHECK(std::all_of(p.grad.begin(), p.grad.end(), [](float x) { return x == 0.0f; }));
}

TEST_CASE("encoder classifier: gradients of every tensor match finite differences, first-token and mean pooling") {
  for (int pooling : {kPoolRank, kPoolMean}) {
    CAPTURE(pooling);
    ModelConfig cfg = tiny_encoder();
    cfg.n_cls = 3;
    cfg.cls_pooling = pooling;
    Params p(cfg);
    CHECK(p.views.back().name == "cls.output.bias");
    randomize(p, 21);
    const Batch d = make_batch(cfg.n_vocab);
    const std::vector<int> labels = {2, -1, 0};
    EncoderModel m(cfg, d.b, d.t);
    m.set_dropout(0.2f);
    m.set_training(true, 5);
    auto loss = [&] { return double(m.forward_classify(p, d.tokens.data(), d.lengths.data(), labels.data(), d.b, d.t)); };
    CHECK(loss() > 0);
    std::fill(p.grad.begin(), p.grad.end(), 0.0f);
    m.backward(p);
    Rng rng(9);
    lm::test::check_param_grads(p, loss, rng, 5);
    // A linear probe (only the head has gradients) stops at the head, with the same head gradient.
    const std::vector<float> full(p.grad.begin(), p.grad.end());
    std::vector<uint8_t> keep(p.views.size(), 0);
    keep[p.views.size() - 2] = keep[p.views.size() - 1] = 1;
    p.alloc_grad(keep);
    loss();
    m.backward(p);
    const size_t wv = p.views.size() - 2;
    const float* g = p.grad_of(wv);
    CHECK(std::equal(g, g + size_t(cfg.n_cls) * cfg.n_embd, full.begin() + ptrdiff_t(p.views[wv].offset)));
  }
}

TEST_CASE("encoder classifier: probabilities sum to 1 and padding does not change a row's") {
  ModelConfig cfg = tiny_encoder();
  cfg.n_cls = 4;
  cfg.cls_pooling = kPoolMean;
  Params p(cfg, false);
  randomize(p, 22);
  Batch d = make_batch(cfg.n_vocab);
  EncoderModel m(cfg, d.b, d.t);
  m.forward_classify(p, d.tokens.data(), d.lengths.data(), nullptr, d.b, d.t);
  std::vector<float> probs(m.class_probs(), m.class_probs() + size_t(d.b) * cfg.n_cls);
  for (int i = 0; i < d.b; ++i) {
    double sum = 0;
    for (int k = 0; k < cfg.n_cls; ++k) sum += probs[size_t(i) * cfg.n_cls + k];
    CHECK(sum == doctest::Approx(1.0).epsilon(1e-5));
  }
  // Row 1 alone, without its padding.
  const int n = d.lengths[1];
  EncoderModel one(cfg, 1, n);
  one.forward_classify(p, d.tokens.data() + d.t, &n, nullptr, 1, n);
  for (int k = 0; k < cfg.n_cls; ++k) CHECK(one.class_probs()[k] == doctest::Approx(probs[size_t(cfg.n_cls) + k]).epsilon(1e-5));
}
