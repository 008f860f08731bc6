// The Llama-style decoder (docs/architecture.md): configuration and presets, one flat parameter
// buffer with a view per tensor, and an explicit forward/backward pass over buffers allocated
// once (llm.c style). Loading and saving GGUF files is left to the callers of these views.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "base/memory.hpp"
#include "base/rng.hpp"

namespace lm::model {

// The most labels a sequence classifier has: files and data with more are refused.
inline constexpr int kMaxLabels = 1 << 16;

// The layer choices of an architecture (docs/architectures.md); the defaults are llama's.
enum class NormKind : uint8_t { Rms, Layer };        // LayerNorm: with a bias when the file has one
enum class FfnKind : uint8_t { SwiGLU, GeGLU, Gelu };
struct ArchOptions {
  std::string name = "llama";  // general.architecture
  NormKind norm = NormKind::Rms;
  FfnKind ffn = FfnKind::SwiGLU;
  bool learned_pos = false;    // position_embd.weight instead of RoPE
  bool neox = false;           // RoPE pairs (x[i], x[i + n_rot/2]) instead of (x[2i], x[2i+1])
  int n_rot = 0;               // rotary dimensions of a head (partial RoPE); 0 = the head size
  float rope_freq_scale = 1;   // linear RoPE scaling: 1 / rope.scaling.factor
  float rope_attn_factor = 1;  // cos and sin times this (rope.scaling.attn_factor; LongRoPE)
  int rope_ctx_orig = 0;       // LongRoPE: rope_factors_long beyond this context, short up to it
  // YaRN (rope.scaling.type yarn): pair i's angle mixes the scaled (rope_freq_scale) and the
  // unscaled frequency by a ramp between llama.cpp's correction dimensions for this original
  // context; rope_attn_factor then carries YaRN's magnitude factor (docs/architectures.md).
  int yarn_ctx_orig = 0;       // 0: no YaRN
  bool causal = true;          // false: an encoder (bidirectional attention)
  float attn_scale = 0;        // 0: 1 / sqrt(head size)
  float attn_softcap = 0, final_softcap = 0;  // 0: none
  int sliding_window = 0;      // 0: none
  int swa_pattern = 0;         // > 0: only layers l with l % swa_pattern < swa_pattern - 1 use the window
  bool embd_scale = false;     // embeddings times sqrt(C) (Gemma)
  bool post_norms = false;     // norms after attention and MLP (Gemma 2)
  bool post_ln = false;        // BERT: x = norm(x + attention), x = norm(x + MLP); no head
  int n_token_types = 2;       // BERT: rows of token_types.weight (tokenizer.ggml.token_type_count)
};

struct ModelConfig {
  int n_vocab = 8192;   // V
  int n_ctx = 512;      // longest sequence T the model is trained for
  int n_layer = 6;      // L
  int n_embd = 384;     // C
  int n_head = 6;       // H
  int n_head_kv = 6;    // kv heads; divides n_head (grouped-query attention when smaller)
  int n_ff = 1024;      // F, the SwiGLU hidden width
  int n_head_dim = 0;   // D when it is not n_embd / n_head (attention.key_length): q is H*D wide
  // An LSTM (arch.name "lstm", docs/lstm.md) reads n_ctx as its training window, n_embd as the
  // embedding width E, n_ff as the units per layer H, n_proj as its projection width P (0: none);
  // n_head and n_head_kv are 1.
  int n_proj = 0;
  float norm_eps = 1e-5f;
  float rope_base = 10000.0f;
  bool tied = true;     // the lm head is token_embd (no output.weight)
  int n_cls = 0;        // labels of a sequence classifier (cls.output.weight/.bias); 0 = none, else 2 to kMaxLabels
  int cls_pooling = 3;  // what the classifier reads: kPoolMean or kPoolLast (llama.pooling_type)
  ArchOptions arch;     // how the layers are built; training supports llama's, qwen2's, phi3's and gpt2's (load_params checks)

