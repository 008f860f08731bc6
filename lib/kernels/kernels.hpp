// Forward and backward kernels of the Llama-style model, fp32, each with a plain `_ref` twin
// used by the tests. Matrix products go through sgemm (blas.hpp), the only OpenBLAS user.
//
// Dimension letters (the whole project): B batch, T time, C channels (model width),
// V vocabulary, L layers, H heads, D head size; N = rows (B*T) when the batch is flattened,
// F = MLP hidden width, OC = output channels of a linear layer. Tensors are row-major and
// contiguous unless a stride is given.
// Kernels do not throw and do not check shapes: callers check once where an op is entered.
#pragma once

#include <cstddef>
#include <cstdint>

namespace lm::kernels {

// Linear layer without bias: y (N, OC) = x (N, C) W^T + beta * y, W (OC, C) row-major (ggml
// shape {C, OC}). Through sgemm, so large products run in OpenBLAS; up to kGemvMaxRows rows
// (decoding) through our own matrix-vector loop, which reads W once at memory bandwidth.
inline constexpr int kGemvMaxRows = 4;
void matmul_forward(float* y, const float* x, const float* W, int N, int C, int OC, float beta = 0.0f);
void matmul_forward_ref(float* y, const float* x, const float* W, int N, int C, int OC, float beta = 0.0f);
// Several linear layers on the same input (q, k, v; gate, up): outs[i].y (N, OC_i) =
// x (N, C) outs[i].W^T, up to 8 of them. Equal to matmul_forward on each; when decoding, one
// parallel region covers them all.
struct LinearOut {
  float* y;
  const float* W;
  int OC;
};
void matmul_forward_shared(const float* x, int N, int C, const LinearOut* outs, int n_outs);
// y (N, OC) = x (N, C) W^T + b, b (OC) or nullptr. The rows start as b and the product adds
// into them: one pass over y fewer than matmul_forward then add_bias (and no zeroing pass).
void linear_forward(float* y, const float* x, const float* W, const float* b, int N, int C, int OC);
void linear_forward_ref(float* y, const float* x, const float* W, const float* b, int N, int C, int OC);
// dx (N, C) = dy (N, OC) W, or += when accumulate_dx; dx == nullptr skips it (a first layer).
// dW (OC, C) += dy^T x: weight gradients always accumulate; dW == nullptr skips it (a frozen weight).
void matmul_backward(float* dx, float* dW, const float* dy, const float* x, const float* W, int N, int C, int OC,
                     bool accumulate_dx);
void matmul_backward_ref(float* dx, float* dW, const float* dy, const float* x, const float* W, int N, int C, int OC,
                         bool accumulate_dx);

// Token embedding: x (N, C) row n = E (V, C) row tokens[n]; tokens (N) in [0, V).
void embedding_forward(float* x, const int* tokens, const float* E, int N, int C);
void embedding_forward_ref(float* x, const int* tokens, const float* E, int N, int C);
// dE (V, C) row tokens[n] += dx (N, C) row n, for all n; the same bits at any thread count.
void embedding_backward(float* dE, const int* tokens, const float* dx, int N, int C);
void embedding_backward_ref(float* dE, const int* tokens, const float* dx, int N, int C);

// Learned positions (gpt2, bert): x (N, C) row n += P (T, C) row n % T, plus extra (C) when
// extra is not null (bert's token type 0: row[c] += P[c] + extra[c]); the N rows are sequences of
// T positions one after another.
void position_add_forward(float* x, const float* P, const float* extra, int N, int T, int C);
void position_add_forward_ref(float* x, const float* P, const float* extra, int N, int T, int C);
// dP (T, C) row n % T += dx (N, C) row n, for every n in order; the same bits at any thread count.
void position_add_backward(float* dP, const float* dx, int N, int T, int C);
void position_add_backward_ref(float* dP, const float* dx, int N, int T, int C);

// RMSNorm (Zhang & Sennrich 2019): y = x * rstd * w, rstd = 1 / sqrt(mean(x^2) + eps).
// x, y (N, C); w (C); rstd (N) is saved for the backward pass.
void rmsnorm_forward(float* y, float* rstd, const float* x, const float* w, int N, int C, float eps);
void rmsnorm_forward_ref(float* y, float* rstd, const float* x, const float* w, int N, int C, float eps);
// dx (N, C) is overwritten; dw (C) is accumulated into (+=), the same bits at any thread count;
// dw == nullptr skips it (frozen gains).
void rmsnorm_backward(float* dx, float* dw, const float* dy, const float* x, const float* w, const float* rstd, int N,
                      int C);
void rmsnorm_backward_ref(float* dx, float* dw, const float* dy, const float* x, const float* w, const float* rstd,
                          int N, int C);

// RoPE, adjacent-pair form (llama.cpp rope type NORM): each pair (x[2i], x[2i+1]) of a head is
// rotated by pos * base^(-2i/D); with neox (rope type NEOX, Qwen 2's) the pair is (x[i], x[i + D/2]).
// x (B, T, H, D) in place; the token at t has position pos0 + t. backward rotates the gradient
// by the opposite angle (the rotation is orthogonal).
void rope_forward(float* x, int B, int T, int H, int D, float base, int pos0, bool neox = false);
void rope_forward_ref(float* x, int B, int T, int H, int D, float base, int pos0, bool neox = false);
void rope_backward(float* dx, int B, int T, int H, int D, float base, int pos0, bool neox = false);
void rope_backward_ref(float* dx, int B, int T, int H, int D, float base, int pos0, bool neox = false);
// q (B, T, H, D) and k (B, T, Hkv, D) of one layer rotated in one pass: the same bits as
// rope_forward (rope_backward) on each, with each position's cosines and sines computed once.
void rope_forward_qk(float* q, float* k, int B, int T, int H, int Hkv, int D, float base, int pos0, bool neox = false);
void rope_forward_qk_ref(float* q, float* k, int B, int T, int H, int Hkv, int D, float base, int pos0,
                         bool neox = false);
void rope_backward_qk(float* dq, float* dk, int B, int T, int H, int Hkv, int D, float base, int pos0,
                      bool neox = false);
void rope_backward_qk_ref(float* dq, float* dk, int B, int T, int H, int Hkv, int D, float base, int pos0,
                          bool neox = false);

// SwiGLU (Shazeer 2020): h = silu(g) * u, silu(g) = g / (1 + exp(-g)). g, u, h: n values.
void swiglu_forward(float* h, const float* g, const float* u, size_t n);
void swiglu_forward_ref(float* h, const float* g, const float* u, size_t n);
// dg, du (n) are overwritten.
void swiglu_backward(float* dg, float* du, const float* dh, const float* g, const float* u, size_t n);
void swiglu_backward_ref(float* dg, float* du, const float* dh, const float* g, const float* u, size_t n);

// Softmax cross-entropy over V for N rows, forward and backward in one pass.
// logits (N, V); targets (N), a negative target marks a row that is not scored.
// losses (N): -log softmax(logits)[target] (0 for unscored rows).
// dlogits (N, V) may alias logits: (softmax - onehot(target)) * dscale, 0 for unscored rows.
// Returns the number of scored rows.
int cross_entropy_forward_backward(float* losses, float* dlogits, const float* logits, const int* targets, int N,
                                   int V, float dscale);
int cross_entropy_forward_backward_ref(float* losses, float* dlogits, const float* logits, const int* targets, int N,
                                       int V, float dscale);

// Distillation (docs/distillation.md): per scored row,
//   loss = (1 - alpha) CE(logits, target) + alpha temp^2 KL(softmax(teacher / temp) || softmax(logits / temp)).
// teacher (N, K): the teacher's logits (or log-probabilities) at the ids (N, K) of each row, its
// distribution their softmax at temp (renormalised over the K ids); ids nullptr: every id, K = V.
// losses (N) as above, kl (N; may be nullptr) the KL term alone, 0 for unscored rows.
// dlogits (N, V) may alias logits: ((1 - alpha)(softmax(z) - onehot) + alpha temp (softmax(z / temp) - p)) * dscale.
// alpha == 0 is cross_entropy_forward_backward bit for bit (the teacher is not read; kl 0).
// Returns the number of scored rows.
int distill_forward_backward(float* losses, float* kl, float* dlogits, const float* logits, const int* targets,
                             const float* teacher, const int* ids, int K, int N, int V, float alpha, float temp,
                             float dscale);
int distill_forward_backward_ref(float* losses, float* kl, float* dlogits, const float* logits, const int* targets,
                                 const float* teacher, const int* ids, int K, int N, int V, float alpha, float temp,
                                 float dscale);

// LSTM cell (Hochreiter and Schmidhuber 1997, PyTorch's gate order i, f, g, o) over B rows of H
// units. gates (B, 4H): the pre-activations (input product + recurrent product + bias). Writes
// acts (B, 4H) = sigmoid(i), sigmoid(f), tanh(g), sigmoid(o), c (B, H) = f c_prev + i g,
// tanh_c (B, H) and h (B, H) = o tanh(c). acts and tanh_c are what the backward pass reads.
void lstm_cell_forward(float* h, float* c, float* acts, float* tanh_c, const float* gates, const float* c_prev, int B,
                       int H);
void lstm_cell_forward_ref(float* h, float* c, float* acts, float* tanh_c, const float* gates, const float* c_prev,
                           int B, int H);
// The cell's backward: dh (B, H) the gradient of h; dc (B, H) holds that of c from later steps
// on entry and that of c_prev on return. Writes dgates (B, 4H), the pre-activations' gradient.
void lstm_cell_backward(float* dgates, float* dc, const float* dh, const float* acts, const float* tanh_c,
                        const float* c_prev, int B, int H);
void lstm_cell_backward_ref(float* dgates, float* dc, const float* dh, const float* acts, const float* tanh_c,
                            const float* c_prev, int B, int H);

// Evaluation over N rows of V logits (N, V): lse (N) = log sum_v exp(logits[v]), so that
// log p(v) = logits[v] - lse.
void logsumexp_rows(float* lse, const float* logits, int N, int V);
void logsumexp_rows_ref(float* lse, const float* logits, int N, int V);
// One row on the calling thread (the sampler's log-probabilities): logsumexp_rows' value.
float logsumexp(const float* logits, int V);

// The ids of the k largest of x (n finite values; equal values: the lower id first), in no
// particular order, into ids (k entries), 0 < k <= n: the sampler's top-k. A scan against the
// k-th best so far, 16 values per compare with AVX-512; the reference sorts with nth_element.
void top_k_ids(const float* x, int n, int k, int* ids);
void top_k_ids_ref(const float* x, int n, int k, int* ids);
// kl (N) = KL(softmax(ref) || softmax(model)) per row, in nats (>= 0 up to rounding), given
// both rows' log-sum-exp from logsumexp_rows. The reference computes everything itself.
void kl_divergence_rows(float* kl, const float* ref, const float* model, const float* lse_ref,
                        const float* lse_model, int N, int V);
void kl_divergence_rows_ref(float* kl, const float* ref, const float* model, int N, int V);

// AdamW (Loshchilov & Hutter 2019) for n parameters at step t >= 1 (bias correction uses t):
// m = b1 m + (1-b1) g; v = b2 v + (1-b2) g^2; p -= lr (m^ / (sqrt(v^) + eps) + wd p).
void adamw_step(float* p, const float* g, float* m, float* v, size_t n, float lr, float beta1, float beta2, float eps,
                float weight_decay, int t);
void adamw_step_ref(float* p, const float* g, float* m, float* v, size_t n, float lr, float beta1, float beta2,
                    float eps, float weight_decay, int t);

// Causal self-attention with grouped-query heads (Hkv divides H; head h reads kv head
// h / (H / Hkv)): out = softmax(q k^T / sqrt(D) + causal mask) v for every (b, h).
// q, out (B, T, H, D); k, v (B, T, Hkv, D); att (B, H, T, T) receives the probabilities, which
// the backward pass needs (entries above the diagonal are 0). softcap > 0 (Gemma 2): the scaled
// scores s become softcap * tanh(s / softcap) before the softmax.
void attention_forward(float* out, float* att, const float* q, const float* k, const float* v, int B, int T, int H,
                       int Hkv, int D, float softcap = 0.0f);
void attention_forward_ref(float* out, float* att, const float* q, const float* k, const float* v, int B, int T,
                           int H, int Hkv, int D, float softcap = 0.0f);
// dq (B, T, H, D), dk and dv (B, T, Hkv, D) are overwritten. datt (B, H, T, T) is scratch.
// With a softcap, the capped scores' derivative comes from scores recomputed from q and k.
void attention_backward(float* dq, float* dk, float* dv, float* datt, const float* dout, const float* att,
                        const float* q, const float* k, const float* v, int B, int T, int H, int Hkv, int D,
                        float softcap = 0.0f);
// The definition in double: recomputes the probabilities from q and k, so att and datt are unused.
void attention_backward_ref(float* dq, float* dk, float* dv, float* datt, const float* dout, const float* att,
                            const float* q, const float* k, const float* v, int B, int T, int H, int Hkv, int D,
                            float softcap = 0.0f);

// Bidirectional self-attention (an encoder, docs/encoder.md) over right-padded rows: in row b
// every query 0 .. T-1 sees the keys 0 .. lengths[b] - 1 (lengths nullptr: all T; each >= 1).
// Same layouts as attention_forward; att's entries at padded keys are 0. The queries of padded
// positions are computed like the others (nothing reads them).
void attention_encoder_forward(float* out, float* att, const float* q, const float* k, const float* v,
                               const int* lengths, int B, int T, int H, int Hkv, int D);
void attention_encoder_forward_ref(float* out, float* att, const float* q, const float* k, const float* v,
                                   const int* lengths, int B, int T, int H, int Hkv, int D);
// As attention_backward; dk and dv of padded keys are 0.
void attention_encoder_backward(float* dq, float* dk, float* dv, float* datt, const float* dout, const float* att,
                                const float* q, const float* k, const float* v, const int* lengths, int B, int T,
                                int H, int Hkv, int D);
void attention_encoder_backward_ref(float* dq, float* dk, float* dv, float* datt, const float* dout,
                                    const float* att, const float* q, const float* k, const float* v,
                                    const int* lengths, int B, int T, int H, int Hkv, int D);

// Attention of n new queries against a KV cache (inference): query i sits at position pos0 + i
// and sees the cached keys 0 .. pos0 + i. q, out (n, H, D). kc, vc (Hkv, cap, D): each kv head's
// keys (already rotated by RoPE) and values contiguous, so decoding streams them; cap >= pos0 + n.
// scratch holds attention_cached_scratch(n, pos0 + n, H) floats.
size_t attention_cached_scratch(int n, int n_keys, int H);
void attention_cached(float* out, const float* q, const float* kc, const float* vc, int n, int pos0, int H, int Hkv,
                      int D, int cap, float* scratch);
void attention_cached_ref(float* out, const float* q, const float* kc, const float* vc, int n, int pos0, int H,
                          int Hkv, int D, int cap);

// ---- Layers of other architectures (docs/architectures.md; their backward passes: docs/encoder.md) ----

// LayerNorm: y = (x - mean) * rstd * w + b, rstd = 1 / sqrt(var + eps) (biased variance, as
// ggml_norm). x, y (N, C) may alias; w (C); b (C) or nullptr for none.
void layernorm_forward(float* y, const float* x, const float* w, const float* b, int N, int C, float eps);
void layernorm_forward_ref(float* y, const float* x, const float* w, const float* b, int N, int C, float eps);

// The encoder's training twins (docs/encoder.md).
// layernorm_forward (the same y, bit for bit), also saving each row's mean and rstd (N).
void layernorm_forward_train(float* y, float* mean, float* rstd, const float* x, const float* w, const float* b,
                             int N, int C, float eps);
void layernorm_forward_train_ref(float* y, float* mean, float* rstd, const float* x, const float* w,
                                 const float* b, int N, int C, float eps);
// With x_hat = (x - mean) rstd and e = dy w: dx (N, C) = rstd (e - mean(e) - x_hat mean(e x_hat)),
// overwritten (dx may alias dy); dw (C) += sum over rows of dy x_hat and db (C) += sum of dy,
// the same bits at any thread count (nullptr skips one).
void layernorm_backward(float* dx, float* dw, float* db, const float* dy, const float* x, const float* w,
                        const float* mean, const float* rstd, int N, int C);
void layernorm_backward_ref(float* dx, float* dw, float* db, const float* dy, const float* x, const float* w,
                            const float* mean, const float* rstd, int N, int C);

// RoPE over the first n_rot dimensions of each head (partial rotary; n_rot even, <= D; the
// other D - n_rot dimensions unchanged). Pair i (i < n_rot / 2) of the token at position p
// turns by the angle p * inv_freq[i] (the frequencies carry any scaling: linear, llama3,
// longrope, YaRN), its cos and sin multiplied by mscale (YaRN's attention factor, else 1):
// (a, c) -> (a cos - c sin, a sin + c cos). Pairs are (x[2i], x[2i+1]) when !neox (llama.cpp's
// NORM order; with inv_freq[i] = base^(-2i/D), n_rot = D and mscale 1 this is rope_forward) and
// (x[i], x[i + n_rot/2]) when neox (GPT-NeoX, Qwen, Phi-3, Gemma). x (n, H, D) in place;
// token t has position pos0 + t. The angles are computed in double.
void rope_table_forward(float* x, int n, int H, int D, int n_rot, const float* inv_freq, float mscale, bool neox,
                        int pos0);
void rope_table_forward_ref(float* x, int n, int H, int D, int n_rot, const float* inv_freq, float mscale, bool neox,
                            int pos0);

// GELU, tanh form: h = 0.5 g (1 + tanh(sqrt(2/pi) (g + 0.044715 g^3))), computed in f32 for
// every g as g / (1 + e^(-2z)), z = sqrt(2/pi) g (1 + 0.044715 g^2) (the same function, without
// the cancellation of 1 + tanh for negative g). ggml's formula (ggml_gelu_f32), but not its CPU
// output: ggml-cpu/vec.h defines GGML_GELU_FP16 unconditionally, so on every CPU llama.cpp
// looks f32 inputs in (-10, 10) up in a table of that formula at fp16 inputs with fp16 results
// (0 for g <= -10, g for g >= 10); lm differs from it by that rounding of g and of the result:
// up to 4e-3 absolute (at g near 8), 1.4e-3 relative for g > 0, more relative in the tiny
// negative tail. h may alias g. n values.
void gelu_forward(float* h, const float* g, size_t n);
void gelu_forward_ref(float* h, const float* g, size_t n);
// GeGLU (Gemma): h = gelu(g) * u, gelu as above. h may alias g or u. n values.
void geglu_forward(float* h, const float* g, const float* u, size_t n);
void geglu_forward_ref(float* h, const float* g, const float* u, size_t n);
// dg = dh gelu'(g), the derivative of gelu_forward's function (tanh form). dg may alias dh.
void gelu_backward(float* dg, const float* dh, const float* g, size_t n);
void gelu_backward_ref(float* dg, const float* dh, const float* g, size_t n);
// GeGLU's backward: du = dh gelu(g), dg = dh u gelu'(g). No aliasing. n values.
void geglu_backward(float* dg, float* du, const float* dh, const float* g, const float* u, size_t n);
void geglu_backward_ref(float* dg, float* du, const float* dh, const float* g, const float* u, size_t n);
// y (N, OC) row r += b (OC), for every row.
void add_bias(float* y, const float* b, int N, int OC);
void add_bias_ref(float* y, const float* b, int N, int OC);
// db (OC) += the column sums of dy (N, OC): a bias's gradient, the same bits at any thread count.
void bias_backward(float* db, const float* dy, int N, int OC);
void bias_backward_ref(float* db, const float* dy, int N, int OC);
// x = cap * tanh(x / cap), cap > 0 (Gemma 2's logit soft-capping). n values.
void softcap_forward(float* x, size_t n, float cap);
void softcap_forward_ref(float* x, size_t n, float cap);

// attention_cached with options. The scores q.k are multiplied by `scale` (1/sqrt(D) in
// attention_cached), then soft-capped, s = softcap * tanh(s / softcap), when softcap > 0
// (Gemma 2). Query i, at position p = pos0 + i, sees key j (0 <= j < n_keys = pos0 + n) when
//   causal: j <= p (when !causal, every key: an encoder, pos0 = 0), and
//   window > 0: p - j < window (sliding-window layers; llama.cpp's standard SWA, so when
//     !causal the window limits only the keys before the query).
// Every query sees at least its own key. Same layout and scratch as attention_cached; with the
// default options it is attention_cached, at the same speed.
struct AttentionOptions {
  float scale = 0.0f;   // 0: 1 / sqrt(D)
  float softcap = 0.0f; // 0: none
  int window = 0;       // 0: unlimited
  bool causal = true;
};
void attention_cached_ext(float* out, const float* q, const float* kc, const float* vc, int n, int pos0, int H,
                          int Hkv, int D, int cap, const AttentionOptions& o, float* scratch);
void attention_cached_ext_ref(float* out, const float* q, const float* kc, const float* vc, int n, int pos0, int H,
                              int Hkv, int D, int cap, const AttentionOptions& o);

// Sum of squares of n values (for global-norm gradient clipping), in double; the same bits at
// any thread count.
double sum_squares(const float* x, size_t n);

}  // namespace lm::kernels
