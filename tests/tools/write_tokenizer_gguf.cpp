// Test helper (not installed) for the tool tests.
//   lm_test_write_gguf TOK.model OUT.gguf [--no-embed]
//     writes a vocabulary-only GGUF file carrying a tokenizer, to pass GGUF files to -m;
//   lm_test_write_gguf --wordpiece VOCAB.txt OUT.gguf
//     writes a WordPiece vocabulary (BERT's vocab.txt: one piece per line, "##" for a word's
//     continuation, [PAD]/[UNK]/[CLS]/[SEP]/[MASK] and other [..] pieces special) as llama.cpp's
//     converters store it: "bert" model, word-initial pieces prefixed with U+2581;
//   lm_test_write_gguf --convert IN.gguf OUT.gguf TYPE [--no-embed]
//     rewrites a model with its matrices in another type (f32, f16, bf16 or any block type lm
//     writes by its ggml name: q8_0, q4_0, q4_1, q5_0, q5_1, iq4_nl, q2_K, q3_K, q4_K, q5_K,
//     q6_K, iq4_xs; a matrix whose rows do not fill the blocks is an error; norms stay F32), and with
//     --no-embed without the SentencePiece model bytes (the tokenizer arrays only).
#include <cstdio>
#include <cstring>
#include <strings.h>
#include <exception>
#include <string>
#include <vector>

#include "base/error.hpp"
#include "base/file.hpp"
#include "format/gguf.hpp"
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

int main(int argc, char** argv) {
  try {
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