  int head_dim() const { return n_head_dim ? n_head_dim : n_embd / n_head; }  // D
  int q_dim() const { return n_head * head_dim(); }              // width of the queries
  int n_rot() const { return arch.n_rot ? arch.n_rot : head_dim(); }
  bool is_llama() const { return arch.name == "llama"; }
  bool is_lstm() const { return arch.name == "lstm"; }
  bool is_encoder() const { return arch.name == "bert"; }  // docs/encoder.md
  // A decoder of the layout Model trains: llama, qwen2 (llama with q, k, v biases and RoPE in
  // NEOX order) or phi3 (below).
  bool is_qwen2() const { return arch.name == "qwen2"; }
  bool qkv_bias() const { return is_qwen2(); }
  // phi3: llama with RoPE in NEOX order, whose files fuse q, k, v (attn_qkv: q rows, k rows,
  // v rows) and gate, up (ffn_up: gate rows, up rows). Training keeps llama's separate views;
  // the loader splits the fused tensors and add_model fuses them again, and a LoRA pair on a
  // fused tensor is one pair (A shared, B's rows split), as the file has it.
  bool is_phi3() const { return arch.name == "phi3"; }
  bool fused_projections() const { return is_phi3(); }
  // The decoders Model trains (Params, add_model, a classifier head): llama, qwen2, phi3. The one
  // list of them; an architecture that gains the backward passes joins it here.
  bool trainable_decoder() const { return is_llama() || is_qwen2() || is_phi3() || is_gemma2(); }
  // gemma2 (docs/architectures.md): llama's layout plus a norm after each layer's attention and
  // MLP (post_norm_param), trained with its layer options: embeddings times sqrt(C), GeGLU,
  // soft-capped attention scores and logits, a head size of its own.
  bool is_gemma2() const { return arch.name == "gemma2"; }
  // gpt2 (docs/architectures.md): pre-LN blocks with LayerNorm and biases, learned positions,
  // fused q/k/v with a bias, a GELU MLP, biases on every linear layer, a final LayerNorm. Model
  // trains it (lm-train --arch gpt2, lm-finetune, LoRA with attn_qkv as one pair, a classifier
  // head) in the file's own layout (gpt2_param).
  bool is_gpt2() const { return arch.name == "gpt2"; }
  // The longest context an inference Session takes: n_ctx, or 2^30 for an LSTM, whose state
  // does not grow with the sequence. And the context lm-generate and lm-serve use when not told:
  // n_ctx, or for an LSTM the larger of its training window and 4096.
  int max_context() const { return is_lstm() ? 1 << 30 : n_ctx; }
  int default_context() const { return is_lstm() ? (n_ctx > 4096 ? n_ctx : 4096) : n_ctx; }
  int kv_dim() const { return n_head_kv * head_dim(); }
  // Attention scores scaled by 1 / sqrt(head size), the scale training computes (Gemma 2 27B's
  // files scale by 1 / sqrt(width / heads) instead).
  bool head_size_score_scale() const;
  // The width of the final hidden state (what the output layer reads): n_embd, or for an LSTM
  // its layers' output width, P, or H without a projection.
  int out_width() const { return is_lstm() ? (n_proj ? n_proj : n_ff) : n_embd; }
  // Throws UsageError naming the first bad field and its allowed range.
  void validate() const;
  size_t n_params() const;
};

// Pooling of the final hidden states for a classifier, numbered as llama.cpp's pooling_type:
// the mean, the last token (decoders), or rank: the first token (an encoder's [CLS]) through
// the head, as llama.cpp's rank pooling reads a bert classifier.
inline constexpr int kPoolMean = 1, kPoolLast = 3, kPoolRank = 4;

// Throws UsageError "NAME V is out of range [LO, HI]" unless LO <= v <= HI: a configuration
// field's check.
void check_range(const char* name, long v, long lo, long hi);

// cfg (its sizes) made a gpt2 (arch "gpt2": LayerNorm with biases, learned positions, GELU MLP,
// biases everywhere), as many key/value heads as heads, no classifier; tied unless cfg is not.
ModelConfig gpt2_config(ModelConfig cfg);

// Presets "tiny", "small", "medium" (docs/architecture.md, decisions). Throws UsageError.
ModelConfig preset(const std::string& name);

// A view into the flat parameter (or gradient) buffer. Weights are row-major [out][in], which
// is GGUF's ne = {in, out}.
struct ParamView {
  std::string name;       // GGUF tensor name
  size_t offset = 0;      // in floats
  int rows = 1, cols = 1; // [out][in]; norms are 1 x C
};

// Parameter layout: the GGUF tensor list in file order. An encoder's (cfg.is_encoder()) is the
// bert architecture's tensor list (encoder.hpp); the rest of this file describes the decoder's.
std::vector<ParamView> param_layout(const ModelConfig& cfg);

// Indices into param_layout(): token_embd.weight is 0, then kLayerParams per layer in this
// order, then (qwen2) the biases attn_q.bias, attn_k.bias, attn_v.bias of each layer, then
// output_norm.weight, (untied) output.weight and, for a classifier, the head cls.output.weight
// (n_cls, C) and cls.output.bias (1, n_cls) over the last token's final hidden state
// (llama.cpp's names for a classification head).
enum LayerParam : size_t { kAttnNorm, kWq, kWk, kWv, kWo, kFfnNorm, kWg, kWu, kWd, kLayerParams };
inline size_t layer_param(int l, LayerParam v) { return 1 + size_t(l) * kLayerParams + v; }
// Layer l's bias of q (j = 0), k (1) or v (2); only when cfg.qkv_bias().
inline size_t qkv_bias_param(const ModelConfig& c, int l, int j) {
  return 1 + size_t(c.n_layer) * kLayerParams + 3 * size_t(l) + size_t(j);
}
// gpt2's layout (its file's order): token_embd.weight 0, position_embd.weight 1, then
// kGpt2LayerParams per layer in this order, then output_norm.weight and .bias and (untied)
// output.weight. kGQkv is attn_qkv (q rows, then k, then v; kGQkvB likewise).
enum Gpt2LayerParam : size_t {
  kGAttnNorm, kGAttnNormB, kGQkv, kGQkvB, kGO, kGOB, kGFfnNorm, kGFfnNormB, kGUp, kGUpB, kGDown, kGDownB,
  kGpt2LayerParams
};
inline size_t gpt2_param(int l, Gpt2LayerParam v) { return 2 + size_t(l) * kGpt2LayerParams + v; }
// Layer l's norm after attention (j = 0: post_attention_norm) or after the MLP (j = 1:
// post_ffw_norm); only when cfg.arch.post_norms (gemma2).
inline size_t post_norm_param(const ModelConfig& c, int l, int j) {
  return 1 + size_t(c.n_layer) * (kLayerParams + (c.qkv_bias() ? 3 : 0)) + 2 * size_t(l) + size_t(j);
}
inline size_t output_norm_param(const ModelConfig& c) {
  if (c.is_gpt2()) return 2 + size_t(c.n_layer) * kGpt2LayerParams;
  return 1 + size_t(c.n_layer) * (kLayerParams + (c.qkv_bias() ? 3 : 0) + (c.arch.post_norms ? 2 : 0));
}
// The lm head: output.weight, or token_embd.weight when tied.
inline size_t head_param(const ModelConfig& c) {
  return c.tied ? 0 : output_norm_param(c) + (c.is_gpt2() ? 2 : 1);
}
// Layer l's views: [first, end) in param_layout() (qwen2's q, k, v biases are elsewhere).
inline std::pair<size_t, size_t> layer_views(const ModelConfig& c, int l) {
  if (c.is_gpt2()) return {gpt2_param(l, kGAttnNorm), gpt2_param(l + 1, kGAttnNorm)};
  return {layer_param(l, kAttnNorm), layer_param(l + 1, kAttnNorm)};
}
// The classification head's weight (its bias is the next view); only when n_cls > 0. An
// encoder's is after its layers (encoder.hpp: kEncTop + L kEncLayerParams).
inline size_t cls_param(const ModelConfig& c) {
  if (c.is_gpt2()) return output_norm_param(c) + (c.tied ? 2 : 3);  // after the final norm's bias
  return c.is_encoder() ? 5 + size_t(c.n_layer) * 16 : output_norm_param(c) + (c.tied ? 1 : 2);
}

// Where layer l's projection v is in a file that fuses it with others (phi3: q, k, v rows in
// attn_qkv; gate, up rows in ffn_up): the fused tensor's name, its rows, and the first of them
// that are v's. The name is empty when v is a tensor of its own (every other architecture,
// and phi3's o and down). The loader, add_model's inverse and LoRA read phi3's layout here.
struct FusedRows {
  std::string name;
  int rows = 0, row0 = 0;
};
FusedRows fused_rows(const ModelConfig& c, int l, LayerParam v);

// Weights and their gradients, each one flat buffer. Allocated once.
struct Params {
  // Without gradients (with_grad false) for inference: grad stays empty.
  explicit Params(const ModelConfig& cfg, bool with_grad = true);
  ModelConfig cfg;
  std::vector<ParamView> views;
  // grad holds the gradients of the views that have one, packed in view order: with every view,
  // grad's layout is w's.
  LargeVector<float> w, grad;
  float* get(size_t view) { return w.data() + views[view].offset; }
  const float* get(size_t view) const { return w.data() + views[view].offset; }
  // (Re)allocates zeroed gradients for the views with keep[i] != 0 only (every view when keep is
  // empty), so that fine-tuning a few tensors does not hold a gradient for every weight.
  void alloc_grad(const std::vector<uint8_t>& keep = {});
  // The gradient of `view`, or nullptr when it has none.
  float* grad_of(size_t view) { return has_grad(view) ? grad.data() + grad_offset[view] : nullptr; }
  bool has_grad(size_t view) const { return grad_offset[view] != kNoGrad; }
  // Index of the view named `name`, or views.size().
  size_t find(const std::string& name) const;
  // N(0, 0.02) weights, unit norm gains and zero biases (the PyTorch peer's, bench/torch_peer.py).
  void init(Rng& rng);

