// Tests for lib/model/lstm: the LSTM language model against PyTorch's torch.nn.LSTM (golden
// fixture written by tests/model/make_lstm_golden.py), gradients against finite differences, and
// the state carried across windows, resets and dropout; the GGUF file and inference through
// model::Session against the training model.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "base/error.hpp"
#include "base/file.hpp"
#include "format/gguf.hpp"
#include "golden_reader.hpp"
#include "model/grad_check.hpp"
#include "model/lstm.hpp"
#include "model/model_io.hpp"
#include "model/session.hpp"
#include "quant/quant.hpp"
#include "test_util.hpp"

using namespace lm;
using namespace lm::model;

namespace {

double max_rel(const float* a, const std::vector<float>& b) {
  double m = 0, scale = 0;
  for (float x : b) scale = std::max(scale, double(std::fabs(x)));
  for (size_t i = 0; i < b.size(); ++i) m = std::max(m, std::fabs(double(a[i]) - b[i]) / (scale + 1e-12));
  return m;
}

}  // namespace

TEST_CASE("LSTM language model matches PyTorch's nn.LSTM: logits, loss, every gradient and the final state") {
  lm::test::GoldenReader r{load_file(std::string(LM_TEST_DATA_DIR) + "/lstm_golden.bin")};
  REQUIRE(r.bytes.substr(0, 8) == std::string("LMLSTM1\0", 8));
  r.pos = 8;
  const auto d = r.take<int32_t>(8);
  LstmConfig cfg;
  cfg.n_vocab = d[0], cfg.n_embd = d[1], cfg.n_hidden = d[2], cfg.n_layer = d[3], cfg.n_proj = d[4];
  cfg.tied = d[5] != 0;
  const int B = d[6], T = d[7];
  cfg.n_ctx = T;
  const auto tokens = r.take<int32_t>(size_t(B) * T), targets = r.take<int32_t>(size_t(B) * T);
  const int O = cfg.out_width(), H = cfg.n_hidden, L = cfg.n_layer, V = cfg.n_vocab;
  const auto h0 = r.take<float>(size_t(L) * B * O), c0 = r.take<float>(size_t(L) * B * H);
  LstmParams p(cfg);
  const auto w = r.take<float>(p.w.size());
  std::copy(w.begin(), w.end(), p.w.begin());
  const auto logits = r.take<float>(size_t(B) * T * V);
  const float loss = r.take<float>(1)[0];
  const auto grads = r.take<float>(p.w.size());
  const auto hT = r.take<float>(h0.size()), cT = r.take<float>(c0.size());
  CHECK(r.pos == r.bytes.size());

  LstmModel m(cfg, B, T);
  LstmState st;
  st.resize(cfg, B);
  std::copy(h0.begin(), h0.end(), st.h.begin());
  std::copy(c0.begin(), c0.end(), st.c.begin());
  m.forward(p, tokens.data(), nullptr, B, T, st);
  CHECK(max_rel(m.logits(), logits) < 1e-5);
  CHECK(max_rel(st.h.data(), hT) < 1e-5);
  CHECK(max_rel(st.c.data(), cT) < 1e-5);
  std::copy(h0.begin(), h0.end(), st.h.begin());
  std::copy(c0.begin(), c0.end(), st.c.begin());
  std::fill(p.grad.begin(), p.grad.end(), 0.0f);
  const float got = m.forward(p, tokens.data(), targets.data(), B, T, st);
  CHECK(std::fabs(got - loss) < 1e-5 * loss);
  m.backward(p);
  for (const ParamView& v : p.views) {
    CAPTURE(v.name);
    const std::vector<float> want(grads.begin() + long(v.offset), grads.begin() + long(v.offset + size_t(v.rows) * v.cols));
    CHECK(max_rel(p.grad.data() + v.offset, want) < 1e-4);
  }
}

