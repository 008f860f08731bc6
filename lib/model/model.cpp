// Forward and backward pass of the decoder over activations allocated once per Model.
// Per layer: x2 = x + Wo attn(rope(Wq n1(x) + bq), rope(Wk n1(x) + bk), Wv n1(x) + bv) (the
// biases: qwen2; its RoPE pairs in NEOX order);
//            x' = x2 + Wd swiglu(Wg n2(x2), Wu n2(x2)); then logits = Wout nf(x_L).
#include "model/model.hpp"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "base/error.hpp"
#include "kernels/blas.hpp"
#include "kernels/kernels.hpp"
#include "model/dropout.hpp"
#include "model/arch.hpp"
#include "model/lora.hpp"
#include "model/lstm.hpp"

namespace lm::model {

using namespace lm::kernels;

void check_range(const char* name, long v, long lo, long hi) {
  if (v < lo || v > hi)
    throw UsageError(std::string(name) + " " + std::to_string(v) + " is out of range [" + std::to_string(lo) + ", " +
                     std::to_string(hi) + "]");
}

void ModelConfig::validate() const {
  check_range("vocabulary size", n_vocab, 2, 1 << 24);
  check_range("context length", n_ctx, 1, 1 << 20);
  check_range("layer count", n_layer, 1, 1024);
  check_range("embedding width", n_embd, 2, 1 << 16);
  check_range("head count", n_head, 1, n_embd);
  check_range("kv head count", n_head_kv, 1, n_head);
  check_range("feed-forward width", n_ff, 1, 1 << 20);
  check_range("classifier label count", n_cls, 0, kMaxLabels);
  if (is_lstm()) {
    check_range("projection width", n_proj, 0, 1 << 16);
    return;
  }
  if (n_cls == 1) throw UsageError("a classifier needs at least 2 labels");
  if (n_head_dim == 0 && n_embd % n_head != 0)
    throw UsageError("embedding width " + std::to_string(n_embd) + " is not a multiple of the head count " +
                     std::to_string(n_head));
  if (n_head % n_head_kv != 0)
    throw UsageError("head count " + std::to_string(n_head) + " is not a multiple of the kv head count " +
                     std::to_string(n_head_kv));
  if (head_dim() % 2 != 0) throw UsageError("head size " + std::to_string(head_dim()) + " must be even for RoPE");
  if (!(norm_eps > 0) || !(rope_base > 1)) throw UsageError("norm epsilon must be > 0 and RoPE base > 1");
}

bool ModelConfig::head_size_score_scale() const {
  return arch.attn_scale == 0 || std::fabs(arch.attn_scale * std::sqrt(float(head_dim())) - 1.0f) <= 1e-6f;
}

ModelConfig gpt2_config(ModelConfig c) {
  const bool tied = c.tied;
  c.arch = ArchOptions{};
  c.arch.name = "gpt2";
  c.arch.norm = NormKind::Layer;
  c.arch.ffn = FfnKind::Gelu;
  c.arch.learned_pos = true;
  c.n_head_kv = c.n_head;
  c.n_head_dim = 0;
  c.n_cls = 0;
  c.tied = tied;
  return c;
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
  if (c.is_encoder()) {
    for (const TensorSpec& t : find_arch("bert")->tensors(c)) add(t.name, t.rows, t.cols);
    return v;
  }
  if (c.is_gpt2()) {  // the file's tensors, output.weight only when untied; a classifier's head
    for (const TensorSpec& t : find_arch("gpt2")->tensors(c))
      if (t.name != "output.weight" || !c.tied) add(t.name, t.rows, t.cols);
    return v;
  }
  const int C = c.n_embd, Q = c.q_dim(), K = c.kv_dim(), F = c.n_ff;
  add("token_embd.weight", c.n_vocab, C);
  for (int l = 0; l < c.n_layer; ++l) {
    const std::string p = "blk." + std::to_string(l) + ".";
    add(p + "attn_norm.weight", 1, C);
    add(p + "attn_q.weight", Q, C);
    add(p + "attn_k.weight", K, C);
    add(p + "attn_v.weight", K, C);
    add(p + "attn_output.weight", C, Q);
    add(p + "ffn_norm.weight", 1, C);
    add(p + "ffn_gate.weight", F, C);
    add(p + "ffn_up.weight", F, C);
    add(p + "ffn_down.weight", C, F);
  }
  for (int l = 0; c.qkv_bias() && l < c.n_layer; ++l) {
    const std::string p = "blk." + std::to_string(l) + ".";
    add(p + "attn_q.bias", 1, Q);
    add(p + "attn_k.bias", 1, K);
    add(p + "attn_v.bias", 1, K);
  }
  for (int l = 0; c.arch.post_norms && l < c.n_layer; ++l) {
    const std::string p = "blk." + std::to_string(l) + ".";
    add(p + "post_attention_norm.weight", 1, C);
    add(p + "post_ffw_norm.weight", 1, C);
  }
  add("output_norm.weight", 1, C);
  if (!c.tied) add("output.weight", c.n_vocab, C);
  if (c.n_cls > 0) {
    add("cls.output.weight", c.n_cls, C);
    add("cls.output.bias", 1, c.n_cls);
  }
  return v;
}

FusedRows fused_rows(const ModelConfig& c, int l, LayerParam v) {
  if (!c.fused_projections() && !c.is_gpt2()) return {};
  const std::string p = "blk." + std::to_string(l) + ".";
  const int Q = c.q_dim(), K = c.kv_dim(), F = c.n_ff;
  if (c.is_gpt2() && (v == kWg || v == kWu)) return {};  // gpt2 fuses q, k, v only
  switch (v) {
    case kWq: return {p + "attn_qkv.weight", Q + 2 * K, 0};
    case kWk: return {p + "attn_qkv.weight", Q + 2 * K, Q};
    case kWv: return {p + "attn_qkv.weight", Q + 2 * K, Q + K};
    case kWg: return {p + "ffn_up.weight", 2 * F, 0};
    case kWu: return {p + "ffn_up.weight", 2 * F, F};
    default: return {};
  }
}

size_t ModelConfig::n_params() const {
  if (is_lstm()) return to_lstm_config(*this).n_params();
  auto v = param_layout(*this);
  return v.back().offset + size_t(v.back().rows) * v.back().cols;
}

int pad_rows(std::span<const std::vector<int>* const> rows, int max_len, int* tokens, int* lengths) {
  int t = 1;
  for (const auto* r : rows) t = std::max(t, std::min(max_len, int(r->size())));
  for (size_t i = 0; i < rows.size(); ++i) {
    const std::vector<int>& r = *rows[i];
    LM_ASSERT(!r.empty());
    const int n = std::min(t, int(r.size()));
    int* row = tokens + i * size_t(t);
    for (int j = 0; j < t; ++j) row[j] = r[size_t(std::min(j, n - 1))];
    lengths[i] = n;
  }
  return t;
}

static size_t layer_view(int l, LayerParam v) { return layer_param(l, v); }

Params::Params(const ModelConfig& c, bool with_grad) : cfg(c), views(param_layout(c)) {
  c.validate();
  const size_t n = c.n_params();
  w.assign(n, 0.0f);
  grad_offset.assign(views.size(), kNoGrad);
  if (with_grad) alloc_grad();
}

void Params::alloc_grad(const std::vector<uint8_t>& keep) {
  LM_ASSERT(keep.empty() || keep.size() == views.size());
  size_t n = 0;
  for (size_t i = 0; i < views.size(); ++i) {
    const bool has = keep.empty() || keep[i];
    grad_offset[i] = has ? n : kNoGrad;
    if (has) n += size_t(views[i].rows) * views[i].cols;
  }
  grad.assign(n, 0.0f);
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
    if (v.name.ends_with(".bias")) {
      for (size_t i = 0; i < n; ++i) p[i] = 0.0f;
    } else if (v.rows == 1) {
      for (size_t i = 0; i < n; ++i) p[i] = 1.0f;  // norm gains
    } else {
      for (size_t i = 0; i < n; ++i) p[i] = 0.02f * rng.normal();
    }
  }
}

