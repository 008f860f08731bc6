// Tests for lib/model/lora and the classification head: LoRA gradients (with and without
// dropout) and head gradients against finite differences, a frozen base getting no gradient,
// merging equal to applying, and the adapter file round trip in llama.cpp's convention; the
// same for a LoRA-adapted encoder classifier (EncoderModel).
#include <doctest/doctest.h>

#include <cmath>
#include <cstdio>
#include <functional>
#include <string>
#include <vector>

#include "base/error.hpp"
#include "format/gguf.hpp"
#include "model/encoder.hpp"
#include "model/grad_check.hpp"
#include "model/lora.hpp"
#include "model/model.hpp"

using namespace lm;
using namespace lm::model;

namespace {

ModelConfig small_cfg() {
  ModelConfig c;
  c.n_vocab = 31, c.n_ctx = 8, c.n_layer = 2, c.n_embd = 16, c.n_head = 2, c.n_head_kv = 1, c.n_ff = 24;
  return c;
}

double max_abs(const LargeVector<float>& v) {
  double m = 0;
  for (float x : v) m = std::max(m, double(std::fabs(x)));
  return m;
}

// The checks of an adapter with fused pairs (phi3, gpt2) on the small model p (31 tokens): lora
// initialised and moved off its init, its gradients against finite differences (in training
// mode, so LoRA dropout draws its masks), the adapter file written to `path`, looked at by
// check_file, read back bit for bit, and merged into p giving the logits applied.
void check_fused_lora(Params& p, Lora& lora, Rng& rng, const std::string& path,
                      const std::function<void(const format::GgufFile&)>& check_file) {
  const ModelConfig& cfg = p.cfg;
  lora.init(rng);
  for (auto& w : lora.w) w += 0.3f * rng.normal();
  const int B = 2, T = 7;
  std::vector<int> tokens(size_t(B) * T), targets(size_t(B) * T);
  for (size_t i = 0; i < tokens.size(); ++i) tokens[i] = int(rng.below(31)), targets[i] = int(rng.below(31));
  Model m(cfg, B, T);
  m.set_lora(&lora);
  m.set_training(true, 3);  // the same masks in every forward below
  std::fill(lora.grad.begin(), lora.grad.end(), 0.0f);
  m.forward(p, tokens.data(), targets.data(), B, T);
  m.backward(p);
  REQUIRE(max_abs(lora.grad) > 0);
  // A's gradient is the sum over the projections that share it.
  lm::test::check_param_grads(lora, [&] { return double(m.forward(p, tokens.data(), targets.data(), B, T)); }, rng, 3);

  m.set_training(false);
  m.forward(p, tokens.data(), nullptr, B, T);
  std::vector<float> with(m.logits(), m.logits() + size_t(B) * T * cfg.n_vocab);
  format::GgufWriter w;
  add_adapter(w, lora, "test");
  w.save(path);
  format::GgufFile g = format::GgufFile::open(path);
  check_file(g);
  Lora back = load_adapter(g, cfg);
  std::remove(path.c_str());
  CHECK(back.opt.targets == lora.opt.targets);
  CHECK(std::vector<float>(back.w.begin(), back.w.end()) == std::vector<float>(lora.w.begin(), lora.w.end()));
  merge_lora(p, back);
  Model plain(cfg, B, T);
  plain.forward(p, tokens.data(), nullptr, B, T);
  for (size_t i = 0; i < with.size(); ++i) CHECK(plain.logits()[i] == doctest::Approx(with[i]).epsilon(1e-4));
}

}  // namespace

