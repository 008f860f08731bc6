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
  // The projections adapted in every layer: kWq, kWk, kWv, kWo, kWg, kWu, kWd.
  std::vector<LayerParam> targets{kWq, kWk, kWv, kWo};
};

// Parses "q,k,v,o,gate,up,down", "attn" (q,k,v,o), "mlp" (gate,up,down) or "all" into targets.
// Throws UsageError naming the bad item.
std::vector<LayerParam> parse_lora_targets(const std::string& spec);

struct Lora {
  // Zero-initialised pairs for every target of every layer. Throws UsageError for a rank
  // outside [1, min(in, out)] or dropout outside [0, 1).
  Lora(const ModelConfig& base, const LoraOptions& o);
  ModelConfig base;
  LoraOptions opt;
  std::vector<ParamView> views;   // a, b, a, b, ...: "blk.L.attn_q.weight.lora_a" (r, in), ".lora_b" (out, r)
  LargeVector<float> w, grad;
  float user_scale = 1.0f;        // --lora FILE:SCALE

  float scale() const { return user_scale * opt.alpha / float(opt.rank); }
  // View index of the A matrix adapting (layer, v), or -1; B is the next view.
  int pair(int layer, LayerParam v) const { return slot_[size_t(layer) * kLayerParams + v]; }
  float* get(size_t view) { return w.data() + views[view].offset; }
  const float* get(size_t view) const { return w.data() + views[view].offset; }
  // A ~ U(-1/sqrt(in), 1/sqrt(in)) and B = 0 (PEFT's initialisation): training starts at the base model.
  void init(Rng& rng);

 private:
  std::vector<int> slot_;
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
