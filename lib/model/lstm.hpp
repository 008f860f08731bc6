// A recurrent language model (docs/lstm.md): token embedding, L stacked LSTM layers (PyTorch's
// gate order i, f, g, o; one bias per layer; an optional projection of each layer's output,
// LSTMP), and an output layer with a bias, tied to the embedding when the widths allow. The
// forward and backward passes run over windows of T steps for B streams whose state (h, c of
// every layer) is carried from one window to the next; gradients stop at the window's start
// (truncated backpropagation through time). Buffers are allocated once, llm.c style: every
// matrix product runs over all B x T rows at once (the input products, the output layer and
// their gradients) except the recurrent product, one B-row product per step.
#pragma once

#include <cstddef>
#include <string>
#include <vector>

#include "base/memory.hpp"
#include "base/rng.hpp"
#include "model/model.hpp"
#include "model/weights.hpp"

namespace lm::model {

struct LstmConfig {
  int n_vocab = 8192;  // V
  int n_ctx = 128;     // T: the window of truncated backpropagation through time
  int n_embd = 384;    // E: token embedding width, the first layer's input
  int n_hidden = 1024; // H: LSTM units per layer
  int n_layer = 2;     // L
  int n_proj = 0;      // P: each layer's output projected to P values (0: none, the output is H wide)
  bool tied = true;    // the output layer is token_embd; needs out_width() == n_embd
  int out_width() const { return n_proj ? n_proj : n_hidden; }
  int in_width(int l) const { return l == 0 ? n_embd : out_width(); }
  // Throws UsageError naming the first bad field and its range.
  void validate() const;
  size_t n_params() const;
};

// The ModelConfig of an LSTM (arch "lstm"; the fields as ModelConfig documents them) and back.
ModelConfig to_model_config(const LstmConfig& c);
LstmConfig to_lstm_config(const ModelConfig& c);

// The tensor list in GGUF order (docs/lstm.md): token_embd.weight (V, E); per layer
// blk.N.lstm_ih.weight (4H, in), blk.N.lstm_hh.weight (4H, out), blk.N.lstm.bias (1, 4H),
// blk.N.lstm_proj.weight (P, H) with a projection; output.weight (V, out) when untied;
// output.bias (1, V).
std::vector<ParamView> lstm_layout(const LstmConfig& cfg);
enum LstmLayerParam : size_t { kLstmIh, kLstmHh, kLstmBias, kLstmProj };

struct LstmParams {
  explicit LstmParams(const LstmConfig& cfg, bool with_grad = true);
  LstmConfig cfg;
  std::vector<ParamView> views;
  LargeVector<float> w, grad;  // grad: the layout of w
  size_t layer_view(int l, LstmLayerParam p) const;  // index into views
  size_t head_view() const;                          // output.weight, or token_embd.weight when tied
  size_t head_bias_view() const { return views.size() - 1; }
  float* get(size_t v) { return w.data() + views[v].offset; }
  const float* get(size_t v) const { return w.data() + views[v].offset; }
  float* grad_of(size_t v) { return grad.data() + views[v].offset; }
  // PyTorch's defaults: nn.LSTM's U(-1/sqrt(H), 1/sqrt(H)) for the LSTM matrices, with the
  // forget gates' bias 1 and the others 0; nn.Embedding's N(0, 1) for the embeddings (the
  // GPT-style N(0, 0.02) leaves the gates' inputs so small that training sits at the unigram
  // loss for hundreds of steps); nn.Linear's U(-1/sqrt(O), 1/sqrt(O)) for an untied output
  // layer, its bias 0.
  void init(Rng& rng);
};

// The state carried between windows: h (L, B, out) and c (L, B, H), zero at the start of a stream.
struct LstmState {
  LargeVector<float> h, c;
  void resize(const LstmConfig& cfg, int B);
  void zero();
  void zero_row(const LstmConfig& cfg, int B, int b);  // one stream starts again (a document boundary)
};

// F32 views of p's weights for a Session (p must outlive the result); nothing is copied.
Weights view_weights(const LstmParams& p);

class LstmModel {
 public:
  // For up to B streams of windows of up to T steps. Throws UsageError for a bad config or sizes.
  LstmModel(const LstmConfig& cfg, int B, int T);
  // Runs tokens (b, t) from `state` and leaves the window's final state in it. With targets
  // (b, t; < 0 not scored) returns the mean cross-entropy and keeps what backward() needs, else
  // returns 0 and keeps the logits (b, t, V) for logits(). With `reset` (b, t; may be null),
  // stream i starts again from a zero state before step j where reset[i * t + j] is set (a
  // document boundary): nothing flows across it, forward or backward.
  float forward(const LstmParams& p, const int* tokens, const int* targets, int b, int t, LstmState& state,
                const uint8_t* reset = nullptr);
  // Adds the gradients of the last forward()'s mean loss to p.grad (callers zero it), through
  // the window only (the carried state is a constant).
  void backward(LstmParams& p);
  // Logits (b, t, V) of the last forward() without targets, row i * t + j for step j of stream i.
  const float* logits() const { return logits_out_.data(); }
  // Dropout rate in [0, 1) while training (Zaremba et al.'s non-recurrent dropout): on every
  // layer's input (the embeddings, the output of the layer below) and on the output layer's
  // input; the recurrent connections are never dropped. Kept elements are scaled by 1 / (1 - p).
  void set_dropout(float p);
  // Weight-drop rate in [0, 1) while training (AWD-LSTM's DropConnect on the recurrent
  // matrices): every layer's W_hh is masked element by element, one mask per window (drawn from
  // set_training's seed) for all its steps and streams, kept elements scaled by 1 / (1 - p).
  // Off training, W_hh itself is used.
  void set_weight_drop(float p);
  // Training mode draws the dropout masks from `seed` (callers pass one per window, e.g. from
  // their data position, so that a resumed run draws the same masks); off, no dropout.
  void set_training(bool on, uint64_t seed = 0);
  size_t activation_bytes() const;

