// Hugging Face directories as llama.cpp's converter writes them (docs/hf_import.md). The names,
// permutations and keys follow convert_hf_to_gguf.py and gguf-py's tensor_mapping.py for the
// classes below; what the converter does per class is written out here.
#include "model/hf_import.hpp"

#include <cmath>
#include <cstring>
#include <optional>
#include <set>

#include "base/error.hpp"
#include "base/file.hpp"
#include "base/json.hpp"
#include "model/tokenizer_loader.hpp"
#include "tokenizer/hf_tokenizer.hpp"

namespace lm::model {

namespace {

struct HfClass {
  const char* hf;    // config.json "architectures"[0]
  const char* arch;  // general.architecture
};
constexpr HfClass kClasses[] = {{"LlamaForCausalLM", "llama"}, {"MistralForCausalLM", "llama"},
                                {"Qwen2ForCausalLM", "qwen2"}, {"Phi3ForCausalLM", "phi3"},
                                {"GPT2LMHeadModel", "gpt2"},   {"Gemma2ForCausalLM", "gemma2"}};

std::string shape_text(const std::vector<int64_t>& s) {
  std::string t = "[";
  for (size_t i = 0; i < s.size(); ++i) t += (i ? ", " : "") + std::to_string(s[i]);
  return t + "]";
}

// config.json with its checks: every error names the file and the key.
class Config {
 public:
  Config(std::string path, Json j) : path_(std::move(path)), j_(std::move(j)) {}
  const std::string& path() const { return path_; }
  bool has(const char* k) const { return j_.contains(k) && !j_[k].is_null(); }
  [[noreturn]] void bad(const char* k, const std::string& expected) const {
    throw FormatError(path_, "key '" + std::string(k) + "' is " + (j_.contains(k) ? j_[k].dump() : "missing") +
                                 ", expected " + expected);
  }
  int64_t integer(const char* k, int64_t lo, int64_t hi) const {
    if (!has(k) || !j_[k].is_number_integer()) bad(k, "an integer from " + std::to_string(lo) + " to " + std::to_string(hi));
    const int64_t v = j_[k].get<int64_t>();
    if (v < lo || v > hi) bad(k, "an integer from " + std::to_string(lo) + " to " + std::to_string(hi));
    return v;
  }
  std::optional<int64_t> opt_integer(const char* k, int64_t lo, int64_t hi) const {
    if (!has(k)) return std::nullopt;
    return integer(k, lo, hi);
  }
  double number(const char* k, double lo, double hi) const {
    if (!has(k) || !j_[k].is_number()) bad(k, "a number");
    const double v = j_[k].get<double>();
    if (!(v >= lo && v <= hi)) bad(k, "a number from " + std::to_string(lo) + " to " + std::to_string(hi));
    return v;
  }
  std::optional<double> opt_number(const char* k, double lo, double hi) const {
    if (!has(k)) return std::nullopt;
    return number(k, lo, hi);
  }
  std::optional<std::string> opt_string(const char* k) const {
    if (!has(k)) return std::nullopt;
    if (!j_[k].is_string()) bad(k, "a string");
    return j_[k].get<std::string>();
  }
  bool flag(const char* k, bool def) const {
    if (!has(k)) return def;
    if (!j_[k].is_boolean()) bad(k, "true or false");
    return j_[k].get<bool>();
  }
  // The value of a string key, which must be one of `allowed` when present.
  void require_string(const char* k, std::initializer_list<const char*> allowed) const {
    const auto v = opt_string(k);
    if (!v) return;
    std::string list;
    for (const char* a : allowed) {
      if (*v == a) return;
      list += (list.empty() ? "" : " or ") + std::string(a);
    }
    bad(k, list);
  }
  const Json& json() const { return j_; }

 private:
  std::string path_;
  Json j_;
};

}  // namespace

std::string hf_arch_names() {
  std::string s;
  for (const HfClass& c : kClasses) s += (s.empty() ? "" : ", ") + std::string(c.hf);
  return s;
}

// Builds an HfModel: the keys, then the tensors in the converter's names.
struct HfBuilder {
  HfModel& m;
  const Config& cfg;
  std::set<std::string> used;