struct Model::Acts {
  // Per layer l (index l), sized for N = B*T rows. x has n_layer + 1 entries (the residual
  // stream entering each layer, then leaving the last one). gpt2: g is unused, u holds the MLP's
  // input to GELU, and mean1, mean2 (and meanf) are its LayerNorms' means.
  std::vector<LargeVector<float>> x, xn1, rstd1, q, k, v, att, ao, x2, xn2, rstd2, g, u, h, mean1, mean2;
  // Post-norms (gemma2): each branch's output before its norm, and the norm's rstd.
  std::vector<LargeVector<float>> ya, rstda, yf, rstdf2;
  LargeVector<float> dpost, capd;  // the post-norm's input gradient; the logits' soft-cap derivative
  LargeVector<float> xf, rstdf, meanf, logits, losses;
  std::vector<float> kls;  // distillation: the KL term per row
  std::vector<int> targets;
  // Backward scratch, shared by all layers.
  LargeVector<float> dres, dtmp, dxn, dq, dk, dv, datt, dao, dg, du, dh;
  float dscale = 0;
  bool have_targets = false;
  // Classification: rows read by the head, logits / probabilities (then their gradient).
  std::vector<int> cls_lengths;
  LargeVector<float> cls_logits, cls_pooled, cls_dpooled;
  bool classify = false;
};

Model::Model(const ModelConfig& cfg, int B, int T, ModelBuffers buffers)
    : cfg_(cfg),
      B_(B),
      T_(T),
      a_(std::make_unique<Acts>()),
      trunk_backward_(buffers.trunk_backward),
      lora_(std::make_unique<LoraPass>()) {
  cfg.validate();
  if (cfg.is_gpt2() && (cfg.n_head_kv != cfg.n_head || cfg.n_head_dim != 0))
    throw UsageError("lm trains gpt2 with as many key/value heads as heads and a head size of width / heads");
  if (B < 1 || B > (1 << 20)) throw UsageError("batch size " + std::to_string(B) + " is out of range [1, 1048576]");
  if (T < 1 || T > cfg.n_ctx)
    throw UsageError("sequence length " + std::to_string(T) + " is out of range [1, " + std::to_string(cfg.n_ctx) + "]");
  if (cfg.arch.sliding_window > 0 && T > cfg.arch.sliding_window)
    throw UsageError("sequence length " + std::to_string(T) + " is past the model's sliding window of " +
                     std::to_string(cfg.arch.sliding_window) + " tokens, which training does not support (use --context " +
                     std::to_string(cfg.arch.sliding_window) + " or less)");
  if (!cfg.head_size_score_scale())
    throw UsageError("training scales attention scores by 1 / sqrt(head size) only");
  const size_t N = size_t(B) * T, C = size_t(cfg.n_embd), Q = size_t(cfg.q_dim()), K = size_t(cfg.kv_dim());
  const size_t F = size_t(cfg.n_ff), A = size_t(B) * cfg.n_head * T * T;
  // Without a trunk backward the layers share one set of buffers, and the residual stream
  // alternates between two.
  const size_t L = buffers.trunk_backward ? size_t(cfg.n_layer) : 1;
  auto per_layer = [&](std::vector<LargeVector<float>>& v, size_t n, size_t count) {
    v.assign(count, LargeVector<float>(n));
  };
  per_layer(a_->x, N * C, L + 1);
  per_layer(a_->xn1, N * C, L);
  per_layer(a_->rstd1, N, L);
  per_layer(a_->q, N * Q, L);
  per_layer(a_->k, N * K, L);
  per_layer(a_->v, N * K, L);
  per_layer(a_->att, A, L);
  per_layer(a_->ao, N * Q, L);
  per_layer(a_->x2, N * C, L);
  per_layer(a_->xn2, N * C, L);
  per_layer(a_->rstd2, N, L);
  per_layer(a_->g, cfg.is_gpt2() ? 0 : N * F, L);
  per_layer(a_->u, N * F, L);
  per_layer(a_->h, N * F, L);
  a_->xf.resize(N * C);
  a_->rstdf.resize(N);
  if (cfg.is_gpt2()) {
    per_layer(a_->mean1, N, L);
    per_layer(a_->mean2, N, L);
    a_->meanf.resize(N);
  }
  if (cfg.arch.post_norms) {
    per_layer(a_->ya, N * C, L);
    per_layer(a_->rstda, N, L);
    per_layer(a_->yf, N * C, L);
    per_layer(a_->rstdf2, N, L);
    if (buffers.trunk_backward) a_->dpost.resize(N * C);
  }
  if (buffers.lm_logits) a_->logits.resize(N * size_t(cfg.n_vocab));
  if (buffers.lm_logits && cfg.arch.final_softcap > 0) a_->capd.resize(N * size_t(cfg.n_vocab));
  a_->losses.resize(N);
  a_->targets.resize(N);
  a_->dtmp.resize(N * C);  // forward's dropout branch too
  if (buffers.trunk_backward) {
    for (auto* s : {&a_->dres, &a_->dxn}) s->resize(N * C);
    for (auto* s : {&a_->dq, &a_->dao}) s->resize(N * Q);
    for (auto* s : {&a_->dk, &a_->dv}) s->resize(N * K);
    for (auto* s : {&a_->dg, &a_->du, &a_->dh}) s->resize(N * F);
    a_->datt.resize(A);
  }
  if (cfg.n_cls > 0) {
    a_->cls_logits.resize(size_t(B) * size_t(cfg.n_cls));
    a_->cls_pooled.resize(size_t(B) * C);
    a_->cls_dpooled.resize(size_t(B) * C);
  }
}

