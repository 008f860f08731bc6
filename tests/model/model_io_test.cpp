// Tests for lib/model/model_io: llama-arch GGUF round trips, F16/BF16 loading, and the
// architecture checks of docs/reliability.md A27 (missing keys and tensors) and A28 (inconsistent
// hyper-parameters), each naming the key or tensor.
#include <doctest/doctest.h>

#include <cstring>
#include <functional>
#include <tuple>
#include <string>
#include <vector>

#include "base/error.hpp"
#include "base/file.hpp"
#include "model/arch.hpp"
#include "model/model_io.hpp"
#include "model/session.hpp"
#include "model/tokenizer_loader.hpp"
#include "quant/quant.hpp"
#include "test_util.hpp"

using namespace lm;
using namespace lm::model;

namespace {

Tokenizer tokenizer() {
  std::vector<std::string> lines;
  for (int i = 0; i < 500; ++i) lines.push_back("the jury said " + std::to_string(i % 17) + " words of the county");
  return test::train_tokenizer(lines, 300);
}

ModelConfig small_config(bool tied) {
  ModelConfig c;
  c.n_vocab = 300, c.n_ctx = 16, c.n_layer = 2, c.n_embd = 32, c.n_head = 4, c.n_head_kv = 2, c.n_ff = 64;
  c.tied = tied;
  return c;
}

// Writes a model file, letting `edit` change the writer before writing.
std::string write_model(const std::string& path, const Params& p, const Tokenizer& tok,
                        const std::function<void(format::GgufWriter&)>& edit = {}) {
  format::GgufWriter w;
  add_model(w, p, tok, "test");
  if (edit) edit(w);
  w.save(path);
  return path;
}

}  // namespace

TEST_CASE("a model written as GGUF loads back bit for bit, tied and untied") {
  test::TempDir dir;
  Tokenizer tok = tokenizer();
  for (bool tied : {true, false}) {
    Params p(small_config(tied));
    Rng rng(3);
    p.init(rng);
    std::string path = write_model(dir.path() + "/m.gguf", p, tok);
    format::GgufFile g = format::GgufFile::open(path);
    CHECK(g.get_string("general.architecture") == "llama");
    CHECK((g.find_tensor("output.weight") == nullptr) == tied);
    CHECK(g.find_tensor("blk.1.attn_k.weight")->ne[0] == 32);
    CHECK(g.find_tensor("blk.1.attn_k.weight")->ne[1] == 16);
    Params q = load_params(g);
    CHECK(q.cfg.tied == tied);
    CHECK(q.cfg.n_head_kv == 2);
    CHECK(q.w == p.w);
    CHECK(load_tokenizer(g).fingerprint() == tok.fingerprint());
  }
}

TEST_CASE("a head size other than width / heads is written as llama.cpp's key_length and loads back for training") {
  test::TempDir dir;
  Tokenizer tok = tokenizer();
  for (const char* arch : {"llama", "qwen2", "phi3"}) {
    CAPTURE(arch);
    ModelConfig c = small_config(false);
    c.arch.name = arch, c.arch.neox = c.arch.name != "llama";
    c.n_head_dim = 12;  // width 32, 4 heads: q is 48 wide
    Params p(c);
    Rng rng(6);
    p.init(rng);
    format::GgufFile g = format::GgufFile::open(write_model(dir.path() + "/" + arch + ".gguf", p, tok));
    CHECK(g.get_u32(std::string(arch) + ".attention.key_length") == 12);
    CHECK(g.get_u32(std::string(arch) + ".attention.value_length") == 12);
    CHECK(g.get_u32(std::string(arch) + ".rope.dimension_count") == 12);
    if (c.arch.name != "phi3") {
      CHECK(g.find_tensor("blk.0.attn_q.weight")->ne[1] == 48);
      CHECK(g.find_tensor("blk.0.attn_output.weight")->ne[0] == 48);
    } else {
      CHECK(g.find_tensor("blk.0.attn_qkv.weight")->ne[1] == 48 + 2 * 24);
    }
    Params q = load_params(g);
    CHECK(q.cfg.n_head_dim == 12);
    CHECK(q.cfg.q_dim() == 48);
    CHECK(q.w == p.w);
  }
}

