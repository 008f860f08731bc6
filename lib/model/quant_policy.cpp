#include "model/quant_policy.hpp"

#include <algorithm>
#include <cctype>
#include <cstdio>

#include "base/error.hpp"

namespace lm::quant {

using format::GgmlType;

namespace {

std::string lower(std::string_view s) {
  std::string r(s);
  for (char& c : r) c = char(std::tolower(static_cast<unsigned char>(c)));
  return r;
}

bool ends_with(std::string_view s, std::string_view suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

uint32_t block_of(GgmlType t) { return format::ggml_type_info(t).block; }

bool is_float(GgmlType t) { return t == GgmlType::F32 || t == GgmlType::F16 || t == GgmlType::BF16; }

// The layer of "blk.N.<rest>", or -1.
int layer_of(std::string_view name) {
  if (name.substr(0, 4) != "blk.") return -1;
  int n = 0;
  size_t i = 4;
  if (i >= name.size() || !std::isdigit(static_cast<unsigned char>(name[i]))) return -1;
  for (; i < name.size() && std::isdigit(static_cast<unsigned char>(name[i])); ++i) {
    n = n * 10 + (name[i] - '0');
    if (n > (1 << 24)) return -1;
  }
  return i < name.size() && name[i] == '.' ? n : -1;
}

// llama.cpp's tensor_allows_quantization for the llama architecture.
bool is_weight_matrix(const format::GgufTensorInfo& t) {
  return t.n_dims >= 2 && ends_with(t.name, "weight") && t.name.find("_norm.weight") == std::string::npos;
}

}  // namespace

const std::vector<FileTypeInfo>& file_types() {
  static const std::vector<FileTypeInfo> kTypes = {
      {FileType::F32, "f32", 0, GgmlType::F32},          {FileType::F16, "f16", 1, GgmlType::F16},
      {FileType::BF16, "bf16", 32, GgmlType::BF16},      {FileType::Q8_0, "q8_0", 7, GgmlType::Q8_0},
      {FileType::Q6_K, "q6_k", 18, GgmlType::Q6_K},      {FileType::Q5_K_M, "q5_k_m", 17, GgmlType::Q5_K},
      {FileType::Q5_0, "q5_0", 8, GgmlType::Q5_0},       {FileType::Q4_K_M, "q4_k_m", 15, GgmlType::Q4_K},
      {FileType::Q4_1, "q4_1", 3, GgmlType::Q4_1},       {FileType::Q4_0, "q4_0", 2, GgmlType::Q4_0},
      {FileType::Q3_K_M, "q3_k_m", 12, GgmlType::Q3_K},  {FileType::Q2_K, "q2_k", 10, GgmlType::Q2_K},
  };
  return kTypes;
}

const FileTypeInfo& file_type_info(FileType t) {
  for (const auto& i : file_types())
    if (i.type == t) return i;
  assert_fail("file_type_info: unknown FileType", __FILE__, __LINE__);
}

std::optional<FileType> try_parse_file_type(std::string_view name) {
  const std::string n = lower(name);
  if (n == "q4_k") return FileType::Q4_K_M;
  if (n == "q5_k") return FileType::Q5_K_M;
  if (n == "q3_k") return FileType::Q3_K_M;
  for (const auto& i : file_types())
    if (n == i.name) return i.type;
  return std::nullopt;
}

bool is_quantized(FileType t) { return !is_float(file_type_info(t).base); }

std::string llama_ftype_name(uint32_t ftype) {
  static const char* const kNames[] = {
      "f32",     "f16",    "q4_0",   "q4_1",    nullptr,   nullptr,  nullptr,  "q8_0",    "q5_0",   "q5_1",
      "q2_k",    "q3_k_s", "q3_k_m", "q3_k_l",  "q4_k_s",  "q4_k_m", "q5_k_s", "q5_k_m",  "q6_k",   "iq2_xxs",
      "iq2_xs",  "q2_k_s", "iq3_xs", "iq3_xxs", "iq1_s",   "iq4_nl", "iq3_s",  "iq3_m",   "iq2_s",  "iq2_m",
      "iq4_xs",  "iq1_m",  "bf16",   nullptr,   nullptr,   nullptr,  "tq1_0",  "tq2_0",   "mxfp4_moe", "nvfp4",
      "q1_0",    "q2_0",
  };
  const uint32_t n = ftype & ~1024u;  // LLAMA_FTYPE_GUESSED
  if (n < sizeof kNames / sizeof kNames[0] && kNames[n]) return kNames[n];
  return "unknown";
}

namespace {

const GgmlType kTensorTypes[] = {GgmlType::F32,  GgmlType::F16,  GgmlType::BF16,   GgmlType::Q8_0, GgmlType::Q4_0,
                                 GgmlType::Q4_1, GgmlType::Q5_0, GgmlType::Q5_1,   GgmlType::IQ4_NL, GgmlType::Q2_K,
                                 GgmlType::Q3_K, GgmlType::Q4_K, GgmlType::Q5_K,   GgmlType::Q6_K, GgmlType::IQ4_XS};

// llama.cpp's tensor_type_fallback for rows a type's blocks do not fill; F16 where it has none.
GgmlType fallback_for(GgmlType t) {
  switch (t) {
    case GgmlType::Q2_K: case GgmlType::Q3_K: return GgmlType::Q4_0;
    case GgmlType::Q4_K: return GgmlType::Q5_0;
    case GgmlType::Q5_K: return GgmlType::Q5_1;
    case GgmlType::Q6_K: return GgmlType::Q8_0;
    case GgmlType::IQ4_XS: return GgmlType::IQ4_NL;
    default: return GgmlType::F16;
  }
}

}  // namespace

std::optional<GgmlType> try_parse_tensor_type(std::string_view name) {
  const std::string n = lower(name);
  for (GgmlType t : kTensorTypes)
    if (n == lower(format::ggml_type_info(t).name)) return t;
  return std::nullopt;
}

const char* tensor_type_names() {
  static const std::string names = [] {
    std::string s;
    for (GgmlType t : kTensorTypes) s += std::string(s.empty() ? "" : ", ") + format::ggml_type_info(t).name;
    return s;
  }();
  return names.c_str();
}

TensorTypeOverride parse_tensor_type_override(const std::string& spec) {
  const size_t eq = spec.rfind('=');
  const std::string ctx = "--tensor-type '" + spec + "'";
  if (eq == std::string::npos)
    throw UsageError(ctx + ": expected REGEX=TYPE, e.g. 'attn_v=q8_0'");
  TensorTypeOverride o;
  o.spec = spec;
  o.pattern = spec.substr(0, eq);
  if (o.pattern.empty()) throw UsageError(ctx + ": the pattern before '=' is empty, expected REGEX=TYPE");
  const auto type = try_parse_tensor_type(std::string_view(spec).substr(eq + 1));
  if (!type)
    throw UsageError(ctx + ": unknown tensor type '" + spec.substr(eq + 1) + "', expected one of " +
                     tensor_type_names());
  o.type = *type;
  try {
    o.re = std::regex(o.pattern, std::regex::ECMAScript);
  } catch (const std::regex_error& e) {
    throw UsageError(ctx + ": bad regular expression '" + o.pattern + "': " + e.what());
  }
  return o;
}

bool use_more_bits(int i_layer, int n_layer) {
  return i_layer < n_layer / 8 || i_layer >= 7 * n_layer / 8 || (i_layer - n_layer / 8) % 3 == 2;
}

namespace {

// llama_tensor_get_type_impl's rules for the llama architecture (dense) of mixture file types:
// the type of blk.N.attn_v / ffn_down / attn_output when it is not the file type's base type;
// with an importance matrix also q4_0's and q5_0's first ffn_down layers. llama.cpp counts attn_v and ffn_down tensors in file order, which is
// the layer order of llama files; lm reads the layer from the name.
std::optional<GgmlType> mixture_type(FileType type, const std::string& name, int n_layer, int n_gqa,
                                     bool has_imatrix) {
  const int layer = layer_of(name);
  if (layer < 0) return std::nullopt;
  const bool attn_v = name.find("attn_v.weight") != std::string::npos;
  const bool ffn_down = name.find("ffn_down") != std::string::npos;
  const bool attn_output = name.find("attn_output.weight") != std::string::npos;
  switch (type) {
    case FileType::Q4_K_M:
    case FileType::Q5_K_M:
      if ((attn_v || ffn_down) && use_more_bits(layer, n_layer)) return GgmlType::Q6_K;
      break;
    case FileType::Q3_K_M:
      if (attn_v) return layer < 2 ? GgmlType::Q5_K : GgmlType::Q4_K;
      if (ffn_down) return layer < n_layer / 16 ? GgmlType::Q5_K : GgmlType::Q4_K;
      if (attn_output) return GgmlType::Q4_K;
      break;
    case FileType::Q2_K:
      if (attn_v) return n_gqa >= 4 ? GgmlType::Q4_K : GgmlType::Q3_K;
      if (ffn_down || attn_output) return GgmlType::Q3_K;
      break;
    case FileType::Q4_0:
    case FileType::Q5_0:
      // llama.cpp's guard against "craziness in the first few ffn_down layers", only with an
      // importance matrix (so that a file made without one keeps its old bytes).
      if (ffn_down && has_imatrix && layer < n_layer / 8) return type == FileType::Q4_0 ? GgmlType::Q4_1 : GgmlType::Q5_1;
      break;
    default: break;
  }
  return std::nullopt;
}

}  // namespace

const char* reason_name(Reason r) {
  switch (r) {
    case Reason::Copy: return "copy";
    case Reason::FileType: return "type";
    case Reason::Output: return "output";
    case Reason::MoreBits: return "more bits";
    case Reason::Override: return "override";
  }
  return "?";
}

bool TensorPlan::requantized() const { return in != out && !is_float(in); }

const TensorPlan* Plan::first_requantized() const {
  for (const auto& t : tensors)
    if (t.requantized()) return &t;
  return nullptr;
}

Plan make_plan(const std::vector<format::GgufTensorInfo>& tensors, FileType type,
               const std::vector<TensorTypeOverride>& overrides, int n_layer, int n_gqa, bool has_imatrix) {
  const FileTypeInfo& ft = file_type_info(type);
  const bool quantized = is_quantized(type);
  bool tied = true;
  for (const auto& t : tensors)
    if (t.name == "output.weight") tied = false;

  Plan plan;
  plan.type = type;
  for (const auto& t : tensors) {
    TensorPlan p;
    p.name = t.name;
    p.ne.assign(t.ne, t.ne + t.n_dims);
    p.in = p.out = t.type;
    p.n_elements = t.n_elements();
    p.bytes_in = t.n_bytes;
    p.weight = is_weight_matrix(t);
    if (p.weight) {
      const int64_t nx = t.ne[0];
      p.reason = Reason::FileType;
      p.out = ft.base;
      for (size_t i = 0; i < overrides.size(); ++i)
        if (std::regex_search(t.name, overrides[i].re)) {
          p.out = overrides[i].type;
          p.reason = Reason::Override;
          p.override_index = int(i);
          break;
        }
      if (p.reason != Reason::Override && quantized) {
        if (t.name == "output.weight" || (tied && t.name == "token_embd.weight")) {
          // llama.cpp picks q6_K and then falls back to q8_0 for rows q6_K cannot hold: the
          // same types, but no warning for a rule.
          p.out = ft.base == GgmlType::Q8_0 || nx % block_of(GgmlType::Q6_K) != 0 ? GgmlType::Q8_0 : GgmlType::Q6_K;
          p.reason = Reason::Output;
        } else if (const std::optional<GgmlType> more = mixture_type(type, t.name, n_layer, n_gqa, has_imatrix)) {
          p.out = *more;
          p.reason = Reason::MoreBits;
        }
      }
      if (nx % block_of(p.out) != 0) {
        p.fallback_from = p.out;
        p.out = fallback_for(p.out);
        if (nx % block_of(p.out) != 0) p.out = GgmlType::F16;
        char w[256];
        std::snprintf(w, sizeof w, "tensor '%s' has %lld values per row, not a multiple of %u for %s: it is %s instead",
                      t.name.c_str(), (long long)nx, block_of(*p.fallback_from),
                      format::ggml_type_info(*p.fallback_from).name, format::ggml_type_info(p.out).name);
        plan.warnings.push_back(w);
      }
    }
    if (p.out == p.in) {
      p.bytes_out = p.bytes_in;
    } else {
      const bool ok = format::ggml_tensor_bytes(p.out, t.ne, t.n_dims, &p.bytes_out);
      LM_ASSERT(ok);  // the shape fits p.out: checked above, and the reader checked the sizes
    }
    plan.n_elements += p.n_elements;
    plan.bytes_in += p.bytes_in;
    plan.bytes_out += p.bytes_out;
    if (p.weight) {
      plan.weight_elements += p.n_elements;
      plan.weight_bytes_in += p.bytes_in;
      plan.weight_bytes_out += p.bytes_out;
    }
    plan.tensors.push_back(std::move(p));
  }
  return plan;
}

}  // namespace lm::quant
