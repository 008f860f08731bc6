// The encoder lm trains (docs/encoder.md): llama.cpp's `bert` architecture. Token, token-type
// (type 0) and learned position embeddings summed and LayerNormed; L post-LN blocks of
// bidirectional multi-head attention over right-padded rows and a GELU MLP, every linear layer
// with a bias; the final hidden states are the output. Masked-language-model training scores
// the masked positions only, through a head tied to the token embedding (logits = h E^T, no
// bias), so the file holds nothing llama.cpp's bert does not load. Weights live in a
// model::Params (param_layout() gives the bert layout for an encoder config); the forward and
// backward passes run over buffers allocated once, like the decoder's.
#pragma once

#include <cstdint>
#include <memory>

#include "model/model.hpp"

namespace lm::model {

struct Lora;
class LoraPass;

// cfg (its sizes) made an encoder: arch "bert" with BERT's layer choices (LayerNorm with
// biases, eps 1e-12, learned positions, two token types, bidirectional post-LN blocks, GELU),
// tied to the embeddings, kv heads = heads, no classifier.
ModelConfig encoder_config(ModelConfig cfg);

// Indices into param_layout() of an encoder: five views (token_embd, token_types,
// position_embd, token_embd_norm weight and bias), then kEncLayerParams per layer in this
// order (GGUF order, llama.cpp's names).
enum EncoderTop : size_t { kEncTok, kEncTypes, kEncPos, kEncEmbNorm, kEncEmbNormB, kEncTop };
enum EncoderLayerParam : size_t {
  kEncQ, kEncQB, kEncK, kEncKB, kEncV, kEncVB, kEncO, kEncOB, kEncNorm1, kEncNorm1B,
  kEncUp, kEncUpB, kEncDown, kEncDownB, kEncNorm2, kEncNorm2B, kEncLayerParams
};
inline size_t encoder_param(int l, EncoderLayerParam v) { return kEncTop + size_t(l) * kEncLayerParams + v; }
static_assert(kEncTop == 5 && kEncLayerParams == 16, "model.hpp's cls_param() counts an encoder's views");

class EncoderModel {
 public:
  // For up to B rows of up to T tokens (T <= cfg.n_ctx). Throws UsageError for a config that
  // is not an encoder's or bad sizes.
  EncoderModel(const ModelConfig& cfg, int B, int T);
  ~EncoderModel();
  EncoderModel(const EncoderModel&) = delete;
  EncoderModel& operator=(const EncoderModel&) = delete;

  // Runs tokens (b, t), row i holding lengths[i] tokens then padding (lengths nullptr: all t;
  // each 1 .. t). With targets (b, t): the token to predict at each position, < 0 where nothing
  // is scored (unmasked and padded positions); returns the mean cross-entropy over the scored
  // positions (0 when none) and keeps what backward() needs. Without targets only the hidden
  // states are computed. Ids must be < n_vocab (checked by the caller).
  float forward(const Params& p, const int* tokens, const int* lengths, const int* targets, int b, int t);
  // Adds the gradients of the last forward()'s (or forward_classify()'s) mean loss into p.grad
  // (callers zero it); views without a gradient (Params::alloc_grad) are skipped, and when no
  // view below the head has one (a linear probe) backward stops at the head.
  void backward(Params& p);
  // The final hidden states (b, t, C) of the last forward().
  const float* hidden() const;
  // The scored positions of the last forward() with targets, in row order: their count, their
  // flat indices (i * t + j), their logits (scored(), V) and losses. The logits hold the
  // gradient after forward() with targets, so they are valid only when forward() ran
  // with `keep_logits` set (evaluation).
  int scored() const { return m_; }
  const int* scored_positions() const;
  const float* scored_losses() const;
  const float* scored_logits() const;
  void set_keep_logits(bool on) { keep_logits_ = on; }

  // Sequence classification (cfg.n_cls > 0; docs/encoder.md, classifiers): the head
  // cls.output (n_cls, C) and its bias read each row's pooled final hidden state: its first
  // token's (kPoolRank, the start token, BERT's [CLS], as llama.cpp's rank pooling reads it) or
  // the mean over its lengths[i] tokens (kPoolMean). With labels (b; < 0 = not scored) returns
  // the mean cross-entropy and keeps what backward() needs; else keeps the class probabilities.
  float forward_classify(const Params& p, const int* tokens, const int* lengths, const int* labels, int b, int t);
  // Class probabilities (b, n_cls) of the last forward_classify() without labels.
  const float* class_probs() const;
  // Dropout while training (BERT's hidden dropout): on the embeddings after their norm, and on
  // the output of every attention and MLP branch before its residual. Masks from set_training's
  // seed, so that a resumed run draws the same.
  void set_dropout(float p);
  void set_training(bool on, uint64_t seed = 0);
  // Applies `lora` (not owned; nullptr = none; pairs on q, k, v, o, up, down) in forward and
  // backward, its gradients added into lora->grad, its dropout masks apart from the model's.
  void set_lora(Lora* lora);
  size_t activation_bytes() const;

 private:
  struct Acts;
  // The layers: tokens to hidden(); and from the gradient of hidden() in dA back to the weights.
  void trunk(const Params& p, const int* tokens, const int* lengths, int b, int t);
  void trunk_backward(Params& p);
  void drop(float* y, size_t n, uint64_t site) const;
  bool dropping() const { return training_ && dropout_ > 0; }
  ModelConfig cfg_;
  int B_, T_, b_ = 0, t_ = 0, m_ = 0;
  std::unique_ptr<Acts> a_;
  std::unique_ptr<LoraPass> lora_;
  bool training_ = false, keep_logits_ = false, have_targets_ = false, classify_ = false;
  uint64_t seed_ = 0;
  float dropout_ = 0;
};

}  // namespace lm::model