TEST_CASE("a gemma2 model is written with llama.cpp's gemma2 keys and loads back with its layer options") {
  test::TempDir dir;
  Tokenizer tok = tokenizer();
  ModelConfig c = small_config(true);
  c.arch.name = "gemma2", c.arch.neox = true, c.arch.ffn = FfnKind::GeGLU, c.arch.embd_scale = true;
  c.arch.post_norms = true, c.arch.attn_softcap = 50.0f, c.arch.final_softcap = 30.0f;
  c.arch.sliding_window = 8, c.arch.swa_pattern = 2, c.n_head_dim = 16;
  Params p(c);
  Rng rng(8);
  p.init(rng);
  for (float& x : p.w) x += 0.1f * rng.normal();
  format::GgufFile g = format::GgufFile::open(write_model(dir.path() + "/g.gguf", p, tok));
  CHECK(g.get_string("general.architecture") == "gemma2");
  CHECK(g.get_f32("gemma2.attn_logit_softcapping") == 50.0f);
  CHECK(g.get_f32("gemma2.final_logit_softcapping") == 30.0f);
  CHECK(g.get_u32("gemma2.attention.sliding_window") == 8);
  CHECK(g.find_tensor("blk.1.post_ffw_norm.weight") != nullptr);
  Params q = load_params(g);
  CHECK(q.cfg.is_gemma2());
  CHECK(q.cfg.arch.ffn == FfnKind::GeGLU);
  CHECK((q.cfg.arch.embd_scale && q.cfg.arch.post_norms && q.cfg.arch.neox));
  CHECK(q.cfg.arch.attn_softcap == 50.0f);
  CHECK(q.cfg.arch.final_softcap == 30.0f);
  CHECK(q.cfg.arch.sliding_window == 8);
  CHECK(q.cfg.n_head_dim == 16);
  CHECK(q.w == p.w);
  // A gemma2 file with an output.weight of its own (none of llama.cpp's converters write one) is
  // refused for training with a line, not an assertion.
  c.tied = false;
  Params untied(c);
  untied.init(rng);
  format::GgufFile gu = format::GgufFile::open(write_model(dir.path() + "/gu.gguf", untied, tok));
  CHECK_THROWS_WITH_AS(load_params(gu), doctest::Contains("gemma2 model with an output.weight"), FormatError);
}

TEST_CASE("a qwen2 model loads for training from llama.cpp's tensor order, and is written back as qwen2") {
  test::TempDir dir;
  Tokenizer tok = tokenizer();
  ModelConfig c = small_config(true);
  c.arch.name = "qwen2", c.arch.neox = true;
  Params p(c);
  Rng rng(4);
  p.init(rng);
  for (float& x : p.w) x += 0.1f * rng.normal();  // the biases differ from each other too
  // llama.cpp's converter interleaves each layer's biases with its weights; the training layout
  // keeps them after the layers. The loader matches the tensors by name.
  format::GgufFile ours = format::GgufFile::open(write_model(dir.path() + "/ours.gguf", p, tok));
  CHECK(ours.get_string("general.architecture") == "qwen2");
  CHECK(ours.get_u32("qwen2.block_count") == 2);
  format::GgufWriter conv;
  for (const auto& [k, v] : ours.metadata()) conv.set_value(k, v);
  for (const TensorSpec& t : find_arch("qwen2")->tensors(c)) {
    const size_t i = p.find(t.name);
    if (i == p.views.size()) continue;  // output.weight and output.bias: tied, none
    const ParamView& v = p.views[i];
    std::vector<int64_t> ne = v.rows == 1 ? std::vector<int64_t>{v.cols} : std::vector<int64_t>{v.cols, v.rows};
    conv.add_tensor(v.name, format::GgmlType::F32, ne, p.get(i));
  }
  conv.save(dir.path() + "/conv.gguf");
  for (const char* name : {"/ours.gguf", "/conv.gguf"}) {
    CAPTURE(name);
    Params q = load_params(format::GgufFile::open(dir.path() + name));
    CHECK(q.cfg.is_qwen2());
    CHECK(q.cfg.arch.neox);
    CHECK(q.w == p.w);
  }
}