Model::~Model() = default;

const float* Model::logits() const { return a_->logits.data(); }

size_t Model::activation_bytes() const {
  size_t n = 0;
  for (auto* group : {&a_->x, &a_->xn1, &a_->rstd1, &a_->q, &a_->k, &a_->v, &a_->att, &a_->ao, &a_->x2, &a_->xn2,
                      &a_->rstd2, &a_->g, &a_->u, &a_->h, &a_->mean1, &a_->mean2, &a_->ya, &a_->rstda, &a_->yf,
                      &a_->rstdf2})
    for (const auto& v : *group) n += v.size();
  for (auto* v : {&a_->xf, &a_->rstdf, &a_->meanf, &a_->logits, &a_->losses, &a_->dres, &a_->dtmp, &a_->dxn, &a_->dq, &a_->dk,
                  &a_->dv, &a_->datt, &a_->dao, &a_->dg, &a_->du, &a_->dh, &a_->dpost, &a_->capd})
    n += v->size();
  return n * sizeof(float) + lora_->bytes();
}

void Model::set_lora(Lora* lora) {
  if (lora)
    LM_ASSERT(lora->base.n_layer == cfg_.n_layer && lora->base.n_embd == cfg_.n_embd && lora->base.n_ff == cfg_.n_ff);
  lora_->attach(lora, size_t(B_) * T_, size_t(std::max({cfg_.n_embd, cfg_.q_dim(), cfg_.n_ff})));  // widest input
}

void Model::set_training(bool on, uint64_t seed) {
  training_ = on;
  dropout_seed_ = seed;
}

bool Model::trunk_trains(const Params& p) const {
  if (lora_->lora()) return true;
  for (size_t i = 0; i <= output_norm_param(cfg_) + (cfg_.is_gpt2() ? 1 : 0); ++i)
    if (p.has_grad(i)) return true;
  return false;
}

void Model::set_dropout(float p) {
  if (!(p >= 0 && p < 1)) throw UsageError("dropout " + std::to_string(p) + " is out of range [0, 1)");
  dropout_ = p;
}

namespace {
// Mask sites: one per LoRA pair (LoraPass: 0 .. L kLayerParams), then the model's dropout.
constexpr uint64_t kSiteEmbd = uint64_t(1) << 32, kSiteCls = kSiteEmbd + 1;
inline uint64_t branch_site(int l, bool mlp) { return kSiteEmbd + 2 + 2 * uint64_t(l) + mlp; }
// Layer l's buffer of a group: its own with a trunk backward, else the one the layers share.
inline float* at(std::vector<LargeVector<float>>& group, int l) { return group[size_t(l) % group.size()].data(); }
}  // namespace

void Model::drop(float* y, size_t n, uint64_t site) const {
  apply_dropout(y, y, n, derive_seed(dropout_seed_, site), dropout_);
}

void Model::lora_forward(int l, LayerParam v, const float* x, float* y, int N, int in, int out) {
  lora_->forward(l, v, x, y, N, in, out, training_, dropout_seed_);
}

void Model::lora_backward(int l, LayerParam v, const float* x, const float* dy, float* dx, int N, int in, int out) {
  lora_->backward(l, v, x, dy, dx, N, in, out, training_, dropout_seed_);
}