 private:
  static constexpr size_t kNoGrad = ~size_t(0);
  std::vector<size_t> grad_offset;  // per view: where its gradient starts in grad, or kNoGrad
};

// A classifier's head output: z (b, K) holds logits and is turned into probabilities (softmax,
// in place). With labels (b; < 0 = not scored) returns the mean cross-entropy of the scored rows
// and leaves in z its gradient with respect to the logits, (p - onehot) / scored (0 for
// unscored rows), the count in *scored; without, returns 0.
float class_softmax_xent(float* z, const int* labels, int b, int K, int* scored = nullptr);

// Right-pads token rows (none empty; each cut to max_len) into tokens (rows.size(), t) with each
// row's last token, the form forward_classify() reads, and writes their lengths. Returns t.
int pad_rows(std::span<const std::vector<int>* const> rows, int max_len, int* tokens, int* lengths);

// What a Model allocates besides one layer's activations. lm_logits: the (B, T, n_vocab)
// logits forward() needs (a classifier run by forward_classify only does without).
// trunk_backward: every layer's activations and the backward scratch, so that backward() can
// reach below the head; without it the layers share one set of buffers (inference, or a
// linear probe, whose backward stops at the head).
struct ModelBuffers {
  bool lm_logits = true;
  bool trunk_backward = true;
};

struct Lora;
class LoraPass;

// A teacher's targets for one forward (distillation, docs/distillation.md): for each row the
// model scores (a token; for a classifier, a text), the teacher's logits (or log-probabilities)
// at k ids, with the weight alpha of the soft term and the temperature.
struct SoftTargets {
  const float* logits = nullptr;  // (rows, k)
  const int* ids = nullptr;       // (rows, k); nullptr: k is the vocabulary (or the labels), id i at column i
  int k = 0;
  float alpha = 0.5f, temp = 2.0f;
};

// Activations for batches of up to B x T tokens, allocated once and reused every step.
class Model {
 public:
  // Throws UsageError for a bad config or B, T outside [1, n_ctx].
  Model(const ModelConfig& cfg, int B, int T, ModelBuffers buffers = {});
  ~Model();
  Model(const Model&) = delete;
  Model& operator=(const Model&) = delete;

