// The encoder's forward and backward passes (docs/encoder.md). One layer:
//   q, k, v = x Wq + bq, ...;  a = attention(q, k, v) over the row's tokens;
//   r1 = x + drop(a Wo + bo);  y1 = LN1(r1);
//   u = y1 Wu + bu;  r2 = y1 + drop(gelu(u) Wd + bd);  x' = LN2(r2).
// The embeddings: x0 = drop(LN0(E[token] + P[position] + types[0])).
#include "model/encoder.hpp"

#include <algorithm>
#include <cstring>
#include <vector>

#include "base/error.hpp"
#include "base/memory.hpp"
#include "kernels/kernels.hpp"
#include "model/dropout.hpp"
#include "model/lora.hpp"

namespace lm::model {

ModelConfig encoder_config(ModelConfig c) {
  c.arch = ArchOptions{};
  c.arch.name = "bert";
  c.arch.norm = NormKind::Layer;
  c.arch.ffn = FfnKind::Gelu;
  c.arch.learned_pos = true;
  c.arch.causal = false;
  c.arch.post_ln = true;
  c.arch.n_token_types = 2;
  c.norm_eps = 1e-12f;
  c.n_head_kv = c.n_head;
  c.tied = true;
  c.n_cls = 0;
  c.n_head_dim = 0;
  return c;
}

struct EncoderModel::Acts {
  // Per layer (x has n_layer + 1 entries: each layer's input, then the final hidden states).
  std::vector<LargeVector<float>> x, q, k, v, att, ao, r1, y1, mean1, rstd1, u, g, r2, mean2, rstd2;
  LargeVector<float> e, mean0, rstd0;            // the summed embeddings and their norm's statistics
  LargeVector<float> hm, logits, losses, tmp;    // the scored rows' hidden states, logits, losses
  LargeVector<float> pooled, cls;                // classification: pooled rows (b, C), probabilities or dz (b, K)
  LargeVector<float> dA, dB, dC, dq, dk, dv, dao, datt, du, dhm;  // backward scratch
  std::vector<int> tokens, lengths, pos, targets;  // pos: the scored positions
};

EncoderModel::EncoderModel(const ModelConfig& cfg, int B, int T)
    : cfg_(cfg), B_(B), T_(T), lora_(std::make_unique<LoraPass>()) {
  cfg.validate();
  if (!cfg.is_encoder()) throw UsageError("EncoderModel needs an encoder configuration, not '" + cfg.arch.name + "'");
  check_range("batch", B, 1, 1 << 20);
  check_range("sequence length", T, 1, cfg.n_ctx);
  a_ = std::make_unique<Acts>();
  Acts& a = *a_;
  const size_t N = size_t(B) * T, C = size_t(cfg.n_embd), F = size_t(cfg.n_ff), L = size_t(cfg.n_layer);
  const size_t NA = size_t(B) * cfg.n_head * T * T;
  auto alloc = [](std::vector<LargeVector<float>>& v, size_t layers, size_t n) {
    v.resize(layers);
    for (auto& x : v) x.assign(n, 0.0f);
  };
  alloc(a.x, L + 1, N * C);
  for (auto* v : {&a.q, &a.k, &a.v, &a.ao, &a.r1, &a.y1, &a.r2}) alloc(*v, L, N * C);
  for (auto* v : {&a.mean1, &a.rstd1, &a.mean2, &a.rstd2}) alloc(*v, L, N);
  alloc(a.att, L, NA);
  alloc(a.u, L, N * F);
  alloc(a.g, L, N * F);
  a.e.assign(N * C, 0.0f);
  a.mean0.assign(N, 0.0f);
  a.rstd0.assign(N, 0.0f);
  a.tmp.assign(N * C, 0.0f);
  a.tokens.assign(N, 0);
  a.lengths.assign(size_t(B), 0);
  a.targets.assign(N, -1);
}

EncoderModel::~EncoderModel() = default;

const float* EncoderModel::hidden() const { return a_->x.back().data(); }
const int* EncoderModel::scored_positions() const { return a_->pos.data(); }
const float* EncoderModel::scored_losses() const { return a_->losses.data(); }
const float* EncoderModel::scored_logits() const { return a_->logits.data(); }

void EncoderModel::set_dropout(float p) {
  if (!(p >= 0 && p < 1)) throw UsageError("dropout " + std::to_string(p) + " is out of range [0, 1)");
  dropout_ = p;
}

void EncoderModel::set_training(bool on, uint64_t seed) {
  training_ = on;
  seed_ = seed;
}

// The dropout site of a classifier's pooled rows (0 .. 2L are the embeddings and the
// branches), and the first of LoRA's (one per pair).
static constexpr uint64_t kSiteCls = uint64_t(1) << 40, kSiteLora = uint64_t(1) << 41;

void EncoderModel::set_lora(Lora* lora) {
  if (lora) LM_ASSERT(lora->base.n_layer == cfg_.n_layer && lora->base.n_embd == cfg_.n_embd && lora->base.is_encoder());
  lora_->attach(lora, size_t(B_) * T_, size_t(std::max(cfg_.n_embd, cfg_.n_ff)), kSiteLora);
}

void EncoderModel::drop(float* y, size_t n, uint64_t site) const { apply_dropout(y, y, n, derive_seed(seed_, site), dropout_); }

size_t EncoderModel::activation_bytes() const {
  const Acts& a = *a_;
  size_t n = 0;
  for (const auto* v : {&a.x, &a.q, &a.k, &a.v, &a.att, &a.ao, &a.r1, &a.y1, &a.mean1, &a.rstd1, &a.u, &a.g, &a.r2,
                        &a.mean2, &a.rstd2})
    for (const auto& x : *v) n += x.size();
  for (const auto* v : {&a.e, &a.mean0, &a.rstd0, &a.hm, &a.logits, &a.losses, &a.tmp, &a.dA, &a.dB, &a.dC, &a.dq,
                        &a.dk, &a.dv, &a.dao, &a.datt, &a.du, &a.dhm})
    n += v->size();
  return n * sizeof(float) + lora_->bytes();
}

void EncoderModel::trunk(const Params& p, const int* tokens, const int* lengths, int b, int t) {
  LM_ASSERT(b >= 1 && b <= B_ && t >= 1 && t <= T_);
  using namespace kernels;
  Acts& a = *a_;
  b_ = b, t_ = t;
  const int N = b * t, C = cfg_.n_embd, F = cfg_.n_ff, H = cfg_.n_head, D = cfg_.head_dim();
  const float eps = cfg_.norm_eps;
  std::copy(tokens, tokens + N, a.tokens.begin());
  for (int i = 0; i < b; ++i) {
    a.lengths[size_t(i)] = lengths ? lengths[i] : t;
    LM_ASSERT(a.lengths[size_t(i)] >= 1 && a.lengths[size_t(i)] <= t);
  }
  const int* len = a.lengths.data();

  // Embeddings: token + position + type 0, then their norm.
  embedding_forward(a.e.data(), a.tokens.data(), p.get(kEncTok), N, C);
  position_add_forward(a.e.data(), p.get(kEncPos), p.get(kEncTypes), N, t, C);
  layernorm_forward_train(a.x[0].data(), a.mean0.data(), a.rstd0.data(), a.e.data(), p.get(kEncEmbNorm),
                          p.get(kEncEmbNormB), N, C, eps);
  if (dropping()) drop(a.x[0].data(), size_t(N) * C, 0);
  // y (N, out) += the adapter of layer l's projection v, if any.
  auto lora = [&](int l, LayerParam v, const float* in, float* y, int nin, int nout) {
    lora_->forward(l, v, in, y, N, nin, nout, training_, seed_);
  };

  for (int l = 0; l < cfg_.n_layer; ++l) {
    const size_t sl = size_t(l);
    auto W = [&](EncoderLayerParam v) { return p.get(encoder_param(l, v)); };
    const float* x = a.x[sl].data();
    linear_forward(a.q[sl].data(), x, W(kEncQ), W(kEncQB), N, C, C);
    linear_forward(a.k[sl].data(), x, W(kEncK), W(kEncKB), N, C, C);
    linear_forward(a.v[sl].data(), x, W(kEncV), W(kEncVB), N, C, C);
    lora(l, kWq, x, a.q[sl].data(), C, C);
    lora(l, kWk, x, a.k[sl].data(), C, C);
    lora(l, kWv, x, a.v[sl].data(), C, C);
    attention_encoder_forward(a.ao[sl].data(), a.att[sl].data(), a.q[sl].data(), a.k[sl].data(), a.v[sl].data(), len,
                              b, t, H, H, D);
    linear_forward(a.tmp.data(), a.ao[sl].data(), W(kEncO), W(kEncOB), N, C, C);
    lora(l, kWo, a.ao[sl].data(), a.tmp.data(), C, C);
    if (dropping()) drop(a.tmp.data(), size_t(N) * C, 1 + 2 * uint64_t(l));
    float* r1 = a.r1[sl].data();
    for (size_t i = 0; i < size_t(N) * C; ++i) r1[i] = x[i] + a.tmp[i];
    layernorm_forward_train(a.y1[sl].data(), a.mean1[sl].data(), a.rstd1[sl].data(), r1, W(kEncNorm1), W(kEncNorm1B),
                            N, C, eps);
    linear_forward(a.u[sl].data(), a.y1[sl].data(), W(kEncUp), W(kEncUpB), N, C, F);
    lora(l, kWu, a.y1[sl].data(), a.u[sl].data(), C, F);
    gelu_forward(a.g[sl].data(), a.u[sl].data(), size_t(N) * F);
    linear_forward(a.tmp.data(), a.g[sl].data(), W(kEncDown), W(kEncDownB), N, F, C);
    lora(l, kWd, a.g[sl].data(), a.tmp.data(), F, C);
    if (dropping()) drop(a.tmp.data(), size_t(N) * C, 2 + 2 * uint64_t(l));
    float* r2 = a.r2[sl].data();
    const float* y1 = a.y1[sl].data();
    for (size_t i = 0; i < size_t(N) * C; ++i) r2[i] = y1[i] + a.tmp[i];
    layernorm_forward_train(a.x[sl + 1].data(), a.mean2[sl].data(), a.rstd2[sl].data(), r2, W(kEncNorm2),
                            W(kEncNorm2B), N, C, eps);
  }
}

float EncoderModel::forward(const Params& p, const int* tokens, const int* lengths, const int* targets, int b, int t) {
  using namespace kernels;
  trunk(p, tokens, lengths, b, t);
  Acts& a = *a_;
  classify_ = false;
  const int N = b * t, C = cfg_.n_embd, V = cfg_.n_vocab;
  have_targets_ = targets != nullptr;
  m_ = 0;
  if (!targets) return 0.0f;
  // The head on the scored positions only: a sixth or so of the rows under BERT's masking.
  a.pos.clear();
  for (int n = 0; n < N; ++n)
    if (targets[n] >= 0) a.pos.push_back(n);
  m_ = int(a.pos.size());
  if (m_ == 0) return 0.0f;
  const size_t M = size_t(m_);
  if (a.hm.size() < M * C) a.hm.assign(M * C, 0.0f);  // grows to the most positions scored, once
  if (a.logits.size() < M * V) a.logits.assign(M * size_t(V), 0.0f);
  if (a.losses.size() < M) a.losses.assign(M, 0.0f);
  a.targets.resize(M);
  const float* h = a.x.back().data();
  for (size_t i = 0; i < M; ++i) {
    std::memcpy(a.hm.data() + i * C, h + size_t(a.pos[i]) * C, sizeof(float) * size_t(C));
    a.targets[i] = targets[a.pos[i]];
  }
  matmul_forward(a.logits.data(), a.hm.data(), p.get(kEncTok), m_, C, V);
  float* dlogits = a.logits.data();
  std::vector<float> keep;
  if (keep_logits_) {  // evaluation reads the logits: the gradient goes to a copy
    keep.assign(a.logits.begin(), a.logits.begin() + ptrdiff_t(M * V));
    dlogits = keep.data();
  }
  cross_entropy_forward_backward(a.losses.data(), dlogits, a.logits.data(), a.targets.data(), m_, V, 1.0f / float(m_));
  double sum = 0;
  for (size_t i = 0; i < M; ++i) sum += a.losses[i];
  return float(sum / double(M));
}

float EncoderModel::forward_classify(const Params& p, const int* tokens, const int* lengths, const int* labels, int b,
                                     int t) {
  LM_ASSERT(cfg_.n_cls > 0 && lengths);
  using namespace kernels;
  trunk(p, tokens, lengths, b, t);
  Acts& a = *a_;
  classify_ = true;
  have_targets_ = labels != nullptr;
  const int C = cfg_.n_embd, K = cfg_.n_cls;
  if (a.pooled.size() < size_t(B_) * C) a.pooled.assign(size_t(B_) * C, 0.0f), a.cls.assign(size_t(B_) * K, 0.0f);
  const float* h = a.x.back().data();
  for (int i = 0; i < b; ++i) {
    float* row = a.pooled.data() + size_t(i) * C;
    const float* first = h + size_t(i) * t * C;
    if (cfg_.cls_pooling == kPoolMean) {
      std::fill(row, row + C, 0.0f);
      for (int j = 0; j < a.lengths[size_t(i)]; ++j)
        for (int c = 0; c < C; ++c) row[c] += first[size_t(j) * C + c];
      for (int c = 0; c < C; ++c) row[c] /= float(a.lengths[size_t(i)]);
    } else {
      std::copy(first, first + C, row);
    }
  }
  if (dropping()) drop(a.pooled.data(), size_t(b) * C, kSiteCls);
  const size_t wv = cls_param(cfg_);  // cls.output.weight, then its bias
  for (int i = 0; i < b; ++i) std::copy(p.get(wv + 1), p.get(wv + 1) + K, a.cls.data() + size_t(i) * K);
  matmul_forward(a.cls.data(), a.pooled.data(), p.get(wv), b, C, K, 1.0f);
  return class_softmax_xent(a.cls.data(), labels, b, K, &m_);
}

const float* EncoderModel::class_probs() const { return a_->cls.data(); }

void EncoderModel::backward(Params& p) {
  LM_ASSERT(have_targets_ && !keep_logits_);
  using namespace kernels;
  Acts& a = *a_;
  const int b = b_, t = t_, N = b * t, C = cfg_.n_embd;
  const size_t NC = size_t(N) * C;
  if (a.dA.size() < size_t(B_) * T_ * C) a.dA.assign(size_t(B_) * T_ * C, 0.0f);
  std::fill(a.dA.begin(), a.dA.begin() + ptrdiff_t(NC), 0.0f);
  if (classify_) {
    // The head: dW += dz^T pooled, db += sum dz, dpooled = dz W; then to the pooled rows.
    const int K = cfg_.n_cls;
    const size_t wv = cls_param(cfg_);
    if (float* db = p.grad_of(wv + 1)) bias_backward(db, a.cls.data(), b, K);
    bool trunk_trains = lora_->lora() != nullptr;
    for (size_t v = 0; v < wv; ++v) trunk_trains = trunk_trains || p.has_grad(v);
    if (a.dhm.size() < size_t(B_) * C) a.dhm.assign(size_t(B_) * C, 0.0f);
    matmul_backward(trunk_trains ? a.dhm.data() : nullptr, p.grad_of(wv), a.cls.data(), a.pooled.data(), p.get(wv), b,
                    C, K, false);
    if (!trunk_trains) return;  // a linear probe: nothing below the head trains
    if (dropping()) drop(a.dhm.data(), size_t(b) * C, kSiteCls);
    for (int i = 0; i < b; ++i) {
      const float* d = a.dhm.data() + size_t(i) * C;
      float* first = a.dA.data() + size_t(i) * t * C;
      if (cfg_.cls_pooling == kPoolMean) {
        const float inv = 1.0f / float(a.lengths[size_t(i)]);
        for (int j = 0; j < a.lengths[size_t(i)]; ++j)
          for (int c = 0; c < C; ++c) first[size_t(j) * C + c] = d[c] * inv;
      } else {
        std::copy(d, d + C, first);
      }
    }
  } else if (m_ > 0) {
    // The head: dhm = dlogits E, dE += dlogits^T hm; scattered back to their positions.
    if (a.dhm.size() < size_t(m_) * C) a.dhm.assign(size_t(m_) * C, 0.0f);
    matmul_backward(a.dhm.data(), p.grad_of(kEncTok), a.logits.data(), a.hm.data(), p.get(kEncTok), m_, C,
                    cfg_.n_vocab, false);
    for (int i = 0; i < m_; ++i)
      std::memcpy(a.dA.data() + size_t(a.pos[size_t(i)]) * C, a.dhm.data() + size_t(i) * C, sizeof(float) * size_t(C));
  }
  trunk_backward(p);
}

void EncoderModel::trunk_backward(Params& p) {
  using namespace kernels;
  Acts& a = *a_;
  const int b = b_, t = t_, N = b * t, C = cfg_.n_embd, F = cfg_.n_ff, H = cfg_.n_head, D = cfg_.head_dim();
  const size_t NC = size_t(N) * C;
  auto grow = [](LargeVector<float>& v, size_t n) {
    if (v.size() < n) v.assign(n, 0.0f);
  };
  for (auto* v : {&a.dB, &a.dC, &a.dq, &a.dk, &a.dv, &a.dao}) grow(*v, size_t(B_) * T_ * C);
  grow(a.datt, size_t(B_) * H * T_ * T_);
  grow(a.du, size_t(B_) * T_ * F);
  const int* len = a.lengths.data();

  for (int l = cfg_.n_layer - 1; l >= 0; --l) {
    const size_t sl = size_t(l);
    auto W = [&](EncoderLayerParam v) { return p.get(encoder_param(l, v)); };
    auto G = [&](EncoderLayerParam v) { return p.grad_of(encoder_param(l, v)); };
    auto bias = [&](EncoderLayerParam v, const float* dy, int oc) {
      if (float* g = G(v)) bias_backward(g, dy, N, oc);
    };
    auto lora = [&](LayerParam v, const float* in, const float* dy, float* dx, int nin, int nout) {
      lora_->backward(l, v, in, dy, dx, N, nin, nout, training_, seed_);
    };
    // x' = LN2(r2): dB = dr2 (also dy1 through the residual).
    layernorm_backward(a.dB.data(), G(kEncNorm2), G(kEncNorm2B), a.dA.data(), a.r2[sl].data(), W(kEncNorm2),
                       a.mean2[sl].data(), a.rstd2[sl].data(), N, C);
    const float* dd = a.dB.data();
    if (dropping()) {
      std::copy(a.dB.begin(), a.dB.begin() + ptrdiff_t(NC), a.dC.begin());
      drop(a.dC.data(), NC, 2 + 2 * uint64_t(l));
      dd = a.dC.data();
    }
    bias(kEncDownB, dd, C);
    matmul_backward(a.du.data(), G(kEncDown), dd, a.g[sl].data(), W(kEncDown), N, F, C, false);  // d gelu(u)
    lora(kWd, a.g[sl].data(), dd, a.du.data(), F, C);
    gelu_backward(a.du.data(), a.du.data(), a.u[sl].data(), size_t(N) * F);
    bias(kEncUpB, a.du.data(), F);
    matmul_backward(a.dB.data(), G(kEncUp), a.du.data(), a.y1[sl].data(), W(kEncUp), N, C, F, true);  // dy1
    lora(kWu, a.y1[sl].data(), a.du.data(), a.dB.data(), C, F);
    // y1 = LN1(r1): dA = dr1 (also dx through the residual).
    layernorm_backward(a.dA.data(), G(kEncNorm1), G(kEncNorm1B), a.dB.data(), a.r1[sl].data(), W(kEncNorm1),
                       a.mean1[sl].data(), a.rstd1[sl].data(), N, C);
    const float* dout = a.dA.data();
    if (dropping()) {
      std::copy(a.dA.begin(), a.dA.begin() + ptrdiff_t(NC), a.dC.begin());
      drop(a.dC.data(), NC, 1 + 2 * uint64_t(l));
      dout = a.dC.data();
    }
    bias(kEncOB, dout, C);
    matmul_backward(a.dao.data(), G(kEncO), dout, a.ao[sl].data(), W(kEncO), N, C, C, false);
    lora(kWo, a.ao[sl].data(), dout, a.dao.data(), C, C);
    attention_encoder_backward(a.dq.data(), a.dk.data(), a.dv.data(), a.datt.data(), a.dao.data(), a.att[sl].data(),
                               a.q[sl].data(), a.k[sl].data(), a.v[sl].data(), len, b, t, H, H, D);
    bias(kEncQB, a.dq.data(), C);
    bias(kEncKB, a.dk.data(), C);
    bias(kEncVB, a.dv.data(), C);
    const float* x = a.x[sl].data();
    matmul_backward(a.dA.data(), G(kEncQ), a.dq.data(), x, W(kEncQ), N, C, C, true);
    matmul_backward(a.dA.data(), G(kEncK), a.dk.data(), x, W(kEncK), N, C, C, true);
    matmul_backward(a.dA.data(), G(kEncV), a.dv.data(), x, W(kEncV), N, C, C, true);
    lora(kWq, x, a.dq.data(), a.dA.data(), C, C);
    lora(kWk, x, a.dk.data(), a.dA.data(), C, C);
    lora(kWv, x, a.dv.data(), a.dA.data(), C, C);
  }

  // The embeddings: dA is the gradient of x0.
  if (dropping()) drop(a.dA.data(), NC, 0);
  layernorm_backward(a.dB.data(), p.grad_of(kEncEmbNorm), p.grad_of(kEncEmbNormB), a.dA.data(), a.e.data(),
                     p.get(kEncEmbNorm), a.mean0.data(), a.rstd0.data(), N, C);
  if (float* dE = p.grad_of(kEncTok)) embedding_backward(dE, a.tokens.data(), a.dB.data(), N, C);
  if (float* dP = p.grad_of(kEncPos)) position_add_backward(dP, a.dB.data(), N, t, C);
  if (float* dT = p.grad_of(kEncTypes)) bias_backward(dT, a.dB.data(), N, C);  // type 0's row
}

}  // namespace lm::model
