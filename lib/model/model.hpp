// The Llama-style decoder (DESIGN.md decision 1): configuration and presets, one flat parameter
// buffer with a view per tensor, and an explicit forward/backward pass over buffers allocated
// once (llm.c style). Loading and saving GGUF files is left to the callers of these views.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "base/memory.hpp"
#include "base/rng.hpp"

namespace lm::model {

struct ModelConfig {
  int n_vocab = 8192;   // V
  int n_ctx = 512;      // longest sequence T the model is trained for
  int n_layer = 6;      // L
  int n_embd = 384;     // C
  int n_head = 6;       // H
  int n_head_kv = 6;    // kv heads; divides n_head (grouped-query attention when smaller)
  int n_ff = 1024;      // F, the SwiGLU hidden width
  float norm_eps = 1e-5f;
  float rope_base = 10000.0f;
  bool tied = true;     // the lm head is token_embd (no output.weight)

  int head_dim() const { return n_embd / n_head; }                // D
  int kv_dim() const { return n_head_kv * head_dim(); }
  // Throws UsageError naming the first bad field and its allowed range.
  void validate() const;
  size_t n_params() const;
};

// Presets of the issue tracker / PERFORMANCE.md: "tiny", "small", "medium". Throws UsageError.
ModelConfig preset(const std::string& name);

// A view into the flat parameter (or gradient) buffer. Weights are row-major [out][in], which
// is GGUF's ne = {in, out}.
struct ParamView {
  std::string name;       // GGUF tensor name
  size_t offset = 0;      // in floats
  int rows = 1, cols = 1; // [out][in]; norms are 1 x C
};

// Parameter layout: the GGUF tensor list in file order.
std::vector<ParamView> param_layout(const ModelConfig& cfg);

// Indices into param_layout(): token_embd.weight is 0, then kLayerParams per layer in this
// order, then output_norm.weight and (untied) output.weight.
enum LayerParam : size_t { kAttnNorm, kWq, kWk, kWv, kWo, kFfnNorm, kWg, kWu, kWd, kLayerParams };
inline size_t layer_param(int l, LayerParam v) { return 1 + size_t(l) * kLayerParams + v; }
inline size_t output_norm_param(const ModelConfig& c) { return 1 + size_t(c.n_layer) * kLayerParams; }
// The lm head: output.weight, or token_embd.weight when tied.
inline size_t head_param(const ModelConfig& c) { return c.tied ? 0 : output_norm_param(c) + 1; }

// Weights and their gradients, each one flat buffer. Allocated once.
struct Params {
  // Without gradients (with_grad false) for inference: grad stays empty.
  explicit Params(const ModelConfig& cfg, bool with_grad = true);
  ModelConfig cfg;
  std::vector<ParamView> views;
  LargeVector<float> w, grad;
  float* get(size_t view) { return w.data() + views[view].offset; }
  const float* get(size_t view) const { return w.data() + views[view].offset; }
  // Index of the view named `name`, or views.size().
  size_t find(const std::string& name) const;
  // N(0, 0.02) weights and unit norm gains (the anchors' initialisation).
  void init(Rng& rng);
};

// Activations for batches of up to B x T tokens, allocated once and reused every step.
class Model {
 public:
  // Throws UsageError for a bad config or B, T outside [1, n_ctx].
  Model(const ModelConfig& cfg, int B, int T);
  ~Model();
  Model(const Model&) = delete;
  Model& operator=(const Model&) = delete;

  // Runs the model on tokens (B, T). If targets (B, T) is given, returns the mean cross-entropy
  // over targets >= 0 and leaves dlogits ready for backward(); else returns 0 and keeps logits.
  // Token ids must be < n_vocab (checked by the caller). b <= B rows, t <= T columns are used.
  float forward(const Params& p, const int* tokens, const int* targets, int b, int t);
  // Adds the gradients of the last forward()'s mean loss into p.grad (callers zero it).
  void backward(Params& p);
  // Logits (b, t, V) of the last forward() without targets.
  const float* logits() const;
  // Bytes of activations held (for --dry-run memory estimates).
  size_t activation_bytes() const;

 private:
  struct Acts;
  ModelConfig cfg_;
  int B_, T_;
  int b_ = 0, t_ = 0;
  const int* tokens_ = nullptr;
  std::unique_ptr<Acts> a_;
};

}  // namespace lm::model
