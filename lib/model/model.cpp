// Forward and backward pass of the decoder over activations allocated once per Model.
// Per layer: x2 = x + Wo attn(rope(Wq n1(x)), rope(Wk n1(x)), Wv n1(x));
//            x' = x2 + Wd swiglu(Wg n2(x2), Wu n2(x2)); then logits = Wout nf(x_L).
#include "model/model.hpp"

#include <cmath>
#include <cstring>

#include "base/error.hpp"
#include "kernels/blas.hpp"
#include "kernels/kernels.hpp"

namespace lm::model {

using namespace lm::kernels;

void ModelConfig::validate() const {
  auto range = [](const char* name, long v, long lo, long hi) {
    if (v < lo || v > hi)
      throw UsageError(std::string(name) + " " + std::to_string(v) + " is out of range [" + std::to_string(lo) + ", " +
                       std::to_string(hi) + "]");
  };
  range("vocabulary size", n_vocab, 2, 1 << 24);
  range("context length", n_ctx, 1, 1 << 20);
  range("layer count", n_layer, 1, 1024);
  range("embedding width", n_embd, 2, 1 << 16);
  range("head count", n_head, 1, n_embd);
  range("kv head count", n_head_kv, 1, n_head);
  range("feed-forward width", n_ff, 1, 1 << 20);
  if (n_embd % n_head != 0)
    throw UsageError("embedding width " + std::to_string(n_embd) + " is not a multiple of the head count " +
                     std::to_string(n_head));
  if (n_head % n_head_kv != 0)
    throw UsageError("head count " + std::to_string(n_head) + " is not a multiple of the kv head count " +
                     std::to_string(n_head_kv));
  if (head_dim() % 2 != 0) throw UsageError("head size " + std::to_string(head_dim()) + " must be even for RoPE");
  if (!(norm_eps > 0) || !(rope_base > 1)) throw UsageError("norm epsilon must be > 0 and RoPE base > 1");
}

ModelConfig preset(const std::string& name) {
  ModelConfig c;
  if (name == "tiny") {
    c.n_vocab = 4096, c.n_ctx = 256, c.n_layer = 4, c.n_embd = 256, c.n_head = 4, c.n_head_kv = 4, c.n_ff = 768;
  } else if (name == "small") {
    c.n_vocab = 8192, c.n_ctx = 512, c.n_layer = 6, c.n_embd = 384, c.n_head = 6, c.n_head_kv = 6, c.n_ff = 1024;
  } else if (name == "medium") {
    c.n_vocab = 32000, c.n_ctx = 1024, c.n_layer = 12, c.n_embd = 768, c.n_head = 12, c.n_head_kv = 12, c.n_ff = 2048;
  } else {
    throw UsageError("preset '" + name + "', expected tiny, small or medium");
  }
  return c;
}

std::vector<ParamView> param_layout(const ModelConfig& c) {
  std::vector<ParamView> v;
  size_t off = 0;
  auto add = [&](std::string name, int rows, int cols) {
    v.push_back({std::move(name), off, rows, cols});
    off += size_t(rows) * size_t(cols);
  };
  const int C = c.n_embd, K = c.kv_dim(), F = c.n_ff;
  add("token_embd.weight", c.n_vocab, C);
  for (int l = 0; l < c.n_layer; ++l) {
    const std::string p = "blk." + std::to_string(l) + ".";
    add(p + "attn_norm.weight", 1, C);
    add(p + "attn_q.weight", C, C);
    add(p + "attn_k.weight", K, C);
    add(p + "attn_v.weight", K, C);
    add(p + "attn_output.weight", C, C);
    add(p + "ffn_norm.weight", 1, C);
    add(p + "ffn_gate.weight", F, C);
    add(p + "ffn_up.weight", F, C);
    add(p + "ffn_down.weight", C, F);
  }
  add("output_norm.weight", 1, C);
  if (!c.tied) add("output.weight", c.n_vocab, C);
  return v;
}

size_t ModelConfig::n_params() const {
  auto v = param_layout(*this);
  return v.back().offset + size_t(v.back().rows) * v.back().cols;
}

static size_t layer_view(int l, LayerParam v) { return layer_param(l, v); }

Params::Params(const ModelConfig& c, bool with_grad) : cfg(c), views(param_layout(c)) {
  c.validate();
  const size_t n = c.n_params();
  w.assign(n, 0.0f);
  if (with_grad) grad.assign(n, 0.0f);
}

size_t Params::find(const std::string& name) const {
  for (size_t i = 0; i < views.size(); ++i)
    if (views[i].name == name) return i;
  return views.size();
}

void Params::init(Rng& rng) {
  for (const auto& v : views) {
    float* p = w.data() + v.offset;
    const size_t n = size_t(v.rows) * v.cols;
    if (v.rows == 1) {
      for (size_t i = 0; i < n; ++i) p[i] = 1.0f;  // norm gains
    } else {
      for (size_t i = 0; i < n; ++i) p[i] = 0.02f * rng.normal();
    }
  }
}

struct Model::Acts {
  // Per layer l (index l), sized for N = B*T rows. x has n_layer + 1 entries (the residual
  // stream entering each layer, then leaving the last one).
  std::vector<LargeVector<float>> x, xn1, rstd1, q, k, v, att, ao, x2, xn2, rstd2, g, u, h;
  LargeVector<float> xf, rstdf, logits, losses;
  std::vector<int> targets;
  // Backward scratch, shared by all layers.
  LargeVector<float> dres, dtmp, dxn, dq, dk, dv, datt, dao, dg, du, dh;
  float dscale = 0;
  bool have_targets = false;
};

Model::Model(const ModelConfig& cfg, int B, int T) : cfg_(cfg), B_(B), T_(T), a_(std::make_unique<Acts>()) {
  cfg.validate();
  if (B < 1 || B > (1 << 20)) throw UsageError("batch size " + std::to_string(B) + " is out of range [1, 1048576]");
  if (T < 1 || T > cfg.n_ctx)
    throw UsageError("sequence length " + std::to_string(T) + " is out of range [1, " + std::to_string(cfg.n_ctx) + "]");
  const size_t N = size_t(B) * T, C = size_t(cfg.n_embd), K = size_t(cfg.kv_dim()), F = size_t(cfg.n_ff);
  const size_t A = size_t(B) * cfg.n_head * T * T, L = size_t(cfg.n_layer);
  auto per_layer = [&](std::vector<LargeVector<float>>& v, size_t n, size_t count) {
    v.assign(count, LargeVector<float>(n));
  };
  per_layer(a_->x, N * C, L + 1);
  per_layer(a_->xn1, N * C, L);
  per_layer(a_->rstd1, N, L);
  per_layer(a_->q, N * C, L);
  per_layer(a_->k, N * K, L);
  per_layer(a_->v, N * K, L);
  per_layer(a_->att, A, L);
  per_layer(a_->ao, N * C, L);
  per_layer(a_->x2, N * C, L);
  per_layer(a_->xn2, N * C, L);
  per_layer(a_->rstd2, N, L);
  per_layer(a_->g, N * F, L);
  per_layer(a_->u, N * F, L);
  per_layer(a_->h, N * F, L);
  a_->xf.resize(N * C);
  a_->rstdf.resize(N);
  a_->logits.resize(N * size_t(cfg.n_vocab));
  a_->losses.resize(N);
  a_->targets.resize(N);
  for (auto* s : {&a_->dres, &a_->dtmp, &a_->dxn, &a_->dq, &a_->dao}) s->resize(N * C);
  for (auto* s : {&a_->dk, &a_->dv}) s->resize(N * K);
  for (auto* s : {&a_->dg, &a_->du, &a_->dh}) s->resize(N * F);
  a_->datt.resize(A);
}

Model::~Model() = default;

const float* Model::logits() const { return a_->logits.data(); }

size_t Model::activation_bytes() const {
  size_t n = 0;
  for (auto* group : {&a_->x, &a_->xn1, &a_->rstd1, &a_->q, &a_->k, &a_->v, &a_->att, &a_->ao, &a_->x2, &a_->xn2,
                      &a_->rstd2, &a_->g, &a_->u, &a_->h})
    for (const auto& v : *group) n += v.size();
  for (auto* v : {&a_->xf, &a_->rstdf, &a_->logits, &a_->losses, &a_->dres, &a_->dtmp, &a_->dxn, &a_->dq, &a_->dk,
                  &a_->dv, &a_->datt, &a_->dao, &a_->dg, &a_->du, &a_->dh})
    n += v->size();
  return n * sizeof(float);
}

float Model::forward(const Params& p, const int* tokens, const int* targets, int b, int t) {
  LM_ASSERT(b >= 1 && b <= B_ && t >= 1 && t <= T_);
  b_ = b, t_ = t, tokens_ = tokens;
  Acts& a = *a_;
  const int N = b * t, C = cfg_.n_embd, K = cfg_.kv_dim(), F = cfg_.n_ff, V = cfg_.n_vocab;
  const int H = cfg_.n_head, Hkv = cfg_.n_head_kv, D = cfg_.head_dim();
  const float* E = p.get(0);
  embedding_forward(a.x[0].data(), tokens, E, N, C);
  for (int l = 0; l < cfg_.n_layer; ++l) {
    const float* x = a.x[size_t(l)].data();
    float *xn1 = a.xn1[size_t(l)].data(), *q = a.q[size_t(l)].data(), *k = a.k[size_t(l)].data(),
          *v = a.v[size_t(l)].data(), *ao = a.ao[size_t(l)].data(), *x2 = a.x2[size_t(l)].data(),
          *xn2 = a.xn2[size_t(l)].data(), *g = a.g[size_t(l)].data(), *u = a.u[size_t(l)].data(),
          *h = a.h[size_t(l)].data();
    rmsnorm_forward(xn1, a.rstd1[size_t(l)].data(), x, p.get(layer_view(l, kAttnNorm)), N, C, cfg_.norm_eps);
    matmul_forward(q, xn1, p.get(layer_view(l, kWq)), N, C, C);
    matmul_forward(k, xn1, p.get(layer_view(l, kWk)), N, C, K);
    matmul_forward(v, xn1, p.get(layer_view(l, kWv)), N, C, K);
    rope_forward(q, b, t, H, D, cfg_.rope_base, 0);
    rope_forward(k, b, t, Hkv, D, cfg_.rope_base, 0);
    attention_forward(ao, a.att[size_t(l)].data(), q, k, v, b, t, H, Hkv, D);
    std::memcpy(x2, x, sizeof(float) * size_t(N) * C);
    matmul_forward(x2, ao, p.get(layer_view(l, kWo)), N, C, C, 1.0f);
    rmsnorm_forward(xn2, a.rstd2[size_t(l)].data(), x2, p.get(layer_view(l, kFfnNorm)), N, C, cfg_.norm_eps);
    matmul_forward(g, xn2, p.get(layer_view(l, kWg)), N, C, F);
    matmul_forward(u, xn2, p.get(layer_view(l, kWu)), N, C, F);
    swiglu_forward(h, g, u, size_t(N) * F);
    float* next = a.x[size_t(l) + 1].data();
    std::memcpy(next, x2, sizeof(float) * size_t(N) * C);
    matmul_forward(next, h, p.get(layer_view(l, kWd)), N, F, C, 1.0f);
  }
  const size_t out_norm = output_norm_param(cfg_);
  rmsnorm_forward(a.xf.data(), a.rstdf.data(), a.x[size_t(cfg_.n_layer)].data(), p.get(out_norm), N, C, cfg_.norm_eps);
  matmul_forward(a.logits.data(), a.xf.data(), cfg_.tied ? E : p.get(out_norm + 1), N, C, V);
  a.have_targets = targets != nullptr;
  if (!targets) return 0.0f;
  int scored = 0;
  for (int n = 0; n < N; ++n) scored += (a.targets[size_t(n)] = targets[n]) >= 0;
  if (scored == 0) return 0.0f;
  a.dscale = 1.0f / float(scored);
  cross_entropy_forward_backward(a.losses.data(), a.logits.data(), a.logits.data(), a.targets.data(), N, V, a.dscale);
  double sum = 0;
  for (int n = 0; n < N; ++n) sum += a.losses[size_t(n)];
  return float(sum / scored);
}

void Model::backward(Params& p) {
  Acts& a = *a_;
  LM_ASSERT(a.have_targets);
  const int b = b_, t = t_, N = b * t, C = cfg_.n_embd, K = cfg_.kv_dim(), F = cfg_.n_ff, V = cfg_.n_vocab;
  const int H = cfg_.n_head, Hkv = cfg_.n_head_kv, D = cfg_.head_dim();
  float* G = p.grad.data();
  auto grad = [&](size_t view) { return G + p.views[view].offset; };
  const size_t out_norm = output_norm_param(cfg_);
  const float* dlogits = a.logits.data();  // cross-entropy left the gradient in place
  const size_t head = head_param(cfg_);
  matmul_backward(a.dxn.data(), grad(head), dlogits, a.xf.data(), p.get(head), N, C, V, false);
  rmsnorm_backward(a.dres.data(), grad(out_norm), a.dxn.data(), a.x[size_t(cfg_.n_layer)].data(), p.get(out_norm),
                   a.rstdf.data(), N, C);
  for (int l = cfg_.n_layer - 1; l >= 0; --l) {
    const size_t L = size_t(l);
    // x' = x2 + Wd swiglu(...): dres is the gradient of x' and, after the MLP branch is added,
    // of x2 (the residual path is the identity).
    matmul_backward(a.dh.data(), grad(layer_view(l, kWd)), a.dres.data(), a.h[L].data(), p.get(layer_view(l, kWd)), N,
                    F, C, false);
    swiglu_backward(a.dg.data(), a.du.data(), a.dh.data(), a.g[L].data(), a.u[L].data(), size_t(N) * F);
    matmul_backward(a.dxn.data(), grad(layer_view(l, kWg)), a.dg.data(), a.xn2[L].data(), p.get(layer_view(l, kWg)), N,
                    C, F, false);
    matmul_backward(a.dxn.data(), grad(layer_view(l, kWu)), a.du.data(), a.xn2[L].data(), p.get(layer_view(l, kWu)), N,
                    C, F, true);
    rmsnorm_backward(a.dtmp.data(), grad(layer_view(l, kFfnNorm)), a.dxn.data(), a.x2[L].data(),
                     p.get(layer_view(l, kFfnNorm)), a.rstd2[L].data(), N, C);
    for (size_t i = 0; i < size_t(N) * C; ++i) a.dres[i] += a.dtmp[i];
    // x2 = x + Wo attn(...)
    matmul_backward(a.dao.data(), grad(layer_view(l, kWo)), a.dres.data(), a.ao[L].data(), p.get(layer_view(l, kWo)), N,
                    C, C, false);
    attention_backward(a.dq.data(), a.dk.data(), a.dv.data(), a.datt.data(), a.dao.data(), a.att[L].data(),
                       a.q[L].data(), a.k[L].data(), a.v[L].data(), b, t, H, Hkv, D);
    rope_backward(a.dq.data(), b, t, H, D, cfg_.rope_base, 0);
    rope_backward(a.dk.data(), b, t, Hkv, D, cfg_.rope_base, 0);
    matmul_backward(a.dxn.data(), grad(layer_view(l, kWq)), a.dq.data(), a.xn1[L].data(), p.get(layer_view(l, kWq)), N,
                    C, C, false);
    matmul_backward(a.dxn.data(), grad(layer_view(l, kWk)), a.dk.data(), a.xn1[L].data(), p.get(layer_view(l, kWk)), N,
                    C, K, true);
    matmul_backward(a.dxn.data(), grad(layer_view(l, kWv)), a.dv.data(), a.xn1[L].data(), p.get(layer_view(l, kWv)), N,
                    C, K, true);
    rmsnorm_backward(a.dtmp.data(), grad(layer_view(l, kAttnNorm)), a.dxn.data(), a.x[L].data(),
                     p.get(layer_view(l, kAttnNorm)), a.rstd1[L].data(), N, C);
    for (size_t i = 0; i < size_t(N) * C; ++i) a.dres[i] += a.dtmp[i];
  }
  embedding_backward(grad(0), tokens_, a.dres.data(), N, C);
}

}  // namespace lm::model