TEST_CASE("LoRA gradients match finite differences; the frozen base gets none") {
  // Head size 0 (width / heads) and 16: queries 32 wide, wider than the model (16) and the MLP
  // (24), so attn_output's adapter reads the widest input (LoRA dropout's buffers hold it).
  for (int D : {0, 16})
  for (float dropout : {0.0f, 0.3f}) {
    CAPTURE(D);
    CAPTURE(dropout);
    ModelConfig cfg = small_cfg();
    cfg.n_head_dim = D;
    Params p(cfg, /*with_grad=*/false);
    Rng rng(3);
    p.init(rng);
    for (auto& w : p.w) w += 0.2f * rng.normal();
    LoraOptions o;
    o.rank = 3, o.alpha = 6, o.dropout = dropout;
    o.targets = parse_lora_targets("all");
    Lora lora(cfg, o);
    lora.init(rng);
    for (auto& w : lora.w) w += 0.3f * rng.normal();  // B = 0 at init would hide A's gradient
    const int B = 2, T = 7;
    Model m(cfg, B, T);
    m.set_lora(&lora);
    m.set_training(dropout > 0, 11);
    std::vector<int> tokens(size_t(B) * T), targets(size_t(B) * T);
    for (size_t i = 0; i < tokens.size(); ++i) tokens[i] = int(rng.below(31)), targets[i] = int(rng.below(31));
    // With dropout each forward draws a new mask; finite differences need the same one, so the
    // model is rebuilt with the same seed for every evaluation.
    auto loss = [&] {
      Model mm(cfg, B, T);
      mm.set_lora(&lora);
      mm.set_training(dropout > 0, 11);
      return double(mm.forward(p, tokens.data(), targets.data(), B, T));
    };
    std::fill(lora.grad.begin(), lora.grad.end(), 0.0f);
    m.forward(p, tokens.data(), targets.data(), B, T);
    m.backward(p);
    REQUIRE(max_abs(lora.grad) > 0);
    lm::test::check_param_grads(lora, loss, rng, 2);
  }
}

TEST_CASE("classification head and trunk gradients match finite differences, last-token and mean pooling, with dropout") {
  // llama and gpt2 (its head after the final norm's bias, its own layout's views).
  for (bool gpt2 : {false, true})
  for (int pooling : {kPoolLast, kPoolMean})
  for (float dropout : {0.0f, 0.25f}) {
  CAPTURE(gpt2);
  CAPTURE(pooling);
  CAPTURE(dropout);
  ModelConfig cfg = small_cfg();
  if (gpt2) cfg.n_head_kv = cfg.n_head, cfg = gpt2_config(cfg);
  cfg.n_cls = 4;
  cfg.cls_pooling = pooling;
  Params p(cfg);
  Rng rng(8);
  p.init(rng);
  for (auto& w : p.w) w += 0.2f * rng.normal();
  const int B = 3, T = 6;
  Model m(cfg, B, T);
  m.set_dropout(dropout);
  m.set_training(true, 5);
  std::vector<int> tokens(size_t(B) * T), lengths{6, 2, 4}, labels{1, 3, -1};
  for (auto& t : tokens) t = int(rng.below(31));
  m.forward_classify(p, tokens.data(), lengths.data(), labels.data(), B, T);
  m.backward(p);
  const std::vector<size_t> views =
      gpt2 ? std::vector<size_t>{0, 1, gpt2_param(1, kGQkv), gpt2_param(0, kGFfnNormB), output_norm_param(cfg) + 1,
                                 cls_param(cfg), cls_param(cfg) + 1}
           : std::vector<size_t>{0, layer_param(1, kWq), layer_param(0, kFfnNorm), cls_param(cfg), cls_param(cfg) + 1};
  lm::test::check_param_grads(
      p, [&] { return double(m.forward_classify(p, tokens.data(), lengths.data(), labels.data(), B, T)); }, rng, 3,
      views);
  // Padding after a row's length changes nothing; probabilities sum to one.
  m.set_training(false);
  std::vector<float> before(size_t(B) * cfg.n_cls);
  m.forward_classify(p, tokens.data(), lengths.data(), nullptr, B, T);
  std::copy(m.class_probs(), m.class_probs() + before.size(), before.begin());
  tokens[1 * T + 4] = (tokens[1 * T + 4] + 1) % 31;
  m.forward_classify(p, tokens.data(), lengths.data(), nullptr, B, T);
  for (size_t i = 0; i < before.size(); ++i) CHECK(m.class_probs()[i] == before[i]);
  double sum = 0;
  for (int k = 0; k < cfg.n_cls; ++k) sum += before[size_t(k)];
  CHECK(sum == doctest::Approx(1.0));
  CHECK(p.views[cls_param(cfg)].name == "cls.output.weight");
  CHECK(p.views[cls_param(cfg) + 1].name == "cls.output.bias");
  }
}

