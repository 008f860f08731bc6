// Tests for lib/model/session: cached inference against the training forward pass, chunked
// prompts against whole ones, and greedy decoding against a recompute without the cache.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <string>
#include <tuple>
#include <vector>

#include "base/error.hpp"
#include "base/rng.hpp"
#include "format/gguf.hpp"
#include "model/model.hpp"
#include "model/session.hpp"
#include "model/weights.hpp"
#include "quant/kquant.hpp"
#include "test_util.hpp"

using namespace lm;
using namespace lm::model;

namespace {

ModelConfig config(bool tied, int n_head_kv) {
  ModelConfig c;
  c.n_vocab = 67, c.n_ctx = 48, c.n_layer = 2, c.n_embd = 32, c.n_head = 4, c.n_head_kv = n_head_kv, c.n_ff = 40;
  c.tied = tied;
  return c;
}

// Largest difference relative to the largest magnitude of b.
double max_diff(const float* a, const float* b, size_t n) {
  double m = 0, scale = 0;
  for (size_t i = 0; i < n; ++i) m = std::max(m, std::fabs(double(a[i]) - b[i])), scale = std::max(scale, std::fabs(double(b[i])));
  return m / (scale + 1e-30);
}

int argmax(const float* x, int n) { return int(std::max_element(x, x + n) - x); }

}  // namespace

TEST_CASE("session logits equal the training forward pass, whole, chunked and one token at a time") {
  // llama tied and untied; qwen2 (q, k, v biases, RoPE in NEOX order) and phi3 (NEOX RoPE, its
  // blocks without llama's direct residual products) with grouped-query heads; gpt2 (LayerNorms,
  // learned positions, fused q/k/v, GELU, biases; the inference path llama.cpp's figures check)
  // tied and untied.
  // A head size D other than width / heads (8 here), 12 or 6, makes q H*D wide: 48 or 24 for 4 heads.
  for (auto [tied, kv, arch, D] :
       {std::tuple{true, 4, "llama", 0}, std::tuple{false, 2, "llama", 0}, std::tuple{true, 2, "qwen2", 0},
        std::tuple{false, 2, "phi3", 0}, std::tuple{true, 4, "gpt2", 0}, std::tuple{false, 4, "gpt2", 0},
        std::tuple{false, 2, "llama", 12}, std::tuple{true, 2, "qwen2", 6}, std::tuple{false, 4, "phi3", 12}}) {
    CAPTURE(tied);
    CAPTURE(arch);
    CAPTURE(D);
    ModelConfig cfg = config(tied, kv);
    cfg.n_head_dim = D;
    cfg.arch.name = arch, cfg.arch.neox = cfg.arch.name != "llama";
    if (cfg.arch.name == "gpt2") cfg = gpt2_config(cfg);
    Params p(cfg, false);
    Rng rng(5);
    p.init(rng);
    for (auto& w : p.w) w *= 10.0f;  // larger weights: logits spread over several units
    for (const ParamView& v : p.views)  // biases away from their zero init
      if (v.name.ends_with(".bias"))
        for (int i = 0; i < v.cols; ++i) p.get(size_t(&v - p.views.data()))[i] = rng.normal();
    const int T = 40, V = cfg.n_vocab;
    std::vector<int> tokens(T);
    for (int& t : tokens) t = int(rng.below(uint64_t(V)));
    Model m(cfg, 1, T);
    m.forward(p, tokens.data(), nullptr, 1, T);
    const float* want = m.logits();
    for (int batch : {T, 7, 1}) {
      CAPTURE(batch);
      Session s(p, cfg.n_ctx, batch);
      for (int i = 0; i < T; i += batch) {
        const int n = std::min(batch, T - i);
        const float* got = s.eval(tokens.data() + i, n, true);
        CHECK(max_diff(got, want + size_t(i) * V, size_t(n) * V) < 1e-4);
      }
      CHECK(s.n_past() == T);
      // keep() rewinds: re-evaluating the tail gives the same last logits.
      s.keep(T - 3);
      const float* last = s.eval_all(tokens.data() + T - 3, 3);
      CHECK(max_diff(last, want + size_t(T - 1) * V, size_t(V)) < 1e-4);
    }
  }
}

