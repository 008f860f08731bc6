// Test helper (not installed) for the tool tests.
//   lm_test_write_gguf TOK.model OUT.gguf [--no-embed]
//     writes a vocabulary-only GGUF file carrying a tokenizer, to pass GGUF files to -m;
//   lm_test_write_gguf --wordpiece VOCAB.txt OUT.gguf
//     writes a WordPiece vocabulary (BERT's vocab.txt: one piece per line, "##" for a word's
//     continuation, [PAD]/[UNK]/[CLS]/[SEP]/[MASK] and other [..] pieces special) as llama.cpp's
//     converters store it: "bert" model, word-initial pieces prefixed with U+2581;
//   lm_test_write_gguf --random ARCH VOCAB.gguf OUT.gguf [--shape C,L,H,KV,FF[,V]]
//     writes a model of architecture ARCH (llama, llama3, llama-hd, qwen2, qwen2-yarn, phi3, phi3-longrope, gpt2, gemma2, bert,
//     bert-cls; bert-cls is bert with a 3-label classifier head and rank pooling; llama3 is llama with Llama 3.1's
//     rope_freqs.weight, phi3-longrope phi3 with Phi-3.5's rope_factors_long/short and an original context of 64,
//     qwen2-yarn qwen2 with YaRN scaling by 4 from an original context of 64, llama-hd llama with a
//     head size 8 more than width / heads) with random F32 weights, llama.cpp's tensor names
//     and keys, and the tokenizer of VOCAB.gguf: the files the architectures are checked on
//     against llama.cpp (tests/data/arch/). The same arguments always give the same file.
//     --shape sets the width, layers, heads, key/value heads and feed-forward width (default
//     64,2,4,2,128; gpt2 and bert 4 key/value heads; the context becomes 2048), and V pads the vocabulary with control
//     tokens <|extra_N|> to V entries: the shapes of real models for bench/ (a file of
//     Qwen2.5-0.5B's layers: qwen2 --shape 896,24,14,2,4864,151936);
//   lm_test_write_gguf --convert IN.gguf OUT.gguf TYPE [--no-embed]
//     rewrites a model with its matrices in another type (f32, f16, bf16 or any block type lm
//     writes by its ggml name: q8_0, q4_0, q4_1, q5_0, q5_1, iq4_nl, q2_K, q3_K, q4_K, q5_K,
//     q6_K, iq4_xs; a matrix whose rows do not fill the blocks is an error; norms stay F32), and with
//     --no-embed without the SentencePiece model bytes (the tokenizer arrays only).
#include <cmath>
#include <cstdio>
#include <cstring>
#include <strings.h>
#include <exception>
#include <optional>
#include <string>
#include <vector>

#include "base/error.hpp"
#include "base/file.hpp"
#include "format/gguf.hpp"
#include "base/rng.hpp"
#include "model/arch.hpp"
#include "model/tokenizer_loader.hpp"
#include "quant/quant.hpp"

