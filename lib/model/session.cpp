// The forward pass of model.cpp without what training keeps for backward: one set of
// activation buffers reused by every layer, keys and values written straight into the cache.
#include "model/session.hpp"

#include <cstring>
#include <string>

#include "base/error.hpp"
#include "kernels/kernels.hpp"

namespace lm::model {

using namespace lm::kernels;

struct Session::Buffers {
  LargeVector<float> k, v;  // (L, Hkv, n_ctx, D) each: a kv head's positions are contiguous
  LargeVector<float> x, xn, rstd, q, kt, vt, ao, g, u, h, logits, scratch;
};

Session::Session(const Params& p, int n_ctx, int n_batch)
    : p_(p), cfg_(p.cfg), n_ctx_(n_ctx), n_batch_(n_batch), b_(std::make_unique<Buffers>()) {
  if (n_ctx < 1 || n_ctx > cfg_.n_ctx)
    throw UsageError("context size " + std::to_string(n_ctx) + " is out of range [1, " + std::to_string(cfg_.n_ctx) +
                     "] (the model's context length)");
  if (n_batch < 1) throw UsageError("batch size " + std::to_string(n_batch) + " must be at least 1");
  n_batch_ = std::min(n_batch, n_ctx);
  const size_t N = size_t(n_batch_), C = size_t(cfg_.n_embd), F = size_t(cfg_.n_ff);
  const size_t cache = size_t(cfg_.n_layer) * size_t(n_ctx) * size_t(cfg_.kv_dim());
  Buffers& b = *b_;
  b.k.assign(cache, 0.0f);
  b.v.assign(cache, 0.0f);
  for (auto* buf : {&b.x, &b.xn, &b.q, &b.ao}) buf->assign(N * C, 0.0f);
  b.rstd.assign(N, 0.0f);
  for (auto* buf : {&b.kt, &b.vt}) buf->assign(N * size_t(cfg_.kv_dim()), 0.0f);
  for (auto* buf : {&b.g, &b.u, &b.h}) buf->assign(N * F, 0.0f);
  b.logits.assign(N * size_t(cfg_.n_vocab), 0.0f);
  b.scratch.assign(attention_cached_scratch(n_batch_, n_ctx, cfg_.n_head), 0.0f);
}

Session::~Session() = default;

size_t Session::bytes() const {
  size_t n = 0;
  const Buffers& b = *b_;
  for (auto* buf : {&b.k, &b.v, &b.x, &b.xn, &b.rstd, &b.q, &b.kt, &b.vt, &b.ao, &b.g, &b.u, &b.h, &b.logits, &b.scratch})
    n += buf->size();
  return n * sizeof(float);
}

void Session::keep(int n) {
  LM_ASSERT(n >= 0 && n <= n_past_);
  n_past_ = n;
}

const float* Session::eval_rows(const int* tokens, int n, int first_row) {
  LM_ASSERT(n >= 1 && n <= n_batch_ && n_past_ + n <= n_ctx_ && first_row >= 0 && first_row < n);
  Buffers& b = *b_;
  const int C = cfg_.n_embd, K = cfg_.kv_dim(), F = cfg_.n_ff, V = cfg_.n_vocab;
  const int H = cfg_.n_head, Hkv = cfg_.n_head_kv, D = cfg_.head_dim(), pos0 = n_past_;
  const float* E = p_.get(0);
  float *x = b.x.data(), *xn = b.xn.data(), *q = b.q.data(), *ao = b.ao.data();
  embedding_forward(x, tokens, E, n, C);
  for (int l = 0; l < cfg_.n_layer; ++l) {
    float* kc = b.k.data() + size_t(l) * n_ctx_ * K;
    float* vc = b.v.data() + size_t(l) * n_ctx_ * K;
    rmsnorm_forward(xn, b.rstd.data(), x, p_.get(layer_param(l, kAttnNorm)), n, C, cfg_.norm_eps);
    const LinearOut qkv[3] = {{q, p_.get(layer_param(l, kWq)), C},
                              {b.kt.data(), p_.get(layer_param(l, kWk)), K},
                              {b.vt.data(), p_.get(layer_param(l, kWv)), K}};
    matmul_forward_shared(xn, n, C, qkv, 3);
    rope_forward(q, 1, n, H, D, cfg_.rope_base, pos0);
    rope_forward(b.kt.data(), 1, n, Hkv, D, cfg_.rope_base, pos0);
    for (int i = 0; i < n; ++i)  // (n, Hkv, D) rows into the cache's (Hkv, n_ctx, D)
      for (int g = 0; g < Hkv; ++g) {
        const size_t src = (size_t(i) * Hkv + g) * D, dst = (size_t(g) * n_ctx_ + pos0 + i) * D;
        std::memcpy(kc + dst, b.kt.data() + src, sizeof(float) * D);
        std::memcpy(vc + dst, b.vt.data() + src, sizeof(float) * D);
      }
    attention_cached(ao, q, kc, vc, n, pos0, H, Hkv, D, n_ctx_, b.scratch.data());
    matmul_forward(x, ao, p_.get(layer_param(l, kWo)), n, C, C, 1.0f);  // residual: x += Wo ao
    rmsnorm_forward(xn, b.rstd.data(), x, p_.get(layer_param(l, kFfnNorm)), n, C, cfg_.norm_eps);
    const LinearOut gate_up[2] = {{b.g.data(), p_.get(layer_param(l, kWg)), F},
                                  {b.u.data(), p_.get(layer_param(l, kWu)), F}};
    matmul_forward_shared(xn, n, C, gate_up, 2);
    swiglu_forward(b.h.data(), b.g.data(), b.u.data(), size_t(n) * F);
    matmul_forward(x, b.h.data(), p_.get(layer_param(l, kWd)), n, F, C, 1.0f);
  }
  n_past_ += n;
  // Only the rows whose logits are wanted go through the final norm and the head.
  const int rows = n - first_row;
  const float* xs = x + size_t(n - rows) * C;
  const size_t out_norm = output_norm_param(cfg_);
  rmsnorm_forward(xn, b.rstd.data(), xs, p_.get(out_norm), rows, C, cfg_.norm_eps);
  matmul_forward(b.logits.data(), xn, cfg_.tied ? E : p_.get(out_norm + 1), rows, C, V);
  return b.logits.data();
}

const float* Session::eval_all(const int* tokens, int n) {
  LM_ASSERT(n >= 1);
  const float* logits = nullptr;
  for (int i = 0; i < n; i += n_batch_) logits = eval(tokens + i, std::min(n_batch_, n - i));
  return logits;
}

}  // namespace lm::model
