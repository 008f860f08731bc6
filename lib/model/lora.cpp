// LoRA pairs: layout, initialisation, the adapter file and merging.
#include "model/lora.hpp"

#include <algorithm>
#include <cmath>

#include "base/error.hpp"
#include "kernels/blas.hpp"
#include "model/dropout.hpp"
#include "model/encoder.hpp"
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

size_t adapted_view(const ModelConfig& c, int l, LayerParam v) {
  if (c.is_gpt2()) {  // q, k and v: the fused attn_qkv view (fused_rows gives each one's rows)
    switch (v) {
      case kWq: case kWk: case kWv: return gpt2_param(l, kGQkv);
      case kWo: return gpt2_param(l, kGO);
      case kWu: return gpt2_param(l, kGUp);
      case kWd: return gpt2_param(l, kGDown);
      default: return kNoView;
    }
  }
  if (!c.is_encoder()) return layer_param(l, v);
  switch (v) {
    case kWq: return encoder_param(l, kEncQ);
    case kWk: return encoder_param(l, kEncK);
    case kWv: return encoder_param(l, kEncV);
    case kWo: return encoder_param(l, kEncO);
    case kWu: return encoder_param(l, kEncUp);
    case kWd: return encoder_param(l, kEncDown);
    default: return kNoView;
  }
}

LayerParam fused_leader(const ModelConfig& c, LayerParam v) {
  if (!c.fused_projections() && !c.is_gpt2()) return v;
  if (v == kWk || v == kWv) return kWq;
  if (c.is_gpt2()) return v;
  return v == kWu ? kWg : v;
}

LoraTarget lora_target(const ModelConfig& c, const std::vector<ParamView>& layout, int l, LayerParam v) {
  const size_t view = adapted_view(c, l, v);
  if (view == kNoView) return {};
  const ParamView& w = layout[view];
  if (FusedRows f = fused_rows(c, l, v); !f.name.empty()) return {std::move(f.name), f.rows, w.cols, f.row0};
  return {w.name, w.rows, w.cols, 0};
}