namespace {

// A block type lm writes, by its ggml name in any case (q8_0, q4_K or q4_k, iq4_xs, ...).
lm::format::GgmlType block_type(const std::string& name) {
  for (uint32_t raw = 2; raw < 64; ++raw) {
    const lm::format::GgmlTypeInfo* info = lm::format::ggml_type_info(raw);
    if (!info || info->block == 1 || !lm::quant::is_supported(lm::format::GgmlType(raw))) continue;
    if (strcasecmp(info->name, name.c_str()) == 0) return lm::format::GgmlType(raw);
  }
  throw lm::UsageError("unknown type '" + name + "'");
}

void convert(const char* in, const char* out, const std::string& type, bool embed) {
  using lm::format::GgmlType;
  lm::format::GgufFile g = lm::format::GgufFile::open(in);
  lm::format::GgufWriter w;
  for (const auto& [k, v] : g.metadata())
    if (embed || k != lm::format::kKeySpmModel) w.set_value(k, v);
  std::vector<std::vector<uint8_t>> blobs;
  for (const auto& t : g.tensors()) {
    std::vector<int64_t> ne(t.ne, t.ne + t.n_dims);
    if (t.n_dims != 2 || type == "f32" || t.type != GgmlType::F32) {
      w.add_tensor(t.name, t.type, ne, t.data);
      continue;
    }
    const size_t n = size_t(t.n_elements());
    std::vector<float> src(n);
    std::memcpy(src.data(), t.data, n * 4);
    std::vector<uint8_t>& b = blobs.emplace_back();
    GgmlType gt;
    if (type == "f16" || type == "bf16") {
      b.resize(2 * n);
      for (size_t i = 0; i < n; ++i) {
        const uint16_t h = type == "f16" ? lm::quant::fp32_to_fp16(src[i]) : lm::quant::fp32_to_bf16(src[i]);
        b[2 * i] = uint8_t(h), b[2 * i + 1] = uint8_t(h >> 8);
      }
      gt = type == "f16" ? GgmlType::F16 : GgmlType::BF16;
    } else {
      gt = block_type(type);
      if (t.ne[0] % int64_t(lm::format::ggml_type_info(gt).block) != 0)
        throw lm::UsageError(t.name + ": " + std::to_string(t.ne[0]) + " columns do not fill " + type + " blocks");
      b.resize(lm::quant::row_size(gt, n));
      lm::quant::quantize_row(gt, src.data(), b.data(), n);
    }
    w.add_tensor(t.name, gt, ne, b.data());
  }
  w.save(out);
}

}  // namespace

void wordpiece(const char* in, const char* out) {
  lm::LineReader r(in);
  std::vector<std::string> tokens;
  std::vector<int32_t> types;
  std::string line;
  while (r.next(line)) {
    if (line.size() > 2 && line.front() == '[' && line.back() == ']') {
      tokens.push_back(line);
      types.push_back(line == "[UNK]" ? 2 : 3);
    } else if (line.rfind("##", 0) == 0 && line.size() > 2) {
      tokens.push_back(line.substr(2));
      types.push_back(1);
    } else {
      tokens.push_back("\xe2\x96\x81" + line);
      types.push_back(1);
    }
  }
  lm::format::GgufWriter w;
  w.set_string(lm::format::kKeyTokenizerModel, "bert");
  w.set_array_string(lm::format::kKeyTokens, tokens);
  w.set_array_i32(lm::format::kKeyTokenType, types);
  w.save(out);
}

