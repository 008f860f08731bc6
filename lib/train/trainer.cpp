// Learning-rate schedule, clipping, AdamW, batch sampling and checkpoint keys.
#include "train/trainer.hpp"

#include <cmath>
#include <cstring>

#include "base/error.hpp"
#include "kernels/kernels.hpp"
#include "model/lstm.hpp"

namespace lm::train {

float lr_at(uint64_t step, const OptimizerOptions& o) {
  if (step < o.warmup_steps) return o.lr * float(step + 1) / float(o.warmup_steps);
  if (step >= o.total_steps) return o.lr_min;
  const double span = double(o.total_steps - o.warmup_steps);
  const double progress = span > 0 ? double(step - o.warmup_steps) / span : 1.0;
  return float(o.lr_min + 0.5 * (o.lr - o.lr_min) * (1.0 + std::cos(M_PI * progress)));
}

double grad_norm(const std::vector<std::span<float>>& grads) {
  double sq = 0;
  for (auto g : grads) sq += kernels::sum_squares(g.data(), g.size());
  return std::sqrt(sq);
}

void clip_to_norm(const std::vector<std::span<float>>& grads, double norm, float max_norm) {
  if (!std::isfinite(norm) || max_norm <= 0 || norm <= max_norm) return;
  const float scale = float(max_norm / norm);
  for (auto grad : grads)
    for (float& g : grad) g *= scale;
}

double clip_grad_norm(const std::vector<std::span<float>>& grads, float max_norm) {
  const double norm = grad_norm(grads);
  clip_to_norm(grads, norm, max_norm);
  return norm;
}

namespace {
template <class P>
std::vector<Trainable> views_of(P& p, const std::vector<uint8_t>& keep) {
  std::vector<Trainable> t;
  for (size_t i = 0; i < p.views.size(); ++i) {
    if (!keep.empty() && !keep[i]) continue;
    const auto& v = p.views[i];
    LM_ASSERT(p.grad_of(i));
    t.push_back({v.name, p.w.data() + v.offset, p.grad_of(i), v.rows, v.cols});
  }
  return t;
}
}  // namespace

std::vector<Trainable> trainables(model::Params& p, const std::vector<uint8_t>& keep) { return views_of(p, keep); }
std::vector<Trainable> trainables(model::LstmParams& p) { return views_of(p, {}); }

AdamW::AdamW(std::vector<Trainable> tensors, const OptimizerOptions& o) : o_(o), tensors_(std::move(tensors)) {
  size_t n = 0;
  for (const auto& t : tensors_) offsets_.push_back(n), n += t.size();
  m_.assign(n, 0.0f);
  v_.assign(n, 0.0f);
}

void AdamW::step(float lr) {
  ++t_;
  for (size_t i = 0; i < tensors_.size(); ++i) {
    const Trainable& t = tensors_[i];
    const float wd = t.rows == 1 ? 0.0f : o_.weight_decay;  // no decay on norm gains and biases
    kernels::adamw_step(t.w, t.g, m(i), v(i), t.size(), lr, o_.beta1, o_.beta2, o_.eps, wd, int(t_));
  }
}

BatchSampler::BatchSampler(const std::vector<int>& tokens, int T, uint64_t seed, const std::string& source)
    : tokens_(tokens), T_(T), rng_(seed) {
  if (tokens.size() < size_t(T) + 1)
    throw FormatError(source, "has " + std::to_string(tokens.size()) + " tokens, expected at least " +
                                  std::to_string(T + 1) + " (one sequence of the context length plus one); "
                                  "use more data or a shorter context");
}

void BatchSampler::next(int B, int* inputs, int* targets) {
  const uint64_t span = tokens_.size() - size_t(T_);  // start offsets in [0, span)
  for (int b = 0; b < B; ++b) {
    const size_t start = size_t(rng_.below(span));
    ++draws_;
    std::memcpy(inputs + size_t(b) * T_, tokens_.data() + start, sizeof(int) * size_t(T_));
    std::memcpy(targets + size_t(b) * T_, tokens_.data() + start + 1, sizeof(int) * size_t(T_));
  }
}

void BatchSampler::skip(int B) {
  const uint64_t span = tokens_.size() - size_t(T_);
  for (int b = 0; b < B; ++b) {
    rng_.below(span);
    ++draws_;
  }
}

namespace {
constexpr const char* kStep = "lm.train.step";
constexpr const char* kTokens = "lm.train.tokens_seen";
constexpr const char* kDraws = "lm.train.sampler_draws";
constexpr const char* kSkipped = "lm.train.skipped_steps";
constexpr const char* kAdamSteps = "lm.train.adam_steps";
constexpr const char* kRng = "lm.train.sampler_rng";  // 4 u64 words as 32 bytes (u8 array)
}  // namespace

void add_checkpoint(format::GgufWriter& out, AdamW& opt, const TrainState& st) {
  out.set_u64(kStep, st.step);
  out.set_u64(kTokens, st.tokens_seen);
  out.set_u64(kDraws, st.sampler_draws);
  out.set_u64(kSkipped, st.skipped_steps);
  out.set_u64(kAdamSteps, opt.steps());
  char rng[32];
  for (int i = 0; i < 4; ++i)
    for (int b = 0; b < 8; ++b) rng[i * 8 + b] = char(uint8_t(st.sampler_rng[size_t(i)] >> (8 * b)));
  out.set_array_u8(kRng, std::string_view(rng, 32));
  for (size_t i = 0; i < opt.tensors().size(); ++i) {
    const Trainable& v = opt.tensors()[i];
    std::vector<int64_t> ne = v.rows == 1 ? std::vector<int64_t>{v.cols} : std::vector<int64_t>{v.cols, v.rows};
    out.add_tensor("adam_m." + v.name, format::GgmlType::F32, ne, opt.m(i));
    out.add_tensor("adam_v." + v.name, format::GgmlType::F32, ne, opt.v(i));
  }
}

TrainState load_checkpoint(const format::GgufFile& g, AdamW& opt) {
  TrainState st;
  st.step = g.get_u64(kStep);
  st.tokens_seen = g.get_u64(kTokens);
  st.sampler_draws = g.get_u64(kDraws);
  st.skipped_steps = g.get_u64(kSkipped);
  std::string_view rng = g.get_u8_array(kRng);
  if (rng.size() != 32)
    throw FormatError(g.path(), "key '" + std::string(kRng) + "' has " + std::to_string(rng.size()) + " bytes, expected 32");
  for (int i = 0; i < 4; ++i) {
    uint64_t w = 0;
    for (int b = 7; b >= 0; --b) w = (w << 8) | uint8_t(rng[size_t(i * 8 + b)]);
    st.sampler_rng[size_t(i)] = w;
  }
  for (size_t i = 0; i < opt.tensors().size(); ++i) {
    const Trainable& v = opt.tensors()[i];
    for (auto [prefix, dst] : {std::pair{"adam_m.", opt.m(i)}, std::pair{"adam_v.", opt.v(i)}}) {
      const std::string name = prefix + v.name;
      const format::GgufTensorInfo* t = g.find_tensor(name);
      const size_t n = v.size();
      if (!t || t->type != format::GgmlType::F32 || t->n_elements() != n)
        throw FormatError(g.path(), "checkpoint tensor '" + name + "' is missing or not f32 of " + std::to_string(n) +
                                        " elements; is this a checkpoint of this run?");
      std::memcpy(dst, t->data, n * sizeof(float));
    }
  }
  opt.set_steps(g.get_u64(kAdamSteps));
  return st;
}

}  // namespace lm::train
