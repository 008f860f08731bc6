// The architecture registry and the keys every architecture shares (docs/architectures.md).
#include "model/arch.hpp"

#include <cmath>

#include "base/error.hpp"

namespace lm::model {

// One per file in lib/model/arch/.
extern const ArchDef kArchLlama, kArchQwen2, kArchPhi3, kArchGpt2, kArchGemma2, kArchBert, kArchLstm;

namespace {
const ArchDef* const kArchs[] = {&kArchBert, &kArchGemma2, &kArchGpt2, &kArchLlama, &kArchLstm, &kArchPhi3, &kArchQwen2};
}

const ArchDef* find_arch(const std::string& name) {
  for (const ArchDef* a : kArchs)
    if (name == a->name) return a;
  return nullptr;
}

std::string arch_names() {
  std::string s;
  for (const ArchDef* a : kArchs) s += (s.empty() ? "" : ", ") + std::string(a->name);
  return s;
}

int read_u32_in(const format::GgufFile& g, const std::string& key, uint32_t lo, uint32_t hi) {
  const uint32_t v = g.get_u32(key);
  if (v < lo || v > hi)
    throw FormatError(g.path(), "key '" + key + "' is " + std::to_string(v) + ", expected " + std::to_string(lo) +
                                    " to " + std::to_string(hi));
  return int(v);
}

void read_common(const format::GgufFile& g, ModelConfig& c, const char* eps_key) {
  const std::string& path = g.path();
  const std::string a = c.arch.name + ".";
  auto bounded = [&](const std::string& k, uint32_t lo, uint32_t hi) { return read_u32_in(g, k, lo, hi); };
  c.n_ctx = bounded(a + "context_length", 1, 1u << 20);
  c.n_embd = bounded(a + "embedding_length", 2, 1u << 16);
  c.n_layer = bounded(a + "block_count", 1, 1024);
  c.n_ff = bounded(a + "feed_forward_length", 1, 1u << 20);
  c.n_head = bounded(a + "attention.head_count", 1, uint32_t(c.n_embd));
  c.n_head_kv = g.has(a + "attention.head_count_kv") ? bounded(a + "attention.head_count_kv", 1, uint32_t(c.n_head))
                                                     : c.n_head;
  const std::string eps = a + eps_key;
  c.norm_eps = g.get_f32(eps);
  if (!(c.norm_eps > 0 && c.norm_eps < 1))
    throw FormatError(path, "key '" + eps + "' is " + std::to_string(c.norm_eps) + ", expected a value in (0, 1)");
  if (auto kl = g.try_get_u32(a + "attention.key_length")) {
    const uint32_t vl = g.try_get_u32(a + "attention.value_length").value_or(*kl);
    if (*kl < 2 || *kl > 1024 || *kl % 2 != 0 || vl != *kl)
      throw FormatError(path, "keys '" + a + "attention.key_length' " + std::to_string(*kl) + " and value_length " +
                                  std::to_string(vl) + ", expected equal even head sizes of at most 1024");
    if (c.n_embd % c.n_head != 0 || int(*kl) != c.n_embd / c.n_head) c.n_head_dim = int(*kl);
  }
  if (c.n_head_dim == 0 && c.n_embd % c.n_head != 0)
    throw FormatError(path, "embedding length " + std::to_string(c.n_embd) + " is not a multiple of head count " +
                                std::to_string(c.n_head));
  if (c.n_head % c.n_head_kv != 0)
    throw FormatError(path, "head count " + std::to_string(c.n_head) + " is not a multiple of kv head count " +
                                std::to_string(c.n_head_kv));
  if (c.arch.learned_pos) return;
  c.rope_base = g.try_get_f32(a + "rope.freq_base").value_or(10000.0f);
  if (!(c.rope_base > 1 && std::isfinite(c.rope_base)))
    throw FormatError(path, "key '" + a + "rope.freq_base' is " + std::to_string(c.rope_base) + ", expected > 1");
  if (auto rd = g.try_get_u32(a + "rope.dimension_count")) {
    if (*rd < 2 || int(*rd) > c.head_dim() || *rd % 2 != 0)
      throw FormatError(path, "key '" + a + "rope.dimension_count' is " + std::to_string(*rd) +
                                  ", expected an even number from 2 to the head size " + std::to_string(c.head_dim()));
    c.arch.n_rot = int(*rd) == c.head_dim() ? 0 : int(*rd);
  }
  // As llama.cpp reads them: rope.scaling.attn_factor multiplies cos and sin whatever the type;
  // the factor scales the frequencies for every type but none; longrope's work is done by the
  // rope_factors tensors (phi3).
  if (auto af = g.try_get_f32(a + "rope.scaling.attn_factor")) {
    if (!(*af > 0 && *af < 100))
      throw FormatError(path, "key '" + a + "rope.scaling.attn_factor' is " + std::to_string(*af) +
                                  ", expected a value in (0, 100)");
    c.arch.rope_attn_factor = *af;
  }
  const std::string type = g.try_get_string(a + "rope.scaling.type").value_or("none");
  if (type != "none" && type != "linear" && type != "yarn" && type != "longrope")
    throw FormatError(path, "key '" + a + "rope.scaling.type' is '" + type + "', expected none, linear, yarn or longrope");
  if (type == "none") return;
  const bool needs_factor = type != "longrope";
  if (needs_factor || g.has(a + "rope.scaling.factor")) {
    const float f = g.get_f32(a + "rope.scaling.factor");
    if (!(f >= 1 && f <= 1024))
      throw FormatError(path, "key '" + a + "rope.scaling.factor' is " + std::to_string(f) + ", expected 1 to 1024");
    c.arch.rope_freq_scale = 1.0f / f;
  }
  if (type == "yarn") {
    c.arch.yarn_ctx_orig = int(g.try_get_u32(a + "rope.scaling.original_context_length").value_or(uint32_t(c.n_ctx)));
    if (c.arch.yarn_ctx_orig < 1 || c.arch.yarn_ctx_orig > (1 << 20))
      throw FormatError(path, "key '" + a + "rope.scaling.original_context_length' is " +
                                  std::to_string(c.arch.yarn_ctx_orig) + ", expected 1 to 1048576");
    // llama.cpp's magnitude factor, in its float steps: get_mscale(factor) / (1 + 0.1 ln factor)
    // in the context's parameters, times attn_factor, times (1 + 0.1 ln (1 / freq_scale)) in
    // the RoPE kernel. (llama.cpp reads no yarn_ext_factor, yarn_attn_factor or beta keys for
    // these architectures, and neither does lm: ext factor 1, betas 32 and 1.)
    const float freq_scale = c.arch.rope_freq_scale, factor = 1.0f / freq_scale;
    float m = factor <= 1.0f ? 1.0f : 0.1f * 1.0f * std::log(factor) + 1.0f;
    m *= 1.0f / (1.0f + 0.1f * std::log(factor));
    m *= c.arch.rope_attn_factor;
    m *= 1.0f + 0.1f * std::log(1.0f / freq_scale);
    c.arch.rope_attn_factor = m;
  }
}

size_t find_spec(const std::vector<TensorSpec>& specs, const std::string& name) {
  size_t i = 0;
  while (i < specs.size() && specs[i].name != name) ++i;
  return i;
}

TensorMap map_tensors(const std::vector<TensorSpec>& specs, int n_layer) {
  TensorMap m;
  std::array<int, kRoles> none;
  none.fill(-1);
  m.layer.assign(size_t(n_layer), none);
  for (size_t i = 0; i < specs.size(); ++i) {
    const TensorSpec& s = specs[i];
    if (s.layer < 0)
      m.top[size_t(s.role)] = int(i);
    else
      m.layer[size_t(s.layer)][size_t(s.role)] = int(i);
  }
  return m;
}

TensorSpec layer_weight(int l, const char* name, Role role, int rows, int cols, bool required) {
  return {"blk." + std::to_string(l) + "." + name + ".weight", role, l, rows, cols, required};
}

TensorSpec layer_bias(int l, const char* name, Role role, int n, bool required) {
  return {"blk." + std::to_string(l) + "." + name + ".bias", role, l, 1, n, required};
}

void add_cls_specs(std::vector<TensorSpec>& s, const ModelConfig& c) {
  if (c.n_cls == 0) return;
  s.push_back({"cls.output.weight", Role::ClsW, -1, c.n_cls, c.n_embd, true});
  s.push_back({"cls.output.bias", Role::ClsB, -1, 1, c.n_cls, true});
}

}  // namespace lm::model