TEST_CASE("a phi3 model loads for training with its fused tensors split, and is written back fused") {
  test::TempDir dir;
  Tokenizer tok = tokenizer();
  ModelConfig c = small_config(false);
  c.arch.name = "phi3", c.arch.neox = true;
  Params p(c);
  Rng rng(5);
  p.init(rng);
  format::GgufFile g = format::GgufFile::open(write_model(dir.path() + "/phi3.gguf", p, tok));
  CHECK(g.get_string("general.architecture") == "phi3");
  CHECK(g.get_u32("phi3.block_count") == 2);
  CHECK(g.find_tensor("blk.0.attn_q.weight") == nullptr);
  CHECK(g.find_tensor("blk.0.ffn_gate.weight") == nullptr);
  const auto* qkv = g.find_tensor("blk.1.attn_qkv.weight");
  const auto* up = g.find_tensor("blk.1.ffn_up.weight");
  REQUIRE(qkv);
  REQUIRE(up);
  CHECK((qkv->ne[0] == 32 && qkv->ne[1] == 32 + 2 * 16));
  CHECK((up->ne[0] == 32 && up->ne[1] == 2 * 64));
  // The fused rows are q's, k's, v's (gate's, up's) in that order.
  CHECK(std::memcmp(qkv->data + 48 * 32 * sizeof(float), p.get(layer_param(1, kWv)), 16 * 32 * sizeof(float)) == 0);
  CHECK(std::memcmp(up->data + 64 * 32 * sizeof(float), p.get(layer_param(1, kWu)), 64 * 32 * sizeof(float)) == 0);
  Params q = load_params(g);
  CHECK(q.cfg.is_phi3());
  CHECK(q.cfg.arch.neox);
  CHECK(q.w == p.w);
  // The file's fused weights (inference) and the training layout's separate ones give one model.
  const int T = 9;
  std::vector<int> tokens{3, 7, 1, 250, 9, 12, 40, 5, 2};
  const Weights fw = load_weights(g);
  Session fused(fw, T, T);
  Session split(q, T, T);
  const float* a = fused.eval(tokens.data(), T);
  std::vector<float> want(a, a + c.n_vocab);
  const float* b = split.eval(tokens.data(), T);
  for (int i = 0; i < c.n_vocab; ++i) CHECK(b[i] == doctest::Approx(want[size_t(i)]).epsilon(1e-5));
}

TEST_CASE("qwen2 and phi3 classifiers are written with their head and load back bit for bit") {
  test::TempDir dir;
  Tokenizer tok = tokenizer();
  for (const char* arch : {"qwen2", "phi3"}) {
    CAPTURE(arch);
    ModelConfig c = small_config(std::string(arch) == "qwen2");
    c.arch.name = arch, c.arch.neox = true;
    c.n_cls = 3, c.cls_pooling = kPoolMean;
    Params p(c);
    Rng rng(6);
    p.init(rng);
    for (float& x : p.w) x += 0.1f * rng.normal();
    format::GgufWriter w;
    add_model(w, p, tok, "test", {"a", "b", "c"});
    const std::string path = dir.path() + "/" + arch + "-cls.gguf";
    w.save(path);
    format::GgufFile g = format::GgufFile::open(path);
    CHECK(g.get_string("general.architecture") == arch);
    const auto* head = g.find_tensor("cls.output.weight");
    REQUIRE(head);
    CHECK((head->ne[0] == 32 && head->ne[1] == 3));
    CHECK(std::memcmp(head->data, p.get(cls_param(c)), 3 * 32 * sizeof(float)) == 0);
    CHECK(g.get_u32(std::string(arch) + ".pooling_type") == uint32_t(kPoolMean));
    Params q = load_params(g);
    CHECK(q.cfg.n_cls == 3);
    CHECK(q.cfg.cls_pooling == kPoolMean);
    CHECK(q.w == p.w);
    // The inference loader takes the file too (the head is a known tensor, not used to decode).
    const Weights iw = load_weights(g);
    CHECK(iw.get(-1, Role::ClsW) != nullptr);
  }
}