TEST_CASE("a linear probe: with only the head's gradient allocated, backward gives it the full backward's values") {
  ModelConfig cfg = small_cfg();
  cfg.n_cls = 3;
  cfg.cls_pooling = kPoolMean;
  Params full(cfg), probe(cfg);
  Rng rng(21);
  full.init(rng);
  std::copy(full.w.begin(), full.w.end(), probe.w.begin());
  std::vector<uint8_t> head(full.views.size(), 0);
  head[cls_param(cfg)] = head[cls_param(cfg) + 1] = 1;
  probe.alloc_grad(head);
  const size_t head_start = full.views[cls_param(cfg)].offset, n_head = full.grad.size() - head_start;
  // Every frozen view is without a gradient: only the head's values are held.
  REQUIRE(probe.grad.size() == n_head);
  CHECK(probe.grad_of(0) == nullptr);
  CHECK(probe.grad_of(cls_param(cfg)) == probe.grad.data());
  const int B = 2, T = 5;
  std::vector<int> tokens(size_t(B) * T), lengths{5, 3}, labels{2, 0};
  for (auto& t : tokens) t = int(rng.below(31));
  Model a(cfg, B, T), b(cfg, B, T);
  const float la = a.forward_classify(full, tokens.data(), lengths.data(), labels.data(), B, T);
  a.backward(full);
  const float lb = b.forward_classify(probe, tokens.data(), lengths.data(), labels.data(), B, T);
  b.backward(probe);
  CHECK(la == lb);
  CHECK(max_abs(probe.grad) > 0);
  for (size_t i = 0; i < n_head; ++i) CHECK(probe.grad[i] == full.grad[head_start + i]);
  // A classifier-only model holds no (B, T, V) logits and computes the same.
  Model c(cfg, B, T, ModelBuffers{.lm_logits = false});
  CHECK(a.activation_bytes() - c.activation_bytes() == size_t(B) * T * cfg.n_vocab * sizeof(float));
  CHECK(c.forward_classify(full, tokens.data(), lengths.data(), labels.data(), B, T) == la);
  // Nor does a probe need the layers' activations: one shared set of buffers computes the same.
  Params shared(cfg);
  std::copy(full.w.begin(), full.w.end(), shared.w.begin());
  shared.alloc_grad(head);
  Model d(cfg, B, T, ModelBuffers{.lm_logits = false, .trunk_backward = false});
  CHECK(d.activation_bytes() < c.activation_bytes());
  CHECK(d.forward_classify(shared, tokens.data(), lengths.data(), labels.data(), B, T) == la);
  d.backward(shared);
  for (size_t i = 0; i < n_head; ++i) CHECK(shared.grad[i] == full.grad[head_start + i]);
}