TEST_CASE("LSTM gradients match finite differences (tied and untied, with and without a projection)") {
  for (int proj : {0, 6}) {
    for (bool tied : {false, true}) {
      CAPTURE(proj);
      CAPTURE(tied);
      LstmConfig cfg;
      cfg.n_vocab = 19, cfg.n_ctx = 6, cfg.n_hidden = 8, cfg.n_layer = 2, cfg.n_proj = proj;
      cfg.n_embd = tied ? cfg.out_width() : 7;
      cfg.tied = tied;
      LstmParams p(cfg);
      Rng rng(11);
      p.init(rng);
      for (auto& x : p.w) x += 0.3f * rng.normal();
      const int B = 3, T = 6;
      LstmModel m(cfg, B, T);
      LstmState start;
      start.resize(cfg, B);
      for (auto& x : start.h) x = 0.5f * rng.normal();
      for (auto& x : start.c) x = 0.5f * rng.normal();
      std::vector<int> tokens(static_cast<size_t>(B * T)), targets(static_cast<size_t>(B * T));
      for (size_t i = 0; i < tokens.size(); ++i) {
        tokens[i] = int(rng.below(19));
        targets[i] = i % 5 == 2 ? -1 : int(rng.below(19));
      }
      auto loss = [&] {
        LstmState st = start;
        return double(m.forward(p, tokens.data(), targets.data(), B, T, st));
      };
      std::fill(p.grad.begin(), p.grad.end(), 0.0f);
      loss();
      m.backward(p);
      lm::test::check_param_grads(p, loss, rng, 4);
    }
  }
}

TEST_CASE("LSTM state carried across windows: two windows of 3 steps give one window of 6") {
  LstmConfig cfg;
  cfg.n_vocab = 17, cfg.n_ctx = 6, cfg.n_embd = 8, cfg.n_hidden = 8, cfg.n_layer = 2;
  LstmParams p(cfg, false);
  Rng rng(3);
  p.init(rng);
  const int B = 2, T = 6;
  std::vector<int> tokens(static_cast<size_t>(B * T));
  for (auto& x : tokens) x = int(rng.below(17));
  LstmModel whole(cfg, B, T), half(cfg, B, 3);
  LstmState a, b;
  a.resize(cfg, B);
  b.resize(cfg, B);
  whole.forward(p, tokens.data(), nullptr, B, T, a);
  const std::vector<float> want(whole.logits(), whole.logits() + size_t(B) * T * 17);
  for (int w = 0; w < 2; ++w) {
    std::vector<int> part;
    for (int i = 0; i < B; ++i)
      for (int j = 0; j < 3; ++j) part.push_back(tokens[size_t(i) * T + 3 * w + j]);
    half.forward(p, part.data(), nullptr, B, 3, b);
    for (int i = 0; i < B; ++i)
      for (int j = 0; j < 3; ++j)
        for (int v = 0; v < 17; ++v)
          CHECK(std::fabs(half.logits()[(size_t(i) * 3 + j) * 17 + v] - want[(size_t(i) * T + 3 * w + j) * 17 + v]) < 1e-5);
  }
  for (size_t i = 0; i < a.h.size(); ++i) CHECK(std::fabs(a.h[i] - b.h[i]) < 1e-6);
  // A stream that starts again (a document boundary) forgets its state.
  b.zero_row(cfg, B, 1);
  for (int l = 0; l < cfg.n_layer; ++l)
    for (int k = 0; k < cfg.out_width(); ++k) CHECK(b.h[(size_t(l) * B + 1) * cfg.out_width() + k] == 0.0f);
}

TEST_CASE("LSTM gradients with dropout and document resets match finite differences") {
  LstmConfig cfg;
  cfg.n_vocab = 19, cfg.n_ctx = 6, cfg.n_embd = 6, cfg.n_hidden = 8, cfg.n_layer = 2, cfg.n_proj = 6;
  LstmParams p(cfg);
  Rng rng(5);
  p.init(rng);
  for (auto& x : p.w) x += 0.3f * rng.normal();
  const int B = 3, T = 6;
  LstmModel m(cfg, B, T);
  m.set_dropout(0.3f);
  m.set_training(true, 77);  // the masks are a function of the seed: every loss() draws the same
  LstmState start;
  start.resize(cfg, B);
  for (auto& x : start.h) x = 0.5f * rng.normal();
  for (auto& x : start.c) x = 0.5f * rng.normal();
  std::vector<int> tokens(static_cast<size_t>(B * T)), targets(static_cast<size_t>(B * T));
  std::vector<uint8_t> reset(static_cast<size_t>(B * T), 0);
  for (size_t i = 0; i < tokens.size(); ++i) tokens[i] = int(rng.below(19)), targets[i] = int(rng.below(19));
  reset[2] = reset[T + 0] = reset[2 * T + 4] = 1;  // stream 0 at step 2, 1 at its start, 2 at step 4
  auto loss = [&] {
    LstmState st = start;
    return double(m.forward(p, tokens.data(), targets.data(), B, T, st, reset.data()));
  };
  std::fill(p.grad.begin(), p.grad.end(), 0.0f);
  const double l0 = loss();
  m.backward(p);
  lm::test::check_param_grads(p, loss, rng, 4);
  m.set_training(false);
  CHECK(loss() != l0);  // dropout changed the loss
}