// Random weights for an architecture's tensors: norms near 1, biases and matrices small enough
// that activations stay in range through the layers, large enough that logits differ.
void random_model(const std::string& which, const char* vocab_path, const char* out, const std::string& shape) {
  using lm::model::Role;
  lm::format::GgufFile vocab = lm::format::GgufFile::open(vocab_path);
  const std::string arch = which == "llama3" || which == "llama-hd" ? "llama"
                           : which == "phi3-longrope" ? "phi3"
                           : which == "qwen2-yarn"    ? "qwen2"
                           : which == "bert-cls"      ? "bert"
                                                      : which;
  if (!lm::model::find_arch(arch)) throw lm::UsageError("unknown architecture '" + which + "'");
  lm::model::ModelConfig c;
  c.arch.name = arch;
  c.n_vocab = int(vocab.get_string_array(lm::format::kKeyTokens).size());
  c.n_ctx = 256, c.n_embd = 64, c.n_layer = 2, c.n_head = 4, c.n_head_kv = arch == "gpt2" || arch == "bert" ? 4 : 2;
  c.n_ff = 128;
  std::vector<std::string> tokens = vocab.get_string_array(lm::format::kKeyTokens);
  if (!shape.empty()) {
    long v[6] = {0, 0, 0, 0, 0, 0};
    const int n = std::sscanf(shape.c_str(), "%ld,%ld,%ld,%ld,%ld,%ld", &v[0], &v[1], &v[2], &v[3], &v[4], &v[5]);
    if (n < 5 || v[0] <= 0 || v[1] <= 0 || v[2] <= 0 || v[3] <= 0 || v[4] <= 0 || v[2] % v[3] != 0 ||
        v[0] % v[2] != 0 || v[5] < 0 || v[5] > (1 << 20))
      throw lm::UsageError("--shape: expected C,L,H,KV,FF[,V] with H a multiple of KV and C of H, not '" + shape + "'");
    c.n_embd = int(v[0]), c.n_layer = int(v[1]), c.n_head = int(v[2]), c.n_head_kv = int(v[3]), c.n_ff = int(v[4]);
    c.n_ctx = 2048;  // room for bench/'s 512-token prompts and 128 more
    if (n == 6 && size_t(v[5]) > tokens.size()) c.n_vocab = int(v[5]);
  }
  c.rope_base = which == "llama3" ? 500000.0f : 10000.0f;
  c.tied = arch == "qwen2" || arch == "gpt2" || arch == "gemma2";
  if (arch == "gemma2") c.n_head_dim = 32;  // a head size other than C / H, as Gemma 2 has
  if (which == "llama-hd") c.n_head_dim = c.n_embd / c.n_head + 8;  // q wider than the model
  if (which == "bert-cls") c.n_cls = 3, c.cls_pooling = lm::model::kPoolRank;  // a classifier: rank pooling
  lm::format::GgufWriter w;
  for (const auto& [k, v] : vocab.metadata())
    if (k.rfind("tokenizer.", 0) == 0) w.set_value(k, v);
  if (size_t(c.n_vocab) > tokens.size()) {  // padded with control tokens, as Qwen's unused ids
    std::vector<int32_t> types = vocab.get_i32_array(lm::format::kKeyTokenType);
    for (size_t i = tokens.size(); i < size_t(c.n_vocab); ++i) {
      tokens.push_back("<|extra_" + std::to_string(i) + "|>");
      types.push_back(3);
    }
    w.set_array_string(lm::format::kKeyTokens, tokens);
    w.set_array_i32(lm::format::kKeyTokenType, types);
    if (std::optional<std::vector<float>> scores = vocab.try_get_f32_array(lm::format::kKeyScores)) {
      scores->resize(tokens.size(), 0.0f);
      w.set_array_f32(lm::format::kKeyScores, *scores);
    }
  }
  w.set_string(lm::format::kKeyArchitecture, arch);
  // Not the architecture's name: llama.cpp changes Phi-3 vocabularies by model name.
  w.set_string(lm::format::kKeyName, "lm random weights");
  const std::string a = arch + ".";
  w.set_u32(a + "context_length", uint32_t(c.n_ctx));
  w.set_u32(a + "embedding_length", uint32_t(c.n_embd));
  w.set_u32(a + "block_count", uint32_t(c.n_layer));
  w.set_u32(a + "feed_forward_length", uint32_t(c.n_ff));
  w.set_u32(a + "attention.head_count", uint32_t(c.n_head));
  w.set_u32(a + "attention.head_count_kv", uint32_t(c.n_head_kv));
  if (arch == "gpt2" || arch == "bert") {
    w.set_f32(a + "attention.layer_norm_epsilon", arch == "bert" ? 1e-12f : 1e-5f);
    if (arch == "bert") {
      w.set_bool(a + "attention.causal", false);
      w.set_u32(a + "pooling_type", c.n_cls ? 4 : 1);  // rank (the first token through the head), or mean
      if (c.n_cls) w.set_array_string(a + "classifier.output_labels", {"negative", "neutral", "positive"});
      w.set_u32("tokenizer.ggml.token_type_count", 2);
    }
  } else {
    w.set_f32(a + "attention.layer_norm_rms_epsilon", 1e-6f);
    w.set_f32(a + "rope.freq_base", c.rope_base);
    w.set_u32(a + "rope.dimension_count", uint32_t(c.head_dim()));
  }
  if (which == "phi3-longrope") {
    w.set_f32(a + "rope.scaling.attn_factor", 1.19f);
    w.set_u32(a + "rope.scaling.original_context_length", 64);
  }
  if (which == "qwen2-yarn") {  // the keys llama.cpp's converter writes for Qwen2.5's YaRN config
    w.set_string(a + "rope.scaling.type", "yarn");
    w.set_f32(a + "rope.scaling.factor", 4.0f);
    w.set_u32(a + "rope.scaling.original_context_length", 64);
  }
  if (c.n_head_dim != 0) {
    w.set_u32(a + "attention.key_length", uint32_t(c.head_dim()));
    w.set_u32(a + "attention.value_length", uint32_t(c.head_dim()));
  }
  if (arch == "gemma2") {
    w.set_u32(a + "attention.sliding_window", 24);  // shorter than the test's windows of 128
    w.set_f32(a + "attn_logit_softcapping", 50.0f);
    w.set_f32(a + "final_logit_softcapping", 30.0f);
  }
  lm::Rng rng(0x5eed0000u + uint64_t(which.size()) * 977 + uint64_t(which[0]));
  std::vector<std::vector<float>> data;
  std::vector<lm::model::TensorSpec> specs = lm::model::find_arch(arch)->tensors(c);
  for (const lm::model::TensorSpec& t : specs) {
    if ((t.role == Role::Head && c.tied) || t.role == Role::HeadB) continue;
    if (t.role == Role::RopeFreqs && which != "llama3") continue;
    if ((t.role == Role::RopeLong || t.role == Role::RopeShort) && which != "phi3-longrope") continue;
    if ((t.role == Role::ClsW || t.role == Role::ClsB) && !c.n_cls) continue;
    std::vector<float>& v = data.emplace_back(size_t(t.rows) * size_t(t.cols));
    const bool norm = t.role == Role::AttnNorm || t.role == Role::FfnNorm || t.role == Role::OutNorm ||
                      t.role == Role::EmbdNorm || t.role == Role::AttnPostNorm || t.role == Role::FfnPostNorm;
    for (float& x : v) {
      if (t.role == Role::RopeFreqs || t.role == Role::RopeLong || t.role == Role::RopeShort)
        x = 1.0f + 7.0f * rng.uniform();  // divisors, as Llama 3.1's and LongRoPE's
      else if (norm) x = 1.0f + 0.1f * rng.normal();
      else if (t.rows == 1) x = 0.05f * rng.normal();  // biases
      else if (t.role == Role::TokEmbd || t.role == Role::PosEmbd || t.role == Role::TokTypes)
        x = (c.tied ? 0.1f : 0.5f) * rng.normal();
      else x = rng.normal() / std::sqrt(float(t.cols));
    }
    std::vector<int64_t> ne = t.rows == 1 ? std::vector<int64_t>{t.cols} : std::vector<int64_t>{t.cols, t.rows};
    w.add_tensor(t.name, lm::format::GgmlType::F32, ne, v.data());
  }
  w.save(out);
}

