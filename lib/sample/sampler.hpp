// Token samplers (llama.cpp's chain): penalties, top-k, typical, top-p, min-p and temperature,
// applied in a configurable order to the candidates of one step, then a seeded draw. The
// defaults are llama.cpp's, so the same flags behave the same.
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "base/rng.hpp"

namespace lm::sample {

struct SamplerOptions {
  float temperature = 0.8f;       // <= 0: greedy (the most likely token after penalties)
  int top_k = 40;                 // keep the k most likely tokens; 0 = off
  float top_p = 0.95f;            // keep the smallest set with probability >= p; 1 = off
  float min_p = 0.05f;            // drop tokens below min_p x the top probability; 0 = off
  float typical_p = 1.0f;         // locally typical sampling (Meister et al. 2022); 1 = off
  float repeat_penalty = 1.0f;    // divide positive (multiply negative) logits of seen tokens; 1 = off
  float presence_penalty = 0.0f;  // subtract from the logits of seen tokens; 0 = off
  float frequency_penalty = 0.0f; // subtract count x this from the logits of seen tokens; 0 = off
  int penalty_last_n = 64;        // tokens the penalties look back over; -1 = all, 0 = off
  // Order of the chain, comma-separated from: penalties, top-k, typical, top-p, min-p,
  // temperature. Steps left out are not applied.
  std::string order = "penalties,top-k,typical,top-p,min-p,temperature";

  // Throws UsageError naming the option and its allowed range.
  void validate() const;
};

// A token and its log-probability.
struct TokenLogprob {
  int id;
  float logprob;
};

class Sampler {
 public:
  // Throws UsageError for bad options.
  Sampler(const SamplerOptions& opts, uint64_t seed);
  void reseed(uint64_t seed) { rng_.reseed(seed); }
  // Picks the next token from logits (V) after `history` (prompt and output so far, for the
  // penalties). Allocates nothing once warm.
  int sample(const float* logits, int V, const std::vector<int>& history);

 private:
  enum class Step { Penalties, TopK, Typical, TopP, MinP, Temperature };
  struct Cand {
    int id;
    float logit;
  };
  bool penalties_on(const std::vector<int>& history) const;
  size_t penalty_window(const std::vector<int>& history) const;
  float penalized(float logit, int count) const;
  void penalties(const std::vector<int>& history);           // on cand_
  void penalize(float* logits, const std::vector<int>& history);  // on logits indexed by id
  void sort_desc();
  void softmax();  // fills p_ from cand_ logits
  void truncate(size_t n) { cand_.resize(std::max<size_t>(1, n)); }

  SamplerOptions opts_;
  std::vector<Step> steps_;
  Rng rng_;
  std::vector<Cand> cand_, kept_;
  std::vector<float> p_, work_;  // work_: penalized logits for the top-k scan
  std::vector<int> ids_;
  std::vector<std::pair<double, size_t>> order_;
  std::vector<int> counts_;  // per token id, for penalties
  bool sorted_ = false;
};

// log softmax(logits)[id], with kernels::logsumexp (float, within 1e-5 of a double sum).
float token_logprob(const float* logits, int V, int id);
// The n most likely tokens with their log-probabilities, most likely first (ties by id).
std::vector<TokenLogprob> top_logprobs(const float* logits, int V, int n);

}  // namespace lm::sample