TEST_CASE("LSTM weight-drop: gradients match finite differences, dropped elements get none, off training W_hh itself") {
  LstmConfig cfg;
  cfg.n_vocab = 19, cfg.n_ctx = 6, cfg.n_embd = 6, cfg.n_hidden = 8, cfg.n_layer = 2, cfg.n_proj = 6;
  LstmParams p(cfg);
  Rng rng(9);
  p.init(rng);
  for (auto& x : p.w) x += 0.3f * rng.normal();
  const int B = 3, T = 6;
  LstmModel m(cfg, B, T), plain(cfg, B, T);
  m.set_weight_drop(0.4f);
  m.set_training(true, 123);
  LstmState start;
  start.resize(cfg, B);
  for (auto& x : start.h) x = 0.5f * rng.normal();
  for (auto& x : start.c) x = 0.5f * rng.normal();
  std::vector<int> tokens(static_cast<size_t>(B * T)), targets(static_cast<size_t>(B * T));
  for (size_t i = 0; i < tokens.size(); ++i) tokens[i] = int(rng.below(19)), targets[i] = int(rng.below(19));
  auto loss_of = [&](LstmModel& net) {
    LstmState st = start;
    return double(net.forward(p, tokens.data(), targets.data(), B, T, st));
  };
  auto loss = [&] { return loss_of(m); };
  std::fill(p.grad.begin(), p.grad.end(), 0.0f);
  const double l0 = loss();
  m.backward(p);
  lm::test::check_param_grads(p, loss, rng, 6);
  // The mask is per element of W_hh, the same for every step and stream: about 40% of each
  // layer's recurrent gradient is exactly zero, and none of its input matrix's.
  for (int l = 0; l < cfg.n_layer; ++l) {
    const ParamView& hh = p.views[p.layer_view(l, kLstmHh)];
    const ParamView& ih = p.views[p.layer_view(l, kLstmIh)];
    const float* g = p.grad.data() + hh.offset;
    const size_t n = size_t(hh.rows) * hh.cols;
    const double zero = double(std::count(g, g + n, 0.0f)) / double(n);
    CAPTURE(l);
    CHECK(zero > 0.3);
    CHECK(zero < 0.5);
    const float* gi = p.grad.data() + ih.offset;
    CHECK(std::count(gi, gi + size_t(ih.rows) * ih.cols, 0.0f) == 0);
  }
  // Off training the model uses W_hh unmasked: the loss of a model without weight-drop.
  m.set_training(false);
  CHECK(loss() == loss_of(plain));
  CHECK(loss() != l0);
}

TEST_CASE("LSTM reset: a stream that starts again at step j gives what a fresh stream of its tail gives") {
  LstmConfig cfg;
  cfg.n_vocab = 17, cfg.n_ctx = 6, cfg.n_embd = 8, cfg.n_hidden = 8, cfg.n_layer = 2;
  LstmParams p(cfg, false);
  Rng rng(9);
  p.init(rng);
  const int T = 6, j = 2;
  std::vector<int> tokens(static_cast<size_t>(T));
  for (auto& x : tokens) x = int(rng.below(17));
  std::vector<uint8_t> reset(static_cast<size_t>(T), 0);
  reset[j] = 1;
  LstmModel whole(cfg, 1, T), tail(cfg, 1, T - j);
  LstmState a, b;
  a.resize(cfg, 1);
  b.resize(cfg, 1);
  for (auto& x : a.h) x = 1.0f;  // a carried state, forgotten at the reset
  whole.forward(p, tokens.data(), nullptr, 1, T, a, reset.data());
  tail.forward(p, tokens.data() + j, nullptr, 1, T - j, b);
  for (int k = 0; k < (T - j) * 17; ++k) CHECK(std::fabs(whole.logits()[j * 17 + k] - tail.logits()[k]) < 1e-6);
  for (size_t i = 0; i < a.c.size(); ++i) CHECK(std::fabs(a.c[i] - b.c[i]) < 1e-6);
}

