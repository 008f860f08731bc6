// The forward pass of model.cpp without what training keeps for backward: one set of
// activation buffers reused by every layer, keys and values written straight into the cache.
#include "model/session.hpp"

#include <algorithm>
#include <cstring>
#include <string>

#include "base/error.hpp"
#include "kernels/kernels.hpp"
#include "kernels/qmatmul.hpp"

namespace lm::model {

using namespace lm::kernels;

struct Session::Buffers {
  LargeVector<float> k, v;  // (L, Hkv, cap, D) each: a kv head's positions are contiguous
  LargeVector<float> x, xn, rstd, q, kt, vt, ao, g, u, h, logits, scratch;
  LargeVector<uint8_t> qscratch;  // quantized activations or dequantized weight panels
};

Session::Session(const Params& p, int n_ctx, int n_batch)
    : Session(std::make_unique<Weights>(view_weights(p)), nullptr, n_ctx, n_batch) {}

Session::Session(const Weights& w, int n_ctx, int n_batch) : Session(nullptr, &w, n_ctx, n_batch) {}

Session::Session(std::unique_ptr<Weights> own, const Weights* w, int n_ctx, int n_batch)
    : own_(std::move(own)), w_(own_ ? *own_ : *w), cfg_(w_.cfg), n_ctx_(n_ctx), n_batch_(n_batch), b_(std::make_unique<Buffers>()) {
  if (n_ctx < 1 || n_ctx > cfg_.n_ctx)
    throw UsageError("context size " + std::to_string(n_ctx) + " is out of range [1, " + std::to_string(cfg_.n_ctx) +
                     "] (the model's context length)");
  if (n_batch < 1) throw UsageError("batch size " + std::to_string(n_batch) + " must be at least 1");
  n_batch_ = std::min(n_batch, n_ctx);
  const size_t N = size_t(n_batch_), C = size_t(cfg_.n_embd), F = size_t(cfg_.n_ff);
  Buffers& b = *b_;
  for (auto* buf : {&b.x, &b.xn, &b.q, &b.ao}) buf->assign(N * C, 0.0f);
  b.rstd.assign(N, 0.0f);
  for (auto* buf : {&b.kt, &b.vt}) buf->assign(N * size_t(cfg_.kv_dim()), 0.0f);
  for (auto* buf : {&b.g, &b.u, &b.h}) buf->assign(N * F, 0.0f);
  b.logits.assign(N * size_t(cfg_.n_vocab), 0.0f);
  // Scratch for every matrix at both the decoding and the batch size (K-quants differ).
  size_t qs = 0;
  for (const QWeight& m : w_.w)
    if (m.rows > 1)
      for (int rows : {std::min(n_batch_, kGemvMaxRows), n_batch_}) qs = std::max(qs, qmatmul_scratch(m, rows));
  b.qscratch.assign(qs, 0);
}

void Session::reserve(int n) {
  n = std::min(n, n_ctx_);
  if (n <= cap_) return;
  Buffers& b = *b_;
  const size_t L = size_t(cfg_.n_layer), Hkv = size_t(cfg_.n_head_kv), D = size_t(cfg_.head_dim());
  const size_t old_cap = size_t(cap_), new_cap = size_t(n);
  // A kv head's positions are contiguous at a stride of the capacity: the n_past cached rows of
  // every (layer, head) move to their place in the larger buffers.
  // Everything is allocated before anything changes, so a failed allocation leaves the session as it was.
  LargeVector<float> k(L * Hkv * new_cap * D, 0.0f), v(k.size(), 0.0f);
  LargeVector<float> scratch(attention_cached_scratch(n_batch_, n, cfg_.n_head), 0.0f);
  for (size_t lg = 0; lg < L * Hkv && n_past_ > 0; ++lg) {
    std::memcpy(k.data() + lg * new_cap * D, b.k.data() + lg * old_cap * D, sizeof(float) * size_t(n_past_) * D);
    std::memcpy(v.data() + lg * new_cap * D, b.v.data() + lg * old_cap * D, sizeof(float) * size_t(n_past_) * D);
  }
  b.k.swap(k);
  b.v.swap(v);
  b.scratch.swap(scratch);
  cap_ = n;
}

size_t Session::cache_bytes() const { return (b_->k.size() + b_->v.size()) * sizeof(float); }

Session::~Session() = default;

size_t Session::bytes() const {
  size_t n = 0;
  const Buffers& b = *b_;
  for (auto* buf : {&b.k, &b.v, &b.x, &b.xn, &b.rstd, &b.q, &b.kt, &b.vt, &b.ao, &b.g, &b.u, &b.h, &b.logits, &b.scratch})
    n += buf->size();
  return n * sizeof(float) + b.qscratch.size();
}

void Session::keep(int n) {
  LM_ASSERT(n >= 0 && n <= n_past_);
  n_past_ = n;
}

const float* Session::eval_rows(const int* tokens, int n, int first_row) {
  LM_ASSERT(n >= 1 && n <= n_batch_ && n_past_ + n <= n_ctx_ && first_row >= 0 && first_row < n);
  if (n_past_ + n > cap_) reserve(std::max(n_past_ + n, 2 * cap_));  // doubling: amortized O(1) per token
  Buffers& b = *b_;
  const int C = cfg_.n_embd, K = cfg_.kv_dim(), F = cfg_.n_ff;
  const int H = cfg_.n_head, Hkv = cfg_.n_head_kv, D = cfg_.head_dim(), pos0 = n_past_;
  float *x = b.x.data(), *xn = b.xn.data(), *q = b.q.data(), *ao = b.ao.data();
  void* qs = b.qscratch.data();
  const QWeight& E = w_[0];
  if (E.type == format::GgmlType::F32) {
    embedding_forward(x, tokens, static_cast<const float*>(E.data), n, C);
  } else {
#pragma omp parallel for schedule(static) if (n > 1 && size_t(n) * C >= 16384)
    for (int i = 0; i < n; ++i) dequantize_weight_row(E, tokens[i], x + size_t(i) * C);
  }
  for (int l = 0; l < cfg_.n_layer; ++l) {
    float* kc = b.k.data() + size_t(l) * cap_ * K;
    float* vc = b.v.data() + size_t(l) * cap_ * K;
    rmsnorm_forward(xn, b.rstd.data(), x, w_.f32(layer_param(l, kAttnNorm)), n, C, cfg_.norm_eps);
    const QLinearOut qkv[3] = {{q, &w_[layer_param(l, kWq)]},
                               {b.kt.data(), &w_[layer_param(l, kWk)]},
                               {b.vt.data(), &w_[layer_param(l, kWv)]}};
    qmatmul_forward_shared(xn, n, qkv, 3, qs);
    rope_forward(q, 1, n, H, D, cfg_.rope_base, pos0);
    rope_forward(b.kt.data(), 1, n, Hkv, D, cfg_.rope_base, pos0);
    for (int i = 0; i < n; ++i)  // (n, Hkv, D) rows into the cache's (Hkv, cap, D)
      for (int g = 0; g < Hkv; ++g) {
        const size_t src = (size_t(i) * Hkv + g) * D, dst = (size_t(g) * cap_ + pos0 + i) * D;
        std::memcpy(kc + dst, b.kt.data() + src, sizeof(float) * D);
        std::memcpy(vc + dst, b.vt.data() + src, sizeof(float) * D);
      }
    attention_cached(ao, q, kc, vc, n, pos0, H, Hkv, D, cap_, b.scratch.data());
    qmatmul_forward(x, ao, w_[layer_param(l, kWo)], n, 1.0f, qs);  // residual: x += Wo ao
    rmsnorm_forward(xn, b.rstd.data(), x, w_.f32(layer_param(l, kFfnNorm)), n, C, cfg_.norm_eps);
    const QLinearOut gate_up[2] = {{b.g.data(), &w_[layer_param(l, kWg)]}, {b.u.data(), &w_[layer_param(l, kWu)]}};
    qmatmul_forward_shared(xn, n, gate_up, 2, qs);
    swiglu_forward(b.h.data(), b.g.data(), b.u.data(), size_t(n) * F);
    qmatmul_forward(x, b.h.data(), w_[layer_param(l, kWd)], n, 1.0f, qs);
  }
  n_past_ += n;
  // Only the rows whose logits are wanted go through the final norm and the head.
  const int rows = n - first_row;
  const float* xs = x + size_t(n - rows) * C;
  rmsnorm_forward(xn, b.rstd.data(), xs, w_.f32(output_norm_param(cfg_)), rows, C, cfg_.norm_eps);
  qmatmul_forward(b.logits.data(), xn, w_.head(), rows, 0.0f, qs);
  return b.logits.data();
}

const float* Session::eval_all(const int* tokens, int n) {
  LM_ASSERT(n >= 1);
  const float* logits = nullptr;
  for (int i = 0; i < n; i += n_batch_) logits = eval(tokens + i, std::min(n_batch_, n - i));
  return logits;
}

}  // namespace lm::model