int main(int argc, char** argv) {
  try {
    if ((argc == 5 || (argc == 7 && std::strcmp(argv[5], "--shape") == 0)) && std::strcmp(argv[1], "--random") == 0) {
      random_model(argv[2], argv[3], argv[4], argc == 7 ? argv[6] : "");
      return 0;
    }
    if (argc == 4 && std::strcmp(argv[1], "--wordpiece") == 0) {
      wordpiece(argv[2], argv[3]);
      return 0;
    }
    if (argc >= 5 && std::strcmp(argv[1], "--convert") == 0) {
      convert(argv[2], argv[3], argv[4], !(argc > 5 && std::strcmp(argv[5], "--no-embed") == 0));
      return 0;
    }
    if (argc < 3) {
      std::fprintf(stderr, "usage: %s TOK.model OUT.gguf [--no-embed]\n       %s --convert IN OUT TYPE [--no-embed]\n",
                   argv[0], argv[0]);
      return 2;
    }
    lm::Tokenizer tok = lm::Tokenizer::load(argv[1]);
    lm::format::GgufWriter w;
    w.set_string(lm::format::kKeyArchitecture, "llama");
    lm::model::add_tokenizer(tok, w, !(argc > 3 && std::strcmp(argv[3], "--no-embed") == 0));
    w.save(argv[2]);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "lm_test_write_gguf: %s\n", e.what());
    return 1;
  }
  return 0;
}