  // Runs the model on tokens (B, T). If targets (B, T) is given, returns the mean cross-entropy
  // over targets >= 0 and leaves dlogits ready for backward(); else returns 0 and keeps logits.
  // Token ids must be < n_vocab (checked by the caller). b <= B rows, t <= T columns are used.
  // With soft targets (b * t rows; needs targets), the loss and gradient are distillation's
  // (kernels::distill_forward_backward) instead.
  float forward(const Params& p, const int* tokens, const int* targets, int b, int t,
                const SoftTargets* soft = nullptr);
  // Adds the gradients of the last forward()'s mean loss into p.grad (callers zero it). A view
  // without a gradient in p (Params::alloc_grad) is frozen: its gradient is not computed. When
  // nothing below the head trains (no LoRA, every view up to output_norm frozen: a linear
  // probe), backward() stops at the head.
  void backward(Params& p);
  // Logits (b, t, V) of the last forward() without targets.
  const float* logits() const;

  // Sequence classification (cfg.n_cls > 0): the head reads the final hidden state of token
  // lengths[i] - 1 of row i (kPoolLast) or the mean over its tokens 0 .. lengths[i] - 1
  // (kPoolMean); rows are right-padded. With labels (b; < 0 = not scored) returns
  // the mean cross-entropy and leaves the gradient for backward(); else returns 0 and keeps the
  // class probabilities.
  // With soft targets (b rows, over the labels; needs labels), distillation's loss and gradient.
  float forward_classify(const Params& p, const int* tokens, const int* lengths, const int* labels, int b, int t,
                         const SoftTargets* soft = nullptr);
  // The mean KL term over the scored rows of the last forward with soft targets (0 otherwise).
  float last_kl() const { return last_kl_; }
  // Class probabilities (b, n_cls) of the last forward_classify() without labels.
  const float* class_probs() const;

