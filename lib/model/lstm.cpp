// The LSTM language model (docs/lstm.md): forward and backward through time over windows.
#include "model/lstm.hpp"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "base/error.hpp"
#include "kernels/blas.hpp"
#include "kernels/kernels.hpp"
#include "model/dropout.hpp"

namespace lm::model {

using kernels::sgemm;

void LstmConfig::validate() const {
  check_range("vocabulary size", n_vocab, 2, 1 << 24);
  check_range("context length", n_ctx, 1, 1 << 20);
  check_range("layer count", n_layer, 1, 1024);
  check_range("embedding width", n_embd, 1, 1 << 16);
  check_range("hidden width", n_hidden, 1, 1 << 16);
  check_range("projection width", n_proj, 0, 1 << 16);
  if (tied && out_width() != n_embd)
    throw UsageError("a tied output layer needs the LSTM's output width (" + std::to_string(out_width()) +
                     ") to be the embedding width (" + std::to_string(n_embd) + "); untie it or change the widths");
}

ModelConfig to_model_config(const LstmConfig& c) {
  ModelConfig m;
  m.arch.name = "lstm";
  m.n_vocab = c.n_vocab, m.n_ctx = c.n_ctx, m.n_layer = c.n_layer, m.n_embd = c.n_embd, m.n_ff = c.n_hidden;
  m.n_proj = c.n_proj, m.n_head = m.n_head_kv = 1, m.tied = c.tied;
  return m;
}

LstmConfig to_lstm_config(const ModelConfig& m) {
  LM_ASSERT(m.is_lstm());
  LstmConfig c;
  c.n_vocab = m.n_vocab, c.n_ctx = m.n_ctx, c.n_layer = m.n_layer, c.n_embd = m.n_embd, c.n_hidden = m.n_ff;
  c.n_proj = m.n_proj, c.tied = m.tied;
  return c;
}

Weights view_weights(const LstmParams& p) {
  Weights ws;
  ws.cfg = to_model_config(p.cfg);
  for (size_t i = 0; i < p.views.size(); ++i)
    ws.w.push_back({format::GgmlType::F32, p.views[i].rows, p.views[i].cols, p.get(i)});
  std::vector<TensorSpec> specs = find_arch("lstm")->tensors(ws.cfg);
  if (p.cfg.tied) specs.erase(specs.end() - 2);  // no output.weight
  ws.map = map_tensors(specs, p.cfg.n_layer);
  return ws;
}

size_t LstmConfig::n_params() const {
  size_t n = 0;
  for (const ParamView& v : lstm_layout(*this)) n += size_t(v.rows) * v.cols;
  return n;
}

std::vector<ParamView> lstm_layout(const LstmConfig& c) {
  std::vector<ParamView> v;
  size_t at = 0;
  auto add = [&](std::string name, int rows, int cols) {
    v.push_back({std::move(name), at, rows, cols});
    at += size_t(rows) * cols;
  };
  const int H4 = 4 * c.n_hidden;
  add("token_embd.weight", c.n_vocab, c.n_embd);
  for (int l = 0; l < c.n_layer; ++l) {
    const std::string b = "blk." + std::to_string(l) + ".";
    add(b + "lstm_ih.weight", H4, c.in_width(l));
    add(b + "lstm_hh.weight", H4, c.out_width());
    add(b + "lstm.bias", 1, H4);
    if (c.n_proj) add(b + "lstm_proj.weight", c.n_proj, c.n_hidden);
  }
  if (!c.tied) add("output.weight", c.n_vocab, c.out_width());
  add("output.bias", 1, c.n_vocab);
  return v;
}

LstmParams::LstmParams(const LstmConfig& c, bool with_grad) : cfg(c), views(lstm_layout(c)) {
  cfg.validate();
  const size_t n = views.back().offset + size_t(views.back().rows) * views.back().cols;
  w.resize(n);
  if (with_grad) grad.resize(n);
}

size_t LstmParams::layer_view(int l, LstmLayerParam p) const {
  return 1 + size_t(l) * (cfg.n_proj ? 4 : 3) + p;
}

size_t LstmParams::head_view() const { return cfg.tied ? 0 : views.size() - 2; }

void LstmParams::init(Rng& rng) {
  const float k = 1.0f / std::sqrt(float(cfg.n_hidden));
  for (size_t i = 0; i < views.size(); ++i) {
    const ParamView& v = views[i];
    float* p = w.data() + v.offset;
    const size_t n = size_t(v.rows) * v.cols;
    if (v.name == "output.bias") {
      std::fill(p, p + n, 0.0f);
    } else if (v.name.ends_with("lstm.bias")) {
      const int H = cfg.n_hidden;
      for (int j = 0; j < 4 * H; ++j) p[j] = j >= H && j < 2 * H ? 1.0f : 0.0f;  // the forget gates open
    } else if (v.name.starts_with("blk.") || v.name == "output.weight") {
      const float bound = v.name == "output.weight" ? 1.0f / std::sqrt(float(v.cols)) : k;
      for (size_t j = 0; j < n; ++j) p[j] = bound * (2.0f * float(rng.uniform()) - 1.0f);
    } else {  // the embeddings: unit-scale inputs, or the LSTM learns slowly from near-zero signals
      for (size_t j = 0; j < n; ++j) p[j] = rng.normal();
    }
  }
}

void LstmState::resize(const LstmConfig& cfg, int B) {
  h.resize(size_t(cfg.n_layer) * B * cfg.out_width());
  c.resize(size_t(cfg.n_layer) * B * cfg.n_hidden);
  zero();
}

void LstmState::zero() {
  std::fill(h.begin(), h.end(), 0.0f);
  std::fill(c.begin(), c.end(), 0.0f);
}

void LstmState::zero_row(const LstmConfig& cfg, int B, int b) {
  const int O = cfg.out_width(), H = cfg.n_hidden;
  for (int l = 0; l < cfg.n_layer; ++l) {
    std::fill_n(h.data() + (size_t(l) * B + b) * O, O, 0.0f);
    std::fill_n(c.data() + (size_t(l) * B + b) * H, H, 0.0f);
  }
}

LstmModel::LstmModel(const LstmConfig& cfg, int B, int T) : cfg_(cfg), B_(B), T_(T) {
  cfg.validate();
  if (B < 1 || T < 1 || T > cfg.n_ctx)
    throw UsageError("batch " + std::to_string(B) + " and window " + std::to_string(T) + " must be at least 1, the "
                     "window at most the context of " + std::to_string(cfg.n_ctx));
  const size_t N = size_t(B) * T;
  const int L = cfg.n_layer, H = cfg.n_hidden, O = cfg.out_width(), V = cfg.n_vocab;
  tok_tm_.resize(N);
  tgt_tm_.resize(N);
  x_.resize(1);
  x_[0].resize(N * cfg.n_embd);
  for (auto* v : {&acts_, &c_, &tc_, &h_, &r_, &rin_, &cin_}) v->resize(size_t(L));
  for (int l = 0; l < L; ++l) {
    acts_[size_t(l)].resize(N * 4 * H);
    c_[size_t(l)].resize(N * H);
    tc_[size_t(l)].resize(N * H);
    h_[size_t(l)].resize(N * H);
    if (cfg.n_proj) r_[size_t(l)].resize(N * O);
    rin_[size_t(l)].resize(N * O);
    cin_[size_t(l)].resize(N * H);
  }
  logits_.resize(N * V);
  losses_.resize(N);
  gates_.resize(N * 4 * H);
  dgates_.resize(N * 4 * H);
  const size_t widest = size_t(std::max(cfg.n_embd, O));
  dtop_.resize(N * widest);
  dx_.resize(N * widest);
  drec_.resize(size_t(B) * O);
  dh_.resize(size_t(B) * H);
  dc_.resize(size_t(B) * H);
  dr_.resize(N * O);
}

void LstmModel::set_dropout(float p) {
  if (!(p >= 0 && p < 1)) throw UsageError("dropout " + std::to_string(p) + " is out of range [0, 1)");
  dropout_ = p;
  // The dropped copies of the layers' inputs (layer 0 drops the embeddings in place) and of the
  // output layer's input: allocated once, when dropout is first asked for.
  if (p > 0 && top_.empty()) {
    const size_t N = size_t(B_) * T_;
    x_.resize(size_t(cfg_.n_layer));
    for (int l = 1; l < cfg_.n_layer; ++l) x_[size_t(l)].resize(N * cfg_.out_width());
    top_.resize(N * cfg_.out_width());
  }
}

void LstmModel::set_weight_drop(float p) {
  if (!(p >= 0 && p < 1)) throw UsageError("weight-drop " + std::to_string(p) + " is out of range [0, 1)");
  weight_drop_ = p;
  if (p > 0 && whh_drop_.empty()) {
    whh_drop_.resize(size_t(cfg_.n_layer));
    const size_t n = size_t(4) * cfg_.n_hidden * cfg_.out_width();
    for (auto& w : whh_drop_) w.resize(n);
    dwhh_.resize(n);
  }
}

uint64_t LstmModel::weight_drop_seed(int l) const {
  return derive_seed(seed_, uint64_t(cfg_.n_layer + 1 + l));  // the dropout sites are 0 .. L
}

const float* LstmModel::recurrent(const LstmParams& p, int l) const {
  return weight_dropping() ? whh_drop_[size_t(l)].data() : p.get(p.layer_view(l, kLstmHh));
}

void LstmModel::set_training(bool on, uint64_t seed) {
  training_ = on;
  seed_ = seed;
}

void LstmModel::drop(const float* x, float* y, size_t n, int site) const {
  apply_dropout(x, y, n, derive_seed(seed_, uint64_t(site)), dropout_);
}

size_t LstmModel::activation_bytes() const {
  size_t n = logits_.size() + logits_out_.size() + losses_.size() + gates_.size() + dgates_.size() + top_.size() +
             dtop_.size() + dx_.size() + drec_.size() + dh_.size() + dc_.size() + dr_.size() + dwhh_.size();
  for (const auto* v : {&x_, &acts_, &c_, &tc_, &h_, &r_, &rin_, &cin_, &whh_drop_})
    for (const auto& x : *v) n += x.size();
  return n * sizeof(float);
}

float LstmModel::forward(const LstmParams& p, const int* tokens, const int* targets, int b, int t, LstmState& st,
                         const uint8_t* reset) {
  LM_ASSERT(b >= 1 && b <= B_ && t >= 1 && t <= T_);
  b_ = b, t_ = t;
  const int N = b * t, L = cfg_.n_layer, H = cfg_.n_hidden, H4 = 4 * H, O = cfg_.out_width(), V = cfg_.n_vocab;
  const bool drop_on = dropping();
  reset_tm_.clear();
  if (reset && std::any_of(reset, reset + N, [](uint8_t r) { return r != 0; })) reset_tm_.resize(size_t(N));
  for (int i = 0; i < b; ++i)
    for (int j = 0; j < t; ++j) {
      tok_tm_[size_t(j) * b + i] = tokens[size_t(i) * t + j];
      if (targets) tgt_tm_[size_t(j) * b + i] = targets[size_t(i) * t + j];
      if (!reset_tm_.empty()) reset_tm_[size_t(j) * b + i] = reset[size_t(i) * t + j] != 0;
    }
  kernels::embedding_forward(x_[0].data(), tok_tm_.data(), p.get(0), N, cfg_.n_embd);
  if (drop_on) drop(x_[0].data(), x_[0].data(), size_t(N) * cfg_.n_embd, 0);
  for (int l = 0; l < L; ++l) {
    const size_t li = size_t(l);
    const int in = cfg_.in_width(l);
    const float* below = l == 0 ? nullptr : (cfg_.n_proj ? r_[li - 1] : h_[li - 1]).data();
    const float* X = l == 0 ? x_[0].data() : below;
    if (l > 0 && drop_on) {
      drop(below, x_[li].data(), size_t(N) * in, l);
      X = x_[li].data();
    }
    float* R = (cfg_.n_proj ? r_[li] : h_[li]).data();
    const float* Wih = p.get(p.layer_view(l, kLstmIh));
    if (weight_dropping())  // this window's mask, for all its steps and streams
      apply_dropout(p.get(p.layer_view(l, kLstmHh)), whh_drop_[li].data(), whh_drop_[li].size(), weight_drop_seed(l),
                    weight_drop_);
    const float* Whh = recurrent(p, l);
    const float* bias = p.get(p.layer_view(l, kLstmBias));
    // The input products of every step at once, plus the bias.
    kernels::matmul_forward(gates_.data(), X, Wih, N, in, H4);
    for (int n = 0; n < N; ++n) {
      float* g = gates_.data() + size_t(n) * H4;
      for (int k = 0; k < H4; ++k) g[k] += bias[k];
    }
    for (int j = 0; j < t; ++j) {
      // The state step j starts from: the carried one, or step j - 1's; zero after a reset.
      float* rprev = rin_[li].data() + size_t(j) * b * O;
      float* cprev = cin_[li].data() + size_t(j) * b * H;
      std::copy_n(j == 0 ? st.h.data() + li * size_t(B_) * O : R + size_t(j - 1) * b * O, size_t(b) * O, rprev);
      std::copy_n(j == 0 ? st.c.data() + li * size_t(B_) * H : c_[li].data() + size_t(j - 1) * b * H, size_t(b) * H,
                  cprev);
      if (!reset_tm_.empty())
        for (int i = 0; i < b; ++i)
          if (reset_tm_[size_t(j) * b + i]) {
            std::fill_n(rprev + size_t(i) * O, O, 0.0f);
            std::fill_n(cprev + size_t(i) * H, H, 0.0f);
          }
      float* G = gates_.data() + size_t(j) * b * H4;
      sgemm(false, true, b, H4, O, 1.0f, rprev, O, Whh, O, 1.0f, G, H4);  // the recurrent product
      float* hj = h_[li].data() + size_t(j) * b * H;
      kernels::lstm_cell_forward(hj, c_[li].data() + size_t(j) * b * H, acts_[li].data() + size_t(j) * b * H4,
                                 tc_[li].data() + size_t(j) * b * H, G, cprev, b, H);
      if (cfg_.n_proj)
        kernels::matmul_forward(R + size_t(j) * b * O, hj, p.get(p.layer_view(l, kLstmProj)), b, H, O);
    }
    // The window's final state, for the next window.
    std::copy_n(R + size_t(t - 1) * b * O, size_t(b) * O, st.h.data() + li * size_t(B_) * O);
    std::copy_n(c_[li].data() + size_t(t - 1) * b * H, size_t(b) * H, st.c.data() + li * size_t(B_) * H);
  }
  const float* top = (cfg_.n_proj ? r_[size_t(L - 1)] : h_[size_t(L - 1)]).data();
  if (drop_on) {
    drop(top, top_.data(), size_t(N) * O, L);
    top = top_.data();
  }
  kernels::matmul_forward(logits_.data(), top, p.get(p.head_view()), N, O, V);
  const float* hb = p.get(p.head_bias_view());
  for (int n = 0; n < N; ++n) {
    float* z = logits_.data() + size_t(n) * V;
    for (int v = 0; v < V; ++v) z[v] += hb[v];
  }
  have_targets_ = targets != nullptr;
  if (!targets) {
    logits_out_.resize(size_t(N) * V);
    for (int i = 0; i < b; ++i)
      for (int j = 0; j < t; ++j)
        std::copy_n(logits_.data() + (size_t(j) * b + i) * V, V, logits_out_.data() + (size_t(i) * t + j) * V);
    return 0.0f;
  }
  int scored = 0;
  for (int n = 0; n < N; ++n) scored += tgt_tm_[size_t(n)] >= 0;
  if (scored == 0) {
    std::fill_n(logits_.data(), size_t(N) * V, 0.0f);
    return 0.0f;
  }
  kernels::cross_entropy_forward_backward(losses_.data(), logits_.data(), logits_.data(), tgt_tm_.data(), N, V,
                                          1.0f / float(scored));
  double sum = 0;
  for (int n = 0; n < N; ++n) sum += losses_[size_t(n)];
  return float(sum / scored);
}

void LstmModel::backward(LstmParams& p) {
  LM_ASSERT(have_targets_ && !p.grad.empty());
  const int b = b_, t = t_, N = b * t, L = cfg_.n_layer, H = cfg_.n_hidden, H4 = 4 * H, O = cfg_.out_width();
  const int V = cfg_.n_vocab;
  const bool drop_on = dropping();
  const float* dlogits = logits_.data();  // cross-entropy left the gradient in place
  const float* top = drop_on ? top_.data() : (cfg_.n_proj ? r_[size_t(L - 1)] : h_[size_t(L - 1)]).data();
  kernels::matmul_backward(dtop_.data(), p.grad_of(p.head_view()), dlogits, top, p.get(p.head_view()), N, O, V, false);
  if (drop_on) drop(dtop_.data(), dtop_.data(), size_t(N) * O, L);
  float* dhb = p.grad_of(p.head_bias_view());
  for (int n = 0; n < N; ++n)
    for (int v = 0; v < V; ++v) dhb[v] += dlogits[size_t(n) * V + v];
  float* dR = dtop_.data();  // the gradient of this layer's output (N, O)
  float* dX = dx_.data();    // of its input
  for (int l = L - 1; l >= 0; --l) {
    const size_t li = size_t(l);
    const int in = cfg_.in_width(l);
    const float* X = l == 0 || drop_on ? x_[li].data() : (cfg_.n_proj ? r_[li - 1] : h_[li - 1]).data();
    const float* Whh = recurrent(p, l);
    const float* Wp = cfg_.n_proj ? p.get(p.layer_view(l, kLstmProj)) : nullptr;
    std::fill(drec_.begin(), drec_.begin() + long(b) * O, 0.0f);
    std::fill(dc_.begin(), dc_.begin() + long(b) * H, 0.0f);
    for (int j = t - 1; j >= 0; --j) {
      // The output's gradient at step j: from above and from step j + 1's recurrent product.
      float* drj = dr_.data() + size_t(j) * b * O;
      for (size_t k = 0; k < size_t(b) * O; ++k) drj[k] = dR[size_t(j) * b * O + k] + drec_[k];
      const float* dh = drj;
      if (Wp) {
        sgemm(false, false, b, H, O, 1.0f, drj, O, Wp, H, 0.0f, dh_.data(), H);
        dh = dh_.data();
      }
      float* dG = dgates_.data() + size_t(j) * b * H4;
      kernels::lstm_cell_backward(dG, dc_.data(), dh, acts_[li].data() + size_t(j) * b * H4,
                                  tc_[li].data() + size_t(j) * b * H, cin_[li].data() + size_t(j) * b * H, b, H);
      if (j > 0) sgemm(false, false, b, O, H4, 1.0f, dG, H4, Whh, O, 0.0f, drec_.data(), O);
      if (!reset_tm_.empty())  // a stream that started again at step j sends nothing back
        for (int i = 0; i < b; ++i)
          if (reset_tm_[size_t(j) * b + i]) {
            std::fill_n(drec_.data() + size_t(i) * O, O, 0.0f);
            std::fill_n(dc_.data() + size_t(i) * H, H, 0.0f);
          }
    }
    // Weight gradients over the whole window, one product each.
    if (Wp) kernels::matmul_backward(nullptr, p.grad_of(p.layer_view(l, kLstmProj)), dr_.data(), h_[li].data(), Wp, N, H,
                                     O, false);
    float* dWhh = p.grad_of(p.layer_view(l, kLstmHh));
    if (weight_dropping()) {  // the gradient of the masked copy, through the mask
      sgemm(true, false, H4, O, N, 1.0f, dgates_.data(), H4, rin_[li].data(), O, 0.0f, dwhh_.data(), O);
      apply_dropout(dwhh_.data(), dWhh, dwhh_.size(), weight_drop_seed(l), weight_drop_, true);
    } else {
      sgemm(true, false, H4, O, N, 1.0f, dgates_.data(), H4, rin_[li].data(), O, 1.0f, dWhh, O);
    }
    float* db = p.grad_of(p.layer_view(l, kLstmBias));
    for (int n = 0; n < N; ++n)
      for (int k = 0; k < H4; ++k) db[k] += dgates_[size_t(n) * H4 + k];
    kernels::matmul_backward(dX, p.grad_of(p.layer_view(l, kLstmIh)), dgates_.data(), X,
                             p.get(p.layer_view(l, kLstmIh)), N, in, H4, false);
    if (drop_on) drop(dX, dX, size_t(N) * in, l);  // through the mask of this layer's input
    std::swap(dR, dX);  // this layer's input gradient is the output gradient of the one below
  }
  kernels::embedding_backward(p.grad_of(0), tok_tm_.data(), dR, N, cfg_.n_embd);
}

}  // namespace lm::model