TEST_CASE("gemma2: session logits equal the training forward pass (soft-caps, GeGLU, post-norms, head size)") {
  ModelConfig cfg = config(true, 2);
  cfg.arch.name = "gemma2", cfg.arch.neox = true, cfg.arch.ffn = FfnKind::GeGLU;
  cfg.arch.embd_scale = true, cfg.arch.post_norms = true;
  cfg.arch.attn_softcap = 2.0f, cfg.arch.final_softcap = 3.0f;
  cfg.arch.sliding_window = cfg.n_ctx, cfg.arch.swa_pattern = 2;  // no position past the window
  cfg.n_head_dim = 12;
  Params p(cfg, false);
  Rng rng(7);
  p.init(rng);
  for (auto& w : p.w) w *= 10.0f;
  const int T = 40, V = cfg.n_vocab;
  std::vector<int> tokens(T);
  for (int& t : tokens) t = int(rng.below(uint64_t(V)));
  Model m(cfg, 1, T);
  m.forward(p, tokens.data(), nullptr, 1, T);
  for (int batch : {T, 7}) {
    CAPTURE(batch);
    Session s(p, cfg.n_ctx, batch);
    for (int i = 0; i < T; i += batch) {
      const int n = std::min(batch, T - i);
      CHECK(max_diff(s.eval(tokens.data() + i, n, true), m.logits() + size_t(i) * V, size_t(n) * V) < 1e-4);
    }
  }
}

TEST_CASE("greedy decoding with the cache equals recomputing the whole sequence every step") {
  const ModelConfig cfg = config(false, 2);
  Params p(cfg, false);
  Rng rng(11);
  p.init(rng);
  for (auto& w : p.w) w *= 10.0f;
  std::vector<int> seq = {3, 14, 15, 9, 26};
  const int V = cfg.n_vocab, prompt = int(seq.size());
  Session s(p, cfg.n_ctx, 4);
  std::vector<int> cached = seq;
  const float* logits = s.eval_all(cached.data(), prompt);
  Model m(cfg, 1, cfg.n_ctx);
  int margin_checks = 0;
  while (int(cached.size()) < cfg.n_ctx) {
    const int next = argmax(logits, V);
    m.forward(p, seq.data(), nullptr, 1, int(seq.size()));
    const float* full = m.logits() + (seq.size() - 1) * size_t(V);
    CHECK(max_diff(logits, full, size_t(V)) < 1e-4);
    seq.push_back(argmax(full, V));
    cached.push_back(next);
    ++margin_checks;
    if (int(cached.size()) < cfg.n_ctx) logits = s.eval(&cached.back(), 1);
  }
  CHECK(cached == seq);
  CHECK(margin_checks == cfg.n_ctx - prompt);
}

TEST_CASE("session sizes are validated") {
  const ModelConfig cfg = config(true, 4);
  Params p(cfg, false);
  CHECK_THROWS_AS(Session(p, cfg.n_ctx + 1, 8), UsageError);
  CHECK_THROWS_AS(Session(p, 0, 8), UsageError);
  CHECK_THROWS_AS(Session(p, 8, 0), UsageError);
  Session s(p, 16, 64);
  CHECK(s.n_batch() == 16);
}

TEST_CASE("quantized weights: a session equals its own kernels' reference and stays close to F32") {
  ModelConfig cfg = config(false, 2);
  cfg.n_embd = 128, cfg.n_ff = 160;  // q8_0 / q4_0 blocks of 32, a group of 4 and a tail block
  Params p(cfg, false);
  Rng rng(5);
  p.init(rng);
  std::vector<int> tokens(20);
  for (int& t : tokens) t = int(rng.below(uint64_t(cfg.n_vocab)));
  Session f32(p, cfg.n_ctx, 8);
  std::vector<float> want(size_t(tokens.size()) * cfg.n_vocab);
  for (size_t i = 0; i < tokens.size(); ++i) {
    const float* l = f32.eval(&tokens[i], 1);
    std::copy(l, l + cfg.n_vocab, want.begin() + long(i * cfg.n_vocab));
  }
  for (auto [type, tol] : {std::pair{format::GgmlType::Q8_0, 0.03}, std::pair{format::GgmlType::Q4_0, 0.3}}) {
    CAPTURE(int(type));
    const Weights w = quantize_weights(p, type, type);
    CHECK(w.bytes() < p.w.size() * 4 / 3);
    // Prompt in chunks of 8 with all logits, then one token at a time: the same rows.
    Session chunked(w, cfg.n_ctx, 8), single(w, cfg.n_ctx, 8);
    for (size_t i = 0; i < tokens.size(); i += 8) {
      const int n = int(std::min<size_t>(8, tokens.size() - i));
      const float* lc = chunked.eval(&tokens[i], n, true);
      for (int j = 0; j < n; ++j) {
        const float* ls = single.eval(&tokens[i + size_t(j)], 1);
        CHECK(max_diff(lc + size_t(j) * cfg.n_vocab, ls, size_t(cfg.n_vocab)) < 1e-4);
        CHECK(max_diff(ls, want.data() + (i + size_t(j)) * cfg.n_vocab, size_t(cfg.n_vocab)) < tol);
      }
    }
  }
}