TEST_CASE("a merged adapter computes what the base with the adapter computes; the file round-trips") {
  ModelConfig cfg = small_cfg();
  Params p(cfg, false);
  Rng rng(4);
  p.init(rng);
  LoraOptions o;
  o.rank = 2, o.alpha = 5;
  o.targets = parse_lora_targets("q,v,down");
  Lora lora(cfg, o);
  lora.init(rng);
  for (auto& w : lora.w) w += 0.1f * rng.normal();
  const int B = 1, T = 5;
  std::vector<int> tokens{1, 5, 9, 3, 7};
  Model m(cfg, B, T);
  m.set_lora(&lora);
  m.forward(p, tokens.data(), nullptr, B, T);
  std::vector<float> with(m.logits(), m.logits() + size_t(T) * cfg.n_vocab);

  format::GgufWriter w;
  add_adapter(w, lora, "test");
  const std::string path = "lora_roundtrip_test.gguf";
  w.save(path);
  format::GgufFile g = format::GgufFile::open(path);
  CHECK(is_adapter(g));
  CHECK(g.get_string("adapter.type") == "lora");
  const auto* a = g.find_tensor("blk.0.attn_q.weight.lora_a");
  const auto* b = g.find_tensor("blk.0.attn_q.weight.lora_b");
  REQUIRE(a);
  REQUIRE(b);
  CHECK((a->ne[0] == cfg.n_embd && a->ne[1] == 2 && b->ne[0] == 2 && b->ne[1] == cfg.n_embd));
  Lora back = load_adapter(g, cfg);
  CHECK(back.opt.targets == o.targets);
  CHECK(back.scale() == doctest::Approx(2.5f));
  CHECK(std::vector<float>(back.w.begin(), back.w.end()) == std::vector<float>(lora.w.begin(), lora.w.end()));
  ModelConfig other = cfg;
  other.n_ff = 32;
  CHECK_THROWS_WITH_AS(load_adapter(g, other), doctest::Contains("ffn_down.weight.lora_a' has shape"), FormatError);
  std::remove(path.c_str());

  merge_lora(p, back);
  Model plain(cfg, B, T);
  plain.forward(p, tokens.data(), nullptr, B, T);
  for (size_t i = 0; i < with.size(); ++i) CHECK(plain.logits()[i] == doctest::Approx(with[i]).epsilon(1e-4));
  CHECK_THROWS_AS(parse_lora_targets("q,x"), UsageError);
  CHECK(parse_lora_targets("mlp,q") == std::vector<LayerParam>{kWq, kWg, kWu, kWd});
}

TEST_CASE("phi3 LoRA: one pair per fused tensor, gradients match finite differences, merged equals applied") {
  ModelConfig cfg = small_cfg();
  cfg.arch.name = "phi3", cfg.arch.neox = true;
  Params p(cfg, false);
  Rng rng(6);
  p.init(rng);
  for (auto& w : p.w) w += 0.2f * rng.normal();
  LoraOptions o;
  o.rank = 2, o.alpha = 5;
  o.targets = parse_lora_targets("k,o,up");  // k brings q and v (attn_qkv), up brings gate (ffn_up)
  Lora lora(cfg, o);
  CHECK(lora.opt.targets == std::vector<LayerParam>{kWq, kWk, kWv, kWo, kWg, kWu});
  REQUIRE(lora.views.size() == 2 * 3 * 2);  // qkv, o, gate_up pairs in 2 layers
  CHECK(lora.views[0].name == "blk.0.attn_qkv.weight.lora_a");
  CHECK(lora.views[1].name == "blk.0.attn_qkv.weight.lora_b");
  CHECK(lora.views[1].rows == 16 + 2 * 8);
  CHECK(lora.views[5].name == "blk.0.ffn_up.weight.lora_b");
  CHECK(lora.views[5].rows == 2 * 24);
  CHECK((lora.pair(1, kWk) == lora.pair(1, kWq) && lora.row0(1, kWk) == 16 && lora.row0(1, kWv) == 24));
  CHECK((lora.pair(0, kWu) == lora.pair(0, kWg) && lora.row0(0, kWu) == 24));
  check_fused_lora(p, lora, rng, "lora_phi3_test.gguf", [](const format::GgufFile& g) {
    CHECK(g.find_tensor("blk.0.attn_q.weight.lora_a") == nullptr);
    const auto* b = g.find_tensor("blk.1.attn_qkv.weight.lora_b");
    REQUIRE(b);
    CHECK((b->ne[0] == 2 && b->ne[1] == 32));
  });
}

