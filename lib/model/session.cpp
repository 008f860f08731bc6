// The forward pass of model.cpp without what training keeps for backward: one set of
// activation buffers reused by every layer, keys and values written straight into the cache.
#include "model/session.hpp"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <string>

#include "base/error.hpp"
#include "kernels/kernels.hpp"
#include "kernels/qmatmul.hpp"
#include "kernels/thread_tuner.hpp"

namespace lm::model {

using namespace lm::kernels;

struct Session::Buffers {
  LargeVector<float> k, v;  // (L, S, Hkv, cap, D) each: a kv head's positions are contiguous
  LargeVector<float> x, xn, rstd, q, kt, vt, ao, g, u, h, logits, scratch;
  LargeVector<float> t;      // (N, C): a layer's output before its bias, post-norm and residual
  LargeVector<float> fused;  // (N, C + 2 Hkv D) or (N, 2F): a fused projection's output
  LargeVector<float> pos;    // (C): one learned position row
  std::vector<float> inv_freq;  // (n_rot / 2): RoPE angle per position of each pair
  LargeVector<uint8_t> qscratch;  // quantized activations or dequantized weight panels
  std::vector<int> tokens;        // (N): the tokens of a batch's chunks, in order
  // An LSTM: the state of every (layer, slot), h (O wide) and c (H wide); a layer's gates (N, 4H)
  // and output (N, O), the cell states (N, H); one step's rows: gates, previous state, h, c,
  // activations, tanh(c) and output.
  LargeVector<float> sh, sc, lgates, lout, lc, sg, srp, scp, sh_, sc_, sacts, stc, sout;
};

namespace {

// True when the llama path's kernels (rope_forward, attention_cached) compute this
// architecture's RoPE and attention exactly.
bool plain_rope(const ModelConfig& c, const Weights& w) {
  return !c.arch.neox && c.arch.n_rot == 0 && c.arch.rope_freq_scale == 1.0f && c.arch.rope_attn_factor == 1.0f &&
         !w.get(-1, Role::RopeFreqs) && !w.get(-1, Role::RopeLong) && !w.get(-1, Role::RopeShort);
}
bool plain_attention(const ModelConfig& c) {
  return c.arch.causal && c.arch.attn_scale == 0 && c.arch.attn_softcap == 0 && c.arch.sliding_window == 0;
}

}  // namespace

Session::Session(const Params& p, int n_ctx, int n_batch, int n_seq)
    : Session(std::make_unique<Weights>(view_weights(p)), nullptr, n_ctx, n_batch, n_seq) {}

Session::Session(const Weights& w, int n_ctx, int n_batch, int n_seq) : Session(nullptr, &w, n_ctx, n_batch, n_seq) {}

Session::Session(std::unique_ptr<Weights> own, const Weights* w, int n_ctx, int n_batch, int n_seq)
    : own_(std::move(own)), w_(own_ ? *own_ : *w), cfg_(w_.cfg), n_ctx_(n_ctx), n_batch_(n_batch), b_(std::make_unique<Buffers>()) {
  // An LSTM's state does not grow with the sequence: its context is not bounded by the window
  // it was trained on.
  const int max_ctx = cfg_.max_context();
  if (n_ctx < 1 || n_ctx > max_ctx)
    throw UsageError("context size " + std::to_string(n_ctx) + " is out of range [1, " + std::to_string(max_ctx) +
                     "] (the model's context length)");
  if (n_batch < 1) throw UsageError("batch size " + std::to_string(n_batch) + " must be at least 1");
  if (n_seq < 1) throw UsageError("sequence count " + std::to_string(n_seq) + " must be at least 1");
  past_.assign(size_t(n_seq), 0);
  n_batch_ = n_seq == 1 ? std::min(n_batch, n_ctx) : n_batch;  // one sequence's rows are at most its context
  b_->tokens.assign(size_t(n_batch_), 0);
  const size_t N = size_t(n_batch_), C = size_t(cfg_.n_embd), F = size_t(cfg_.n_ff);
  Buffers& b = *b_;
  if (cfg_.is_lstm()) {
    const size_t L = size_t(cfg_.n_layer), H = F, O = size_t(n_embd()), S = size_t(n_seq);
    b.sh.assign(L * S * O, 0.0f);
    b.sc.assign(L * S * H, 0.0f);
    b.x.assign(N * std::max(C, O), 0.0f);
    for (auto* buf : {&b.lgates, &b.sg, &b.sacts}) buf->assign(N * 4 * H, 0.0f);
    for (auto* buf : {&b.lc, &b.scp, &b.sh_, &b.sc_, &b.stc}) buf->assign(N * H, 0.0f);
    for (auto* buf : {&b.lout, &b.srp, &b.sout}) buf->assign(N * O, 0.0f);
    b.logits.assign(N * size_t(cfg_.n_vocab), 0.0f);
    size_qscratch();
    return;
  }
  for (auto* buf : {&b.x, &b.xn}) buf->assign(N * C, 0.0f);
  for (auto* buf : {&b.q, &b.ao}) buf->assign(N * size_t(cfg_.q_dim()), 0.0f);
  b.rstd.assign(N, 0.0f);
  for (auto* buf : {&b.kt, &b.vt}) buf->assign(N * size_t(cfg_.kv_dim()), 0.0f);
  for (auto* buf : {&b.g, &b.u, &b.h}) buf->assign(N * F, 0.0f);
  b.logits.assign(N * size_t(cfg_.n_vocab), 0.0f);
  const ArchOptions& A = cfg_.arch;
  if (!cfg_.is_llama() || A.post_norms) b.t.assign(N * C, 0.0f);
  size_t fused = 0;
  for (int l = 0; l < cfg_.n_layer; ++l) {
    if (w_.get(l, Role::Qkv)) fused = std::max(fused, size_t(cfg_.q_dim()) + 2 * size_t(cfg_.kv_dim()));
    if (w_.get(l, Role::GateUp)) fused = std::max(fused, 2 * F);
  }
  b.fused.assign(N * fused, 0.0f);
  if (w_.get(-1, Role::PosEmbd)) b.pos.assign(C, 0.0f);
  if (!A.learned_pos) {
    // The angle of pair i at position p is p * inv_freq[i] (llama.cpp's theta, with freq_scale
    // and the rope_freqs divisors of Llama 3.1 scaling).
    const int n_rot = cfg_.n_rot();
    // llama.cpp's choice: rope_freqs, else LongRoPE's long factors when the context exceeds
    // the original one, else the short ones.
    const float* factors = w_.vec(-1, Role::RopeFreqs);
    if (!factors)
      factors = w_.vec(-1, n_ctx_ > A.rope_ctx_orig && A.rope_ctx_orig > 0 ? Role::RopeLong : Role::RopeShort);
    // YaRN: pairs below the low correction dimension keep their frequency (extrapolation),
    // pairs above the high one take the scaled frequency (interpolation), a linear ramp between
    // (ggml's rope_yarn with ext_factor 1, beta_fast 32 and beta_slow 1; the correction
    // dimensions in float, as ggml_rope_yarn_corr_dims computes them).
    float low = 0, high = 0;
    if (A.yarn_ctx_orig > 0) {
      const auto corr_dim = [&](float beta) {
        return float(n_rot) * std::log(float(A.yarn_ctx_orig) / (beta * 2 * float(M_PI))) /
               (2 * std::log(cfg_.rope_base));
      };
      low = std::max(0.0f, std::floor(corr_dim(32.0f)));
      high = std::min(float(n_rot - 1), std::ceil(corr_dim(1.0f)));
    }
    for (int i = 0; i < n_rot / 2; ++i) {
      double scale = A.rope_freq_scale;
      if (A.yarn_ctx_orig > 0) {
        const float ramp = 1 - std::min(1.0f, std::max(0.0f, (float(i) - low) / std::max(0.001f, high - low)));
        scale = double(A.rope_freq_scale) * (1 - ramp) + ramp;
      }
      b.inv_freq.push_back(float(scale * std::pow(double(cfg_.rope_base), -2.0 * i / n_rot) /
                                 (factors ? factors[i] : 1.0f)));
    }
  }
  size_qscratch();
}

void Session::size_qscratch() {
  // Every matrix at one row (an LSTM's steps), the decoding and the batch size (K-quants differ).
  size_t qs = 0;
  for (const QWeight& m : w_.w)
    if (m.rows > 1)
      for (int rows : {1, std::min(n_batch_, kGemvMaxRows), n_batch_}) qs = std::max(qs, qmatmul_scratch(m, rows));
  b_->qscratch.assign(qs, 0);
}

void Session::embed_tokens(float* x, const int* tokens, int n) const {
  const int C = cfg_.n_embd;
  const QWeight& E = *w_.get(-1, Role::TokEmbd);
  if (E.type == format::GgmlType::F32) {
    embedding_forward(x, tokens, static_cast<const float*>(E.data), n, C);
  } else {
#pragma omp parallel for schedule(static) if (n > 1 && size_t(n) * C >= 16384)
    for (int i = 0; i < n; ++i) dequantize_weight_row(E, tokens[i], x + size_t(i) * C);
  }
}

void Session::reserve(int n) {
  n = std::min(n, n_ctx_);
  if (n <= cap_) return;
  if (cfg_.is_lstm()) {  // no cache
    cap_ = n;
    return;
  }
  Buffers& b = *b_;
  const size_t L = size_t(cfg_.n_layer), S = past_.size(), Hkv = size_t(cfg_.n_head_kv), D = size_t(cfg_.head_dim());
  const size_t old_cap = size_t(cap_), new_cap = size_t(n);
  // A kv head's positions are contiguous at a stride of the capacity: the cached rows of every
  // (layer, slot, head) move to their place in the larger buffers.
  // Everything is allocated before anything changes, so a failed allocation leaves the session as it was.
  LargeVector<float> k(L * S * Hkv * new_cap * D, 0.0f), v(k.size(), 0.0f);
  LargeVector<float> scratch(attention_cached_scratch(std::min(n_batch_, n), n, cfg_.n_head), 0.0f);
  for (size_t l = 0; l < L; ++l)
    for (size_t s = 0; s < S; ++s)
      for (size_t g = 0, past = size_t(past_[s]); g < Hkv && past > 0; ++g) {
        const size_t lg = (l * S + s) * Hkv + g;
        std::memcpy(k.data() + lg * new_cap * D, b.k.data() + lg * old_cap * D, sizeof(float) * past * D);
        std::memcpy(v.data() + lg * new_cap * D, b.v.data() + lg * old_cap * D, sizeof(float) * past * D);
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
  for (auto* buf : {&b.k, &b.v, &b.x, &b.xn, &b.rstd, &b.q, &b.kt, &b.vt, &b.ao, &b.g, &b.u, &b.h, &b.logits, &b.scratch,
                    &b.t, &b.fused, &b.pos, &b.sh, &b.sc, &b.lgates, &b.lout, &b.lc, &b.sg, &b.srp, &b.scp, &b.sh_, &b.sc_,
                    &b.sacts, &b.stc, &b.sout})
    n += buf->size();
  return n * sizeof(float) + b.qscratch.size();
}

void Session::keep(int n, int seq) {
  LM_ASSERT(seq >= 0 && seq < n_seq() && n >= 0 && n <= past_[size_t(seq)]);
  if (cfg_.is_lstm() && n != past_[size_t(seq)]) {
    if (n != 0)
      throw UsageError("an LSTM keeps a state, not the tokens: it cannot go back to token " + std::to_string(n) +
                       " of " + std::to_string(past_[size_t(seq)]) + "; start the sequence again");
    const size_t S = past_.size(), O = size_t(n_embd()), H = size_t(cfg_.n_ff);
    for (int l = 0; l < cfg_.n_layer; ++l) {
      std::fill_n(b_->sh.data() + (size_t(l) * S + size_t(seq)) * O, O, 0.0f);
      std::fill_n(b_->sc.data() + (size_t(l) * S + size_t(seq)) * H, H, 0.0f);
    }
  }
  past_[size_t(seq)] = n;
}

const float* Session::eval_rows(const int* tokens, int n, int first_row) {
  LM_ASSERT(first_row >= 0 && first_row < n);
  const Chunk c{0, tokens, n, first_row};
  return eval_batch(&c, 1);
}

const float* Session::eval_batch(const Chunk* chunks, int n_chunks) {
  kernels::ThreadTuner* tuner = kernels::inference_tuner();
  if (!tuner) return eval_batch_at(chunks, n_chunks);
  int rows = 0;
  for (int c = 0; c < n_chunks; ++c) rows += chunks[c].n;
  tuner->begin(rows);
  const float* out = eval_batch_at(chunks, n_chunks);
  tuner->end();
  return out;
}

const float* Session::eval_batch_at(const Chunk* chunks, int n_chunks) {
  LM_ASSERT(n_chunks >= 1);
  int n = 0, need = 0, out_rows = 0;
  for (int c = 0; c < n_chunks; ++c) {
    const Chunk& ch = chunks[c];
    LM_ASSERT(ch.seq >= 0 && ch.seq < n_seq() && ch.n >= 1 && past_[size_t(ch.seq)] + ch.n <= n_ctx_ &&
              ch.first_row >= 0 && ch.first_row <= ch.n);
    for (int d = 0; d < c; ++d) LM_ASSERT(chunks[d].seq != ch.seq);
    if (!cfg_.arch.causal && past_[size_t(ch.seq)] != 0)
      throw UsageError("an encoder reads a whole sequence in one evaluation; keep(0) first");
    n += ch.n;
    out_rows += ch.n - ch.first_row;
    need = std::max(need, past_[size_t(ch.seq)] + ch.n);
  }
  LM_ASSERT(n <= n_batch_);
  if (cfg_.is_lstm()) return eval_lstm(chunks, n_chunks, n, out_rows);
  if (need > cap_) reserve(std::max(need, 2 * cap_));  // doubling: amortized O(1) per token
  Buffers& b = *b_;
  const ArchOptions& A = cfg_.arch;
  const int C = cfg_.n_embd, Q = cfg_.q_dim(), K = cfg_.kv_dim(), F = cfg_.n_ff;
  const int H = cfg_.n_head, Hkv = cfg_.n_head_kv, D = cfg_.head_dim();
  const size_t S = past_.size();
  // Row r0 of chunk c is row row0[c] of the batch.
  int* tokens = b.tokens.data();
  for (int c = 0, r = 0; c < n_chunks; r += chunks[c].n, ++c)
    std::memcpy(tokens + r, chunks[c].tokens, sizeof(int) * size_t(chunks[c].n));
  // Calls f(chunk, first batch row, its sequence's position) for every chunk.
  auto each_chunk = [&](auto&& f) {
    for (int c = 0, r = 0; c < n_chunks; r += chunks[c].n, ++c) f(chunks[c], r, past_[size_t(chunks[c].seq)]);
  };
  float *x = b.x.data(), *xn = b.xn.data(), *q = b.q.data(), *ao = b.ao.data();
  void* qs = b.qscratch.data();
  const bool llama_rope = plain_rope(cfg_, w_), llama_attention = plain_attention(cfg_);
  // Layers with the sliding window: all, or every swa_pattern-th pattern as llama.cpp sets it.
  auto windowed = [&](int l) { return A.swa_pattern == 0 || l % A.swa_pattern < A.swa_pattern - 1; };
  AttentionOptions ao_opts;
  ao_opts.scale = A.attn_scale, ao_opts.softcap = A.attn_softcap, ao_opts.window = A.sliding_window;
  ao_opts.causal = A.causal;
  // Every chunk one row (decoding several sequences) and room in the scratch for each one's
  // attention rows: attention runs over the chunks in parallel.
  const size_t chunk_scratch = attention_cached_scratch(1, cap_, cfg_.n_head);
  const bool decode_chunks = n_chunks > 1 && n == n_chunks && size_t(n_chunks) * chunk_scratch <= b.scratch.size();

  embed_tokens(x, tokens, n);
  if (A.embd_scale) {
    const float s = std::sqrt(float(C));
    for (size_t i = 0; i < size_t(n) * C; ++i) x[i] *= s;
  }
  if (const QWeight* P = w_.get(-1, Role::PosEmbd))
    each_chunk([&](const Chunk& ch, int r0, int pos0) {
      for (int i = 0; i < ch.n; ++i) {
        dequantize_weight_row(*P, pos0 + i, b.pos.data());
        for (int c = 0; c < C; ++c) x[size_t(r0 + i) * C + c] += b.pos[size_t(c)];
      }
    });
  if (const QWeight* TT = w_.get(-1, Role::TokTypes)) {  // every token is of type 0
    dequantize_weight_row(*TT, 0, b.pos.data());
    for (int i = 0; i < n; ++i)
      for (int c = 0; c < C; ++c) x[size_t(i) * C + c] += b.pos[size_t(c)];
  }
  // y = norm(x) with layer l's gains (and bias) of role w; rows of C.
  auto norm = [&](float* y, const float* in, int l, Role w, Role bias, int rows) {
    if (A.norm == NormKind::Rms)
      rmsnorm_forward(y, b.rstd.data(), in, w_.vec(l, w), rows, C, cfg_.norm_eps);
    else
      layernorm_forward(y, in, w_.vec(l, w), w_.vec(l, bias), rows, C, cfg_.norm_eps);
  };
  // x += post_norm(y + bias): the end of a block; without bias or post-norm, y is already in x.
  auto finish = [&](float* y, int l, Role bias, Role post) {
    if (const float* bv = w_.vec(l, bias)) add_bias(y, bv, n, C);
    if (A.post_norms) norm(y, y, l, post, Role::Count, n);
    for (size_t i = 0; i < size_t(n) * C; ++i) x[i] += y[i];
  };
  // Rows of a fused projection (n, cols) split into outputs of widths w0, w1, w2.
  auto split = [&](const float* src, int cols, float* d0, int w0, float* d1, int w1, float* d2, int w2) {
    for (int i = 0; i < n; ++i) {
      const float* r = src + size_t(i) * cols;
      std::memcpy(d0 + size_t(i) * w0, r, sizeof(float) * w0);
      std::memcpy(d1 + size_t(i) * w1, r + w0, sizeof(float) * w1);
      if (d2) std::memcpy(d2 + size_t(i) * w2, r + w0 + w1, sizeof(float) * w2);
    }
  };
  const bool direct_out = cfg_.is_llama() && !A.post_norms;  // Wo and Wdown add into x themselves
  // Shows the observer (if any) the rows of `in` that layer l's weight of role r is about to take.
  auto observe = [&](int l, Role r, const float* in, int rows) {
    if (observer_) observer_->observe(l, r, l < 0 && r == Role::Head ? w_.head() : *w_.get(l, r), in, rows);
  };
  if (w_.get(-1, Role::EmbdNorm)) norm(x, x, -1, Role::EmbdNorm, Role::EmbdNormB, n);

  for (int l = 0; l < cfg_.n_layer; ++l) {
    // Slot s of layer l.
    auto kc = [&](int s) { return b.k.data() + (size_t(l) * S + size_t(s)) * cap_ * K; };
    auto vc = [&](int s) { return b.v.data() + (size_t(l) * S + size_t(s)) * cap_ * K; };
    const float* in = x;  // post-LN blocks read x itself and normalize after the residual
    if (!A.post_ln) {
      norm(xn, x, l, Role::AttnNorm, Role::AttnNormB, n);
      in = xn;
    }
    if (const QWeight* Wqkv = w_.get(l, Role::Qkv)) {
      float* f = b.fused.data();
      observe(l, Role::Qkv, in, n);
      qmatmul_forward(f, in, *Wqkv, n, 0.0f, qs);
      if (const float* bv = w_.vec(l, Role::QkvB)) add_bias(f, bv, n, Q + 2 * K);
      split(f, Q + 2 * K, q, Q, b.kt.data(), K, b.vt.data(), K);
    } else {
      const QLinearOut qkv[3] = {{q, w_.get(l, Role::Q)}, {b.kt.data(), w_.get(l, Role::K)}, {b.vt.data(), w_.get(l, Role::V)}};
      for (Role r : {Role::Q, Role::K, Role::V}) observe(l, r, in, n);
      qmatmul_forward_shared(in, n, qkv, 3, qs);
      if (const float* bv = w_.vec(l, Role::QB)) add_bias(q, bv, n, Q);
      if (const float* bv = w_.vec(l, Role::KB)) add_bias(b.kt.data(), bv, n, K);
      if (const float* bv = w_.vec(l, Role::VB)) add_bias(b.vt.data(), bv, n, K);
    }
    ao_opts.window = windowed(l) ? A.sliding_window : 0;
    // Positions, the cache and attention are each sequence's own.
    auto attend = [&](const Chunk& ch, int r0, int pos0, float* scratch) {
      float *qc = q + size_t(r0) * Q, *kt = b.kt.data() + size_t(r0) * K, *vt = b.vt.data() + size_t(r0) * K;
      const int m = ch.n;
      if (A.learned_pos) {
      } else if (llama_rope) {
        rope_forward_qk(qc, kt, 1, m, H, Hkv, D, cfg_.rope_base, pos0);
      } else {
        rope_table_forward(qc, m, H, D, cfg_.n_rot(), b.inv_freq.data(), A.rope_attn_factor, A.neox, pos0);
        rope_table_forward(kt, m, Hkv, D, cfg_.n_rot(), b.inv_freq.data(), A.rope_attn_factor, A.neox, pos0);
      }
      float *ks = kc(ch.seq), *vs = vc(ch.seq);
      for (int i = 0; i < m; ++i)  // (m, Hkv, D) rows into the slot's (Hkv, cap, D)
        for (int g = 0; g < Hkv; ++g) {
          const size_t src = (size_t(i) * Hkv + g) * D, dst = (size_t(g) * cap_ + pos0 + i) * D;
          std::memcpy(ks + dst, kt + src, sizeof(float) * D);
          std::memcpy(vs + dst, vt + src, sizeof(float) * D);
        }
      float* out = ao + size_t(r0) * Q;
      if (llama_attention)
        attention_cached(out, qc, ks, vs, m, pos0, H, Hkv, D, cap_, scratch);
      else
        attention_cached_ext(out, qc, ks, vs, m, pos0, H, Hkv, D, cap_, ao_opts, scratch);
    };
    if (decode_chunks) {
      // A decoding step of several sequences: the sequences in parallel, each with its own part
      // of the scratch, instead of one small parallel region over heads per sequence.
#pragma omp parallel for schedule(dynamic, 1)
      for (int c = 0; c < n_chunks; ++c)
        attend(chunks[c], c, past_[size_t(chunks[c].seq)], b.scratch.data() + size_t(c) * chunk_scratch);
    } else {
      each_chunk([&](const Chunk& ch, int r0, int pos0) { attend(ch, r0, pos0, b.scratch.data()); });
    }
    observe(l, Role::O, ao, n);
    if (direct_out) {
      qmatmul_forward(x, ao, *w_.get(l, Role::O), n, 1.0f, qs);  // residual: x += Wo ao
    } else {
      qmatmul_forward(b.t.data(), ao, *w_.get(l, Role::O), n, 0.0f, qs);
      finish(b.t.data(), l, Role::OB, Role::AttnPostNorm);
      if (A.post_ln) norm(x, x, l, Role::AttnNorm, Role::AttnNormB, n);
    }

    if (A.post_ln)
      std::memcpy(xn, x, sizeof(float) * size_t(n) * C);
    else
      norm(xn, x, l, Role::FfnNorm, Role::FfnNormB, n);
    if (A.ffn == FfnKind::Gelu) {
      observe(l, Role::Up, xn, n);
      qmatmul_forward(b.h.data(), xn, *w_.get(l, Role::Up), n, 0.0f, qs);
      if (const float* bv = w_.vec(l, Role::UpB)) add_bias(b.h.data(), bv, n, F);
      gelu_forward(b.h.data(), b.h.data(), size_t(n) * F);
    } else {
      if (const QWeight* Wgu = w_.get(l, Role::GateUp)) {
        observe(l, Role::GateUp, xn, n);
        qmatmul_forward(b.fused.data(), xn, *Wgu, n, 0.0f, qs);
        split(b.fused.data(), 2 * F, b.g.data(), F, b.u.data(), F, nullptr, 0);
      } else {
        const QLinearOut gate_up[2] = {{b.g.data(), w_.get(l, Role::Gate)}, {b.u.data(), w_.get(l, Role::Up)}};
        observe(l, Role::Gate, xn, n);
        observe(l, Role::Up, xn, n);
        qmatmul_forward_shared(xn, n, gate_up, 2, qs);
      }
      if (A.ffn == FfnKind::SwiGLU)
        swiglu_forward(b.h.data(), b.g.data(), b.u.data(), size_t(n) * F);
      else
        geglu_forward(b.h.data(), b.g.data(), b.u.data(), size_t(n) * F);
    }
    observe(l, Role::Down, b.h.data(), n);
    if (direct_out) {
      qmatmul_forward(x, b.h.data(), *w_.get(l, Role::Down), n, 1.0f, qs);
    } else {
      qmatmul_forward(b.t.data(), b.h.data(), *w_.get(l, Role::Down), n, 0.0f, qs);
      finish(b.t.data(), l, Role::DownB, Role::FfnPostNorm);
      if (A.post_ln) norm(x, x, l, Role::FfnNorm, Role::FfnNormB, n);
    }
  }
  for (int c = 0; c < n_chunks; ++c) past_[size_t(chunks[c].seq)] += chunks[c].n;
  // Only the rows whose logits are wanted go through the final norm and the head: moved together
  // (in place; a single chunk's rows are already the last ones).
  const float* xs = x;
  if (n_chunks == 1) {
    xs = x + size_t(chunks[0].first_row) * C;
  } else {
    int to = 0;
    for (int c = 0, r = 0; c < n_chunks; r += chunks[c].n, ++c)
      for (int i = chunks[c].first_row; i < chunks[c].n; ++i, ++to)
        if (to != r + i) std::memcpy(x + size_t(to) * C, x + size_t(r + i) * C, sizeof(float) * C);
  }
  if (A.post_ln) return xs;  // an encoder: the hidden states are the output
  const int rows = out_rows;
  if (rows == 0) return b.logits.data();
  norm(xn, xs, -1, Role::OutNorm, Role::OutNormB, rows);
  if (hidden_out_) return xn;
  observe(-1, Role::Head, xn, rows);
  qmatmul_forward(b.logits.data(), xn, w_.head(), rows, 0.0f, qs);
  if (const float* hb = w_.vec(-1, Role::HeadB)) add_bias(b.logits.data(), hb, rows, cfg_.n_vocab);
  if (A.final_softcap > 0) softcap_forward(b.logits.data(), size_t(rows) * cfg_.n_vocab, A.final_softcap);
  return b.logits.data();
}

// The LSTM of docs/lstm.md over the chunks' rows (n of them): per layer, the input products of
// all rows at once, then one step at a time the rows of every chunk that has a token at that
// step (k rows: the recurrent product, the cell, the projection), gathered from and scattered to
// the batch's rows; the state of each slot carries over to its next evaluation.
const float* Session::eval_lstm(const Chunk* chunks, int n_chunks, int n, int out_rows) {
  Buffers& b = *b_;
  const int H = cfg_.n_ff, H4 = 4 * H, O = n_embd(), V = cfg_.n_vocab;
  const size_t S = past_.size();
  void* qs = b.qscratch.data();
  std::vector<int> at(static_cast<size_t>(n_chunks));
  int longest = 0;
  for (int c = 0, r = 0; c < n_chunks; r += chunks[c].n, ++c) {
    at[size_t(c)] = r;
    std::memcpy(b.tokens.data() + r, chunks[c].tokens, sizeof(int) * size_t(chunks[c].n));
    longest = std::max(longest, chunks[c].n);
  }
  float* x = b.x.data();
  embed_tokens(x, b.tokens.data(), n);
  auto observe = [&](int l, Role r, const QWeight& W, const float* in, int rows) {
    if (observer_) observer_->observe(l, r, W, in, rows);
  };
  for (int l = 0; l < cfg_.n_layer; ++l) {
    const QWeight &Wih = *w_.get(l, Role::LstmIh), &Whh = *w_.get(l, Role::LstmHh);
    const QWeight* Wp = w_.get(l, Role::LstmProj);
    float *sh = b.sh.data() + size_t(l) * S * O, *sc = b.sc.data() + size_t(l) * S * H;
    observe(l, Role::LstmIh, Wih, x, n);
    qmatmul_forward(b.lgates.data(), x, Wih, n, 0.0f, qs);
    add_bias(b.lgates.data(), w_.vec(l, Role::LstmB), n, H4);
    for (int j = 0; j < longest; ++j) {
      int k = 0;  // the chunks with a token at step j, gathered
      for (int c = 0; c < n_chunks; ++c) {
        if (chunks[c].n <= j) continue;
        const size_t r = size_t(at[size_t(c)] + j), s = size_t(chunks[c].seq);
        std::memcpy(b.sg.data() + size_t(k) * H4, b.lgates.data() + r * H4, sizeof(float) * H4);
        std::memcpy(b.srp.data() + size_t(k) * O, j == 0 ? sh + s * O : b.lout.data() + (r - 1) * O, sizeof(float) * O);
        std::memcpy(b.scp.data() + size_t(k) * H, j == 0 ? sc + s * H : b.lc.data() + (r - 1) * H, sizeof(float) * H);
        ++k;
      }
      observe(l, Role::LstmHh, Whh, b.srp.data(), k);
      qmatmul_forward(b.sg.data(), b.srp.data(), Whh, k, 1.0f, qs);
      lstm_cell_forward(b.sh_.data(), b.sc_.data(), b.sacts.data(), b.stc.data(), b.sg.data(), b.scp.data(), k, H);
      const float* out = b.sh_.data();
      if (Wp) {
        observe(l, Role::LstmProj, *Wp, b.sh_.data(), k);
        qmatmul_forward(b.sout.data(), b.sh_.data(), *Wp, k, 0.0f, qs);
        out = b.sout.data();
      }
      k = 0;
      for (int c = 0; c < n_chunks; ++c) {
        if (chunks[c].n <= j) continue;
        const size_t r = size_t(at[size_t(c)] + j);
        std::memcpy(b.lout.data() + r * O, out + size_t(k) * O, sizeof(float) * O);
        std::memcpy(b.lc.data() + r * H, b.sc_.data() + size_t(k) * H, sizeof(float) * H);
        ++k;
      }
    }
    for (int c = 0; c < n_chunks; ++c) {  // each slot's state after its last token
      const size_t r = size_t(at[size_t(c)] + chunks[c].n - 1), s = size_t(chunks[c].seq);
      std::memcpy(sh + s * O, b.lout.data() + r * O, sizeof(float) * O);
      std::memcpy(sc + s * H, b.lc.data() + r * H, sizeof(float) * H);
    }
    std::memcpy(x, b.lout.data(), sizeof(float) * size_t(n) * O);  // the next layer's input
  }
  for (int c = 0; c < n_chunks; ++c) past_[size_t(chunks[c].seq)] += chunks[c].n;
  int to = 0;  // the wanted rows, moved together in place
  for (int c = 0; c < n_chunks; ++c)
    for (int i = chunks[c].first_row; i < chunks[c].n; ++i, ++to)
      if (to != at[size_t(c)] + i) std::memcpy(x + size_t(to) * O, x + size_t(at[size_t(c)] + i) * O, sizeof(float) * O);
  if (out_rows == 0) return b.logits.data();
  if (hidden_out_) return x;
  observe(-1, Role::Head, w_.head(), x, out_rows);
  qmatmul_forward(b.logits.data(), x, w_.head(), out_rows, 0.0f, qs);
  add_bias(b.logits.data(), w_.vec(-1, Role::HeadB), out_rows, V);
  return b.logits.data();
}

const float* Session::eval_all(const int* tokens, int n) {
  LM_ASSERT(n >= 1);
  const float* logits = nullptr;
  for (int i = 0; i < n; i += n_batch_) logits = eval(tokens + i, std::min(n_batch_, n - i));
  return logits;
}

}  // namespace lm::model