TEST_CASE("F16 and BF16 weights load as floats") {
  test::TempDir dir;
  Tokenizer tok = tokenizer();
  Params p(small_config(true));
  Rng rng(4);
  p.init(rng);
  const ParamView& v = p.views[p.find("blk.0.attn_norm.weight")];
  std::vector<uint16_t> f16(size_t(v.cols), 0x3c00), bf16(size_t(v.cols), 0x3fc0);  // 1.0 and 1.5
  f16[1] = 0xc000;                                                                  // -2.0
  for (auto [type, data, want] : {std::tuple{format::GgmlType::F16, &f16, -2.0f}, std::tuple{format::GgmlType::BF16, &bf16, 1.5f}}) {
    // Replace the tensor: rebuild the file with every tensor but this one from p.
    format::GgufWriter w;
    add_model(w, p, tok, "t");
    format::GgufWriter w2;
    std::string path = dir.path() + "/h.gguf";
    w.save(path);
    format::GgufFile g = format::GgufFile::open(path);
    for (const auto& [k, val] : g.metadata()) w2.set_value(k, val);
    for (const auto& t : g.tensors()) {
      if (t.name == v.name)
        w2.add_tensor(t.name, type, {t.ne[0]}, data->data());
      else
        w2.add_tensor(t.name, t.type, std::vector<int64_t>(t.ne, t.ne + t.n_dims), t.data);
    }
    std::string path2 = dir.path() + "/h2.gguf";
    w2.save(path2);
    Params q = load_params(format::GgufFile::open(path2));
    CHECK(q.w[v.offset + 1] == want);
  }
}

TEST_CASE("A27 missing keys and tensors are named") {
  test::TempDir dir;
  Tokenizer tok = tokenizer();
  Params p(small_config(true));
  std::string path = write_model(dir.path() + "/k.gguf", p, tok);
  // Rewrite it without llama.block_count and without one tensor.
  format::GgufFile g = format::GgufFile::open(path);
  format::GgufWriter w;
  for (const auto& [k, val] : g.metadata())
    if (k != "llama.block_count") w.set_value(k, val);
  for (const auto& t : g.tensors())
    if (t.name != "blk.1.ffn_up.weight") w.add_tensor(t.name, t.type, std::vector<int64_t>(t.ne, t.ne + t.n_dims), t.data);
  std::string path2 = dir.path() + "/k2.gguf";
  w.save(path2);
  CHECK_THROWS_WITH_AS(read_config(format::GgufFile::open(path2)), doctest::Contains("missing key 'llama.block_count'"),
                       FormatError);
  w.set_u32("llama.block_count", 2);
  std::string path3 = dir.path() + "/k3.gguf";
  w.save(path3);
  CHECK_THROWS_WITH_AS(load_params(format::GgufFile::open(path3)), doctest::Contains("missing tensor 'blk.1.ffn_up.weight'"),
                       FormatError);
}

