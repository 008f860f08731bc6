// Learning-rate schedule, clipping, AdamW, batch sampling and checkpoint keys.
#include "train/trainer.hpp"

#include <cmath>
#include <cstring>

#include "base/error.hpp"
#include "kernels/kernels.hpp"

namespace lm::train {

float lr_at(uint64_t step, const OptimizerOptions& o) {
  if (step < o.warmup_steps) return o.lr * float(step + 1) / float(o.warmup_steps);
  if (step >= o.total_steps) return o.lr_min;
  const double span = double(o.total_steps - o.warmup_steps);
  const double progress = span > 0 ? double(step - o.warmup_steps) / span : 1.0;
  return float(o.lr_min + 0.5 * (o.lr - o.lr_min) * (1.0 + std::cos(M_PI * progress)));
}

double clip_grad_norm(std::span<float> grad, float max_norm) {
  const double norm = std::sqrt(kernels::sum_squares(grad.data(), grad.size()));
  if (!std::isfinite(norm) || max_norm <= 0 || norm <= max_norm) return norm;
  const float scale = float(max_norm / norm);
  for (float& g : grad) g *= scale;
  return norm;
}

AdamW::AdamW(const model::Params& p, const OptimizerOptions& o) : o_(o), m_(p.w.size(), 0.0f), v_(p.w.size(), 0.0f) {}

void AdamW::step(model::Params& p, float lr) {
  ++t_;
  for (const auto& view : p.views) {
    const size_t n = size_t(view.rows) * view.cols;
    const float wd = view.rows == 1 ? 0.0f : o_.weight_decay;  // no decay on norm gains
    kernels::adamw_step(p.w.data() + view.offset, p.grad.data() + view.offset, m_.data() + view.offset,
                        v_.data() + view.offset, n, lr, o_.beta1, o_.beta2, o_.eps, wd, int(t_));
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

namespace {
constexpr const char* kStep = "lm.train.step";
constexpr const char* kTokens = "lm.train.tokens_seen";
constexpr const char* kDraws = "lm.train.sampler_draws";
constexpr const char* kSkipped = "lm.train.skipped_steps";
constexpr const char* kAdamSteps = "lm.train.adam_steps";
constexpr const char* kRng = "lm.train.sampler_rng";  // 4 u64 words as 32 bytes (u8 array)
}  // namespace

void add_checkpoint(format::GgufWriter& out, const model::Params& p, AdamW& opt, const TrainState& st) {
  out.set_u64(kStep, st.step);
  out.set_u64(kTokens, st.tokens_seen);
  out.set_u64(kDraws, st.sampler_draws);
  out.set_u64(kSkipped, st.skipped_steps);
  out.set_u64(kAdamSteps, opt.steps());
  char rng[32];
  for (int i = 0; i < 4; ++i)
    for (int b = 0; b < 8; ++b) rng[i * 8 + b] = char(uint8_t(st.sampler_rng[size_t(i)] >> (8 * b)));
  out.set_array_u8(kRng, std::string_view(rng, 32));
  for (const auto& v : p.views) {
    std::vector<int64_t> ne = v.rows == 1 ? std::vector<int64_t>{v.cols} : std::vector<int64_t>{v.cols, v.rows};
    out.add_tensor("adam_m." + v.name, format::GgmlType::F32, ne, opt.m().data() + v.offset);
    out.add_tensor("adam_v." + v.name, format::GgmlType::F32, ne, opt.v().data() + v.offset);
  }
}

TrainState load_checkpoint(const format::GgufFile& g, const model::Params& p, AdamW& opt) {
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
  for (const auto& v : p.views) {
    for (auto [prefix, dst] : {std::pair{"adam_m.", &opt.m()}, std::pair{"adam_v.", &opt.v()}}) {
      const std::string name = prefix + v.name;
      const format::GgufTensorInfo* t = g.find_tensor(name);
      const size_t n = size_t(v.rows) * v.cols;
      if (!t || t->type != format::GgmlType::F32 || t->n_elements() != n)
        throw FormatError(g.path(), "checkpoint tensor '" + name + "' is missing or not f32 of " + std::to_string(n) +
                                        " elements; is this a checkpoint of this model?");
      std::memcpy(dst->data() + v.offset, t->data, n * sizeof(float));
    }
  }
  opt.set_steps(g.get_u64(kAdamSteps));
  return st;
}

}  // namespace lm::train