void Model::trunk(const Params& p, const int* tokens, int b, int t) {
  LM_ASSERT(b >= 1 && b <= B_ && t >= 1 && t <= T_);
  b_ = b, t_ = t, tokens_ = tokens;
  if (cfg_.is_gpt2()) return trunk_gpt2(p, b, t);
  Acts& a = *a_;
  const int N = b * t, C = cfg_.n_embd, Q = cfg_.q_dim(), K = cfg_.kv_dim(), F = cfg_.n_ff;
  const int H = cfg_.n_head, Hkv = cfg_.n_head_kv, D = cfg_.head_dim();
  const ArchOptions& A = cfg_.arch;
  embedding_forward(a.x[0].data(), tokens, p.get(0), N, C);
  if (A.embd_scale) {  // Gemma: embeddings times sqrt(C), as Session does
    const float s = std::sqrt(float(C));
    for (size_t i = 0; i < size_t(N) * C; ++i) a.x[0][i] *= s;
  }
  if (dropping()) drop(a.x[0].data(), size_t(N) * C, kSiteEmbd);
  // dst = res + drop(in W^T + LoRA), one residual branch; dtmp holds the branch while dropping.
  // With post-norms (gemma2) dst = res + drop(norm(in W^T + LoRA)), the branch kept in ya / yf.
  auto add_branch = [&](float* dst, const float* res, const float* in, int l, LayerParam v, int nin, int nout,
                        bool mlp) {
    const size_t n = size_t(N) * nout;
    if (A.post_norms) {
      float* y = at(mlp ? a.yf : a.ya, l);
      matmul_forward(y, in, p.get(layer_view(l, v)), N, nin, nout);
      lora_forward(l, v, in, y, N, nin, nout);
      float* yn = a.dtmp.data();
      rmsnorm_forward(yn, at(mlp ? a.rstdf2 : a.rstda, l), y, p.get(post_norm_param(cfg_, l, mlp)), N, C,
                      cfg_.norm_eps);
      if (dropping()) drop(yn, n, branch_site(l, mlp));
      for (size_t i = 0; i < n; ++i) dst[i] = res[i] + yn[i];
      return;
    }
    if (!dropping()) {
      std::memcpy(dst, res, sizeof(float) * n);
      matmul_forward(dst, in, p.get(layer_view(l, v)), N, nin, nout, 1.0f);
      lora_forward(l, v, in, dst, N, nin, nout);
      return;
    }
    float* y = a.dtmp.data();
    matmul_forward(y, in, p.get(layer_view(l, v)), N, nin, nout);
    lora_forward(l, v, in, y, N, nin, nout);
    drop(y, n, branch_site(l, mlp));
    for (size_t i = 0; i < n; ++i) dst[i] = res[i] + y[i];
  };
  for (int l = 0; l < cfg_.n_layer; ++l) {
    const float* x = at(a.x, l);
    float *xn1 = at(a.xn1, l), *q = at(a.q, l), *k = at(a.k, l), *v = at(a.v, l), *ao = at(a.ao, l),
          *x2 = at(a.x2, l), *xn2 = at(a.xn2, l), *g = at(a.g, l), *u = at(a.u, l), *h = at(a.h, l);
    rmsnorm_forward(xn1, at(a.rstd1, l), x, p.get(layer_view(l, kAttnNorm)), N, C, cfg_.norm_eps);
    matmul_forward(q, xn1, p.get(layer_view(l, kWq)), N, C, Q);
    matmul_forward(k, xn1, p.get(layer_view(l, kWk)), N, C, K);
    matmul_forward(v, xn1, p.get(layer_view(l, kWv)), N, C, K);
    if (cfg_.qkv_bias()) {
      add_bias(q, p.get(qkv_bias_param(cfg_, l, 0)), N, Q);
      add_bias(k, p.get(qkv_bias_param(cfg_, l, 1)), N, K);
      add_bias(v, p.get(qkv_bias_param(cfg_, l, 2)), N, K);
    }
    lora_forward(l, kWq, xn1, q, N, C, Q);
    lora_forward(l, kWk, xn1, k, N, C, K);
    lora_forward(l, kWv, xn1, v, N, C, K);
    rope_forward_qk(q, k, b, t, H, Hkv, D, cfg_.rope_base, 0, cfg_.arch.neox);
    attention_forward(ao, at(a.att, l), q, k, v, b, t, H, Hkv, D, A.attn_softcap);
    add_branch(x2, x, ao, l, kWo, Q, C, false);
    rmsnorm_forward(xn2, at(a.rstd2, l), x2, p.get(layer_view(l, kFfnNorm)), N, C, cfg_.norm_eps);
    matmul_forward(g, xn2, p.get(layer_view(l, kWg)), N, C, F);
    matmul_forward(u, xn2, p.get(layer_view(l, kWu)), N, C, F);
    lora_forward(l, kWg, xn2, g, N, C, F);
    lora_forward(l, kWu, xn2, u, N, C, F);
    if (A.ffn == FfnKind::GeGLU)
      geglu_forward(h, g, u, size_t(N) * F);
    else
      swiglu_forward(h, g, u, size_t(N) * F);
    add_branch(at(a.x, l + 1), x2, h, l, kWd, F, C, true);
  }
  rmsnorm_forward(a.xf.data(), a.rstdf.data(), at(a.x, cfg_.n_layer), p.get(output_norm_param(cfg_)), N, C,
                  cfg_.norm_eps);
}

float Model::forward(const Params& p, const int* tokens, const int* targets, int b, int t, const SoftTargets* soft) {
  LM_ASSERT(!a_->logits.empty());  // not a forward_classify-only model
  trunk(p, tokens, b, t);
  Acts& a = *a_;
  a.classify = false;
  const int N = b * t, C = cfg_.n_embd, V = cfg_.n_vocab;
  matmul_forward(a.logits.data(), a.xf.data(), p.get(head_param(cfg_)), N, C, V);
  if (const float cap = cfg_.arch.final_softcap; cap > 0) {  // Gemma 2: z -> cap tanh(z / cap)
    const size_t n = size_t(N) * V;
    softcap_forward(a.logits.data(), n, cap);
#pragma omp parallel for schedule(static)
    for (size_t i = 0; i < n; ++i) {
      const float th = a.logits[i] / cap;
      a.capd[i] = 1.0f - th * th;
    }
  }
  a.have_targets = targets != nullptr;
  if (!targets) return 0.0f;
  int scored = 0;
  for (int n = 0; n < N; ++n) scored += (a.targets[size_t(n)] = targets[n]) >= 0;
  if (scored == 0) return 0.0f;
  a.dscale = 1.0f / float(scored);
  last_kl_ = 0;
  if (soft) {
    a.kls.resize(size_t(N));
    distill_forward_backward(a.losses.data(), a.kls.data(), a.logits.data(), a.logits.data(), a.targets.data(),
                             soft->logits, soft->ids, soft->k, N, V, soft->alpha, soft->temp, a.dscale);
    double kl = 0;
    for (int n = 0; n < N; ++n) kl += a.kls[size_t(n)];
    last_kl_ = float(kl / scored);
  } else {
    cross_entropy_forward_backward(a.losses.data(), a.logits.data(), a.logits.data(), a.targets.data(), N, V, a.dscale);
  }
  double sum = 0;
  for (int n = 0; n < N; ++n) sum += a.losses[size_t(n)];
  return float(sum / scored);
}