  void u32(const std::string& k, int64_t v) {
    m.keys_.push_back([k, v](format::GgufWriter& w) { w.set_u32(k, uint32_t(v)); });
  }
  void f32(const std::string& k, double v) {
    m.keys_.push_back([k, v](format::GgufWriter& w) { w.set_f32(k, float(v)); });
  }
  void str(const std::string& k, const std::string& v) {
    m.keys_.push_back([k, v](format::GgufWriter& w) { w.set_string(k, v); });
  }

  // The HF tensor `name`, which must have `shape` and a float dtype.
  const format::SafetensorsTensor* need(const std::string& name, const std::vector<int64_t>& shape,
                                        bool required = true) {
    const format::SafetensorsTensor* t = m.st_->find(name);
    if (!t) {
      if (!required) return nullptr;
      throw FormatError(m.st_->path(), "has no tensor '" + name + "', which " + m.arch_ + " needs (shape " +
                                           shape_text(shape) + " from config.json)");
    }
    const std::string& file = m.st_->file_of(*t).path();
    if (t->shape != shape)
      throw FormatError(file, "tensor '" + name + "' has shape " + shape_text(t->shape) + ", expected " +
                                  shape_text(shape) + " from config.json");
    using D = format::SafetensorsDtype;
    if (t->dtype != D::F32 && t->dtype != D::F16 && t->dtype != D::BF16 && t->dtype != D::F64)
      throw FormatError(file, "tensor '" + name + "' has dtype " + format::safetensors_dtype_name(t->dtype) +
                                  ", expected F32, F16, BF16 or F64");
    used.insert(name);
    return t;
  }
  // Adds GGUF tensor `gguf` made from HF tensor `hf` of `shape` ([rows, cols] or [n]).
  void add(const std::string& gguf, const std::string& hf, const std::vector<int64_t>& shape,
           HfModel::Op op = HfModel::Op::Copy, int heads = 0, bool required = true) {
    const format::SafetensorsTensor* t = need(hf, shape, required);
    if (!t) return;
    HfModel::Out o;
    o.name = gguf;
    o.src = t;
    o.op = op;
    o.heads = heads;
    // GGUF's ne is PyTorch's shape reversed; GPT-2's Conv1D [in, out] transposed is [out, in],
    // whose ne is {in, out}: the HF shape itself.
    if (op == HfModel::Op::Transpose) o.ne = shape;
    else o.ne.assign(shape.rbegin(), shape.rend());
    m.out_.push_back(std::move(o));
  }
  void add_values(const std::string& gguf, std::vector<float> v) {
    HfModel::Out o;
    o.name = gguf;
    o.op = HfModel::Op::Values;
    o.ne = {int64_t(v.size())};
    o.values = std::move(v);
    m.out_.push_back(std::move(o));
  }
  // Tensors of the file the converter would not map (it stops on them), except those it skips.
  void check_unused(const std::vector<std::string>& skipped_suffixes) {
    for (const format::SafetensorsTensor* t : m.st_->tensors()) {
      if (used.count(t->name)) continue;
      bool skip = false;
      for (const std::string& s : skipped_suffixes)
        skip = skip || (t->name.size() >= s.size() && t->name.compare(t->name.size() - s.size(), s.size(), s) == 0);
      if (!skip)
        throw FormatError(m.st_->file_of(*t).path(), "tensor '" + t->name + "' is not one of " + m.arch_ +
                                                         "'s tensors for this config.json (" + shape_text(t->shape) +
                                                         ")");
    }
  }
};

namespace {

[[noreturn]] void unsupported(const Config& c, const std::string& what) { throw FormatError(c.path(), what); }

// rope_scaling: none, linear (every RoPE architecture), llama3 (llama), yarn (llama, qwen2) or
// longrope (phi3; "su" in older configs). Returns the type ("longrope" for "su").
std::string rope_scaling(const Config& c, bool llama3_ok, bool yarn_ok, bool longrope_ok) {
  if (!c.has("rope_scaling")) return "none";
  const Json& r = c.json()["rope_scaling"];
  if (!r.is_object()) c.bad("rope_scaling", "an object or null");
  std::string type;
  for (const char* k : {"rope_type", "type"})  // rope_type first, as the converter reads them
    if (type.empty() && r.contains(k) && r[k].is_string()) type = r[k].get<std::string>();
  if (type == "default" || type.empty()) return "none";
  if ((type == "longrope" || type == "su") && longrope_ok) {
    for (const char* k : {"long_factor", "short_factor"})
      if (!r.contains(k) || !r[k].is_array() || r[k].empty())
        unsupported(c, "key 'rope_scaling." + std::string(k) + "' is " + (r.contains(k) ? r[k].dump() : std::string("missing")) +
                           ", expected a list of numbers, one per rotated pair");
    // The converter computes the magnitude factor from the context lengths and ignores this key.
    if (r.contains("attention_factor") && !r["attention_factor"].is_null())
      unsupported(c, "key 'rope_scaling.attention_factor' is set: lm runs LongRoPE with the factor llama.cpp's "
                     "converter computes, sqrt(1 + ln(scale) / ln(original context))");
    return "longrope";
  }
  if (type == "linear" || (type == "llama3" && llama3_ok) || (type == "yarn" && yarn_ok)) {
    if (!r.contains("factor") || !r["factor"].is_number() || !(r["factor"].get<double>() >= 1) ||
        !(r["factor"].get<double>() <= 1024))
      unsupported(c, "key 'rope_scaling.factor' is " + (r.contains("factor") ? r["factor"].dump() : "missing") +
                         ", expected a number from 1 to 1024");
    if (type == "yarn") {
      if (!r.contains("original_max_position_embeddings") || !r["original_max_position_embeddings"].is_number_integer() ||
          r["original_max_position_embeddings"].get<int64_t>() < 1 ||
          r["original_max_position_embeddings"].get<int64_t>() > (int64_t(1) << 20))
        unsupported(c, "key 'rope_scaling.original_max_position_embeddings' is " +
                           (r.contains("original_max_position_embeddings") ? r["original_max_position_embeddings"].dump()
                                                                           : std::string("missing")) +
                           ", expected an integer from 1 to 1048576 (YaRN's original context)");
      // lm runs YaRN as llama.cpp does, with Hugging Face's defaults: a config that changes them
      // would run differently from the model it describes.
      auto is = [&](const char* k, double def) {
        return !r.contains(k) || r[k].is_null() || (r[k].is_number() && r[k].get<double>() == def);
      };
      for (auto [k, def] : {std::pair<const char*, double>{"beta_fast", 32}, {"beta_slow", 1}, {"extrapolation_factor", 1}})
        if (!is(k, def))
          unsupported(c, "key 'rope_scaling." + std::string(k) + "' is " + r[k].dump() + ": lm runs YaRN with " + k +
                             " " + std::to_string(int(def)) + " only, as llama.cpp does");
      for (const char* k : {"attention_factor", "attn_factor", "mscale", "mscale_all_dim"})
        if (r.contains(k) && !r[k].is_null())
          unsupported(c, "key 'rope_scaling." + std::string(k) + "' is set: lm runs YaRN with the magnitude factor "
                                                                   "0.1 ln(factor) + 1 only, as llama.cpp does");
    }
    return type;
  }
  unsupported(c, "key 'rope_scaling' has type '" + type + "', expected none, linear" +
                     std::string(llama3_ok ? ", llama3" : "") + std::string(yarn_ok ? " or yarn" : "") +
                     std::string(longrope_ok ? " or longrope" : "") + " (lm does not run " + type + " scaling for this architecture)");
}

// Llama 3.1's rope_freqs.weight: per rotated pair, the divisor of its frequency, as the
// converter computes it (in float32, from factor, low_freq_factor, high_freq_factor and
// original_max_position_embeddings; its defaults 8, 1, 4 and 8192).
std::vector<float> llama3_rope_freqs(const Config& c, float base, int dim) {
  const Json& r = c.json()["rope_scaling"];
  auto get = [&](const char* k, double def) {
    if (!r.contains(k) || r[k].is_null()) return def;
    if (!r[k].is_number()) unsupported(c, "key 'rope_scaling." + std::string(k) + "' is " + r[k].dump() + ", expected a number");
    return r[k].get<double>();
  };
  const float factor = float(get("factor", 8.0)), lo = float(get("low_freq_factor", 1.0)),
              hi = float(get("high_freq_factor", 4.0)), old_ctx = float(get("original_max_position_embeddings", 8192));
  if (!(hi > lo) || !(lo > 0) || !(old_ctx >= 1))
    unsupported(c, "keys 'rope_scaling' low_freq_factor " + std::to_string(lo) + " and high_freq_factor " +
                       std::to_string(hi) + ", expected 0 < low < high, and original_max_position_embeddings >= 1");
  const float lo_wavelen = old_ctx / lo, hi_wavelen = old_ctx / hi;
  std::vector<float> f;
  for (int i = 0; i < dim; i += 2) {
    const float freq = 1.0f / std::pow(base, float(i) / float(dim));
    const float wavelen = 2.0f * float(M_PI) / freq;
    if (wavelen < hi_wavelen) {
      f.push_back(1.0f);
    } else if (wavelen > lo_wavelen) {
      f.push_back(factor);
    } else {
      const float smooth = (old_ctx / wavelen - lo) / (hi - lo);
      f.push_back(1.0f / ((1.0f - smooth) / factor + smooth));
    }
  }
  return f;
}

}  // namespace

HfModel HfModel::open(const std::string& dir) {
  HfModel m;
  m.dir_ = dir;
  const std::string cfg_path = dir + "/config.json";
  Json j;
  {
    // A missing file is an IoError naming it; config.json files are a few KB.
    const MappedFile text(cfg_path, MappedFile::Accept::Regular);
    if (text.size() > (size_t{16} << 20))
      throw FormatError(cfg_path, "is " + std::to_string(text.size()) + " bytes, expected at most 16 MiB");
    try {
      j = Json::parse(text.view());
    } catch (const std::exception& e) {
      throw FormatError(cfg_path, std::string("is not valid JSON: ") + e.what());
    }
  }
  if (!j.is_object()) throw FormatError(cfg_path, "is not a JSON object");
  const Config c(cfg_path, std::move(j));
  std::string hf;
  if (c.has("architectures") && c.json()["architectures"].is_array() && !c.json()["architectures"].empty() &&
      c.json()["architectures"][0].is_string())
    hf = c.json()["architectures"][0].get<std::string>();
  else
    c.bad("architectures", "a list naming the model class, one of " + hf_arch_names());
  for (const HfClass& k : kClasses)
    if (hf == k.hf) m.arch_ = k.arch;
  if (m.arch_.empty())
    throw FormatError(cfg_path, "architecture '" + hf + "' is not supported, expected one of " + hf_arch_names());
  m.st_ = std::make_unique<format::SafetensorsModel>(format::SafetensorsModel::open(dir));

  HfBuilder b{m, c, {}};
  const std::string& A = m.arch_;
  const std::string a = A + ".";
  constexpr int64_t kMaxDim = int64_t{1} << 20;
  const bool gpt2 = A == "gpt2";
  const int64_t C = c.integer(gpt2 ? "n_embd" : "hidden_size", 2, 1 << 16);
  const int64_t L = c.integer(gpt2 ? "n_layer" : "num_hidden_layers", 1, 1024);
  const int64_t H = c.integer(gpt2 ? "n_head" : "num_attention_heads", 1, C);
  const int64_t V = c.integer("vocab_size", 1, int64_t{1} << 24);
  m.n_vocab_ = int(V);
  int64_t Hkv = H, F = 0, D = 0, ctx = 0;
  if (gpt2) {
    ctx = c.has("n_ctx") ? c.integer("n_ctx", 1, kMaxDim) : c.integer("n_positions", 1, kMaxDim);
    // The converter writes 4 * n_embd whatever n_inner says.
    if (auto inner = c.opt_integer("n_inner", 1, kMaxDim); inner && *inner != 4 * C)
      c.bad("n_inner", "null or 4 * n_embd = " + std::to_string(4 * C) + " (llama.cpp's converter assumes it)");
    F = 4 * C;
    if (C % H != 0) c.bad("n_head", "a divisor of n_embd " + std::to_string(C));
    D = C / H;
    c.require_string("activation_function", {"gelu_new", "gelu_pytorch_tanh"});
    if (!c.flag("scale_attn_weights", true)) c.bad("scale_attn_weights", "true");
    if (c.flag("scale_attn_by_inverse_layer_idx", false)) c.bad("scale_attn_by_inverse_layer_idx", "false");
    if (c.flag("add_cross_attention", false)) c.bad("add_cross_attention", "false");
  } else {
    ctx = c.integer("max_position_embeddings", 1, kMaxDim);
    F = c.integer("intermediate_size", 1, kMaxDim);
    Hkv = c.opt_integer("num_key_value_heads", 1, H).value_or(H);
    if (H % Hkv != 0) c.bad("num_key_value_heads", "a divisor of num_attention_heads " + std::to_string(H));
    if (auto hd = c.opt_integer("head_dim", 2, 1024)) {
      D = *hd;
      if (D % 2 != 0) c.bad("head_dim", "an even number");
    } else {
      if (C % H != 0) c.bad("num_attention_heads", "a divisor of hidden_size " + std::to_string(C));
      D = C / H;
    }
  }

  b.str("general.architecture", A);
  std::string name = dir;
  while (name.size() > 1 && name.back() == '/') name.pop_back();
  name = name.substr(name.rfind('/') + 1);
  b.str("general.type", "model");
  b.str("general.name", name);
  b.u32(a + "block_count", L);
  b.u32(a + "context_length", ctx);
  b.u32(a + "embedding_length", C);
  b.u32(a + "feed_forward_length", F);
  b.u32(a + "attention.head_count", H);
  if (!gpt2) b.u32(a + "attention.head_count_kv", Hkv);

  std::string scaling = "none";
  std::vector<float> longrope[2];  // phi3 LongRoPE: long and short factors
  if (A == "llama" || A == "qwen2" || A == "phi3") {
    c.require_string("hidden_act", {"silu"});
    scaling = rope_scaling(c, A == "llama", A == "llama" || A == "qwen2", A == "phi3");
    if (scaling == "linear" || scaling == "yarn") {  // the keys and order of llama.cpp's converter
      const Json& r = c.json()["rope_scaling"];
      b.str(a + "rope.scaling.type", scaling);
      b.f32(a + "rope.scaling.factor", r["factor"].get<double>());
      if (scaling == "yarn") {
        b.u32(a + "rope.scaling.original_context_length", uint32_t(r["original_max_position_embeddings"].get<int64_t>()));
        for (auto [hf, key] : {std::pair<const char*, const char*>{"extrapolation_factor", "yarn_ext_factor"},
                               {"beta_fast", "yarn_beta_fast"}, {"beta_slow", "yarn_beta_slow"}})
          if (r.contains(hf) && !r[hf].is_null()) b.f32(a + "rope.scaling." + key, r[hf].get<double>());
      }
    }
  }
  // rope_theta: written when config.json has it (llama.cpp's default is 10000, as Hugging Face's).
  const bool has_theta = !gpt2 && c.has("rope_theta");
  const double theta = has_theta ? c.number("rope_theta", 1.0000001, 1e12) : 10000.0;
  if (has_theta && A != "gemma2") b.f32(a + "rope.freq_base", theta);
  if (A != "gpt2") b.f32(a + "attention.layer_norm_rms_epsilon", c.number("rms_norm_eps", 1e-30, 0.99));
  else b.f32(a + "attention.layer_norm_epsilon", c.number("layer_norm_epsilon", 1e-30, 0.99));
  if (A != "phi3" && A != "gemma2" && c.has("head_dim")) {
    b.u32(a + "attention.key_length", D);
    b.u32(a + "attention.value_length", D);
  }
  if (A == "llama") {
    if (c.flag("attention_bias", false)) c.bad("attention_bias", "false (lm's llama has no attention biases)");
    if (c.flag("mlp_bias", false)) c.bad("mlp_bias", "false (lm's llama has no MLP biases)");
    b.u32(a + "vocab_size", V);
    b.u32(a + "rope.dimension_count", D);
  } else if (A == "qwen2") {
    if (c.flag("use_sliding_window", false)) c.bad("use_sliding_window", "false (lm's qwen2 attends to every position)");
  } else if (A == "phi3") {
    const double pct = c.has("partial_rotary_factor") ? c.number("partial_rotary_factor", 0.01, 1.0) : 1.0;
    const int64_t rope_dims = int64_t(pct * double(C)) / H;
    if (rope_dims < 2 || rope_dims % 2 != 0 || rope_dims > D)
      c.bad("partial_rotary_factor", "a share of the head size giving an even number of rotated dimensions");
    const auto orig = c.opt_integer("original_max_position_embeddings", 1, kMaxDim);
    if (orig) b.u32(a + "rope.scaling.original_context_length", *orig);
    b.u32(a + "rope.dimension_count", rope_dims);
    if (scaling == "longrope") {
      // Phi-3.5 / 128k: per rotated pair, the long and short divisors of the frequencies as
      // tensors, and the magnitude factor as the converter computes it.
      if (!orig)
        c.bad("original_max_position_embeddings", "an integer (LongRoPE's original context)");
      const Json& r = c.json()["rope_scaling"];
      for (const char* k : {"long_factor", "short_factor"}) {
        std::vector<float> f;
        for (const Json& x : r[k]) {
          if (!x.is_number() || !(x.get<double>() > 0) || !std::isfinite(x.get<double>()))
            unsupported(c, "key 'rope_scaling." + std::string(k) + "' holds " + x.dump() + ", expected positive numbers");
          f.push_back(x.get<float>());
        }
        if (int64_t(f.size()) != rope_dims / 2)
          unsupported(c, "key 'rope_scaling." + std::string(k) + "' has " + std::to_string(f.size()) +
                             " values, expected " + std::to_string(rope_dims / 2) + " (one per rotated pair)");
        longrope[k[0] == 'l' ? 0 : 1] = std::move(f);
      }
      const double scale = double(ctx) / double(*orig);
      b.f32(a + "rope.scaling.attn_factor", scale > 1.0 ? std::sqrt(1 + std::log(scale) / std::log(double(*orig))) : 1.0);
    }
    b.u32(a + "attention.sliding_window", c.opt_integer("sliding_window", 0, kMaxDim).value_or(0));
  } else if (A == "gemma2") {
    c.require_string("hidden_activation", {"gelu_pytorch_tanh"});
    c.require_string("hidden_act", {"gelu_pytorch_tanh"});
    if (theta != 10000.0)
      c.bad("rope_theta", "10000 (llama.cpp's converter writes no rope.freq_base for gemma2)");
    if (c.has("rope_scaling")) c.bad("rope_scaling", "null");
    // lm (as llama.cpp) scales scores by 1/sqrt(head size), 1/sqrt(C/H) for the 46-layer model.
    const int64_t scalar = c.opt_integer("query_pre_attn_scalar", 1, kMaxDim).value_or(256);
    const int64_t expect = L == 46 ? C / H : D;
    if (scalar != expect) c.bad("query_pre_attn_scalar", std::to_string(expect) + ", the head size lm scales by");
    b.u32(a + "attention.key_length", D);
    b.u32(a + "attention.value_length", D);
    b.f32(a + "attn_logit_softcapping", c.number("attn_logit_softcapping", 1e-3, 1e6));
    b.f32(a + "final_logit_softcapping", c.number("final_logit_softcapping", 1e-3, 1e6));
    b.u32(a + "attention.sliding_window", c.integer("sliding_window", 1, kMaxDim));
  }
  b.u32("general.file_type", 0);  // all F32: lm-quantize converts from here
  b.u32("general.quantization_version", 2);  // the converter writes it whatever the type

  // ---- tensors ----
  using Op = HfModel::Op;
  const int64_t Q = H * D, K = Hkv * D;
  if (gpt2) {
    // The safetensors of GPT2LMHeadModel name them with or without "transformer.".
    const std::string p = m.st_->find("transformer.wte.weight") ? "transformer." : "";
    b.add("token_embd.weight", p + "wte.weight", {V, C});
    b.add("position_embd.weight", p + "wpe.weight", {ctx, C});
    for (int64_t l = 0; l < L; ++l) {
      const std::string h = p + "h." + std::to_string(l) + ".", g = "blk." + std::to_string(l) + ".";
      b.add(g + "attn_norm.weight", h + "ln_1.weight", {C});
      b.add(g + "attn_norm.bias", h + "ln_1.bias", {C});
      b.add(g + "attn_qkv.weight", h + "attn.c_attn.weight", {C, 3 * C}, Op::Transpose);
      b.add(g + "attn_qkv.bias", h + "attn.c_attn.bias", {3 * C});
      b.add(g + "attn_output.weight", h + "attn.c_proj.weight", {C, C}, Op::Transpose);
      b.add(g + "attn_output.bias", h + "attn.c_proj.bias", {C});
      b.add(g + "ffn_norm.weight", h + "ln_2.weight", {C});
      b.add(g + "ffn_norm.bias", h + "ln_2.bias", {C});
      b.add(g + "ffn_up.weight", h + "mlp.c_fc.weight", {C, F}, Op::Transpose);
      b.add(g + "ffn_up.bias", h + "mlp.c_fc.bias", {F});
      b.add(g + "ffn_down.weight", h + "mlp.c_proj.weight", {F, C}, Op::Transpose);
      b.add(g + "ffn_down.bias", h + "mlp.c_proj.bias", {C});
    }
    b.add("output_norm.weight", p + "ln_f.weight", {C});
    b.add("output_norm.bias", p + "ln_f.bias", {C});
    b.add("output.weight", "lm_head.weight", {V, C}, Op::Copy, 0, false);
    b.check_unused({".attn.bias", ".attn.masked_bias"});  // the converter skips the causal masks
  } else {
    const bool gemma = A == "gemma2";
    const Op norm = gemma ? Op::PlusOne : Op::Copy;  // Gemma's (1 + w), stored with the 1 added
    b.add("token_embd.weight", "model.embed_tokens.weight", {V, C});
    for (int64_t l = 0; l < L; ++l) {
      const std::string h = "model.layers." + std::to_string(l) + ".", g = "blk." + std::to_string(l) + ".";
      b.add(g + "attn_norm.weight", h + "input_layernorm.weight", {C}, norm);
      if (A == "phi3") {
        b.add(g + "attn_qkv.weight", h + "self_attn.qkv_proj.weight", {Q + 2 * K, C});
      } else {
        // llama: HF's q and k rows hold each head's first halves then second halves of the
        // rotated pairs (rotate_half); llama.cpp's NORM RoPE wants the pairs adjacent.
        const Op qk = A == "llama" ? Op::Permute : Op::Copy;
        b.add(g + "attn_q.weight", h + "self_attn.q_proj.weight", {Q, C}, qk, int(H));
        if (A == "qwen2") b.add(g + "attn_q.bias", h + "self_attn.q_proj.bias", {Q});
        b.add(g + "attn_k.weight", h + "self_attn.k_proj.weight", {K, C}, qk, int(Hkv));
        if (A == "qwen2") b.add(g + "attn_k.bias", h + "self_attn.k_proj.bias", {K});
        b.add(g + "attn_v.weight", h + "self_attn.v_proj.weight", {K, C});
        if (A == "qwen2") b.add(g + "attn_v.bias", h + "self_attn.v_proj.bias", {K});
      }
      b.add(g + "attn_output.weight", h + "self_attn.o_proj.weight", {C, Q});
      if (gemma) {
        b.add(g + "post_attention_norm.weight", h + "post_attention_layernorm.weight", {C}, norm);
        b.add(g + "ffn_norm.weight", h + "pre_feedforward_layernorm.weight", {C}, norm);
      } else {
        b.add(g + "ffn_norm.weight", h + "post_attention_layernorm.weight", {C});
      }
      if (A == "phi3") {
        b.add(g + "ffn_up.weight", h + "mlp.gate_up_proj.weight", {2 * F, C});
      } else {
        b.add(g + "ffn_gate.weight", h + "mlp.gate_proj.weight", {F, C});
        b.add(g + "ffn_up.weight", h + "mlp.up_proj.weight", {F, C});
      }
      b.add(g + "ffn_down.weight", h + "mlp.down_proj.weight", {C, F});
      if (gemma) b.add(g + "post_ffw_norm.weight", h + "post_feedforward_layernorm.weight", {C}, norm);
    }
    b.add("output_norm.weight", "model.norm.weight", {C}, norm);
    // Gemma 2's head is its embeddings: the converter skips an lm_head.weight.
    if (!gemma) b.add("output.weight", "lm_head.weight", {V, C}, Op::Copy, 0, false);
    else if (m.st_->find("lm_head.weight")) b.used.insert("lm_head.weight");
    if (scaling == "llama3") b.add_values("rope_freqs.weight", llama3_rope_freqs(c, float(theta), int(D)));
    if (scaling == "longrope") {
      b.add_values("rope_factors_long.weight", longrope[0]);
      b.add_values("rope_factors_short.weight", longrope[1]);
    }
    b.check_unused({".rotary_emb.inv_freq"});  // the converter skips these buffers
  }
  return m;
}

void HfModel::add_to(format::GgufWriter& w) const {
  for (const auto& k : keys_) k(w);
  for (const Out& o : out_) w.add_tensor_deferred(o.name, format::GgmlType::F32, o.ne);
}

void HfModel::write_tensor(size_t i, float* dst) const {
  const Out& o = out_[i];
  if (o.op == Op::Values) {
    std::memcpy(dst, o.values.data(), o.values.size() * sizeof(float));
    return;
  }
  const format::SafetensorsTensor& t = *o.src;
  const std::string& file = st_->file_of(t).path();
  if (o.op == Op::Copy || o.op == Op::PlusOne) {
    format::safetensors_to_float(t, dst, file);
    if (o.op == Op::PlusOne)
      for (uint64_t k = 0; k < t.elements; ++k) dst[k] += 1.0f;
    return;
  }
  std::vector<float> tmp(t.elements);
  format::safetensors_to_float(t, tmp.data(), file);
  if (o.op == Op::Permute) {
    // Row h*D + s*D/2 + i of HF (s the half) goes to row h*D + 2*i + s.
    const size_t rows = size_t(t.shape[0]), cols = t.shape.size() > 1 ? size_t(t.shape[1]) : 1;
    const size_t d = rows / size_t(o.heads), half = d / 2;
    for (size_t h = 0; h < size_t(o.heads); ++h)
      for (size_t s = 0; s < 2; ++s)
        for (size_t r = 0; r < half; ++r)
          std::memcpy(dst + (h * d + 2 * r + s) * cols, tmp.data() + (h * d + s * half + r) * cols, cols * sizeof(float));
  } else {  // Transpose: [in][out] to [out][in]
    const size_t in = size_t(t.shape[0]), out = size_t(t.shape[1]);
    for (size_t r = 0; r < in; ++r)
      for (size_t k = 0; k < out; ++k) dst[k * in + r] = tmp[r * out + k];
  }
}

void add_hf_tokenizer(const std::string& dir, int n_vocab, format::GgufWriter& w) {
  const Tokenizer tok = tok::load_hf_tokenizer(dir);
  if (tok.vocab_size() > n_vocab)
    throw FormatError(dir, "tokenizer has " + std::to_string(tok.vocab_size()) + " tokens, more than the " +
                               std::to_string(n_vocab) + " rows of the model's embeddings");
  add_tokenizer(tok, w);
}

}  // namespace lm::model
