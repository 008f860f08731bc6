// Tests for lib/model/model: logits, loss and gradients of a tiny GQA model and of a tiny gpt2
// against PyTorch golden fixtures (tests/model/make_golden.py writes tests/data/golden_tiny.bin,
// tests/model/make_gpt2_golden.py tests/data/gpt2_golden.bin), and gradients against finite
// differences.
#include <doctest/doctest.h>

#include <cmath>
#include <cstring>
#include <string>
#include <vector>

#include "base/error.hpp"
#include "base/file.hpp"
#include "golden_reader.hpp"
#include "model/grad_check.hpp"
#include "kernels/kernels.hpp"
#include "model/model.hpp"

using namespace lm;
using namespace lm::model;

namespace {

using Reader = lm::test::GoldenReader;

double rel_err(const float* a, const float* b, size_t n) {
  double num = 0, den = 0;
  for (size_t i = 0; i < n; ++i) {
    num = std::max(num, std::fabs(double(a[i]) - b[i]));
    den = std::max(den, std::fabs(double(b[i])));
  }
  return num / (den + 1e-12);
}

// The body of a golden fixture after its header (tokens, targets, weights in cfg's parameter
// order, logits, loss, gradients), checked against Model: logits within 2e-5 (and an inference
// Model, whose layers share one set of buffers, giving the same bits), the loss within 1e-5,
// every view's gradient within 1e-4 relative.
void check_golden(Reader& r, const ModelConfig& cfg, int B) {
  const int T = cfg.n_ctx;
  auto tokens = r.take<int32_t>(size_t(B) * T);
  auto targets = r.take<int32_t>(size_t(B) * T);
  Params p(cfg);
  const auto w = r.take<float>(cfg.n_params());
  p.w.assign(w.begin(), w.end());
  auto logits = r.take<float>(size_t(B) * T * cfg.n_vocab);
  float loss = r.take<float>(1)[0];
  auto grads = r.take<float>(cfg.n_params());
  CHECK(r.pos == r.bytes.size());

  Model m(cfg, B, T);
  m.forward(p, tokens.data(), nullptr, B, T);
  CHECK(rel_err(m.logits(), logits.data(), logits.size()) < 2e-5);
  Model inference(cfg, B, T, ModelBuffers{.trunk_backward = false});
  CHECK(inference.activation_bytes() < m.activation_bytes());
  inference.forward(p, tokens.data(), nullptr, B, T);
  CHECK(std::memcmp(inference.logits(), m.logits(), logits.size() * sizeof(float)) == 0);
  float ours = m.forward(p, tokens.data(), targets.data(), B, T);
  CHECK(ours == doctest::Approx(loss).epsilon(1e-5));
  m.backward(p);
  for (const auto& v : p.views) {
    CAPTURE(v.name);
    CHECK(rel_err(p.grad.data() + v.offset, grads.data() + v.offset, size_t(v.rows) * v.cols) < 1e-4);
  }
}

// Random tokens and targets for b rows of t (each target at i % skip == skip - 1 unscored when
// skip > 0), Model's gradients of every view of p, then `samples` of each against finite
// differences. Returns the tokens.
std::vector<int> check_model_grads(Model& m, Params& p, Rng& rng, int b, int t, int skip, int samples) {
  const uint64_t V = uint64_t(p.cfg.n_vocab);
  std::vector<int> tokens(size_t(b) * t), targets(size_t(b) * t);
  for (size_t i = 0; i < tokens.size(); ++i) {
    tokens[i] = int(rng.below(V));
    targets[i] = skip > 0 && i % size_t(skip) == size_t(skip - 1) ? -1 : int(rng.below(V));
  }
  std::fill(p.grad.begin(), p.grad.end(), 0.0f);
  m.forward(p, tokens.data(), targets.data(), b, t);
  m.backward(p);
  lm::test::check_param_grads(p, [&] { return double(m.forward(p, tokens.data(), targets.data(), b, t)); }, rng,
                              samples);
  return tokens;
}

}  // namespace