float Model::forward_classify(const Params& p, const int* tokens, const int* lengths, const int* labels, int b, int t,
                              const SoftTargets* soft) {
  LM_ASSERT(cfg_.n_cls > 0);
  trunk(p, tokens, b, t);
  Acts& a = *a_;
  a.classify = true;
  const int C = cfg_.n_embd, K = cfg_.n_cls;
  a.cls_lengths.assign(lengths, lengths + b);
  for (int i = 0; i < b; ++i) {
    LM_ASSERT(lengths[i] >= 1 && lengths[i] <= t);
    // The pooled final hidden state: the last token's, or the mean over the text's tokens.
    float* hrow = a.cls_pooled.data() + size_t(i) * C;
    const float* first = a.xf.data() + size_t(i) * t * C;
    if (cfg_.cls_pooling == kPoolLast) {
      std::copy(first + size_t(lengths[i] - 1) * C, first + size_t(lengths[i]) * C, hrow);
    } else {
      std::fill(hrow, hrow + C, 0.0f);
      for (int j = 0; j < lengths[i]; ++j)
        for (int c = 0; c < C; ++c) hrow[c] += first[size_t(j) * C + c];
      for (int c = 0; c < C; ++c) hrow[c] /= float(lengths[i]);
    }
  }
  if (dropping()) drop(a.cls_pooled.data(), size_t(b) * C, kSiteCls);
  for (int i = 0; i < b; ++i) {
    const float* hrow = a.cls_pooled.data() + size_t(i) * C;
    float* z = a.cls_logits.data() + size_t(i) * K;
    const size_t wv = cls_param(cfg_);
    std::copy(p.get(wv + 1), p.get(wv + 1) + K, z);
    matmul_forward(z, hrow, p.get(wv), 1, C, K, 1.0f);
  }
  a.have_targets = labels != nullptr;
  last_kl_ = 0;
  if (soft) {
    LM_ASSERT(labels && soft->k <= K);
    int scored = 0;
    for (int i = 0; i < b; ++i) scored += labels[i] >= 0;
    a.dscale = scored ? 1.0f / float(scored) : 0.0f;
    a.kls.resize(size_t(b));
    distill_forward_backward(a.losses.data(), a.kls.data(), a.cls_logits.data(), a.cls_logits.data(), labels,
                             soft->logits, soft->ids, soft->k, b, K, soft->alpha, soft->temp, a.dscale);
    double loss = 0, kl = 0;
    for (int i = 0; i < b; ++i) loss += a.losses[size_t(i)], kl += a.kls[size_t(i)];
    last_kl_ = scored ? float(kl / scored) : 0.0f;
    return scored ? float(loss / scored) : 0.0f;
  }
  int scored = 0;
  const float loss = class_softmax_xent(a.cls_logits.data(), labels, b, K, &scored);
  a.dscale = scored ? 1.0f / float(scored) : 0.0f;
  return loss;
}

float class_softmax_xent(float* z, const int* labels, int b, int K, int* scored_out) {
  for (int i = 0; i < b; ++i) {  // softmax in place
    float* row = z + size_t(i) * K;
    const float mx = *std::max_element(row, row + K);
    double sum = 0;
    for (int k = 0; k < K; ++k) sum += (row[k] = std::exp(row[k] - mx));
    for (int k = 0; k < K; ++k) row[k] = float(row[k] / sum);
  }
  if (scored_out) *scored_out = 0;
  if (!labels) return 0.0f;
  int scored = 0;
  double loss = 0;
  for (int i = 0; i < b; ++i)
    if (labels[i] >= 0) {
      LM_ASSERT(labels[i] < K);
      ++scored;
      loss -= std::log(std::max(1e-30f, z[size_t(i) * K + size_t(labels[i])]));
    }
  // The gradient of the mean loss with respect to the logits: (p - onehot) / scored.
  const float scale = scored ? 1.0f / float(scored) : 0.0f;
  for (int i = 0; i < b; ++i) {
    float* row = z + size_t(i) * K;
    for (int k = 0; k < K; ++k) row[k] = labels[i] < 0 ? 0.0f : (row[k] - (k == labels[i] ? 1.0f : 0.0f)) * scale;
  }
  if (scored_out) *scored_out = scored;
  return scored ? float(loss / scored) : 0.0f;
}

const float* Model::class_probs() const { return a_->cls_logits.data(); }

