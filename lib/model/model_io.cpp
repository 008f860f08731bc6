// llama-arch GGUF keys and tensors <-> ModelConfig and Params.
#include "model/model_io.hpp"

#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <cstring>

#include "base/error.hpp"
#include "model/lora.hpp"
#include "model/tokenizer_loader.hpp"
#include "quant/convert.hpp"
#include "quant/policy.hpp"
#include "quant/quant.hpp"

namespace lm::model {

namespace {

std::string key(const char* suffix) { return std::string(kArch) + "." + suffix; }

}  // namespace

ModelConfig read_config(const format::GgufFile& g) {
  const std::string& path = g.path();
  const std::string arch = g.get_string(format::kKeyArchitecture);
  if (arch != kArch)
    throw FormatError(path, "architecture '" + arch + "', expected 'llama'; other architectures are not supported");
  ModelConfig c;
  auto bounded = [&](const std::string& k, uint32_t lo, uint32_t hi) {
    const uint32_t v = g.get_u32(k);
    if (v < lo || v > hi)
      throw FormatError(path, "key '" + k + "' is " + std::to_string(v) + ", expected " + std::to_string(lo) + " to " +
                                  std::to_string(hi));
    return int(v);
  };
  c.n_ctx = bounded(key("context_length"), 1, 1u << 20);
  c.n_embd = bounded(key("embedding_length"), 2, 1u << 16);
  c.n_layer = bounded(key("block_count"), 1, 1024);
  c.n_ff = bounded(key("feed_forward_length"), 1, 1u << 20);
  c.n_head = bounded(key("attention.head_count"), 1, uint32_t(c.n_embd));
  c.n_head_kv = g.has(key("attention.head_count_kv")) ? bounded(key("attention.head_count_kv"), 1, uint32_t(c.n_head))
                                                        : c.n_head;
  c.norm_eps = g.get_f32(key("attention.layer_norm_rms_epsilon"));
  if (!(c.norm_eps > 0 && c.norm_eps < 1))
    throw FormatError(path, "key '" + key("attention.layer_norm_rms_epsilon") + "' is " + std::to_string(c.norm_eps) +
                                ", expected a value in (0, 1)");
  c.rope_base = g.try_get_f32(key("rope.freq_base")).value_or(10000.0f);
  if (!(c.rope_base > 1 && std::isfinite(c.rope_base)))
    throw FormatError(path, "key '" + key("rope.freq_base") + "' is " + std::to_string(c.rope_base) + ", expected > 1");
  if (c.n_embd % c.n_head != 0)
    throw FormatError(path, "embedding length " + std::to_string(c.n_embd) + " is not a multiple of head count " +
                                std::to_string(c.n_head));
  if (c.n_head % c.n_head_kv != 0)
    throw FormatError(path, "head count " + std::to_string(c.n_head) + " is not a multiple of kv head count " +
                                std::to_string(c.n_head_kv));
  if (auto rd = g.try_get_u32(key("rope.dimension_count")); rd && int(*rd) != c.head_dim())
    throw FormatError(path, "key '" + key("rope.dimension_count") + "' is " + std::to_string(*rd) +
                                ", expected the head size " + std::to_string(c.head_dim()) + " (partial RoPE is not supported)");
  const format::GgufTensorInfo* emb = g.find_tensor("token_embd.weight");
  if (!emb) throw FormatError(path, "missing tensor 'token_embd.weight'");
  if (emb->n_dims != 2 || emb->ne[0] != c.n_embd)
    throw FormatError(path, "tensor 'token_embd.weight' has " + std::to_string(emb->ne[0]) + " columns, expected " +
                                std::to_string(c.n_embd));
  if (emb->ne[1] < 2 || emb->ne[1] > (1 << 24))
    throw FormatError(path, "tensor 'token_embd.weight' has " + std::to_string(emb->ne[1]) +
                                " rows (vocabulary size), expected 2 to 16777216");
  c.n_vocab = int(emb->ne[1]);
  if (auto vs = g.try_get_u32(key("vocab_size")); vs && int(*vs) != c.n_vocab)
    throw FormatError(path, "key '" + key("vocab_size") + "' is " + std::to_string(*vs) +
                                ", but token_embd.weight has " + std::to_string(c.n_vocab) + " rows");
  c.tied = g.find_tensor("output.weight") == nullptr;
  if (const format::GgufTensorInfo* cls = g.find_tensor("cls.output.weight")) {
    if (cls->n_dims != 2 || cls->ne[0] != c.n_embd || cls->ne[1] < 2 || cls->ne[1] > (1 << 16))
      throw FormatError(path, "tensor 'cls.output.weight' has shape {" + std::to_string(cls->ne[0]) + ", " +
                                  std::to_string(cls->ne[1]) + "}, expected {" + std::to_string(c.n_embd) +
                                  ", labels} with 2 to 65536 labels");
    c.n_cls = int(cls->ne[1]);
    c.cls_pooling = int(g.try_get_u32(key("pooling_type")).value_or(kPoolLast));
    if (c.cls_pooling != kPoolMean && c.cls_pooling != kPoolLast)
      throw FormatError(path, "key '" + key("pooling_type") + "' is " + std::to_string(c.cls_pooling) +
                                  ", expected 1 (mean) or 3 (last token) for a classifier");
  }
  return c;
}

namespace {

// The tensor behind view v, its shape checked. Throws FormatError naming the tensor.
const format::GgufTensorInfo& tensor_for(const format::GgufFile& g, const ParamView& v) {
  const format::GgufTensorInfo* t = g.find_tensor(v.name);
  if (!t) throw FormatError(g.path(), "missing tensor '" + v.name + "'");
  const bool shape_ok = (v.rows == 1 ? t->n_dims == 1 : t->n_dims == 2 && t->ne[1] == v.rows) && t->ne[0] == v.cols;
  if (!shape_ok)
    throw FormatError(g.path(), "tensor '" + v.name + "' has shape {" + std::to_string(t->ne[0]) + ", " +
                                    std::to_string(t->n_dims > 1 ? t->ne[1] : 1) + "}, expected {" +
                                    std::to_string(v.cols) + ", " + std::to_string(v.rows) + "}");
  if (!quant::is_supported(t->type))
    throw FormatError(g.path(), "tensor '" + v.name + "' has type " + format::ggml_type_info(t->type).name +
                                    ", expected f32, f16, bf16, q8_0, q4_0, q4_K or q6_K");
  return *t;
}

}  // namespace

Params load_params(const format::GgufFile& g, bool with_grad) {
  Params p(read_config(g), with_grad);
  for (const ParamView& v : p.views) {
    const format::GgufTensorInfo& t = tensor_for(g, v);
    quant::dequantize_rows(t.type, t.data, p.w.data() + v.offset, size_t(v.rows), size_t(v.cols));
  }
  return p;
}

namespace {

// The type each tensor is computed in: f16 / bf16 matrices and all norms become f32; q8_0 /
// q4_0 / K-quants stay as they are.
std::vector<format::GgmlType> inference_types(const format::GgufFile& g, const std::vector<ParamView>& views) {
  std::vector<format::GgmlType> types;
  for (const ParamView& v : views) {
    const format::GgufTensorInfo& t = tensor_for(g, v);
    types.push_back(v.rows > 1 && t.type != format::GgmlType::F16 && t.type != format::GgmlType::BF16
                        ? t.type
                        : format::GgmlType::F32);
  }
  return types;
}

}  // namespace

AdapterSpec parse_adapter_spec(const std::string& text) {
  AdapterSpec a{text, 1.0f};
  const size_t colon = text.rfind(':');
  if (colon != std::string::npos && colon + 1 < text.size()) {
    const std::string tail = text.substr(colon + 1);
    char* end = nullptr;
    const float v = std::strtof(tail.c_str(), &end);
    if (end && *end == '\0') {
      if (!std::isfinite(v)) throw UsageError("--lora scale '" + tail + "' is not a finite number");
      a.path = text.substr(0, colon);
      a.scale = v;
    } else if (::access(text.c_str(), F_OK) != 0 && ::access(text.substr(0, colon).c_str(), F_OK) == 0) {
      // FILE:SCALE with a scale that is not a number (a path with ':' in it exists as a whole).
      throw UsageError("--lora scale '" + tail + "' is not a number: give FILE or FILE:SCALE");
    }
  }
  if (a.path.empty()) throw UsageError("--lora needs a file: FILE or FILE:SCALE");
  return a;
}

Weights load_weights(const format::GgufFile& g) {
  const ModelConfig cfg = read_config(g);
  const std::vector<ParamView> views = param_layout(cfg);
  const std::vector<format::GgmlType> types = inference_types(g, views);
  std::vector<const format::GgufTensorInfo*> tensors;
  for (const ParamView& v : views) tensors.push_back(&tensor_for(g, v));
  return build_weights(cfg, types, [&](size_t i, uint8_t* dst) {
    const format::GgufTensorInfo& t = *tensors[i];
    const ParamView& v = views[i];
    if (types[i] == t.type)
      kernels::pack_weight(t.type, t.data, v.rows, v.cols, dst);
    else
      quant::dequantize_rows(t.type, t.data, reinterpret_cast<float*>(dst), size_t(v.rows), size_t(v.cols));
  });
}

LoadedModel load_model(const std::string& path, const std::vector<AdapterSpec>& adapters) {
  format::GgufFile g = format::GgufFile::open(path);
  if (is_adapter(g)) throw FormatError(path, "is a LoRA adapter, not a model; give the base model and --lora " + path);
  Tokenizer tok = load_tokenizer(g);
  Weights w;
  if (adapters.empty()) {
    w = load_weights(g);
  } else {
    Params p = load_params(g, false);
    for (const AdapterSpec& a : adapters) {
      Lora l = load_adapter(format::GgufFile::open(a.path), p.cfg);
      l.user_scale = a.scale;
      merge_lora(p, l);
    }
    w = quantize_weights(p, inference_types(g, p.views));
  }
  if (tok.vocab_size() != w.cfg.n_vocab)
    throw FormatError(path, "tokenizer has " + std::to_string(tok.vocab_size()) + " tokens but the model " +
                                std::to_string(w.cfg.n_vocab));
  const bool bos = g.try_get_bool("tokenizer.ggml.add_bos_token").value_or(true) && tok.bos_id().has_value();
  return LoadedModel{std::move(g), std::move(tok), std::move(w), bos};
}

std::string describe_model(const format::GgufFile& g) {
  char b[512];
  std::string arch = "?";
  std::string d;
  try {
    arch = g.try_get_string(format::kKeyArchitecture).value_or("?");
    const auto layers = g.try_get_u32(arch + ".block_count"), width = g.try_get_u32(arch + ".embedding_length");
    d = arch;
    if (layers) d += ", " + std::to_string(*layers) + " layers";
    if (width) d += ", " + std::to_string(*width) + " wide";
  } catch (const Error&) {
    d = arch;
  }
  uint64_t elements = 0, bytes = 0;
  for (const auto& t : g.tensors()) elements += t.n_elements(), bytes += t.n_bytes;
  if (g.tensors().empty()) return d + ", no tensors";
  std::snprintf(b, sizeof b, ", %.2fM parameters", double(elements) / 1e6);
  d += b;
  std::optional<uint32_t> ftype;
  try {
    ftype = g.try_get_u32(format::kKeyFileType);
  } catch (const Error&) {
  }
  d += "; " + (ftype ? quant::llama_ftype_name(*ftype) : std::string("file type not given"));
  std::snprintf(b, sizeof b, ", %.2f bits per weight", elements ? 8.0 * double(bytes) / double(elements) : 0.0);
  d += b;
  try {
    if (auto source = g.try_get_string(format::kKeyQuantizeSource)) {
      d += "; quantized from " + *source;
      if (auto st = g.try_get_u32(format::kKeyQuantizeSourceFileType)) d += " (" + quant::llama_ftype_name(*st) + ")";
    }
  } catch (const Error&) {
  }
  if (auto e = quant::try_get_quant_eval(g)) {
    std::snprintf(b, sizeof b,
                  "; on %s (%llu tokens, chunks of %u): perplexity %.4f (source %.4f), KL divergence %.6f, "
                  "top-1 agreement %.2f%%",
                  e->file.c_str(), (unsigned long long)e->tokens, e->ctx, double(e->perplexity),
                  double(e->perplexity_source), double(e->kld), 100.0 * double(e->top1_agreement));
    d += b;
  }
  return d;
}

std::optional<std::string> try_describe_model(const std::string& path) {
  if (is_std_stream(path)) return std::nullopt;
  try {
    return describe_model(format::GgufFile::open(path));
  } catch (const Error&) {
    return std::nullopt;
  }
}

std::vector<std::string> read_labels(const format::GgufFile& g, const ModelConfig& cfg) {
  std::vector<std::string> labels;
  if (const auto* names = g.try_get_string_array(key("classifier.output_labels"))) labels = *names;
  if (labels.empty())
    for (int i = 0; i < cfg.n_cls; ++i) labels.push_back(std::to_string(i));
  if (int(labels.size()) != cfg.n_cls)
    throw FormatError(g.path(), "key '" + key("classifier.output_labels") + "' has " + std::to_string(labels.size()) +
                                    " labels, but cls.output.weight has " + std::to_string(cfg.n_cls) + " rows");
  return labels;
}

void add_model(format::GgufWriter& out, const Params& p, const Tokenizer& tok, const std::string& name,
               const std::vector<std::string>& labels) {
  const ModelConfig& c = p.cfg;
  if (tok.vocab_size() != c.n_vocab)
    throw UsageError("tokenizer has " + std::to_string(tok.vocab_size()) + " pieces but the model " +
                     std::to_string(c.n_vocab) + " embeddings");
  out.set_string(format::kKeyArchitecture, kArch);
  out.set_string(format::kKeyName, name);
  out.set_u32(format::kKeyFileType, 0);  // all tensors F32
  out.set_u32(key("context_length"), uint32_t(c.n_ctx));
  out.set_u32(key("embedding_length"), uint32_t(c.n_embd));
  out.set_u32(key("block_count"), uint32_t(c.n_layer));
  out.set_u32(key("feed_forward_length"), uint32_t(c.n_ff));
  out.set_u32(key("attention.head_count"), uint32_t(c.n_head));
  out.set_u32(key("attention.head_count_kv"), uint32_t(c.n_head_kv));
  out.set_u32(key("rope.dimension_count"), uint32_t(c.head_dim()));
  out.set_f32(key("rope.freq_base"), c.rope_base);
  out.set_f32(key("attention.layer_norm_rms_epsilon"), c.norm_eps);
  out.set_u32(key("vocab_size"), uint32_t(c.n_vocab));
  if (c.n_cls > 0) {
    if (int(labels.size()) != c.n_cls)
      throw UsageError("classifier has " + std::to_string(c.n_cls) + " outputs but " + std::to_string(labels.size()) +
                       " label names");
    out.set_array_string(key("classifier.output_labels"), labels);
    out.set_u32(key("pooling_type"), uint32_t(c.cls_pooling));
  }
  add_tokenizer(tok, out, true);
  for (const ParamView& v : p.views) {
    std::vector<int64_t> ne = v.rows == 1 ? std::vector<int64_t>{v.cols} : std::vector<int64_t>{v.cols, v.rows};
    out.add_tensor(v.name, format::GgmlType::F32, ne, p.w.data() + v.offset);
  }
}

}  // namespace lm::model