TEST_CASE("tiny GQA model matches the PyTorch golden fixture: logits, loss and every gradient") {
  Reader r{load_file(std::string(LM_TEST_DATA_DIR) + "/golden_tiny.bin")};
  REQUIRE(r.take<char>(8) == std::vector<char>{'L', 'M', 'G', 'O', 'L', 'D', '1', '\0'});
  auto h = r.take<int32_t>(9);
  auto f = r.take<float>(2);
  ModelConfig cfg;
  cfg.n_vocab = h[0], cfg.n_ctx = h[1], cfg.n_layer = h[2], cfg.n_embd = h[3], cfg.n_head = h[4];
  cfg.n_head_kv = h[5], cfg.n_ff = h[6], cfg.tied = h[7] != 0;
  cfg.norm_eps = f[0], cfg.rope_base = f[1];
  REQUIRE(cfg.n_head_kv < cfg.n_head);  // the fixture exercises grouped-query attention
  check_golden(r, cfg, h[8]);
}

TEST_CASE("untied model gradients match finite differences, with and without dropout; smaller batches reuse the buffers") {
  for (float dropout : {0.0f, 0.25f}) {
  CAPTURE(dropout);
  ModelConfig cfg;
  cfg.n_vocab = 37, cfg.n_ctx = 9, cfg.n_layer = 2, cfg.n_embd = 24, cfg.n_head = 3, cfg.n_head_kv = 1;
  cfg.n_ff = 40, cfg.tied = false;
  Params p(cfg);
  Rng rng(5);
  p.init(rng);
  for (auto& w : p.w) w += 0.2f * rng.normal();  // away from the init so every path carries signal
  const int B = 3, T = 9;
  Model m(cfg, B, T);
  // The masks are a function of the seed, so every forward below draws the same ones.
  m.set_dropout(dropout);
  m.set_training(true, 21);
  for (auto [b, t] : {std::pair{3, 9}, std::pair{2, 5}}) check_model_grads(m, p, rng, b, t, 4, 3);
  }
}

TEST_CASE("qwen2 gradients match finite differences: q, k, v biases and RoPE in NEOX order") {
  ModelConfig cfg;
  cfg.arch.name = "qwen2", cfg.arch.neox = true;
  cfg.n_vocab = 29, cfg.n_ctx = 7, cfg.n_layer = 2, cfg.n_embd = 16, cfg.n_head = 4, cfg.n_head_kv = 2;
  cfg.n_ff = 24, cfg.tied = true;
  Params p(cfg);
  REQUIRE(p.views[qkv_bias_param(cfg, 1, 1)].name == "blk.1.attn_k.bias");
  REQUIRE(p.views[output_norm_param(cfg)].name == "output_norm.weight");
  Rng rng(9);
  p.init(rng);
  for (auto& w : p.w) w += 0.2f * rng.normal();  // biases too: every path carries signal
  const int B = 2, T = 7;
  Model m(cfg, B, T);
  check_model_grads(m, p, rng, B, T, 5, 4);
  // The biases' gradients are not all zero (a check that passes on zeros would prove nothing).
  double bias_grad = 0;
  for (int j = 0; j < 3; ++j) {
    const ParamView& v = p.views[qkv_bias_param(cfg, 0, j)];
    for (int i = 0; i < v.cols; ++i) bias_grad += std::fabs(p.grad[v.offset + size_t(i)]);
  }
  CHECK(bias_grad > 1e-3);
}

TEST_CASE("a head size other than width / heads: gradients match finite differences, q wider and narrower") {
  // Width 16, 4 heads: head sizes 6 and 2 make q (and attn_output's input) 24 and 8 wide.
  for (auto [arch, D] : {std::pair{"llama", 6}, std::pair{"qwen2", 2}}) {
    CAPTURE(arch);
    ModelConfig cfg;
    cfg.arch.name = arch, cfg.arch.neox = cfg.arch.name == "qwen2";
    cfg.n_vocab = 23, cfg.n_ctx = 6, cfg.n_layer = 2, cfg.n_embd = 16, cfg.n_head = 4, cfg.n_head_kv = 2;
    cfg.n_ff = 20, cfg.tied = false, cfg.n_head_dim = D;
    Params p(cfg);
    const ParamView& wq = p.views[layer_param(1, kWq)];
    const ParamView& wo = p.views[layer_param(1, kWo)];
    REQUIRE(wq.name == "blk.1.attn_q.weight");
    CHECK((wq.rows == 4 * D && wq.cols == 16));
    CHECK((wo.rows == 16 && wo.cols == 4 * D));
    Rng rng(21);
    p.init(rng);
    for (auto& w : p.w) w += 0.2f * rng.normal();
    const int B = 2, T = 6;
    Model m(cfg, B, T);
    check_model_grads(m, p, rng, B, T, 0, 4);
  }
}