void Model::backward(Params& p) {
  Acts& a = *a_;
  LM_ASSERT(a.have_targets);
  const int b = b_, t = t_, N = b * t, C = cfg_.n_embd, Q = cfg_.q_dim(), K = cfg_.kv_dim(), F = cfg_.n_ff;
  const int V = cfg_.n_vocab;
  const int H = cfg_.n_head, Hkv = cfg_.n_head_kv, D = cfg_.head_dim();
  auto grad = [&](size_t view) { return p.grad_of(view); };  // nullptr: a frozen view
  const size_t out_norm = output_norm_param(cfg_);
  // The gradient of a residual branch's output: dres, through the branch's dropout mask (in dtmp).
  auto branch_grad = [&](int l, bool mlp) -> const float* {
    if (!dropping()) return a.dres.data();
    std::copy(a.dres.begin(), a.dres.begin() + long(N) * C, a.dtmp.begin());
    drop(a.dtmp.data(), size_t(N) * C, branch_site(l, mlp));
    return a.dtmp.data();
  };
  // gemma2: the gradient of a branch's output before the norm after it (attention's, or the
  // MLP's), from the gradient d after it; in dpost.
  auto through_post_norm = [&](int l, bool mlp, const float* d) -> const float* {
    const size_t w = post_norm_param(cfg_, l, mlp);
    rmsnorm_backward(a.dpost.data(), grad(w), d, (mlp ? a.yf : a.ya)[size_t(l)].data(), p.get(w),
                     (mlp ? a.rstdf2 : a.rstda)[size_t(l)].data(), N, C);
    return a.dpost.data();
  };
  if (!a.classify) {
    LM_ASSERT(trunk_backward_);
    float* dlogits = a.logits.data();  // cross-entropy left the gradient in place
    if (cfg_.arch.final_softcap > 0) {  // through the soft-cap
#pragma omp parallel for schedule(static)
      for (size_t i = 0; i < size_t(N) * V; ++i) dlogits[i] *= a.capd[i];
    }
    const size_t head = head_param(cfg_);
    matmul_backward(a.dxn.data(), grad(head), dlogits, a.xf.data(), p.get(head), N, C, V, false);
  } else {
    // Only the rows the head pooled carry a gradient into the final norm.
    const int Kc = cfg_.n_cls;
    const size_t wv = cls_param(cfg_);
    float *dW = grad(wv), *db = grad(wv + 1);
    for (int i = 0; i < b; ++i) {
      const float* dz = a.cls_logits.data() + size_t(i) * Kc;
      matmul_backward(a.cls_dpooled.data() + size_t(i) * C, dW, dz, a.cls_pooled.data() + size_t(i) * C, p.get(wv), 1,
                      C, Kc, false);
      if (db)
        for (int k = 0; k < Kc; ++k) db[k] += dz[k];
    }
    if (!trunk_trains(p)) return;  // a frozen trunk under a trained head: a linear probe
    LM_ASSERT(trunk_backward_);
    std::fill(a.dxn.begin(), a.dxn.begin() + long(N) * C, 0.0f);
    if (dropping()) drop(a.cls_dpooled.data(), size_t(b) * C, kSiteCls);
    for (int i = 0; i < b; ++i) {
      const float* dp = a.cls_dpooled.data() + size_t(i) * C;
      const int len = a.cls_lengths[size_t(i)];
      float* first = a.dxn.data() + size_t(i) * t * C;
      if (cfg_.cls_pooling == kPoolLast) {
        std::copy(dp, dp + C, first + size_t(len - 1) * C);
      } else {
        for (int j = 0; j < len; ++j)
          for (int c = 0; c < C; ++c) first[size_t(j) * C + c] = dp[c] / float(len);
      }
    }
  }
  if (cfg_.is_gpt2()) return backward_gpt2(p);
  rmsnorm_backward(a.dres.data(), grad(out_norm), a.dxn.data(), a.x[size_t(cfg_.n_layer)].data(), p.get(out_norm),
                   a.rstdf.data(), N, C);
  for (int l = cfg_.n_layer - 1; l >= 0; --l) {
    const size_t L = size_t(l);
    // x' = x2 + Wd swiglu(...): dres is the gradient of x' and, after the MLP branch is added,
    // of x2 (the residual path is the identity).
    const float* dbranch = branch_grad(l, true);
    if (cfg_.arch.post_norms) dbranch = through_post_norm(l, true, dbranch);
    matmul_backward(a.dh.data(), grad(layer_view(l, kWd)), dbranch, a.h[L].data(), p.get(layer_view(l, kWd)), N, F, C,
                    false);
    lora_backward(l, kWd, a.h[L].data(), dbranch, a.dh.data(), N, F, C);
    if (cfg_.arch.ffn == FfnKind::GeGLU)
      geglu_backward(a.dg.data(), a.du.data(), a.dh.data(), a.g[L].data(), a.u[L].data(), size_t(N) * F);
    else
      swiglu_backward(a.dg.data(), a.du.data(), a.dh.data(), a.g[L].data(), a.u[L].data(), size_t(N) * F);
    matmul_backward(a.dxn.data(), grad(layer_view(l, kWg)), a.dg.data(), a.xn2[L].data(), p.get(layer_view(l, kWg)), N,
                    C, F, false);
    matmul_backward(a.dxn.data(), grad(layer_view(l, kWu)), a.du.data(), a.xn2[L].data(), p.get(layer_view(l, kWu)), N,
                    C, F, true);
    lora_backward(l, kWg, a.xn2[L].data(), a.dg.data(), a.dxn.data(), N, C, F);
    lora_backward(l, kWu, a.xn2[L].data(), a.du.data(), a.dxn.data(), N, C, F);
    rmsnorm_backward(a.dtmp.data(), grad(layer_view(l, kFfnNorm)), a.dxn.data(), a.x2[L].data(),
                     p.get(layer_view(l, kFfnNorm)), a.rstd2[L].data(), N, C);
    for (size_t i = 0; i < size_t(N) * C; ++i) a.dres[i] += a.dtmp[i];
    // x2 = x + Wo attn(...)
    dbranch = branch_grad(l, false);
    if (cfg_.arch.post_norms) dbranch = through_post_norm(l, false, dbranch);
    matmul_backward(a.dao.data(), grad(layer_view(l, kWo)), dbranch, a.ao[L].data(), p.get(layer_view(l, kWo)), N, Q, C,
                    false);
    lora_backward(l, kWo, a.ao[L].data(), dbranch, a.dao.data(), N, Q, C);
    attention_backward(a.dq.data(), a.dk.data(), a.dv.data(), a.datt.data(), a.dao.data(), a.att[L].data(),
                       a.q[L].data(), a.k[L].data(), a.v[L].data(), b, t, H, Hkv, D, cfg_.arch.attn_softcap);
    rope_backward_qk(a.dq.data(), a.dk.data(), b, t, H, Hkv, D, cfg_.rope_base, 0, cfg_.arch.neox);
    if (cfg_.qkv_bias()) {
      if (float* db = grad(qkv_bias_param(cfg_, l, 0))) bias_backward(db, a.dq.data(), N, Q);
      if (float* db = grad(qkv_bias_param(cfg_, l, 1))) bias_backward(db, a.dk.data(), N, K);
      if (float* db = grad(qkv_bias_param(cfg_, l, 2))) bias_backward(db, a.dv.data(), N, K);
    }
    matmul_backward(a.dxn.data(), grad(layer_view(l, kWq)), a.dq.data(), a.xn1[L].data(), p.get(layer_view(l, kWq)), N,
                    C, Q, false);
    matmul_backward(a.dxn.data(), grad(layer_view(l, kWk)), a.dk.data(), a.xn1[L].data(), p.get(layer_view(l, kWk)), N,
                    C, K, true);
    matmul_backward(a.dxn.data(), grad(layer_view(l, kWv)), a.dv.data(), a.xn1[L].data(), p.get(layer_view(l, kWv)), N,
                    C, K, true);
    lora_backward(l, kWq, a.xn1[L].data(), a.dq.data(), a.dxn.data(), N, C, Q);
    lora_backward(l, kWk, a.xn1[L].data(), a.dk.data(), a.dxn.data(), N, C, K);
    lora_backward(l, kWv, a.xn1[L].data(), a.dv.data(), a.dxn.data(), N, C, K);
    rmsnorm_backward(a.dtmp.data(), grad(layer_view(l, kAttnNorm)), a.dxn.data(), a.x[L].data(),
                     p.get(layer_view(l, kAttnNorm)), a.rstd1[L].data(), N, C);
    for (size_t i = 0; i < size_t(N) * C; ++i) a.dres[i] += a.dtmp[i];
    if (on_layer_grads_) on_layer_grads_(l);
  }
  if (float* dE = grad(0)) {
    if (dropping()) drop(a.dres.data(), size_t(N) * C, kSiteEmbd);
    if (cfg_.arch.embd_scale) {
      const float s = std::sqrt(float(C));
      for (size_t i = 0; i < size_t(N) * C; ++i) a.dres[i] *= s;
    }
    embedding_backward(dE, tokens_, a.dres.data(), N, C);
  }
}