TEST_CASE("gpt2 LoRA: q, k, v share attn_qkv's pair, no gate; gradients match finite differences; merged equals applied") {
  ModelConfig base = small_cfg();
  base.n_head_kv = base.n_head;
  const ModelConfig cfg = gpt2_config(base);
  Params p(cfg, false);
  Rng rng(8);
  p.init(rng);
  for (auto& w : p.w) w += 0.2f * rng.normal();
  LoraOptions o;
  o.rank = 2, o.alpha = 5, o.dropout = 0.2f;
  o.targets = parse_lora_targets("v,o,mlp");  // v brings q and k (attn_qkv); mlp is up and down
  Lora lora(cfg, o);
  CHECK(lora.opt.targets == std::vector<LayerParam>{kWq, kWk, kWv, kWo, kWu, kWd});
  REQUIRE(lora.views.size() == 2 * 4 * 2);  // qkv, o, up, down pairs in 2 layers
  CHECK(lora.views[1].name == "blk.0.attn_qkv.weight.lora_b");
  CHECK(lora.views[1].rows == 3 * 16);
  CHECK(lora.views[7].name == "blk.0.ffn_down.weight.lora_b");
  CHECK((lora.pair(1, kWk) == lora.pair(1, kWq) && lora.row0(1, kWk) == 16 && lora.row0(1, kWv) == 32));
  LoraOptions gate = o;
  gate.targets = parse_lora_targets("gate");
  CHECK_THROWS_AS(Lora(cfg, gate), UsageError);
  check_fused_lora(p, lora, rng, "lora_gpt2_test.gguf", [](const format::GgufFile& g) {
    const auto* b = g.find_tensor("blk.1.attn_qkv.weight.lora_b");
    REQUIRE(b);
    CHECK((b->ne[0] == 2 && b->ne[1] == 48));
  });
}

namespace {
ModelConfig encoder_cls_cfg(int pooling) {
  ModelConfig c;
  c.n_vocab = 23, c.n_ctx = 8, c.n_layer = 2, c.n_embd = 8, c.n_head = 2, c.n_ff = 12;
  c = encoder_config(c);
  c.n_cls = 3;
  c.cls_pooling = pooling;
  return c;
}
}  // namespace

TEST_CASE("encoder LoRA: targets map to bert's projections, gradients match finite differences, the base gets none") {
  for (int pooling : {kPoolRank, kPoolMean})
  for (float dropout : {0.0f, 0.3f}) {
    CAPTURE(pooling);
    CAPTURE(dropout);
    const ModelConfig cfg = encoder_cls_cfg(pooling);
    Params p(cfg, /*with_grad=*/false);
    Rng rng(6);
    for (auto& w : p.w) w = 0.3f * rng.normal();
    // Only the head trains beside the adapters, as lm-finetune --lora --task classify has it.
    std::vector<uint8_t> head(p.views.size(), 0);
    head[cls_param(cfg)] = head[cls_param(cfg) + 1] = 1;
    p.alloc_grad(head);
    LoraOptions o;
    o.rank = 2, o.alpha = 4, o.dropout = dropout;
    o.targets = parse_lora_targets("all");  // bert has no gate: q, k, v, o, up, down
    Lora lora(cfg, o);
    CHECK(lora.opt.targets == std::vector<LayerParam>{kWq, kWk, kWv, kWo, kWu, kWd});
    CHECK(lora.views[0].name == "blk.0.attn_q.weight.lora_a");
    CHECK(lora.views[11].name == "blk.0.ffn_down.weight.lora_b");
    lora.init(rng);
    for (auto& w : lora.w) w += 0.3f * rng.normal();
    const int B = 3, T = 6;
    std::vector<int> tokens(size_t(B) * T), lengths{6, 3, 5}, labels{2, 0, 1};
    for (auto& t : tokens) t = int(rng.below(23));
    EncoderModel m(cfg, B, T);
    m.set_lora(&lora);
    m.set_dropout(dropout);
    m.set_training(true, 13);
    auto loss = [&] { return double(m.forward_classify(p, tokens.data(), lengths.data(), labels.data(), B, T)); };
    std::fill(lora.grad.begin(), lora.grad.end(), 0.0f);
    std::fill(p.grad.begin(), p.grad.end(), 0.0f);
    loss();
    m.backward(p);
    REQUIRE(max_abs(lora.grad) > 0);
    REQUIRE(p.grad_of(0) == nullptr);  // the frozen base holds no gradient
    lm::test::check_param_grads(lora, loss, rng, 3);
    // The head's gradient (p.grad holds only the head's: grad_of).
    double gmax = 0;
    for (float g : p.grad) gmax = std::max(gmax, double(std::fabs(g)));
    for (size_t v : {cls_param(cfg), cls_param(cfg) + 1}) {
      const ParamView& view = p.views[v];
      for (int k = 0; k < 3; ++k) {
        const size_t j = size_t(rng.below(uint64_t(view.rows) * view.cols));
        float& x = p.w[view.offset + j];
        const float keep = x, step = 1e-2f;
        x = keep + step;
        const double up = loss();
        x = keep - step;
        const double down = loss();
        x = keep;
        CHECK(std::fabs((up - down) / (2 * step) - p.grad_of(v)[j]) <= 2e-2 * gmax + 1e-4);
      }
    }
  }
}