// Issue 27: a model claiming a context of 2^20 tokens made every session allocate a KV cache
// for all of them. The cache now holds what was evaluated (or reserved), growing on the way,
// and a grown cache gives the same logits as one reserved up front.
TEST_CASE("the KV cache grows with the tokens evaluated, up to n_ctx, and growing changes no logit") {
  ModelConfig cfg = config(false, 2);
  cfg.n_ctx = 1 << 20;
  Params p(cfg, false);
  Rng rng(7);
  p.init(rng);
  for (auto& w : p.w) w *= 10.0f;
  const size_t per_token = 2 * size_t(cfg.n_layer) * size_t(cfg.kv_dim()) * sizeof(float);
  Session grown(p, cfg.n_ctx, 4), reserved(p, cfg.n_ctx, 4);
  CHECK(grown.capacity() == 0);
  CHECK(grown.cache_bytes() == 0);
  reserved.reserve(48);
  CHECK(reserved.capacity() == 48);
  CHECK(reserved.cache_bytes() == 48 * per_token);
  std::vector<int> tokens(45);
  for (int& t : tokens) t = int(rng.below(uint64_t(cfg.n_vocab)));
  const int V = cfg.n_vocab;
  grown.eval(tokens.data(), 3);  // room for 3, then one at a time: 6, 12, 24, 48
  reserved.eval(tokens.data(), 3);
  CHECK(grown.capacity() == 3);
  for (size_t i = 3; i < tokens.size(); ++i) {
    const float* a = grown.eval(&tokens[i], 1);
    const std::vector<float> la(a, a + V);
    const float* b = reserved.eval(&tokens[i], 1);
    CHECK(max_diff(la.data(), b, size_t(V)) == 0.0);
  }
  CHECK(grown.capacity() == 48);
  CHECK(reserved.capacity() == 48);
  CHECK(grown.cache_bytes() == 48 * per_token);
  CHECK(grown.bytes() < (size_t{1} << 20));  // nothing sized by the model's 2^20 context
  // keep() and reserve() never shrink; reserve() stops at n_ctx.
  grown.keep(0);
  CHECK(grown.capacity() == 48);
  Session small(p, 20, 4);
  small.reserve(1000);
  CHECK(small.capacity() == 20);
}