// gpt2 (docs/architectures.md): x0 = E[token] + P[position]; per layer
//   x2 = x + drop(Wo attn(Wq n1(x) + bq, Wk n1(x) + bk, Wv n1(x) + bv) + bo),
//   x' = x2 + drop(Wd gelu(Wu n2(x2) + bu) + bd), n1, n2 LayerNorms with biases;
// then xf = nf(x_L). q, k, v are row ranges of the fused attn_qkv (and its bias).
void Model::trunk_gpt2(const Params& p, int b, int t) {
  Acts& a = *a_;
  const int N = b * t, C = cfg_.n_embd, K = cfg_.kv_dim(), F = cfg_.n_ff;
  const int H = cfg_.n_head, Hkv = cfg_.n_head_kv, D = cfg_.head_dim();
  const float eps = cfg_.norm_eps;
  float* x0 = a.x[0].data();
  embedding_forward(x0, tokens_, p.get(0), N, C);
  position_add_forward(x0, p.get(1), nullptr, N, t, C);
  if (dropping()) drop(x0, size_t(N) * C, kSiteEmbd);
  // dst = res + drop(in W^T + bias), one residual branch (dtmp holds it).
  auto add_branch = [&](float* dst, const float* res, const float* in, const float* W, const float* bias, int nin,
                        int l, bool mlp) {
    float* y = a.dtmp.data();
    const size_t n = size_t(N) * C;
    linear_forward(y, in, W, bias, N, nin, C);
    lora_forward(l, mlp ? kWd : kWo, in, y, N, nin, C);
    if (dropping()) drop(y, n, branch_site(l, mlp));
    for (size_t i = 0; i < n; ++i) dst[i] = res[i] + y[i];
  };
  for (int l = 0; l < cfg_.n_layer; ++l) {
    auto W = [&](Gpt2LayerParam v) { return p.get(gpt2_param(l, v)); };
    const float* x = at(a.x, l);
    float *xn1 = at(a.xn1, l), *q = at(a.q, l), *k = at(a.k, l), *v = at(a.v, l), *ao = at(a.ao, l),
          *x2 = at(a.x2, l), *xn2 = at(a.xn2, l), *u = at(a.u, l), *h = at(a.h, l);
    layernorm_forward_train(xn1, at(a.mean1, l), at(a.rstd1, l), x, W(kGAttnNorm), W(kGAttnNormB), N, C, eps);
    const float *Wqkv = W(kGQkv), *bqkv = W(kGQkvB);
    linear_forward(q, xn1, Wqkv, bqkv, N, C, C);
    linear_forward(k, xn1, Wqkv + size_t(C) * C, bqkv + C, N, C, K);
    linear_forward(v, xn1, Wqkv + size_t(C + K) * C, bqkv + C + K, N, C, K);
    lora_forward(l, kWq, xn1, q, N, C, C);
    lora_forward(l, kWk, xn1, k, N, C, K);
    lora_forward(l, kWv, xn1, v, N, C, K);
    attention_forward(ao, at(a.att, l), q, k, v, b, t, H, Hkv, D);
    add_branch(x2, x, ao, W(kGO), W(kGOB), C, l, false);
    layernorm_forward_train(xn2, at(a.mean2, l), at(a.rstd2, l), x2, W(kGFfnNorm), W(kGFfnNormB), N, C, eps);
    linear_forward(u, xn2, W(kGUp), W(kGUpB), N, C, F);
    lora_forward(l, kWu, xn2, u, N, C, F);
    gelu_forward(h, u, size_t(N) * F);
    add_branch(at(a.x, l + 1), x2, h, W(kGDown), W(kGDownB), F, l, true);
  }
  const size_t nf = output_norm_param(cfg_);
  layernorm_forward_train(a.xf.data(), a.meanf.data(), a.rstdf.data(), at(a.x, cfg_.n_layer), p.get(nf),
                          p.get(nf + 1), N, C, eps);
}