// gemma2's layer options on the llama trunk: embeddings times sqrt(C), a head size of its own,
// soft-capped attention scores and logits, GeGLU, norms after attention and the MLP. Small caps
// so that tanh bends these random scores; Gemma 2's own are 50 and 30.
static void set_gemma2(ModelConfig& cfg, float attn_softcap, float final_softcap, int window) {
  cfg.arch.name = "gemma2", cfg.arch.neox = true, cfg.arch.ffn = FfnKind::GeGLU;
  cfg.arch.embd_scale = true, cfg.arch.post_norms = true;
  cfg.arch.attn_softcap = attn_softcap, cfg.arch.final_softcap = final_softcap;
  cfg.arch.sliding_window = window, cfg.arch.swa_pattern = 2;
}

static ModelConfig gemma2_test_config() {
  ModelConfig cfg;
  set_gemma2(cfg, 0.5f, 1.5f, 6);
  cfg.n_vocab = 23, cfg.n_ctx = 8, cfg.n_layer = 2, cfg.n_embd = 16, cfg.n_head = 4, cfg.n_head_kv = 2;
  cfg.n_ff = 20, cfg.tied = true, cfg.n_head_dim = 6;
  return cfg;
}

TEST_CASE("tiny gemma2 matches the PyTorch golden fixture: logits, loss and every gradient") {
  // tests/model/make_gemma2_golden.py writes it: Gemma 2's block in PyTorch, in double precision.
  Reader r{load_file(std::string(LM_TEST_DATA_DIR) + "/gemma2_golden.bin")};
  REQUIRE(r.take<char>(8) == std::vector<char>{'L', 'M', 'G', 'E', 'M', 'M', 'A', '2'});
  auto h = r.take<int32_t>(9);
  auto f = r.take<float>(3);
  ModelConfig cfg;
  cfg.n_vocab = h[0], cfg.n_ctx = h[1], cfg.n_layer = h[2], cfg.n_embd = h[3], cfg.n_head = h[4];
  cfg.n_head_kv = h[5], cfg.n_head_dim = h[6], cfg.n_ff = h[7], cfg.tied = true, cfg.norm_eps = f[0];
  set_gemma2(cfg, f[1], f[2], cfg.n_ctx);  // every sequence inside the window
  check_golden(r, cfg, h[8]);
}

TEST_CASE("gemma2 gradients match finite differences: soft-caps, GeGLU, post-norms, embedding scale") {
  const ModelConfig cfg = gemma2_test_config();
  Params p(cfg);
  REQUIRE(p.views[post_norm_param(cfg, 1, 1)].name == "blk.1.post_ffw_norm.weight");
  REQUIRE(p.views[output_norm_param(cfg)].name == "output_norm.weight");
  Rng rng(23);
  p.init(rng);
  for (auto& w : p.w) w += 0.3f * rng.normal();  // the norms' gains too
  for (int dropout : {0, 1}) {
    CAPTURE(dropout);
    const int B = 2, T = 6;
    Model m(cfg, B, T);
    m.set_dropout(dropout ? 0.2f : 0.0f);
    m.set_training(dropout != 0, 5);
    const std::vector<int> tokens = check_model_grads(m, p, rng, B, T, 0, 4);
    // The logits are soft-capped: every one inside (-1.5, 1.5).
    m.forward(p, tokens.data(), nullptr, B, T);
    float mx = 0;
    for (int i = 0; i < B * T * 23; ++i) mx = std::max(mx, std::fabs(m.logits()[i]));
    CHECK(mx < 1.5f);
    CHECK(mx > 0.5f);
  }
  // Past the sliding window, training is refused (it computes full causal attention).
  CHECK_THROWS_WITH_AS(Model(cfg, 1, 7), doctest::Contains("sliding window"), UsageError);
}