TEST_CASE("A28 inconsistent hyper-parameters are named") {
  test::TempDir dir;
  Tokenizer tok = tokenizer();
  Params p(small_config(true));
  auto bad = [&](const std::function<void(format::GgufWriter&)>& edit, const char* message) {
    std::string path = write_model(dir.path() + "/a28.gguf", p, tok, edit);
    CHECK_THROWS_WITH_AS(load_params(format::GgufFile::open(path)), doctest::Contains(message), FormatError);
  };
  bad([](auto& w) { w.set_u32("llama.attention.head_count", 0); }, "'llama.attention.head_count' is 0");
  bad([](auto& w) { w.set_u32("llama.attention.head_count", 5); }, "not a multiple of head count 5");
  bad([](auto& w) { w.set_u32("llama.attention.head_count_kv", 3); }, "not a multiple of kv head count 3");
  bad([](auto& w) { w.set_u32("llama.context_length", 1u << 31); }, "'llama.context_length' is 2147483648");
  bad([](auto& w) { w.set_u32("llama.vocab_size", 301); }, "'llama.vocab_size' is 301, but token_embd.weight has 300");
  bad([](auto& w) { w.set_u32("llama.embedding_length", 64); }, "token_embd.weight' has 32 columns, expected 64");
  bad([](auto& w) { w.set_u32("llama.rope.dimension_count", 7); },
      "'llama.rope.dimension_count' is 7, expected an even number from 2 to the head size 8");
  bad([](auto& w) { w.set_u32("llama.rope.dimension_count", 4); }, "partial RoPE, which training does not support");
  bad([](auto& w) { w.set_string("llama.rope.scaling.type", "dynamic"); },
      "'dynamic', expected none, linear, yarn or longrope");
  bad([](auto& w) { w.set_string("llama.rope.scaling.type", "yarn"); }, "llama.rope.scaling.factor");
  bad([](auto& w) {
    w.set_string("llama.rope.scaling.type", "yarn");
    w.set_f32("llama.rope.scaling.factor", 4.0f);
    w.set_u32("llama.rope.scaling.original_context_length", 0);
  }, "'llama.rope.scaling.original_context_length' is 0, expected 1 to 1048576");
  bad([](auto& w) {
    w.set_string("llama.rope.scaling.type", "yarn");
    w.set_f32("llama.rope.scaling.factor", 4.0f);
  }, "RoPE scaling or partial RoPE, which training does not support");
  bad([](auto& w) {
    w.set_u32("llama.embedding_length", 64);
    w.set_u32("llama.rope.dimension_count", 16);
  }, "token_embd.weight' has 32 columns, expected 64");
  bad([](auto& w) { w.set_f32("llama.attention.layer_norm_rms_epsilon", -1.0f); }, "layer_norm_rms_epsilon' is");
  bad([](auto& w) { w.set_string("general.architecture", "falcon"); },
      "architecture 'falcon' is not supported; supported: bert, gemma2, gpt2, llama, lstm, phi3, qwen2");
  bad([](auto& w) { w.set_string("general.architecture", "gpt2"); }, "key 'gpt2.context_length'");
  bad([](auto& w) { w.set_u32("llama.feed_forward_length", 65); }, "tensor 'blk.0.ffn_gate.weight' has shape {32, 64}, expected {32, 65}");
}

TEST_CASE("Q8_0 and Q4_0 weights load as their dequantized values") {
  test::TempDir dir;
  Tokenizer tok = tokenizer();
  Params p(small_config(false));
  Rng rng(8);
  p.init(rng);
  for (auto type : {format::GgmlType::Q8_0, format::GgmlType::Q4_0}) {
    CAPTURE(int(type));
    format::GgufWriter w;
    add_model(w, p, tok, "t");
    std::string path = dir.path() + "/f32.gguf";
    w.save(path);
    format::GgufFile g = format::GgufFile::open(path);
    format::GgufWriter w2;
    for (const auto& [k, val] : g.metadata()) w2.set_value(k, val);
    std::vector<std::vector<uint8_t>> blobs;
    LargeVector<float> want = p.w;
    for (const auto& t : g.tensors()) {
      if (t.n_dims != 2) {
        w2.add_tensor(t.name, t.type, {t.ne[0]}, t.data);
        continue;
      }
      const size_t n = size_t(t.n_elements());
      const float* src = reinterpret_cast<const float*>(t.data);
      std::vector<uint8_t>& q = blobs.emplace_back(n / 32 * (type == format::GgmlType::Q8_0 ? 34 : 18));
      float* dst = want.data() + p.views[p.find(t.name)].offset;
      if (type == format::GgmlType::Q8_0) {
        quant::quantize_q8_0(src, q.data(), n);
        quant::dequantize_q8_0(q.data(), dst, n);
      } else {
        quant::quantize_q4_0(src, q.data(), n);
        quant::dequantize_q4_0(q.data(), dst, n);
      }
      w2.add_tensor(t.name, type, {t.ne[0], t.ne[1]}, q.data());
    }
    std::string path2 = dir.path() + "/q.gguf";
    w2.save(path2);
    Params q = load_params(format::GgufFile::open(path2), false);
    CHECK(q.w == want);
    CHECK(q.grad.empty());
  }
}