// From the gradient of xf in dxn (the head's backward) to every weight's.
void Model::backward_gpt2(Params& p) {
  Acts& a = *a_;
  const int b = b_, t = t_, N = b * t, C = cfg_.n_embd, K = cfg_.kv_dim(), F = cfg_.n_ff;
  const int H = cfg_.n_head, Hkv = cfg_.n_head_kv, D = cfg_.head_dim();
  const size_t NC = size_t(N) * C;
  const size_t nf = output_norm_param(cfg_);
  layernorm_backward(a.dres.data(), p.grad_of(nf), p.grad_of(nf + 1), a.dxn.data(), a.x[size_t(cfg_.n_layer)].data(),
                     p.get(nf), a.meanf.data(), a.rstdf.data(), N, C);
  auto branch_grad = [&](int l, bool mlp) -> const float* {
    if (!dropping()) return a.dres.data();
    std::copy(a.dres.begin(), a.dres.begin() + long(NC), a.dtmp.begin());
    drop(a.dtmp.data(), NC, branch_site(l, mlp));
    return a.dtmp.data();
  };
  for (int l = cfg_.n_layer - 1; l >= 0; --l) {
    const size_t L = size_t(l);
    auto W = [&](Gpt2LayerParam v) { return p.get(gpt2_param(l, v)); };
    auto G = [&](Gpt2LayerParam v) { return p.grad_of(gpt2_param(l, v)); };
    // x' = x2 + Wd gelu(u) + bd: dres is the gradient of x' and of x2 through the residual.
    const float* dbranch = branch_grad(l, true);
    if (float* db = G(kGDownB)) bias_backward(db, dbranch, N, C);
    matmul_backward(a.dh.data(), G(kGDown), dbranch, a.h[L].data(), W(kGDown), N, F, C, false);
    lora_backward(l, kWd, a.h[L].data(), dbranch, a.dh.data(), N, F, C);
    gelu_backward(a.du.data(), a.dh.data(), a.u[L].data(), size_t(N) * F);
    if (float* db = G(kGUpB)) bias_backward(db, a.du.data(), N, F);
    matmul_backward(a.dxn.data(), G(kGUp), a.du.data(), a.xn2[L].data(), W(kGUp), N, C, F, false);
    lora_backward(l, kWu, a.xn2[L].data(), a.du.data(), a.dxn.data(), N, C, F);
    layernorm_backward(a.dtmp.data(), G(kGFfnNorm), G(kGFfnNormB), a.dxn.data(), a.x2[L].data(), W(kGFfnNorm),
                       a.mean2[L].data(), a.rstd2[L].data(), N, C);
    for (size_t i = 0; i < NC; ++i) a.dres[i] += a.dtmp[i];
    // x2 = x + Wo attn(...) + bo
    dbranch = branch_grad(l, false);
    if (float* db = G(kGOB)) bias_backward(db, dbranch, N, C);
    matmul_backward(a.dao.data(), G(kGO), dbranch, a.ao[L].data(), W(kGO), N, C, C, false);
    lora_backward(l, kWo, a.ao[L].data(), dbranch, a.dao.data(), N, C, C);
    attention_backward(a.dq.data(), a.dk.data(), a.dv.data(), a.datt.data(), a.dao.data(), a.att[L].data(),
                       a.q[L].data(), a.k[L].data(), a.v[L].data(), b, t, H, Hkv, D);
    const float* Wqkv = W(kGQkv);
    float *dW = G(kGQkv), *db = G(kGQkvB);
    if (db) {
      bias_backward(db, a.dq.data(), N, C);
      bias_backward(db + C, a.dk.data(), N, K);
      bias_backward(db + C + K, a.dv.data(), N, K);
    }
    const float* xn1 = a.xn1[L].data();
    matmul_backward(a.dxn.data(), dW, a.dq.data(), xn1, Wqkv, N, C, C, false);
    matmul_backward(a.dxn.data(), dW ? dW + size_t(C) * C : nullptr, a.dk.data(), xn1, Wqkv + size_t(C) * C, N, C, K,
                    true);
    matmul_backward(a.dxn.data(), dW ? dW + size_t(C + K) * C : nullptr, a.dv.data(), xn1, Wqkv + size_t(C + K) * C,
                    N, C, K, true);
    lora_backward(l, kWq, xn1, a.dq.data(), a.dxn.data(), N, C, C);
    lora_backward(l, kWk, xn1, a.dk.data(), a.dxn.data(), N, C, K);
    lora_backward(l, kWv, xn1, a.dv.data(), a.dxn.data(), N, C, K);
    layernorm_backward(a.dtmp.data(), G(kGAttnNorm), G(kGAttnNormB), a.dxn.data(), a.x[L].data(), W(kGAttnNorm),
                       a.mean1[L].data(), a.rstd1[L].data(), N, C);
    for (size_t i = 0; i < NC; ++i) a.dres[i] += a.dtmp[i];
    if (on_layer_grads_) on_layer_grads_(l);
  }
  if (dropping()) drop(a.dres.data(), NC, kSiteEmbd);
  if (float* dE = p.grad_of(0)) embedding_backward(dE, tokens_, a.dres.data(), N, C);
  if (float* dP = p.grad_of(1)) position_add_backward(dP, a.dres.data(), N, t, C);
}

}  // namespace lm::model