// Distillation (docs/distillation.md): forward with soft targets gives the kernel's loss on the
// model's logits, and its gradients through every weight match finite differences, for next-token
// prediction (top-k teacher rows) and for a classifier (dense rows over the labels).
TEST_CASE("soft targets: the distillation loss of the model's logits; gradients match finite differences") {
  ModelConfig cfg;
  cfg.n_vocab = 29, cfg.n_ctx = 6, cfg.n_layer = 1, cfg.n_embd = 16, cfg.n_head = 2, cfg.n_head_kv = 2;
  cfg.n_ff = 24, cfg.tied = true, cfg.n_cls = 3;
  Params p(cfg);
  Rng rng(8);
  p.init(rng);
  for (auto& w : p.w) w += 0.2f * rng.normal();
  const int b = 2, t = 6, N = b * t, K = 4;
  Model m(cfg, b, t);
  std::vector<int> tokens(static_cast<size_t>(N)), targets(static_cast<size_t>(N)), ids(static_cast<size_t>(N * K));
  std::vector<float> teacher(static_cast<size_t>(N * K));
  for (int i = 0; i < N; ++i) {
    tokens[size_t(i)] = int(rng.below(29));
    targets[size_t(i)] = i == 3 ? -1 : int(rng.below(29));
    for (int k = 0; k < K; ++k) {
      ids[size_t(i * K + k)] = (i + 7 * k) % 29;
      teacher[size_t(i * K + k)] = 2.0f * rng.normal();
    }
  }
  SoftTargets soft{teacher.data(), ids.data(), K, 0.6f, 1.5f};
  // The loss is the kernel's on the logits of a plain forward.
  m.forward(p, tokens.data(), nullptr, b, t);
  std::vector<float> logits(m.logits(), m.logits() + size_t(N) * 29), losses(static_cast<size_t>(N)), kl(static_cast<size_t>(N));
  const int scored = lm::kernels::distill_forward_backward(losses.data(), kl.data(), logits.data(), logits.data(),
                                                           targets.data(), teacher.data(), ids.data(), K, N, 29, 0.6f,
                                                           1.5f, 1.0f);
  double want = 0, want_kl = 0;
  for (int i = 0; i < N; ++i) want += losses[size_t(i)], want_kl += kl[size_t(i)];
  const float got = m.forward(p, tokens.data(), targets.data(), b, t, &soft);
  CHECK(std::fabs(got - want / scored) < 1e-5);
  CHECK(std::fabs(m.last_kl() - want_kl / scored) < 1e-5);
  CHECK(m.last_kl() > 0);
  // Classifier rows: dense teacher logits over the 3 labels.
  std::vector<int> lengths = {6, 4}, labels = {2, 0};
  std::vector<float> cls_teacher = {0.5f, -1.0f, 2.0f, 1.0f, 0.0f, -0.5f};
  SoftTargets cls_soft{cls_teacher.data(), nullptr, 3, 0.5f, 2.0f};
  for (bool classify : {false, true}) {
    CAPTURE(classify);
    auto loss = [&] {
      return classify ? m.forward_classify(p, tokens.data(), lengths.data(), labels.data(), b, t, &cls_soft)
                      : m.forward(p, tokens.data(), targets.data(), b, t, &soft);
    };
    std::fill(p.grad.begin(), p.grad.end(), 0.0f);
    loss();
    m.backward(p);
    lm::test::check_param_grads(p, [&] { return double(loss()); }, rng, 3);
  }
}

TEST_CASE("dropout acts only while training and draws its masks from the seed") {
  ModelConfig cfg;
  cfg.n_vocab = 37, cfg.n_ctx = 16, cfg.n_layer = 2, cfg.n_embd = 24, cfg.n_head = 3, cfg.n_head_kv = 3, cfg.n_ff = 40;
  Params p(cfg);
  Rng rng(6);
  p.init(rng);
  const int B = 4, T = 16;
  std::vector<int> tokens(size_t(B) * T), targets(size_t(B) * T);
  for (size_t i = 0; i < tokens.size(); ++i) tokens[i] = int(rng.below(37)), targets[i] = int(rng.below(37));
  Model plain(cfg, B, T), m(cfg, B, T);
  const float base = plain.forward(p, tokens.data(), targets.data(), B, T);
  m.set_dropout(0.5f);
  CHECK(m.forward(p, tokens.data(), targets.data(), B, T) == base);  // not training: no dropout
  m.set_training(true, 1);
  const float a = m.forward(p, tokens.data(), targets.data(), B, T);
  CHECK(a != base);
  CHECK(m.forward(p, tokens.data(), targets.data(), B, T) == a);  // same seed, same masks
  m.set_training(true, 2);
  CHECK(m.forward(p, tokens.data(), targets.data(), B, T) != a);
  m.set_training(false);
  CHECK(m.forward(p, tokens.data(), targets.data(), B, T) == base);
  CHECK_THROWS_AS(m.set_dropout(1.0f), UsageError);
  CHECK_THROWS_AS(m.set_dropout(-0.1f), UsageError);
}

