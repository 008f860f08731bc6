// LoRA pairs: layout, initialisation, the adapter file and merging.
#include "model/lora.hpp"

#include <algorithm>
#include <cmath>

#include "base/error.hpp"
#include "kernels/blas.hpp"
#include "quant/quant.hpp"

namespace lm::model {

namespace {

constexpr const char* kTypeKey = "general.type";
constexpr const char* kAdapterTypeKey = "adapter.type";
constexpr const char* kAlphaKey = "adapter.lora.alpha";

}  // namespace

std::vector<LayerParam> parse_lora_targets(const std::string& spec) {
  std::vector<LayerParam> t;
  auto add = [&](LayerParam v) {
    if (std::find(t.begin(), t.end(), v) == t.end()) t.push_back(v);
  };
  size_t start = 0;
  while (start <= spec.size()) {
    const size_t comma = std::min(spec.find(',', start), spec.size());
    const std::string item = spec.substr(start, comma - start);
    if (item == "q") add(kWq);
    else if (item == "k") add(kWk);
    else if (item == "v") add(kWv);
    else if (item == "o") add(kWo);
    else if (item == "gate") add(kWg);
    else if (item == "up") add(kWu);
    else if (item == "down") add(kWd);
    else if (item == "attn") for (LayerParam v : {kWq, kWk, kWv, kWo}) add(v);
    else if (item == "mlp") for (LayerParam v : {kWg, kWu, kWd}) add(v);
    else if (item == "all") for (LayerParam v : {kWq, kWk, kWv, kWo, kWg, kWu, kWd}) add(v);
    else
      throw UsageError("LoRA target '" + item + "', expected q, k, v, o, gate, up, down, attn, mlp or all");
    start = comma + 1;
  }
  std::sort(t.begin(), t.end());
  return t;
}

Lora::Lora(const ModelConfig& c, const LoraOptions& o) : base(c), opt(o), slot_(size_t(c.n_layer) * kLayerParams, -1) {
  if (!(o.dropout >= 0 && o.dropout < 1))
    throw UsageError("LoRA dropout " + std::to_string(o.dropout) + " is out of range [0, 1)");
  if (!(o.alpha > 0 && std::isfinite(o.alpha))) throw UsageError("LoRA alpha must be > 0");
  if (o.targets.empty()) throw UsageError("no LoRA targets");
  const std::vector<ParamView> layout = param_layout(c);
  size_t off = 0;
  for (int l = 0; l < c.n_layer; ++l) {
    for (LayerParam v : o.targets) {
      const ParamView& bv = layout[layer_param(l, v)];
      if (o.rank < 1 || o.rank > std::min(bv.rows, bv.cols))
        throw UsageError("LoRA rank " + std::to_string(o.rank) + " is out of range [1, " +
                         std::to_string(std::min(bv.rows, bv.cols)) + "] for " + bv.name);
      slot_[size_t(l) * kLayerParams + v] = int(views.size());
      views.push_back({bv.name + ".lora_a", off, o.rank, bv.cols});
      off += size_t(o.rank) * bv.cols;
      views.push_back({bv.name + ".lora_b", off, bv.rows, o.rank});
      off += size_t(bv.rows) * o.rank;
    }
  }
  w.assign(off, 0.0f);
  grad.assign(off, 0.0f);
}

void Lora::init(Rng& rng) {
  for (size_t i = 0; i < views.size(); i += 2) {
    const ParamView& a = views[i];
    const float bound = 1.0f / std::sqrt(float(a.cols));
    float* p = get(i);
    for (size_t j = 0; j < size_t(a.rows) * a.cols; ++j) p[j] = bound * (2.0f * rng.uniform() - 1.0f);
    const ParamView& b = views[i + 1];
    std::fill(get(i + 1), get(i + 1) + size_t(b.rows) * b.cols, 0.0f);
  }
}

bool is_adapter(const format::GgufFile& g) { return g.try_get_string(kTypeKey).value_or("") == "adapter"; }

void add_adapter(format::GgufWriter& out, const Lora& l, const std::string& name) {
  out.set_string(format::kKeyArchitecture, "llama");
  out.set_string(kTypeKey, "adapter");
  out.set_string(kAdapterTypeKey, "lora");
  out.set_string(format::kKeyName, name);
  out.set_f32(kAlphaKey, l.opt.alpha);
  for (const ParamView& v : l.views)
    out.add_tensor(v.name, format::GgmlType::F32, {v.cols, v.rows}, l.w.data() + v.offset);
}

Lora load_adapter(const format::GgufFile& g, const ModelConfig& base) {
  const std::string& path = g.path();
  if (!is_adapter(g)) throw FormatError(path, "is not a LoRA adapter (general.type is not 'adapter')");
  if (auto t = g.try_get_string(kAdapterTypeKey); t && *t != "lora")
    throw FormatError(path, "adapter type '" + *t + "', expected 'lora'");
  const std::string arch = g.try_get_string(format::kKeyArchitecture).value_or("");
  if (arch != "llama") throw FormatError(path, "adapter architecture '" + arch + "', expected 'llama'");
  LoraOptions o;
  o.alpha = 0;
  o.targets.clear();
  o.rank = 0;
  const std::vector<ParamView> layout = param_layout(base);
  // Which (layer, v) pairs are present, and their rank.
  for (int l = 0; l < base.n_layer; ++l)
    for (LayerParam v : {kWq, kWk, kWv, kWo, kWg, kWu, kWd}) {
      const std::string n = layout[layer_param(l, v)].name;
      const format::GgufTensorInfo* a = g.find_tensor(n + ".lora_a");
      const format::GgufTensorInfo* b = g.find_tensor(n + ".lora_b");
      if (!a && !b) continue;
      if (!a || !b) throw FormatError(path, "tensor '" + n + (a ? ".lora_b" : ".lora_a") + "' is missing");
      // The rank is checked here, against the file, so that Lora's own check (a usage error
      // for --lora-rank) is never what reports a bad file.
      const ParamView& w = layout[layer_param(l, v)];
      const int64_t max_rank = std::min(w.rows, w.cols);
      if (a->ne[1] < 1 || a->ne[1] > max_rank)
        throw FormatError(path, "tensor '" + n + ".lora_a' has rank " + std::to_string(a->ne[1]) +
                                    " (its second dimension), expected 1 to " + std::to_string(max_rank));
      const int r = int(a->ne[1]);
      if (o.rank == 0) o.rank = r;
      if (r != o.rank)
        throw FormatError(path, "tensor '" + n + ".lora_a' has rank " + std::to_string(r) + ", but others have " +
                                    std::to_string(o.rank) + "; adapters of mixed rank are not supported");
      if (std::find(o.targets.begin(), o.targets.end(), v) == o.targets.end()) o.targets.push_back(v);
    }
  if (o.targets.empty()) throw FormatError(path, "adapter has no .lora_a/.lora_b pairs for this model's tensors");
  std::sort(o.targets.begin(), o.targets.end());
  o.alpha = g.try_get_f32(kAlphaKey).value_or(float(o.rank));  // llama.cpp: no alpha means scale 1
  if (!(o.alpha > 0 && std::isfinite(o.alpha)))
    throw FormatError(path, "key '" + std::string(kAlphaKey) + "' is " + std::to_string(o.alpha) + ", expected > 0");
  Lora l(base, o);
  // Every tensor is one of the pairs: none of another kind, none for a layer this model lacks.
  for (const auto& t : g.tensors()) {
    const bool pair = t.name.size() > 7 && (t.name.ends_with(".lora_a") || t.name.ends_with(".lora_b"));
    if (!pair) throw FormatError(path, "tensor '" + t.name + "' is not a .lora_a/.lora_b tensor");
    if (std::none_of(l.views.begin(), l.views.end(), [&](const ParamView& v) { return v.name == t.name; }))
      throw FormatError(path, "tensor '" + t.name + "' adapts no projection of this " +
                                  std::to_string(base.n_layer) + "-layer model (an adapter of another base model?)");
  }
  for (const ParamView& v : l.views) {
    const format::GgufTensorInfo* t = g.find_tensor(v.name);
    if (!t)
      throw FormatError(path, "tensor '" + v.name + "' is missing; an adapter must cover the same projections in every layer");
    if (t->n_dims != 2 || t->ne[0] != v.cols || t->ne[1] != v.rows)
      throw FormatError(path, "tensor '" + v.name + "' has shape {" + std::to_string(t->ne[0]) + ", " +
                                  std::to_string(t->ne[1]) + "}, expected {" + std::to_string(v.cols) + ", " +
                                  std::to_string(v.rows) + "} (an adapter of another base model?)");
    if (t->type != format::GgmlType::F32 && t->type != format::GgmlType::F16 && t->type != format::GgmlType::BF16)
      throw FormatError(path, "tensor '" + v.name + "' has type " + format::ggml_type_info(t->type).name +
                                  ", expected f32, f16 or bf16");
    quant::dequantize_rows(t->type, t->data, l.w.data() + v.offset, size_t(v.rows), size_t(v.cols));
  }
  l.grad = {};  // applying an adapter needs no gradients
  return l;
}

void merge_lora(Params& p, const Lora& l) {
  for (int layer = 0; layer < l.base.n_layer; ++layer)
    for (LayerParam v : l.opt.targets) {
      const int i = l.pair(layer, v);
      const ParamView& a = l.views[size_t(i)];
      const ParamView& b = l.views[size_t(i) + 1];
      // W (out, in) += scale * B (out, r) A (r, in)
      kernels::sgemm(false, false, b.rows, a.cols, a.rows, l.scale(), l.get(size_t(i) + 1), b.cols, l.get(size_t(i)),
                     a.cols, 1.0f, p.get(layer_param(layer, v)), a.cols);
    }
}

}  // namespace lm::model
