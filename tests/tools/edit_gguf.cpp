// Test helper (not installed) for the tool tests: writes a damaged copy of a GGUF file, to check
// that the tools refuse it with the right message.
//   lm_test_edit_gguf IN.gguf OUT.gguf EDIT...
// EDITs, applied in order:
//   drop NAME            remove tensor NAME
//   shape NAME D0[,D1]   give tensor NAME this shape (its bytes cut or zero-padded to fit)
//   set NAME K VALUE     element K of F32/F16/BF16 tensor NAME = VALUE ("nan", "inf", "1.5")
//   scale NAME B VALUE   the f16 scale d of block B of Q8_0/Q4_0/Q4_K/Q6_K tensor NAME = VALUE
//   u32 KEY V            metadata KEY = V (u32)
//   str KEY V            metadata KEY = V (string)
//   f32 KEY V            metadata KEY = V (f32)
//   labels N             llama.classifier.output_labels = "l0" .. "l{N-1}"
// or prints the scalar and string keys of a file, one "KEY = VALUE" per line:
//   lm_test_edit_gguf --keys IN.gguf
#include <cstddef>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <map>
#include <string>
#include <vector>

#include "base/error.hpp"
#include "format/gguf.hpp"
#include "quant/kquant.hpp"
#include "quant/quant.hpp"

namespace {

using lm::format::GgmlType;

struct Tensor {
  std::string name;
  GgmlType type;
  std::vector<int64_t> ne;
  std::vector<uint8_t> bytes;
};

Tensor& find(std::vector<Tensor>& ts, const std::string& name) {
  for (Tensor& t : ts)
    if (t.name == name) return t;
  throw lm::UsageError("no tensor '" + name + "'");
}

// Byte offset of the f16 scale d in a block, and the block's size.
std::pair<size_t, size_t> scale_at(GgmlType t) {
  switch (t) {
    case GgmlType::Q8_0: return {0, sizeof(lm::quant::BlockQ8_0)};
    case GgmlType::Q4_0: return {0, sizeof(lm::quant::BlockQ4_0)};
    case GgmlType::Q4_K: return {0, sizeof(lm::quant::BlockQ4_K)};
    case GgmlType::Q6_K: return {offsetof(lm::quant::BlockQ6_K, d), sizeof(lm::quant::BlockQ6_K)};
    default: throw lm::UsageError("scale: not a Q8_0/Q4_0/Q4_K/Q6_K tensor");
  }
}

void put16(uint8_t* p, uint16_t v) { p[0] = uint8_t(v), p[1] = uint8_t(v >> 8); }

}  // namespace

int main(int argc, char** argv) {
  try {
    if (argc < 3) {
      std::fprintf(stderr, "usage: %s IN.gguf OUT.gguf EDIT...\n", argv[0]);
      return 2;
    }
    if (std::strcmp(argv[1], "--keys") == 0) {
      using lm::format::GgufType;
      const lm::format::GgufFile in = lm::format::GgufFile::open(argv[2]);
      for (const auto& [k, v] : in.metadata()) {
        if (v.type == GgufType::STRING) std::printf("%s = %s\n", k.c_str(), v.str.c_str());
        else if (v.type == GgufType::BOOL) std::printf("%s = %s\n", k.c_str(), v.bits ? "true" : "false");
        else if (v.type == GgufType::F32) {
          float f;
          const uint32_t b = uint32_t(v.bits);
          std::memcpy(&f, &b, 4);
          std::printf("%s = %g\n", k.c_str(), double(f));
        } else if (v.type != GgufType::ARRAY) std::printf("%s = %llu\n", k.c_str(), (unsigned long long)v.bits);
      }
      return 0;
    }
    const lm::format::GgufFile g = lm::format::GgufFile::open(argv[1]);
    lm::format::GgufWriter w;
    for (const auto& [k, v] : g.metadata()) w.set_value(k, v);
    std::vector<Tensor> ts;
    for (const auto& t : g.tensors())
      ts.push_back({t.name, t.type, std::vector<int64_t>(t.ne, t.ne + t.n_dims),
                    std::vector<uint8_t>(t.data, t.data + t.n_bytes)});
    for (int i = 3; i < argc; ++i) {
      const std::string op = argv[i];
      auto arg = [&](int k) -> std::string {
        if (i + k >= argc) throw lm::UsageError(op + ": missing argument");
        return argv[i + k];
      };
      if (op == "drop") {
        const std::string name = arg(1);
        find(ts, name);
        std::erase_if(ts, [&](const Tensor& t) { return t.name == name; });
        i += 1;
      } else if (op == "shape") {
        Tensor& t = find(ts, arg(1));
        t.ne.clear();
        for (const char* p = argv[i + 2]; *p;) {
          char* end = nullptr;
          t.ne.push_back(std::strtoll(p, &end, 10));
          p = *end == ',' ? end + 1 : end;
        }
        uint64_t n = 0;
        if (!lm::format::ggml_tensor_bytes(t.type, t.ne.data(), uint32_t(t.ne.size()), &n))
          throw lm::UsageError("shape: bad shape");
        t.bytes.resize(n);
        i += 2;
      } else if (op == "set") {
        Tensor& t = find(ts, arg(1));
        const size_t k = std::stoull(arg(2));
        const float v = std::strtof(arg(3).c_str(), nullptr);
        if (t.type == GgmlType::F32 && 4 * k + 4 <= t.bytes.size()) std::memcpy(&t.bytes[4 * k], &v, 4);
        else if (t.type == GgmlType::F16 && 2 * k + 2 <= t.bytes.size()) put16(&t.bytes[2 * k], lm::quant::fp32_to_fp16(v));
        else if (t.type == GgmlType::BF16 && 2 * k + 2 <= t.bytes.size()) put16(&t.bytes[2 * k], lm::quant::fp32_to_bf16(v));
        else throw lm::UsageError("set: not an F32/F16/BF16 tensor, or element out of range");
        i += 3;
      } else if (op == "scale") {
        Tensor& t = find(ts, arg(1));
        const auto [at, size] = scale_at(t.type);
        const size_t b = std::stoull(arg(2));
        if (b * size + size > t.bytes.size()) throw lm::UsageError("scale: block out of range");
        put16(&t.bytes[b * size + at], lm::quant::fp32_to_fp16(std::strtof(arg(3).c_str(), nullptr)));
        i += 3;
      } else if (op == "u32") {
        w.set_u32(arg(1), uint32_t(std::stoul(arg(2))));
        i += 2;
      } else if (op == "str") {
        w.set_string(arg(1), arg(2));
        i += 2;
      } else if (op == "f32") {
        w.set_f32(arg(1), std::stof(arg(2)));
        i += 2;
      } else if (op == "labels") {
        std::vector<std::string> labels;
        for (int k = 0, n = std::stoi(arg(1)); k < n; ++k) labels.push_back(std::string(1, 'l').append(std::to_string(k)));
        w.set_array_string("llama.classifier.output_labels", labels);
        i += 1;
      } else {
        throw lm::UsageError("unknown edit '" + op + "'");
      }
    }
    for (const Tensor& t : ts) w.add_tensor(t.name, t.type, t.ne, t.bytes.data());
    w.save(argv[2]);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "lm_test_edit_gguf: %s\n", e.what());
    return 1;
  }
  return 0;
}