TEST_CASE("configurations are validated with the field and its range") {
  ModelConfig c = preset("tiny");
  CHECK(c.n_params() == 4096u * 256 + 4u * (2 * 256 + 4 * 256 * 256 + 3 * 768 * 256) + 256);
  c.n_head = 5;
  CHECK_THROWS_WITH_AS(c.validate(), doctest::Contains("not a multiple of the head count 5"), UsageError);
  c = preset("small");
  c.n_head_kv = 4;
  CHECK_THROWS_WITH_AS(c.validate(), doctest::Contains("kv head count"), UsageError);
  CHECK_THROWS_AS(preset("huge"), UsageError);
  CHECK_THROWS_AS(Model(preset("tiny"), 1, 257), UsageError);
  CHECK(preset("medium").n_params() == 109529856u + 0u);
}

TEST_CASE("tiny gpt2 matches the PyTorch golden fixture: logits, loss and every gradient") {
  // tests/model/make_gpt2_golden.py writes it: GPT-2's block in PyTorch, in double precision.
  Reader r{load_file(std::string(LM_TEST_DATA_DIR) + "/gpt2_golden.bin")};
  REQUIRE(r.take<char>(8) == std::vector<char>{'L', 'M', 'G', 'P', 'T', '2', '1', '\0'});
  auto h = r.take<int32_t>(7);
  ModelConfig base;
  base.n_vocab = h[0], base.n_ctx = h[1], base.n_layer = h[2], base.n_embd = h[3], base.n_head = h[4];
  base.n_ff = h[5], base.tied = true;
  ModelConfig cfg = gpt2_config(base);
  cfg.norm_eps = r.take<float>(1)[0];
  check_golden(r, cfg, h[6]);
}

TEST_CASE("gpt2 gradients match finite differences: LayerNorms and biases, fused q/k/v, learned positions, GELU") {
  for (bool tied : {true, false})
    for (float dropout : {0.0f, 0.25f}) {
      CAPTURE(tied);
      CAPTURE(dropout);
      ModelConfig base;
      base.n_vocab = 31, base.n_ctx = 8, base.n_layer = 2, base.n_embd = 16, base.n_head = 4, base.n_head_kv = 4;
      base.n_ff = 28, base.tied = tied;
      const ModelConfig cfg = gpt2_config(base);
      Params p(cfg);
      REQUIRE(p.views[1].name == "position_embd.weight");
      REQUIRE(p.views[gpt2_param(1, kGQkvB)].name == "blk.1.attn_qkv.bias");
      REQUIRE(p.views[output_norm_param(cfg) + 1].name == "output_norm.bias");
      REQUIRE(p.views[head_param(cfg)].name == (tied ? "token_embd.weight" : "output.weight"));
      REQUIRE(p.views.size() == output_norm_param(cfg) + (tied ? 2 : 3));
      Rng rng(13);
      p.init(rng);
      for (auto& w : p.w) w += 0.2f * rng.normal();  // norms' biases too: every path carries signal
      const int B = 2, T = 8;
      Model m(cfg, B, T);
      m.set_dropout(dropout);
      m.set_training(true, 17);
      for (auto [b, t] : {std::pair{2, 8}, std::pair{1, 5}}) check_model_grads(m, p, rng, b, t, 5, 3);
      // Every view of the first layer has a gradient somewhere (a check on zeros proves nothing).
      for (size_t v = gpt2_param(0, kGAttnNorm); v < gpt2_param(1, kGAttnNorm); ++v) {
        const ParamView& pv = p.views[v];
        double sum = 0;
        for (size_t i = 0; i < size_t(pv.rows) * pv.cols; ++i) sum += std::fabs(p.grad_of(v)[i]);
        CHECK_MESSAGE(sum > 1e-4, pv.name);
      }
    }
  // Shapes lm does not train: grouped-query heads, a classifier.
  ModelConfig gqa = gpt2_config(ModelConfig{});
  gqa.n_head_kv = 2;
  CHECK_THROWS_AS(Model(gqa, 1, 8), UsageError);
}
