// LoRA adapters (Hu et al. 2021): W' = W + (alpha / r) B A for chosen projections of every layer,
// A (r, in) and B (out, r), trained while the base weights stay frozen. The file form is
// llama.cpp's LoRA GGUF convention, so llama.cpp applies our adapters and we apply its:
// general.type "adapter", adapter.type "lora", adapter.lora.alpha (f32), and per
// adapted tensor W the pair "W.lora_a" (ne {in, r}) and "W.lora_b" (ne {r, out}); the scale of
// a pair is alpha / r, times the user's scale.
#pragma once

#include <string>
#include <vector>

#include "base/memory.hpp"
#include "base/rng.hpp"
#include "format/gguf.hpp"
#include "model/model.hpp"

namespace lm::model {

struct LoraOptions {
  int rank = 8;
  float alpha = 16;     // scale = alpha / rank
  float dropout = 0;    // on the adapter's input, while training
  // The projections adapted in every layer: kWq, kWk, kWv, kWo, kWg, kWu, kWd. A bert
  // encoder's MLP has no gate: kWg is dropped there when kWu is also a target ("mlp", "all").
  // A model with fused projections (ModelConfig::fused_projections, phi3) adapts a fused tensor
  // as a whole: any of q, k, v adapts attn_qkv (all three), gate or up adapts ffn_up (both).
  // gpt2 fuses q, k, v alone (attn_qkv) and has no gate.
  std::vector<LayerParam> targets{kWq, kWk, kWv, kWo};
};

// The tensor a LoRA pair on layer l's projection v adapts: its name, its shape, and the first
// of its rows that are v's (a fused tensor holds several projections). kNoView's name is empty.
// layout is param_layout(c).
struct LoraTarget {
  std::string name;
  int rows = 0, cols = 0;
  int row0 = 0;
};
LoraTarget lora_target(const ModelConfig& c, const std::vector<ParamView>& layout, int l, LayerParam v);
// The first projection of v's fused tensor (kWq for q, k, v; kWg for gate, up), or v itself.
LayerParam fused_leader(const ModelConfig& c, LayerParam v);

// Parses "q,k,v,o,gate,up,down", "attn" (q,k,v,o), "mlp" (gate,up,down) or "all" into targets.
// Throws UsageError naming the bad item.
std::vector<LayerParam> parse_lora_targets(const std::string& spec);

struct Lora {
  // Zero-initialised pairs for every target of every layer. Throws UsageError for a rank
  // outside [1, min(in, out)], dropout outside [0, 1) or a target the model lacks.
  Lora(const ModelConfig& base, const LoraOptions& o);
  ModelConfig base;
  LoraOptions opt;
  std::vector<ParamView> views;   // a, b, a, b, ...: "blk.L.attn_q.weight.lora_a" (r, in), ".lora_b" (out, r)
  LargeVector<float> w, grad;
  float user_scale = 1.0f;        // --lora FILE:SCALE

  float scale() const { return user_scale * opt.alpha / float(opt.rank); }
  // View index of the A matrix adapting (layer, v), or -1; B is the next view. The projections
  // of a fused tensor share its pair: v's rows of B start at row0(layer, v).
  int pair(int layer, LayerParam v) const { return slot_[size_t(layer) * kLayerParams + v]; }
  int row0(int layer, LayerParam v) const { return row0_[size_t(layer) * kLayerParams + v]; }
  float* get(size_t view) { return w.data() + views[view].offset; }
  const float* get(size_t view) const { return w.data() + views[view].offset; }
  // A ~ U(-1/sqrt(in), 1/sqrt(in)) and B = 0 (PEFT's initialisation): training starts at the base model.
  void init(Rng& rng);

 private:
  std::vector<int> slot_, row0_;
};

// The view of param_layout(c) that layer l's projection v is (what a pair adapts), or
// kNoView where the architecture has none (a bert encoder's gate).
inline constexpr size_t kNoView = ~size_t(0);
size_t adapted_view(const ModelConfig& c, int l, LayerParam v);

// A Lora applied inside a training model's forward and backward passes (Model, EncoderModel):
// y += scale (x' A^T) B^T for an adapted projection y = x W^T, where x' is x under the
// adapter's dropout while training. Keeps x A^T of every pair for backward; its buffers are
// allocated once, for up to `rows` token rows and inputs up to `widest` wide.
class LoraPass {
 public:
  // `site_base` offsets the dropout mask sites (one per pair) from the model's own.
  void attach(Lora* l, size_t rows, size_t widest, uint64_t site_base = 0);
  Lora* lora() const { return lora_; }
  // No-ops when nothing is attached or (l, v) is not adapted. `seed` is the model's mask seed.
  void forward(int l, LayerParam v, const float* x, float* y, int N, int in, int out, bool training, uint64_t seed);
  // Given dy (N, out): dB += s dy^T xa, dA += (s dy B)^T x', dx += (s dy B) A (through the mask).
  void backward(int l, LayerParam v, const float* x, const float* dy, float* dx, int N, int in, int out,
                bool training, uint64_t seed);
  size_t bytes() const;

 private:
  const float* input(int l, LayerParam v, const float* x, int N, int in, bool training, uint64_t seed);
  // One dropout site per pair: the projections of a fused tensor share their pair's mask.
  uint64_t site(int l, LayerParam v) const { return site_base_ + uint64_t(l) * kLayerParams + fused_leader(lora_->base, v); }
  Lora* lora_ = nullptr;
  uint64_t site_base_ = 0;
  std::vector<LargeVector<float>> xa_;  // per pair (its A view's index / 2)
  LargeVector<float> dxa_, in_, tmp_;
};

// Writes the adapter (llama.cpp's convention) with `name` as general.name. `l` must outlive out.write().
void add_adapter(format::GgufWriter& out, const Lora& l, const std::string& name);
// Reads an adapter file for a base model of config `base` (ours or llama.cpp's, f32/f16/bf16
// pairs of one rank). Throws FormatError naming the file and the key or tensor at fault.
Lora load_adapter(const format::GgufFile& g, const ModelConfig& base);
// True if g is a LoRA adapter file (general.type "adapter").
bool is_adapter(const format::GgufFile& g);
// W += scale B A for every pair: the merged model computes what base + adapter computes.
void merge_lora(Params& p, const Lora& l);

}  // namespace lm::model