namespace {

// Prompts of 1-9 tokens and 4 decoding steps, alone and in batches of up to 15 rows, with
// `types` of weights, on a `C`-wide model (every type's blocks whole).
void check_batch_equals_alone(int C, std::initializer_list<format::GgmlType> types) {
  ModelConfig cfg;
  cfg.n_vocab = 67, cfg.n_ctx = 48, cfg.n_layer = 2, cfg.n_embd = C, cfg.n_head = 4, cfg.n_head_kv = 2, cfg.n_ff = 2 * C;
  Params p(cfg, false);
  Rng rng(11);
  p.init(rng);
  for (auto& w : p.w) w *= 10.0f;
  const std::vector<std::vector<int>> prompts = {{1, 2, 3, 4, 5}, {9, 8, 7, 6, 5, 4, 3, 2, 1}, {42}, {7, 7}};
  const int steps = 4, V = cfg.n_vocab;
  for (auto type : types) {
    CAPTURE(std::string(format::ggml_type_info(type).name));
    const Weights w = type == format::GgmlType::F32 ? view_weights(p) : quantize_weights(p, type, type);
    // Alone: each prompt in one evaluation, then `steps` tokens one at a time.
    std::vector<std::vector<float>> want(prompts.size());
    for (size_t s = 0; s < prompts.size(); ++s) {
      Session one(w, cfg.n_ctx, 16);
      const float* l = one.eval(prompts[s].data(), int(prompts[s].size()));
      want[s].assign(l, l + V);
      for (int t = 0; t < steps; ++t) {
        const int tok = int(s * 5 + size_t(t) * 3) % V;
        l = one.eval(&tok, 1);
        want[s].insert(want[s].end(), l, l + V);
      }
    }
    // Together: the prompts in one batch (the last one's first token alone, to mix a prompt
    // chunk with a decoding row), then every step as one batch.
    Session all(w, cfg.n_ctx, 32, 4);
    std::vector<std::vector<float>> got(prompts.size());
    std::vector<Session::Chunk> c;
    for (size_t s = 0; s < 3; ++s)
      c.push_back({int(s), prompts[s].data(), int(prompts[s].size()), int(prompts[s].size()) - 1});
    c.push_back({3, prompts[3].data(), 1, 1});  // no logits wanted
    const float* l = all.eval_batch(c.data(), int(c.size()));
    for (size_t s = 0; s < 3; ++s) got[s].assign(l + s * V, l + (s + 1) * V);
    CHECK(all.n_past(3) == 1);
    const Session::Chunk rest{3, prompts[3].data() + 1, 1, 0};
    l = all.eval_batch(&rest, 1);
    got[3].assign(l, l + V);
    for (int t = 0; t < steps; ++t) {
      std::vector<int> toks(prompts.size());
      c.clear();
      for (size_t s = 0; s < prompts.size(); ++s) {
        toks[s] = int(s * 5 + size_t(t) * 3) % V;
        c.push_back({int(s), &toks[s], 1, 0});
      }
      std::reverse(c.begin(), c.end());  // chunk order is free
      l = all.eval_batch(c.data(), int(c.size()));
      for (size_t s = 0; s < prompts.size(); ++s) {
        const float* row = l + (prompts.size() - 1 - s) * V;
        got[s].insert(got[s].end(), row, row + V);
      }
    }
    for (size_t s = 0; s < prompts.size(); ++s) {
      CAPTURE(s);
      REQUIRE(got[s].size() == want[s].size());
      if (type == format::GgmlType::F32)  // sgemm and the decoding loop add in different orders
        CHECK(max_diff(got[s].data(), want[s].data(), want[s].size()) < 1e-5);
      else  // the integer kernels give each row the same bits in a batch of any size
        CHECK(got[s] == want[s]);
      CHECK(all.n_past(int(s)) == int(prompts[s].size()) + steps);
    }
    // keep() rewinds one slot only.
    all.keep(0, 1);
    CHECK(all.n_past(1) == 0);
    CHECK(all.n_past(0) == int(prompts[0].size()) + steps);
  }
}

}  // namespace

TEST_CASE("eval_batch: sequences evaluated together get the logits each gets alone") {
  // 128 columns: whole groups of four 32-value blocks, so the integer kernels' vector paths run.
  check_batch_equals_alone(128, {format::GgmlType::F32, format::GgmlType::Q8_0, format::GgmlType::Q4_0,
                                 format::GgmlType::Q5_1, format::GgmlType::IQ4_NL});
  // The K-quants and iq4_xs (256-value blocks): batches this short take their dot products on
  // every path (tiles, or one pair at a time), with the bits of one row.
  lm::test::DotPathGuard guard;
  for (quant::DotPath path : {quant::DotPath::Avx512Vnni, quant::DotPath::Avx2, quant::DotPath::Portable}) {
    quant::limit_dot_path(path);
    if (quant::dot_path() != path) continue;  // this CPU lacks it
    CAPTURE(int(path));
    check_batch_equals_alone(256, {format::GgmlType::Q4_K, format::GgmlType::Q6_K, format::GgmlType::Q3_K,
                                   format::GgmlType::Q2_K, format::GgmlType::IQ4_XS});
  }
}