TEST_CASE("encoder LoRA: merged equals applied; the adapter file says bert and round-trips; a gate alone is refused") {
  const ModelConfig cfg = encoder_cls_cfg(kPoolMean);
  Params p(cfg, false);
  Rng rng(17);
  for (auto& w : p.w) w = 0.3f * rng.normal();
  LoraOptions o;
  o.rank = 2, o.alpha = 3;
  o.targets = parse_lora_targets("v,o,mlp");
  Lora lora(cfg, o);
  lora.init(rng);
  for (auto& w : lora.w) w += 0.2f * rng.normal();
  const int B = 2, T = 5;
  std::vector<int> tokens{1, 4, 9, 3, 7, 2, 8, 8, 5, 0}, lengths{5, 4};
  EncoderModel m(cfg, B, T);
  m.set_lora(&lora);
  m.forward_classify(p, tokens.data(), lengths.data(), nullptr, B, T);
  const std::vector<float> with(m.class_probs(), m.class_probs() + size_t(B) * cfg.n_cls);
  const std::vector<float> hidden(m.hidden(), m.hidden() + size_t(B) * T * cfg.n_embd);

  format::GgufWriter w;
  add_adapter(w, lora, "test");
  const std::string path = "lora_encoder_roundtrip_test.gguf";
  w.save(path);
  format::GgufFile g = format::GgufFile::open(path);
  CHECK(g.get_string("general.architecture") == "bert");
  Lora back = load_adapter(g, cfg);
  CHECK(back.opt.targets == std::vector<LayerParam>{kWv, kWo, kWu, kWd});
  CHECK(std::vector<float>(back.w.begin(), back.w.end()) == std::vector<float>(lora.w.begin(), lora.w.end()));
  // A decoder of the same sizes is another architecture: refused by name.
  ModelConfig dec = cfg;
  dec.arch = ArchOptions{};
  dec.n_cls = 0;
  CHECK_THROWS_WITH_AS(load_adapter(g, dec), doctest::Contains("adapter architecture 'bert', expected the model's 'llama'"),
                       FormatError);
  std::remove(path.c_str());

  merge_lora(p, back);
  EncoderModel plain(cfg, B, T);
  plain.forward_classify(p, tokens.data(), lengths.data(), nullptr, B, T);
  for (size_t i = 0; i < hidden.size(); ++i) CHECK(plain.hidden()[i] == doctest::Approx(hidden[i]).epsilon(1e-4));
  for (size_t i = 0; i < with.size(); ++i) CHECK(plain.class_probs()[i] == doctest::Approx(with[i]).epsilon(1e-4));

  o.targets = parse_lora_targets("gate");
  CHECK_THROWS_WITH_AS(Lora(cfg, o), doctest::Contains("'gate': a bert model has no such projection"), UsageError);
}
