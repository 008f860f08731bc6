// Training building blocks: learning-rate schedule, gradient clipping with a non-finite check,
// AdamW over the flat parameter buffer, a seeded batch sampler over a token stream, and
// checkpoints (GGUF files, docs/formats.md, checkpoints) that resume bit for bit, at any thread
// count.
#pragma once

#include <cstdint>
#include <string>
#include <span>
#include <vector>

#include "base/rng.hpp"
#include "format/gguf.hpp"
#include "model/model.hpp"

namespace lm::model {
struct LstmParams;
}

namespace lm::train {

struct OptimizerOptions {
  float lr = 3e-4f;            // peak learning rate
  float lr_min = 3e-5f;        // reached at the end of the cosine decay
  uint64_t warmup_steps = 100; // linear warmup from 0
  uint64_t total_steps = 1000; // the cosine ends here
  float beta1 = 0.9f, beta2 = 0.95f, eps = 1e-8f;
  float weight_decay = 0.1f;   // decoupled; never applied to norm gains
  float grad_clip = 1.0f;      // global-norm clipping threshold (0 = off)
};

// Learning rate at step s (0-based): linear warmup to lr, then cosine to lr_min at total_steps.
float lr_at(uint64_t step, const OptimizerOptions& o);

// Global L2 norm of the gradients; if finite and above max_norm > 0, scales them to max_norm.
// Returns the norm before clipping (NaN or Inf if any gradient is not finite, grads untouched).
double clip_grad_norm(const std::vector<std::span<float>>& grads, float max_norm);
// clip_grad_norm in two halves, for a norm agreed between ranks: the global L2 norm, then the
// scaling to max_norm > 0 when the norm is finite and above it.
double grad_norm(const std::vector<std::span<float>>& grads);
void clip_to_norm(const std::vector<std::span<float>>& grads, double norm, float max_norm);
inline double clip_grad_norm(std::span<float> grad, float max_norm) { return clip_grad_norm(std::vector{grad}, max_norm); }

// One trained tensor: its weights and gradient (not owned), its GGUF name and shape.
struct Trainable {
  std::string name;
  float* w = nullptr;
  float* g = nullptr;
  int rows = 1, cols = 1;  // 1 x n: a norm's gains or a bias, never weight-decayed
  size_t size() const { return size_t(rows) * size_t(cols); }
};
// Every tensor of p (full training), or those with keep[view] set.
std::vector<Trainable> trainables(model::Params& p, const std::vector<uint8_t>& keep = {});
std::vector<Trainable> trainables(model::LstmParams& p);

// AdamW over a set of tensors (weight decay only on matrices, not on norm gains or biases).
// Moments allocated once; the tensors' buffers must stay where they are.
class AdamW {
 public:
  AdamW(std::vector<Trainable> tensors, const OptimizerOptions& o);
  AdamW(model::Params& p, const OptimizerOptions& o) : AdamW(trainables(p), o) {}
  // One update with learning rate `lr`; advances the step counter used for bias correction.
  void step(float lr);
  void step(model::Params&, float lr) { step(lr); }
  uint64_t steps() const { return t_; }
  const std::vector<Trainable>& tensors() const { return tensors_; }
  float* m(size_t i) { return m_.data() + offsets_[i]; }
  float* v(size_t i) { return v_.data() + offsets_[i]; }
  void set_steps(uint64_t t) { t_ = t; }
  size_t state_bytes() const { return 2 * m_.size() * sizeof(float); }

 private:
  OptimizerOptions o_;
  std::vector<Trainable> tensors_;
  std::vector<size_t> offsets_;
  LargeVector<float> m_, v_;
  uint64_t t_ = 0;
};

// Draws training windows of T+1 tokens at uniformly random offsets of a token stream, from an
// explicit RNG, so that a run is reproducible and resumable from (rng state, draws).
class BatchSampler {
 public:
  // tokens: the stream (not owned; must outlive the sampler). Throws FormatError if the stream
  // is shorter than T+1 tokens (docs/reliability.md D5), naming `source`.
  BatchSampler(const std::vector<int>& tokens, int T, uint64_t seed, const std::string& source);
  // Fills inputs and targets (B, T) with B windows.
  void next(int B, int* inputs, int* targets);
  // Draws B windows as next() does, without copying them: another rank trains on them.
  void skip(int B);
  const Rng& rng() const { return rng_; }
  void set_rng(const Rng& r) { rng_ = r; }
  uint64_t draws() const { return draws_; }
  void set_draws(uint64_t d) { draws_ = d; }

 private:
  const std::vector<int>& tokens_;
  int T_;
  Rng rng_;
  uint64_t draws_ = 0;
};

// Everything needed to continue a run exactly.
struct TrainState {
  uint64_t step = 0;          // optimizer steps done
  uint64_t tokens_seen = 0;
  Rng::State sampler_rng{};
  uint64_t sampler_draws = 0;
  uint64_t skipped_steps = 0; // updates skipped for non-finite gradients
};

// Adds the optimizer moments and the training state (lm.train.* keys, adam_m.* / adam_v.*
// tensors named after the trained tensors) to a writer that already holds what is trained
// (model::add_model, model::add_adapter). `opt` must outlive out.write().
void add_checkpoint(format::GgufWriter& out, AdamW& opt, const TrainState& st);
// Reads them back into opt and returns the state. Throws FormatError naming the file and the
// missing or mismatched key or tensor.
TrainState load_checkpoint(const format::GgufFile& g, AdamW& opt);

}  // namespace lm::train
