#include "sample/sampler.hpp"

#include <algorithm>
#include <cmath>
#include <limits>

#include "base/error.hpp"
#include "kernels/kernels.hpp"

namespace lm::sample {

void SamplerOptions::validate() const {
  auto check = [](bool ok, const std::string& what) {
    if (!ok) throw UsageError(what);
  };
  check(std::isfinite(temperature), "temperature must be a finite number");
  check(top_k >= 0, "top-k " + std::to_string(top_k) + " must be >= 0 (0 = off)");
  check(top_p > 0 && top_p <= 1, "top-p " + std::to_string(top_p) + " is out of range (0, 1]");
  check(min_p >= 0 && min_p <= 1, "min-p " + std::to_string(min_p) + " is out of range [0, 1]");
  check(typical_p > 0 && typical_p <= 1, "typical-p " + std::to_string(typical_p) + " is out of range (0, 1]");
  check(repeat_penalty > 0 && std::isfinite(repeat_penalty),
        "repeat penalty " + std::to_string(repeat_penalty) + " must be > 0 (1 = off)");
  check(std::isfinite(presence_penalty) && std::isfinite(frequency_penalty), "penalties must be finite numbers");
  check(penalty_last_n >= -1, "penalty window " + std::to_string(penalty_last_n) + " must be >= -1 (-1 = all)");
}

Sampler::Sampler(const SamplerOptions& opts, uint64_t seed) : opts_(opts), rng_(seed) {
  opts.validate();
  size_t start = 0;
  const std::string& s = opts.order;
  while (start <= s.size()) {
    size_t end = s.find(',', start);
    if (end == std::string::npos) end = s.size();
    const std::string name = s.substr(start, end - start);
    Step step;
    if (name == "penalties")
      step = Step::Penalties;
    else if (name == "top-k")
      step = Step::TopK;
    else if (name == "typical")
      step = Step::Typical;
    else if (name == "top-p")
      step = Step::TopP;
    else if (name == "min-p")
      step = Step::MinP;
    else if (name == "temperature")
      step = Step::Temperature;
    else
      throw UsageError("sampler '" + name + "' in '" + s +
                       "', expected a comma-separated list of penalties, top-k, typical, top-p, min-p, temperature");
    if (std::find(steps_.begin(), steps_.end(), step) != steps_.end())
      throw UsageError("sampler '" + name + "' appears twice in '" + s + "'");
    steps_.push_back(step);
    start = end + 1;
  }
}

bool Sampler::penalties_on(const std::vector<int>& history) const {
  const SamplerOptions& o = opts_;
  if (o.penalty_last_n == 0 || history.empty()) return false;
  return !(o.repeat_penalty == 1.0f && o.presence_penalty == 0.0f && o.frequency_penalty == 0.0f);
}

size_t Sampler::penalty_window(const std::vector<int>& history) const {
  const int last_n = opts_.penalty_last_n;
  return last_n < 0 ? history.size() : std::min(history.size(), size_t(last_n));
}

float Sampler::penalized(float logit, int count) const {
  const SamplerOptions& o = opts_;
  logit = logit > 0 ? logit / o.repeat_penalty : logit * o.repeat_penalty;
  return logit - (float(count) * o.frequency_penalty + o.presence_penalty);
}

void Sampler::penalties(const std::vector<int>& history) {
  if (!penalties_on(history)) return;
  const size_t n = penalty_window(history);
  const int V = int(counts_.size());
  for (size_t i = history.size() - n; i < history.size(); ++i)
    if (history[i] >= 0 && history[i] < V) ++counts_[size_t(history[i])];
  for (Cand& c : cand_) {
    const int count = counts_[size_t(c.id)];
    if (count != 0) c.logit = penalized(c.logit, count);
  }
  for (size_t i = history.size() - n; i < history.size(); ++i)
    if (history[i] >= 0 && history[i] < V) counts_[size_t(history[i])] = 0;
  sorted_ = false;
}

void Sampler::penalize(float* logits, const std::vector<int>& history) {
  const size_t n = penalty_window(history);
  const int V = int(counts_.size());
  for (size_t i = history.size() - n; i < history.size(); ++i)
    if (history[i] >= 0 && history[i] < V) ++counts_[size_t(history[i])];
  for (size_t i = history.size() - n; i < history.size(); ++i) {
    const int id = history[i];
    if (id < 0 || id >= V || counts_[size_t(id)] == 0) continue;
    logits[id] = penalized(logits[id], counts_[size_t(id)]);
    counts_[size_t(id)] = 0;  // each token once
  }
}

void Sampler::sort_desc() {
  if (sorted_) return;
  std::sort(cand_.begin(), cand_.end(),
            [](const Cand& a, const Cand& b) { return a.logit > b.logit || (a.logit == b.logit && a.id < b.id); });
  sorted_ = true;
}

void Sampler::softmax() {
  float mx = -std::numeric_limits<float>::infinity();
  for (const Cand& c : cand_) mx = std::max(mx, c.logit);
  p_.resize(cand_.size());
  double sum = 0;
  for (size_t i = 0; i < cand_.size(); ++i) sum += p_[i] = std::exp(cand_[i].logit - mx);
  for (float& p : p_) p = float(p / sum);
}

int Sampler::sample(const float* logits, int V, const std::vector<int>& history) {
  if (counts_.size() != size_t(V)) counts_.assign(size_t(V), 0);
  sorted_ = false;
  const SamplerOptions& o = opts_;
  // When top-k is the first step (or follows the penalties), its k candidates come straight
  // from the logits (the penalties applied to a copy of them): building all V candidates and
  // nth_element over them was most of a draw. The same k candidates either way.
  size_t first = 0;
  const size_t k_at = !steps_.empty() && steps_[0] == Step::Penalties ? 1 : 0;
  if (k_at < steps_.size() && steps_[k_at] == Step::TopK && o.top_k > 0 && o.top_k < V) {
    const float* src = logits;
    if (k_at == 1 && penalties_on(history)) {
      work_.assign(logits, logits + V);
      penalize(work_.data(), history);
      src = work_.data();
    }
    ids_.resize(size_t(o.top_k));
    kernels::top_k_ids(src, V, o.top_k, ids_.data());
    cand_.resize(ids_.size());
    for (size_t i = 0; i < ids_.size(); ++i) cand_[i] = {ids_[i], src[ids_[i]]};
    first = k_at + 1;
  } else {
    cand_.resize(size_t(V));
    for (int i = 0; i < V; ++i) cand_[size_t(i)] = {i, logits[i]};
  }
  bool greedy = false;
  for (size_t si = first; si < steps_.size(); ++si) {
    switch (steps_[si]) {
      case Step::Penalties: penalties(history); break;
      case Step::TopK:
        if (o.top_k > 0 && size_t(o.top_k) < cand_.size()) {
          auto cmp = [](const Cand& a, const Cand& b) { return a.logit > b.logit || (a.logit == b.logit && a.id < b.id); };
          std::nth_element(cand_.begin(), cand_.begin() + o.top_k, cand_.end(), cmp);
          cand_.resize(size_t(o.top_k));
          sorted_ = false;
        }
        break;
      case Step::Typical: {
        if (o.typical_p >= 1.0f || cand_.size() < 2) break;
        softmax();
        double entropy = 0;
        for (float p : p_)
          if (p > 0) entropy -= p * std::log(double(p));
        // Sort by |-log p - H|: the tokens whose surprise is closest to the expected surprise.
        order_.resize(cand_.size());
        for (size_t i = 0; i < cand_.size(); ++i)
          order_[i] = {std::fabs(-std::log(std::max(double(p_[i]), 1e-45)) - entropy), i};
        std::stable_sort(order_.begin(), order_.end(),
                         [](const auto& a, const auto& b) { return a.first < b.first; });
        kept_.clear();
        double cum = 0;
        for (const auto& [shift, i] : order_) {
          kept_.push_back(cand_[i]);
          cum += p_[i];
          if (cum >= o.typical_p) break;
        }
        cand_.swap(kept_);
        sorted_ = false;
        break;
      }
      case Step::TopP: {
        if (o.top_p >= 1.0f) break;
        sort_desc();
        softmax();
        double cum = 0;
        size_t n = 0;
        while (n < cand_.size()) {
          cum += p_[n++];
          if (cum >= o.top_p) break;
        }
        truncate(n);
        break;
      }
      case Step::MinP: {
        if (o.min_p <= 0.0f) break;
        float mx = -std::numeric_limits<float>::infinity();
        for (const Cand& c : cand_) mx = std::max(mx, c.logit);
        const float floor = mx + std::log(o.min_p);  // p >= min_p * p_max
        size_t w = 0;
        for (const Cand& c : cand_)
          if (c.logit >= floor) cand_[w++] = c;
        truncate(w);
        break;
      }
      case Step::Temperature:
        if (o.temperature <= 0.0f) {
          greedy = true;
        } else {
          for (Cand& c : cand_) c.logit /= o.temperature;
        }
        break;
    }
  }
  if (greedy || cand_.size() == 1) {
    const auto best = std::min_element(cand_.begin(), cand_.end(), [](const Cand& a, const Cand& b) {
      return a.logit > b.logit || (a.logit == b.logit && a.id < b.id);
    });
    return best->id;
  }
  // A draw in a fixed candidate order (by id) so the result depends only on the seed.
  std::sort(cand_.begin(), cand_.end(), [](const Cand& a, const Cand& b) { return a.id < b.id; });
  softmax();
  const double r = rng_.uniform_double();
  double cum = 0;
  for (size_t i = 0; i < cand_.size(); ++i) {
    cum += p_[i];
    if (r < cum) return cand_[i].id;
  }
  return cand_.back().id;
}

// log p(id) = logits[id] - log sum_v exp(logits[v]), the sum by the evaluation kernel (vector
// exp in float; glibc's scalar exp in double was a fifth of a decoding step of 8 sequences).
float token_logprob(const float* logits, int V, int id) { return logits[id] - kernels::logsumexp(logits, V); }

std::vector<TokenLogprob> top_logprobs(const float* logits, int V, int n) {
  n = std::clamp(n, 0, V);
  std::vector<int> ids(static_cast<size_t>(V));
  for (int i = 0; i < V; ++i) ids[size_t(i)] = i;
  auto cmp = [&](int a, int b) { return logits[a] > logits[b] || (logits[a] == logits[b] && a < b); };
  std::partial_sort(ids.begin(), ids.begin() + n, ids.end(), cmp);
  const float lse = kernels::logsumexp(logits, V);
  std::vector<TokenLogprob> out;
  for (int i = 0; i < n; ++i) out.push_back({ids[size_t(i)], logits[ids[size_t(i)]] - lse});
  return out;
}

}  // namespace lm::sample