 private:
  bool dropping() const { return training_ && dropout_ > 0; }
  bool weight_dropping() const { return training_ && weight_drop_ > 0; }
  // Layer l's recurrent matrix as this window uses it: p's, or its weight-dropped copy.
  const float* recurrent(const LstmParams& p, int l) const;
  uint64_t weight_drop_seed(int l) const;
  // The dropout mask of site `site` (0: the embeddings, l: layer l's input, L: the output
  // layer's input) on n values of x into y (y may be x); the same call is its backward.
  void drop(const float* x, float* y, size_t n, int site) const;
  LstmConfig cfg_;
  int B_, T_, b_ = 0, t_ = 0;
  bool have_targets_ = false;
  bool training_ = false;
  float dropout_ = 0, weight_drop_ = 0;
  uint64_t seed_ = 0;
  std::vector<int> tok_tm_, tgt_tm_;  // tokens and targets time-major: row t * b + i
  std::vector<uint8_t> reset_tm_;     // reset flags time-major (empty: none in this window)
  // Per layer, time-major rows: input x (T*B, in; layer 0's is the embeddings, the others' the
  // layer below's output after dropout, or that output itself without dropout), gate
  // activations (T*B, 4H), c (T*B, H), tanh(c) (T*B, H), h (T*B, H) and, with a projection,
  // r (T*B, P) (else r is h); rin and cin: the state each step starts from (the step before's,
  // the carried state at step 0, zeros after a reset).
  std::vector<LargeVector<float>> x_, acts_, c_, tc_, h_, r_, rin_, cin_;
  // Weight-drop: each layer's masked W_hh (4H, O), and the gradient of one before its mask.
  std::vector<LargeVector<float>> whh_drop_;
  LargeVector<float> dwhh_;
  LargeVector<float> top_, logits_, logits_out_, losses_, gates_, dgates_, dtop_, dx_, drec_, dh_, dc_, dr_;
};

}  // namespace lm::model