TEST_CASE("an LSTM file loads back bit for bit, and a Session on it gives the training model's logits") {
  std::vector<std::string> lines;
  for (int i = 0; i < 300; ++i) lines.push_back("the jury said " + std::to_string(i % 13) + " words of the county");
  const Tokenizer tok = test::train_tokenizer(lines, 300);
  test::TempDir dir;
  for (int proj : {0, 16, 32}) {
    CAPTURE(proj);
    LstmConfig cfg;
    cfg.n_vocab = tok.vocab_size(), cfg.n_ctx = 8, cfg.n_embd = 32, cfg.n_hidden = 24, cfg.n_layer = 2, cfg.n_proj = proj;
    cfg.tied = proj == 32;  // the output layer is the embeddings
    LstmParams p(cfg, false);
    Rng rng(4);
    p.init(rng);
    for (auto& x : p.w) x += 0.1f * rng.normal();
    const std::string path = dir.path() + "/lstm" + std::to_string(proj) + ".gguf";
    format::GgufWriter w;
    add_lstm_model(w, p, tok, "test");
    w.save(path);
    const format::GgufFile g = format::GgufFile::open(path);
    CHECK(g.get_string(format::kKeyArchitecture) == "lstm");
    const LstmParams q = load_lstm_params(g, false);
    CHECK(q.cfg.n_proj == proj);
    CHECK(q.cfg.tied == cfg.tied);
    REQUIRE(q.w.size() == p.w.size());
    CHECK(std::equal(q.w.begin(), q.w.end(), p.w.begin()));
    CHECK(read_config(g).n_params() == cfg.n_params());

    // 20 tokens: longer than the training window, which does not bound inference.
    const int n = 20;
    std::vector<int> tokens(static_cast<size_t>(n));
    for (auto& x : tokens) x = int(rng.below(uint64_t(cfg.n_vocab)));
    LstmModel m(cfg, 1, 4);
    LstmState st;
    st.resize(cfg, 1);
    std::vector<float> want;
    for (int at = 0; at < n; at += 4) {
      m.forward(p, tokens.data() + at, nullptr, 1, 4, st);
      want.insert(want.end(), m.logits(), m.logits() + size_t(4) * cfg.n_vocab);
    }
    const Weights ws = load_weights(g);
    Session s(ws, 64, 8, 2);
    std::vector<float> got;
    for (int at = 0; at < n;) {  // chunks of 7, 1, 7, 5 tokens
      const int k = std::min(at % 2 ? 1 : 7, n - at);
      const float* out = s.eval(tokens.data() + at, k, true);
      got.insert(got.end(), out, out + size_t(k) * cfg.n_vocab);
      at += k;
    }
    CHECK(s.n_past() == n);
    CHECK(max_rel(got.data(), want) < 1e-5);
    // Two sequences of different lengths in one batch: each as it is alone.
    s.keep(0);
    Session::Chunk chunks[2] = {{0, tokens.data(), 5, 0}, {1, tokens.data(), 3, 2}};
    const float* out = s.eval_batch(chunks, 2);
    std::vector<float> first(want.begin(), want.begin() + 5 * cfg.n_vocab);
    CHECK(max_rel(out, first) < 1e-5);
    std::vector<float> third(want.begin() + 2 * cfg.n_vocab, want.begin() + 3 * cfg.n_vocab);
    CHECK(max_rel(out + 5 * cfg.n_vocab, third) < 1e-5);
    CHECK_THROWS_AS(s.keep(2), UsageError);  // a state cannot go back
  }
}
