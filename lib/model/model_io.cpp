// llama-arch GGUF keys and tensors <-> ModelConfig and Params.
#include "model/model_io.hpp"

#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdio>
#include <cstring>

#include "base/error.hpp"
#include "model/arch.hpp"
#include "model/lora.hpp"
#include "model/tokenizer_loader.hpp"
#include "model/quant_convert.hpp"
#include "quant/kquant.hpp"
#include "model/quant_policy.hpp"
#include "quant/quant.hpp"

namespace lm::model {

ModelConfig read_config(const format::GgufFile& g) {
  const std::string& path = g.path();
  const std::string arch = g.get_string(format::kKeyArchitecture);
  const ArchDef* def = find_arch(arch);
  if (!def)
    throw FormatError(path, "architecture '" + arch + "' is not supported; supported: " + arch_names());
  ModelConfig c;
  c.arch.name = arch;
  def->read(g, c);
  const format::GgufTensorInfo* emb = g.find_tensor("token_embd.weight");
  if (!emb) throw FormatError(path, "missing tensor 'token_embd.weight'");
  if (emb->n_dims != 2 || emb->ne[0] != c.n_embd)
    throw FormatError(path, "tensor 'token_embd.weight' has " + std::to_string(emb->ne[0]) + " columns, expected " +
                                std::to_string(c.n_embd));
  if (emb->ne[1] < 2 || emb->ne[1] > (1 << 24))
    throw FormatError(path, "tensor 'token_embd.weight' has " + std::to_string(emb->ne[1]) +
                                " rows (vocabulary size), expected 2 to 16777216");
  c.n_vocab = int(emb->ne[1]);
  if (auto vs = g.try_get_u32(arch + ".vocab_size"); vs && int(*vs) != c.n_vocab)
    throw FormatError(path, "key '" + arch + ".vocab_size' is " + std::to_string(*vs) +
                                ", but token_embd.weight has " + std::to_string(c.n_vocab) + " rows");
  c.tied = g.find_tensor("output.weight") == nullptr;
  if (c.is_lstm() && c.tied && c.out_width() != c.n_embd)
    throw FormatError(path, "has no output.weight, but the LSTM's output width " +
                                std::to_string(c.out_width()) + " differs from the embedding width " +
                                std::to_string(c.n_embd) + ", so the embeddings cannot be the output layer");
  if (const format::GgufTensorInfo* cls =
          c.trainable_decoder() || c.is_encoder() || c.is_gpt2() ? g.find_tensor("cls.output.weight") : nullptr) {
    if (cls->n_dims != 2 || cls->ne[0] != c.n_embd || cls->ne[1] < 2 || cls->ne[1] > kMaxLabels)
      throw FormatError(path, "tensor 'cls.output.weight' has shape {" + std::to_string(cls->ne[0]) + ", " +
                                  std::to_string(cls->ne[1]) + "}, expected {" + std::to_string(c.n_embd) +
                                  ", labels} with 2 to " + std::to_string(kMaxLabels) + " labels");
    c.n_cls = int(cls->ne[1]);
    if (c.is_encoder()) {
      c.cls_pooling = int(g.try_get_u32("bert.pooling_type").value_or(kPoolRank));
      if (c.cls_pooling != kPoolMean && c.cls_pooling != kPoolRank)
        throw FormatError(path, "key 'bert.pooling_type' is " + std::to_string(c.cls_pooling) +
                                    ", expected 1 (mean) or 4 (rank: the first token) for a classifier");
    } else {
      c.cls_pooling = int(g.try_get_u32(arch + ".pooling_type").value_or(kPoolLast));
    }
    if (c.cls_pooling != kPoolMean && c.cls_pooling != kPoolLast && c.cls_pooling != kPoolRank)
      throw FormatError(path, "key '" + arch + ".pooling_type' is " + std::to_string(c.cls_pooling) +
                                  ", expected 1 (mean) or 3 (last token) for a classifier");
  }
  return c;
}

namespace {

// The tensor behind spec v, its shape checked; nullptr for an optional tensor the file lacks.
// Throws FormatError naming the tensor.
const format::GgufTensorInfo* tensor_for(const format::GgufFile& g, const TensorSpec& v) {
  const format::GgufTensorInfo* t = g.find_tensor(v.name);
  if (!t && !v.required) return nullptr;
  if (!t) throw FormatError(g.path(), "missing tensor '" + v.name + "'");
  const bool shape_ok = (v.rows == 1 ? t->n_dims == 1 : t->n_dims == 2 && t->ne[1] == v.rows) && t->ne[0] == v.cols;
  if (!shape_ok)
    throw FormatError(g.path(), "tensor '" + v.name + "' has shape {" + std::to_string(t->ne[0]) + ", " +
                                    std::to_string(t->n_dims > 1 ? t->ne[1] : 1) + "}, expected {" +
                                    std::to_string(v.cols) + ", " + std::to_string(v.rows) + "}");
  if (!quant::is_supported(t->type))
    throw FormatError(g.path(), "tensor '" + v.name + "' has type " + format::ggml_type_info(t->type).name +
                                    ", expected f32, f16, bf16, q8_0, q4_0, q4_1, q5_0, q5_1, iq4_nl, q2_K, q3_K, "
                                    "q4_K, q5_K, q6_K or iq4_xs");
  return t;
}

// Where a quantized block keeps its f16 scales (d, and dmin for Q4_K), for the NaN scan.
struct BlockScales {
  size_t block_bytes = 0;
  size_t at[2] = {0, 0};
  int n = 0;
};
BlockScales block_scales(format::GgmlType t) {
  using format::GgmlType;
  switch (t) {
    case GgmlType::Q8_0: return {sizeof(quant::BlockQ8_0), {offsetof(quant::BlockQ8_0, d)}, 1};
    case GgmlType::Q4_0: return {sizeof(quant::BlockQ4_0), {offsetof(quant::BlockQ4_0, d)}, 1};
    case GgmlType::Q4_K: return {sizeof(quant::BlockQ4_K), {offsetof(quant::BlockQ4_K, d), offsetof(quant::BlockQ4_K, dmin)}, 2};
    case GgmlType::Q6_K: return {sizeof(quant::BlockQ6_K), {offsetof(quant::BlockQ6_K, d)}, 1};
    case GgmlType::Q4_1: return {sizeof(quant::BlockQ4_1), {offsetof(quant::BlockQ4_1, d), offsetof(quant::BlockQ4_1, m)}, 2};
    case GgmlType::Q5_0: return {sizeof(quant::BlockQ5_0), {offsetof(quant::BlockQ5_0, d)}, 1};
    case GgmlType::Q5_1: return {sizeof(quant::BlockQ5_1), {offsetof(quant::BlockQ5_1, d), offsetof(quant::BlockQ5_1, m)}, 2};
    case GgmlType::IQ4_NL: return {sizeof(quant::BlockIQ4_NL), {offsetof(quant::BlockIQ4_NL, d)}, 1};
    case GgmlType::Q2_K: return {sizeof(quant::BlockQ2_K), {offsetof(quant::BlockQ2_K, d), offsetof(quant::BlockQ2_K, dmin)}, 2};
    case GgmlType::Q3_K: return {sizeof(quant::BlockQ3_K), {offsetof(quant::BlockQ3_K, d)}, 1};
    case GgmlType::Q5_K: return {sizeof(quant::BlockQ5_K), {offsetof(quant::BlockQ5_K, d), offsetof(quant::BlockQ5_K, dmin)}, 2};
    case GgmlType::IQ4_XS: return {sizeof(quant::BlockIQ4_XS), {offsetof(quant::BlockIQ4_XS, d)}, 1};
    default: return {};
  }
}

// The values a tensor's NaN scan walks: its elements (F32, F16, BF16), its blocks (types with
// f16 scales), or none.
uint64_t scan_units(const format::GgufTensorInfo& t) {
  using format::GgmlType;
  if (t.type == GgmlType::F32 || t.type == GgmlType::F16 || t.type == GgmlType::BF16) return t.n_elements();
  const BlockScales s = block_scales(t.type);
  return s.n ? t.n_bytes / s.block_bytes : 0;
}

uint16_t load16(const uint8_t* p) { return uint16_t(p[0] | p[1] << 8); }

// True if a value in units [begin, end) of t is NaN or Inf (an all-ones exponent). Bit tests
// and an OR, so that the loops vectorize: the scan reads memory at about copy speed.
bool any_nonfinite(const format::GgufTensorInfo& t, uint64_t begin, uint64_t end) {
  using format::GgmlType;
  unsigned bad = 0;
  if (t.type == GgmlType::F32) {
    for (uint64_t i = begin; i < end; ++i) {
      uint32_t b;
      std::memcpy(&b, t.data + 4 * i, 4);
      bad |= (b & 0x7f800000u) == 0x7f800000u;
    }
  } else if (t.type == GgmlType::F16 || t.type == GgmlType::BF16) {
    const uint16_t exp = t.type == GgmlType::F16 ? 0x7c00 : 0x7f80;
    for (uint64_t i = begin; i < end; ++i) bad |= (load16(t.data + 2 * i) & exp) == exp;
  } else {
    const BlockScales s = block_scales(t.type);
    for (int k = 0; k < s.n; ++k)
      for (uint64_t i = begin; i < end; ++i) bad |= (load16(t.data + i * s.block_bytes + s.at[k]) & 0x7c00) == 0x7c00;
  }
  return bad != 0;
}

// Throws FormatError for the first NaN or Inf of t: format::check_finite's message for a float
// tensor; for a quantized one, the block whose scale holds it.
[[noreturn]] void report_nonfinite(const format::GgufFile& g, const format::GgufTensorInfo& t) {
  format::check_finite(g, t);  // throws for F32, F16 and BF16
  const BlockScales s = block_scales(t.type);
  const uint32_t block = format::ggml_type_info(t.type).block;
  for (uint64_t i = 0; i < t.n_bytes / s.block_bytes; ++i)
    for (int k = 0; k < s.n; ++k) {
      const uint16_t h = load16(t.data + i * s.block_bytes + s.at[k]);
      if ((h & 0x7c00) == 0x7c00)
        throw FormatError(g.path(),
                          "tensor '" + t.name + "' contains " + ((h & 0x3ff) ? "NaN" : "Inf") +
                              " in the scale of the block of elements " + std::to_string(i * block) + " to " +
                              std::to_string((i + 1) * block - 1) + "; the model is corrupted",
                          int64_t(g.data_offset() + t.offset + i * s.block_bytes + s.at[k]));
    }
  LM_ASSERT(false);  // any_nonfinite found one
}

}  // namespace

void check_finite_weights(const format::GgufFile& g, const std::vector<const format::GgufTensorInfo*>& tensors) {
  // Chunks of 2^20 values (4 MiB of f32), in file order; in parallel when the weights are large.
  constexpr uint64_t kChunk = uint64_t{1} << 20;
  struct Chunk {
    size_t tensor;
    uint64_t begin, end;
  };
  std::vector<Chunk> chunks;
  uint64_t bytes = 0;
  for (size_t i = 0; i < tensors.size(); ++i) {
    const uint64_t n = scan_units(*tensors[i]);
    for (uint64_t b = 0; b < n; b += kChunk) chunks.push_back({i, b, std::min(n, b + kChunk)});
    bytes += tensors[i]->n_bytes;
  }
  size_t first = chunks.size();
#pragma omp parallel for schedule(dynamic, 1) reduction(min : first) if (bytes > (uint64_t{64} << 20))
  for (size_t c = 0; c < chunks.size(); ++c)
    if (any_nonfinite(*tensors[chunks[c].tensor], chunks[c].begin, chunks[c].end)) first = std::min(first, c);
  if (first < chunks.size()) report_nonfinite(g, *tensors[chunks[first].tensor]);
}

namespace {

// The tensors of cfg's architecture that the file has (every required one), shapes and types
// checked as tensor_for does, their values finite: specs and tensors in the same order.
struct FileTensors {
  std::vector<TensorSpec> specs;
  std::vector<const format::GgufTensorInfo*> tensors;
};
// Shapes and types only, for a file whose values were already scanned.
FileTensors file_tensors(const format::GgufFile& g, const ModelConfig& cfg) {
  FileTensors f;
  for (const TensorSpec& v : find_arch(cfg.arch.name)->tensors(cfg))
    if (const format::GgufTensorInfo* t = tensor_for(g, v)) {
      f.specs.push_back(v);
      f.tensors.push_back(t);
    }
  return f;
}
// And the values finite.
FileTensors checked_tensors(const format::GgufFile& g, const ModelConfig& cfg) {
  FileTensors f = file_tensors(g, cfg);
  check_finite_weights(g, f.tensors);
  return f;
}

// Index of the file's tensor for view `name` (f is in the architecture's order, which is not
// param_layout's for qwen2).
size_t spec_index(const FileTensors& f, const std::string& name) {
  const size_t i = find_spec(f.specs, name);
  LM_ASSERT(i < f.specs.size());
  return i;
}

// Where view i of cfg's layout is in a file: the tensor of that name from row 0, but for phi3
// the fused attn_qkv (q, k, v rows) and ffn_up (gate, up rows).
struct ViewSource {
  std::string name;
  int row0 = 0;
};
ViewSource view_source(const ModelConfig& cfg, const std::vector<ParamView>& views, size_t i) {
  const size_t first = layer_param(0, kAttnNorm), end = layer_param(cfg.n_layer, kAttnNorm);
  if (!cfg.fused_projections() || i < first || i >= end) return {views[i].name, 0};
  FusedRows f = fused_rows(cfg, int((i - first) / kLayerParams), LayerParam((i - first) % kLayerParams));
  if (f.name.empty()) return {views[i].name, 0};
  return {std::move(f.name), f.row0};
}

// The file's tensors f of cfg's architecture (checked_tensors: checked before p was allocated,
// so that p's size follows tensors the file holds, not keys it claims) converted to F32 into p's
// views (Params, LstmParams), matched by name (view_source).
template <class P>
void read_views(const FileTensors& f, const ModelConfig& cfg, P& p) {
  for (size_t i = 0; i < p.views.size(); ++i) {
    const ParamView& v = p.views[i];
    const ViewSource src = view_source(cfg, p.views, i);
    const format::GgufTensorInfo& t = *f.tensors[spec_index(f, src.name)];
    const size_t row_bytes = quant::row_size(t.type, size_t(v.cols));
    LM_ASSERT(t.ne[0] == v.cols && (src.row0 + v.rows) * row_bytes <= t.n_bytes);
    quant::dequantize_rows(t.type, t.data + size_t(src.row0) * row_bytes, p.w.data() + v.offset, size_t(v.rows),
                           size_t(v.cols));
  }
}

}  // namespace

ModelConfig check_model(const format::GgufFile& g) {
  const ModelConfig cfg = read_config(g);
  checked_tensors(g, cfg);
  return cfg;
}

LstmParams load_lstm_params(const format::GgufFile& g, bool with_grad) {
  const ModelConfig cfg = read_config(g);
  if (!cfg.is_lstm())
    throw FormatError(g.path(), "is a '" + cfg.arch.name + "' model, not an LSTM");
  const FileTensors f = checked_tensors(g, cfg);
  LstmParams p(to_lstm_config(cfg), with_grad);
  read_views(f, cfg, p);
  return p;
}

namespace {

// A model trained in its file's own layout (bert, gpt2): every view a tensor of the file, of
// the shape lm trains (as many key/value heads as heads, head size width / heads). `what` is
// what the views are for, in the error naming a missing one.
Params load_own_layout(const format::GgufFile& g, const ModelConfig& cfg, bool with_grad, const std::string& what) {
  if (cfg.n_head_kv != cfg.n_head || cfg.n_head_dim != 0)
    throw FormatError(g.path(), "is a " + cfg.arch.name + " model of a shape lm does not train (grouped-query heads, "
                                "or a head size other than width / heads)");
  for (const ParamView& v : param_layout(cfg))  // e.g. a bert file's fused attn_qkv: readable, but not this layout
    if (!g.find_tensor(v.name)) throw FormatError(g.path(), "has no tensor '" + v.name + "', which " + what);
  const FileTensors f = checked_tensors(g, cfg);
  Params p(cfg, with_grad);
  read_views(f, cfg, p);
  return p;
}

}  // namespace

Params load_encoder_params(const format::GgufFile& g, bool with_grad) {
  const ModelConfig cfg = read_config(g);
  if (!cfg.is_encoder()) throw FormatError(g.path(), "is a '" + cfg.arch.name + "' model, not an encoder (bert)");
  return load_own_layout(g, cfg, with_grad, "lm's encoder trains (docs/encoder.md)");
}

Params load_params(const format::GgufFile& g, bool with_grad) {
  const ModelConfig cfg = read_config(g);
  if (cfg.is_gpt2()) return load_own_layout(g, cfg, with_grad, "lm's gpt2 training needs");
  if (!cfg.trainable_decoder())
    throw FormatError(g.path(), "architecture '" + cfg.arch.name +
                                    "' can be run (lm-generate, lm-eval) but not trained or merged with LoRA yet; "
                                    "training supports llama, qwen2, phi3, gemma2 and gpt2");
  const ArchOptions& a = cfg.arch;
  if (a.n_rot != 0 || a.rope_freq_scale != 1.0f || a.rope_attn_factor != 1.0f || a.yarn_ctx_orig != 0 ||
      a.rope_ctx_orig != 0 || g.find_tensor("rope_freqs.weight") || g.find_tensor("rope_factors_long.weight") ||
      g.find_tensor("rope_factors_short.weight"))
    throw FormatError(g.path(), "has RoPE scaling or partial RoPE, which training does not support yet");
  if (g.find_tensor("output.bias"))
    throw FormatError(g.path(), "has an output.bias, which training does not support yet");
  if (cfg.is_gemma2() && g.find_tensor("output.weight"))  // Gemma 2's head is its embeddings
    throw FormatError(g.path(), "is a gemma2 model with an output.weight (its head is token_embd), which training "
                                "does not support");
  if (!cfg.head_size_score_scale())
    throw FormatError(g.path(), "scales attention scores by 1 / sqrt(width / heads) (Gemma 2 27B), which training "
                                "does not support yet");
  const FileTensors f = checked_tensors(g, cfg);
  Params p(cfg, with_grad);
  read_views(f, cfg, p);
  return p;
}

namespace {

// The type each tensor is computed in: f16 / bf16 matrices and all vectors become f32; q8_0 /
// q4_0 / K-quants stay as they are.
std::vector<format::GgmlType> inference_types(const FileTensors& f) {
  std::vector<format::GgmlType> types;
  for (size_t i = 0; i < f.specs.size(); ++i) {
    const format::GgmlType t = f.tensors[i]->type;
    types.push_back(f.specs[i].rows > 1 && t != format::GgmlType::F16 && t != format::GgmlType::BF16
                        ? t
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
  const FileTensors f = checked_tensors(g, cfg);
  const std::vector<format::GgmlType> types = inference_types(f);
  return build_weights(cfg, f.specs, types, [&](size_t i, uint8_t* dst) {
    const format::GgufTensorInfo& t = *f.tensors[i];
    const TensorSpec& v = f.specs[i];
    if (types[i] == t.type)
      kernels::pack_weight(t.type, t.data, v.rows, v.cols, dst);
    else
      quant::dequantize_rows(t.type, t.data, reinterpret_cast<float*>(dst), size_t(v.rows), size_t(v.cols));
  });
}

LoadedModel load_model(const std::string& path, const std::vector<AdapterSpec>& adapters, bool encoder_ok) {
  format::GgufFile g = format::GgufFile::open(path);
  if (is_adapter(g)) throw FormatError(path, "is a LoRA adapter, not a model; give the base model and --lora " + path);
  if (!encoder_ok && g.try_get_string(format::kKeyArchitecture).value_or("") == "bert")
    throw FormatError(path, "is an encoder (bert): it gives embeddings, not next-token logits, so it cannot "
                            "generate text or score perplexity");
  Tokenizer tok = load_tokenizer(g);
  Weights w;
  if (adapters.empty()) {
    w = load_weights(g);
  } else {
    Params p = read_config(g).is_encoder() ? load_encoder_params(g, false) : load_params(g, false);
    for (const AdapterSpec& a : adapters) {
      Lora l = load_adapter(format::GgufFile::open(a.path), p.cfg);
      l.user_scale = a.scale;
      merge_lora(p, l);
    }
    // Each matrix back in its file type (load_params scanned the values). The file's tensor
    // order is the architecture's; p's is param_layout's (qwen2 keeps its biases apart).
    const FileTensors f = file_tensors(g, p.cfg);
    const std::vector<format::GgmlType> file_types = inference_types(f);
    std::vector<format::GgmlType> types;
    for (size_t i = 0; i < p.views.size(); ++i)
      types.push_back(file_types[spec_index(f, view_source(p.cfg, p.views, i).name)]);
    w = quantize_weights(p, types);
  }
  if (tok.vocab_size() != w.cfg.n_vocab)
    throw FormatError(path, "tokenizer has " + std::to_string(tok.vocab_size()) + " tokens but the model " +
                                std::to_string(w.cfg.n_vocab));
  const bool bos = tok.add_bos();
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
  const std::string k = cfg.arch.name + ".classifier.output_labels";
  if (const auto* names = g.try_get_string_array(k)) labels = *names;
  if (labels.empty())
    for (int i = 0; i < cfg.n_cls; ++i) labels.push_back(std::to_string(i));
  if (int(labels.size()) != cfg.n_cls)
    throw FormatError(g.path(), "key '" + k + "' has " + std::to_string(labels.size()) +
                                    " labels, but cls.output.weight has " + std::to_string(cfg.n_cls) + " rows");
  return labels;
}

namespace {

// The start of an F32 model file of architecture `arch` (UsageError when the tokenizer does not
// fit the model), and its end: the tokenizer and p's tensors (Params, LstmParams) in order.
void begin_model_file(format::GgufWriter& out, const char* arch, const std::string& name, const Tokenizer& tok,
                      int n_vocab) {
  if (tok.vocab_size() != n_vocab)
    throw UsageError("tokenizer has " + std::to_string(tok.vocab_size()) + " pieces but the model " +
                     std::to_string(n_vocab) + " embeddings");
  out.set_string(format::kKeyArchitecture, arch);
  out.set_string(format::kKeyName, name);
  out.set_u32(format::kKeyFileType, 0);  // all tensors F32
}
// A classifier's label names, which must be one per output (UsageError otherwise).
const std::vector<std::string>& checked_labels(const ModelConfig& c, const std::vector<std::string>& labels) {
  if (int(labels.size()) != c.n_cls)
    throw UsageError("classifier has " + std::to_string(c.n_cls) + " outputs but " + std::to_string(labels.size()) +
                     " label names");
  return labels;
}

void add_f32(format::GgufWriter& out, const std::string& name, int rows, int cols, const float* data) {
  std::vector<int64_t> ne = rows == 1 ? std::vector<int64_t>{cols} : std::vector<int64_t>{cols, rows};
  out.add_tensor(name, format::GgmlType::F32, ne, data);
}

template <class P>
void end_model_file(format::GgufWriter& out, const P& p, const Tokenizer& tok) {
  add_tokenizer(tok, out, true);
  for (const ParamView& v : p.views) add_f32(out, v.name, v.rows, v.cols, p.w.data() + v.offset);
}

// phi3's tensors in its file order, q, k, v and gate, up fused: each group is adjacent in
// param_layout, so a fused tensor is its first view's rows and the ones after.
void end_fused_model_file(format::GgufWriter& out, const Params& p, const Tokenizer& tok) {
  add_tokenizer(tok, out, true);
  for (const TensorSpec& t : find_arch(p.cfg.arch.name)->tensors(p.cfg)) {
    size_t i = p.find(t.name);
    if (t.role == Role::Qkv || t.role == Role::GateUp) {
      i = layer_param(t.layer, t.role == Role::Qkv ? kWq : kWg);
      const ParamView& last = p.views[layer_param(t.layer, t.role == Role::Qkv ? kWv : kWu)];
      LM_ASSERT(p.views[i].offset + size_t(t.rows) * size_t(t.cols) == last.offset + size_t(last.rows) * size_t(last.cols));
    }
    if (i == p.views.size()) continue;  // an optional tensor the model lacks (output.weight when tied)
    add_f32(out, t.name, t.rows, t.cols, p.get(i));
  }
}

}  // namespace

void add_lstm_model(format::GgufWriter& out, const LstmParams& p, const Tokenizer& tok, const std::string& name) {
  const LstmConfig& c = p.cfg;
  begin_model_file(out, "lstm", name, tok, c.n_vocab);
  out.set_u32("lstm.context_length", uint32_t(c.n_ctx));
  out.set_u32("lstm.embedding_length", uint32_t(c.n_embd));
  out.set_u32("lstm.block_count", uint32_t(c.n_layer));
  out.set_u32("lstm.hidden_size", uint32_t(c.n_hidden));
  out.set_u32("lstm.projection_size", uint32_t(c.n_proj));
  out.set_u32("lstm.vocab_size", uint32_t(c.n_vocab));
  end_model_file(out, p, tok);
}

// A decoder classifier's labels and pooling, under its architecture's name; nothing without a head.
static void add_classifier_keys(format::GgufWriter& out, const ModelConfig& c, const std::vector<std::string>& labels) {
  if (c.n_cls == 0) return;
  out.set_array_string(c.arch.name + ".classifier.output_labels", checked_labels(c, labels));
  out.set_u32(c.arch.name + ".pooling_type", uint32_t(c.cls_pooling));
}

// The sizes every transformer file gives under its architecture's name: context, width, layers,
// feed-forward width, heads.
static void add_shape_keys(format::GgufWriter& out, const ModelConfig& c) {
  const std::string a = c.arch.name + ".";
  out.set_u32(a + "context_length", uint32_t(c.n_ctx));
  out.set_u32(a + "embedding_length", uint32_t(c.n_embd));
  out.set_u32(a + "block_count", uint32_t(c.n_layer));
  out.set_u32(a + "feed_forward_length", uint32_t(c.n_ff));
  out.set_u32(a + "attention.head_count", uint32_t(c.n_head));
}

void add_encoder_model(format::GgufWriter& out, const Params& p, const Tokenizer& tok, const std::string& name,
                       const std::vector<std::string>& labels) {
  const ModelConfig& c = p.cfg;
  LM_ASSERT(c.is_encoder());
  begin_model_file(out, "bert", name, tok, c.n_vocab);
  add_shape_keys(out, c);
  out.set_f32("bert.attention.layer_norm_epsilon", c.norm_eps);
  out.set_bool("bert.attention.causal", false);
  // Sentence embeddings: the mean of the hidden states; a classifier: its pooling (rank: the
  // first token through the head, which llama.cpp applies too).
  out.set_u32("bert.pooling_type", uint32_t(c.n_cls > 0 ? c.cls_pooling : kPoolMean));
  out.set_u32("bert.vocab_size", uint32_t(c.n_vocab));
  if (c.n_cls > 0) out.set_array_string("bert.classifier.output_labels", checked_labels(c, labels));
  out.set_u32("tokenizer.ggml.token_type_count", uint32_t(c.arch.n_token_types));
  end_model_file(out, p, tok);
}

void add_model(format::GgufWriter& out, const Params& p, const Tokenizer& tok, const std::string& name,
               const std::vector<std::string>& labels) {
  const ModelConfig& c = p.cfg;
  if (c.is_gpt2()) {  // llama.cpp's gpt2 keys; the tensors in the file's layout
    begin_model_file(out, "gpt2", name, tok, c.n_vocab);
    add_shape_keys(out, c);
    out.set_f32("gpt2.attention.layer_norm_epsilon", c.norm_eps);
    add_classifier_keys(out, c, labels);
    end_model_file(out, p, tok);
    return;
  }
  LM_ASSERT(c.trainable_decoder());
  begin_model_file(out, c.arch.name.c_str(), name, tok, c.n_vocab);
  auto key = [&](const char* suffix) { return c.arch.name + "." + suffix; };
  add_shape_keys(out, c);
  out.set_u32(key("attention.head_count_kv"), uint32_t(c.n_head_kv));
  out.set_u32(key("rope.dimension_count"), uint32_t(c.head_dim()));
  if (c.n_head_dim != 0) {  // as llama.cpp's converter writes a head size other than width / heads
    out.set_u32(key("attention.key_length"), uint32_t(c.n_head_dim));
    out.set_u32(key("attention.value_length"), uint32_t(c.n_head_dim));
  }
  out.set_f32(key("rope.freq_base"), c.rope_base);
  out.set_f32(key("attention.layer_norm_rms_epsilon"), c.norm_eps);
  out.set_u32(key("vocab_size"), uint32_t(c.n_vocab));
  if (c.is_gemma2()) {  // the keys llama.cpp's converter writes for Gemma 2
    out.set_f32(key("attn_logit_softcapping"), c.arch.attn_softcap);
    out.set_f32(key("final_logit_softcapping"), c.arch.final_softcap);
    out.set_u32(key("attention.sliding_window"), uint32_t(c.arch.sliding_window));
  }
  add_classifier_keys(out, c, labels);
  if (c.fused_projections())
    end_fused_model_file(out, p, tok);
  else
    end_model_file(out, p, tok);
}

}  // namespace lm::model