Lora::Lora(const ModelConfig& c, const LoraOptions& o)
    : base(c), opt(o), slot_(size_t(c.n_layer) * kLayerParams, -1), row0_(slot_.size(), 0) {
  // A gate named with the rest of the MLP ("mlp", "all") on a model without one is left out.
  auto& t = opt.targets;
  if (c.n_layer > 0 && adapted_view(c, 0, kWg) == kNoView && std::count(t.begin(), t.end(), kWu))
    t.erase(std::remove(t.begin(), t.end(), kWg), t.end());
  // A fused tensor is adapted whole: one of its projections named brings the others.
  if (c.fused_projections() || c.is_gpt2()) {
    const std::vector<LayerParam> named = t;
    for (LayerParam v : {kWq, kWk, kWv, kWg, kWu})
      if (std::find(t.begin(), t.end(), v) == t.end() &&
          std::any_of(named.begin(), named.end(), [&](LayerParam n) { return fused_leader(c, n) == fused_leader(c, v); }))
        t.push_back(v);
    std::sort(t.begin(), t.end());
  }
  if (!(o.dropout >= 0 && o.dropout < 1))
    throw UsageError("LoRA dropout " + std::to_string(o.dropout) + " is out of range [0, 1)");
  if (!(o.alpha > 0 && std::isfinite(o.alpha))) throw UsageError("LoRA alpha must be > 0");
  if (t.empty()) throw UsageError("no LoRA targets");
  const std::vector<ParamView> layout = param_layout(c);
  size_t off = 0;
  for (int l = 0; l < c.n_layer; ++l) {
    for (LayerParam v : t) {
      const LoraTarget bv = lora_target(c, layout, l, v);
      if (bv.name.empty())
        throw UsageError("LoRA target '" + std::string(v == kWg ? "gate" : "?") + "': a " + c.arch.name +
                         " model has no such projection");
      const size_t s = size_t(l) * kLayerParams + v;
      row0_[s] = bv.row0;
      if (const LayerParam lead = fused_leader(c, v); lead != v) {  // the fused tensor's pair, made for lead
        slot_[s] = slot_[size_t(l) * kLayerParams + lead];
        continue;
      }
      if (o.rank < 1 || o.rank > std::min(bv.rows, bv.cols))
        throw UsageError("LoRA rank " + std::to_string(o.rank) + " is out of range [1, " +
                         std::to_string(std::min(bv.rows, bv.cols)) + "] for " + bv.name);
      slot_[s] = int(views.size());
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
  out.set_string(format::kKeyArchitecture, l.base.arch.name);
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
  if (arch != base.arch.name)
    throw FormatError(path, "adapter architecture '" + arch + "', expected the model's '" + base.arch.name + "'");
  LoraOptions o;
  o.alpha = 0;
  o.targets.clear();
  o.rank = 0;
  const std::vector<ParamView> layout = param_layout(base);
  // Which (layer, v) pairs are present, and their rank (the projections of a fused tensor
  // share its pair).
  for (int l = 0; l < base.n_layer; ++l)
    for (LayerParam v : {kWq, kWk, kWv, kWo, kWg, kWu, kWd}) {
      const LoraTarget w = lora_target(base, layout, l, v);
      if (w.name.empty()) continue;
      const std::string& n = w.name;
      const format::GgufTensorInfo* a = g.find_tensor(n + ".lora_a");
      const format::GgufTensorInfo* b = g.find_tensor(n + ".lora_b");
      if (!a && !b) continue;
      if (!a || !b) throw FormatError(path, "tensor '" + n + (a ? ".lora_b" : ".lora_a") + "' is missing");
      // The rank is checked here, against the file, so that Lora's own check (a usage error
      // for --lora-rank) is never what reports a bad file.
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
      const size_t w = adapted_view(l.base, layer, v);
      // W (out, in) += scale * B (out, r) A (r, in), with v's rows of B; where the view is the
      // fused tensor itself (gpt2's attn_qkv), v's rows of it.
      int rows = p.views[w].rows;
      float* W = p.get(w);
      if (l.base.is_gpt2() && (v == kWq || v == kWk || v == kWv)) {
        rows = v == kWq ? l.base.q_dim() : l.base.kv_dim();
        W += size_t(l.row0(layer, v)) * size_t(a.cols);
      }
      kernels::sgemm(false, false, rows, a.cols, a.rows, l.scale(),
                     l.get(size_t(i) + 1) + size_t(l.row0(layer, v)) * b.cols, b.cols, l.get(size_t(i)), a.cols, 1.0f,
                     W, a.cols);
    }
}

void LoraPass::attach(Lora* l, size_t rows, size_t widest, uint64_t site_base) {
  lora_ = l;
  site_base_ = site_base;
  xa_.clear();
  if (!l) return;
  const size_t r = size_t(l->opt.rank);
  xa_.assign(l->views.size() / 2, LargeVector<float>(rows * r));
  dxa_.assign(rows * r, 0.0f);
  if (l->opt.dropout > 0) {
    in_.assign(rows * widest, 0.0f);
    tmp_.assign(rows * widest, 0.0f);
  }
}

size_t LoraPass::bytes() const {
  size_t n = dxa_.size() + in_.size() + tmp_.size();
  for (const auto& x : xa_) n += x.size();
  return n * sizeof(float);
}

// The adapter's input: x, or x with dropout applied (scaled by 1 / (1 - p)) when training.
const float* LoraPass::input(int l, LayerParam v, const float* x, int N, int in, bool training, uint64_t seed) {
  const float p = lora_->opt.dropout;
  if (!training || p <= 0) return x;
  apply_dropout(x, in_.data(), size_t(N) * in, derive_seed(seed, site(l, v)), p);
  return in_.data();
}

void LoraPass::forward(int l, LayerParam v, const float* x, float* y, int N, int in, int out, bool training,
                       uint64_t seed) {
  if (!lora_) return;
  const int i = lora_->pair(l, v);
  if (i < 0) return;
  const int r = lora_->opt.rank;
  float* xa = xa_[size_t(i) / 2].data();  // a fused tensor's projections all read x: the same xa
  const float* xin = input(l, v, x, N, in, training, seed);
  kernels::sgemm(false, true, N, r, in, 1.0f, xin, in, lora_->get(size_t(i)), in, 0.0f, xa, r);
  const float* Bm = lora_->get(size_t(i) + 1) + size_t(lora_->row0(l, v)) * r;
  kernels::sgemm(false, true, N, out, r, lora_->scale(), xa, r, Bm, r, 1.0f, y, out);
}

void LoraPass::backward(int l, LayerParam v, const float* x, const float* dy, float* dx, int N, int in, int out,
                        bool training, uint64_t seed) {
  if (!lora_) return;
  const int i = lora_->pair(l, v);
  if (i < 0) return;
  using kernels::sgemm;
  const int r = lora_->opt.rank;
  const float s = lora_->scale();
  const float* xa = xa_[size_t(i) / 2].data();
  float* dxa = dxa_.data();
  float* dA = lora_->grad.data() + lora_->views[size_t(i)].offset;
  const size_t row0 = size_t(lora_->row0(l, v)) * r;  // v's rows of B
  float* dB = lora_->grad.data() + lora_->views[size_t(i) + 1].offset + row0;
  const float* A = lora_->get(size_t(i));
  const float* Bm = lora_->get(size_t(i) + 1) + row0;
  sgemm(true, false, out, r, N, s, dy, out, xa, r, 1.0f, dB, r);
  sgemm(false, false, N, r, out, s, dy, out, Bm, r, 0.0f, dxa, r);
  const float* xin = input(l, v, x, N, in, training, seed);
  sgemm(true, false, r, in, N, 1.0f, dxa, r, xin, in, 1.0f, dA, in);
  if (xin == x) {
    sgemm(false, false, N, in, r, 1.0f, dxa, r, A, in, 1.0f, dx, in);
    return;
  }
  // Dropout: dx += (dxa A) * mask / (1 - p); the mask is where xin kept x.
  sgemm(false, false, N, in, r, 1.0f, dxa, r, A, in, 0.0f, tmp_.data(), in);
  apply_dropout(tmp_.data(), dx, size_t(N) * in, derive_seed(seed, site(l, v)), lora_->opt.dropout, /*add=*/true);
}

}  // namespace lm::model