  // Applies `lora` (not owned; nullptr = none) in forward and backward; its gradients are added
  // into lora->grad. Allocates the adapter's activations once.
  void set_lora(Lora* lora);
  // Training mode draws dropout masks (the model's and LoRA's) from `seed` (callers pass a new
  // one per batch, e.g. from their sampler position, so that a resumed run draws the same
  // masks); off, no dropout.
  void set_training(bool on, uint64_t seed = 0);
  // Dropout rate in [0, 1) while training, on the token embeddings, the output of every
  // attention and MLP branch before it joins the residual stream, and a classifier's pooled
  // input (GPT-2's embd_pdrop and resid_pdrop). Kept elements are scaled by 1 / (1 - p).
  void set_dropout(float p);
  // Called by backward() with l after layer l's gradients are complete (layers n_layer - 1 down
  // to 0; the head's, the final norm's and the embeddings' are not, until backward() returns),
  // so that data-parallel training can start summing them while backward goes on (run_loop).
  // Empty: not called.
  void set_on_layer_grads(std::function<void(int)> f) { on_layer_grads_ = std::move(f); }
  // Bytes of activations held (for --dry-run memory estimates).
  size_t activation_bytes() const;

 private:
  struct Acts;
  void trunk(const Params& p, const int* tokens, int b, int t);
  // gpt2s layers: tokens to the final norm's output; and from the gradient of
  // that output (in dxn) to the weights.
  void trunk_gpt2(const Params& p, int b, int t);
  void backward_gpt2(Params& p);
  void lora_forward(int l, LayerParam v, const float* x, float* y, int N, int in, int out);
  void lora_backward(int l, LayerParam v, const float* x, const float* dy, float* dx, int N, int in, int out);
  // Multiplies y[0 .. n) by the dropout mask of `site` (forward and backward alike).
  void drop(float* y, size_t n, uint64_t site) const;
  bool dropping() const { return training_ && dropout_ > 0; }
  // Whether any weight below the head (the trunk, the embeddings, the final norm) or a LoRA
  // pair takes a gradient.
  bool trunk_trains(const Params& p) const;
  ModelConfig cfg_;
  int B_, T_;
  int b_ = 0, t_ = 0;
  const int* tokens_ = nullptr;
  std::unique_ptr<Acts> a_;
  bool trunk_backward_;  // every layer's activations are kept (ModelBuffers)
  std::unique_ptr<LoraPass> lora_;  // the attached adapter (set_lora), always allocated
  bool training_ = false;
  uint64_t dropout_seed_ = 0;
  float dropout_ = 0;
  float last_kl_ = 0;
  std::function<void(int)> on_layer_grads_;
};

}  // namespace lm::model
