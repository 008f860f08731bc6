#include "eval/classify.hpp"

#include <vector>

#include "base/error.hpp"

namespace lm::eval {

namespace {

double ratio(uint64_t a, uint64_t b) { return b ? double(a) / double(b) : 0.0; }
double f1_of(double p, double r) { return p + r > 0 ? 2 * p * r / (p + r) : 0.0; }

}  // namespace

void ClassifyScorer::add(std::string_view gold, std::string_view predicted) {
  auto g = counts_.find(gold);
  if (g == counts_.end()) g = counts_.emplace(std::string(gold), std::map<std::string, uint64_t>{}).first;
  auto p = g->second.find(std::string(predicted));
  if (p == g->second.end()) p = g->second.emplace(std::string(predicted), 0).first;
  ++p->second;
  ++examples_;
  for (std::string_view n : {gold, predicted})
    if (names_.find(n) == names_.end()) names_.emplace(n);
}

ClassifyResult ClassifyScorer::result(bool confusion) const {
  LM_ASSERT(!confusion || names_.size() <= kMaxConfusionLabels);
  ClassifyResult r;
  std::map<std::string_view, size_t> index;
  for (const auto& n : names_) {
    index.emplace(n, r.labels.size());
    r.labels.push_back({n});
  }
  const size_t L = r.labels.size();
  if (confusion) r.confusion.assign(L * L, 0);
  std::vector<uint64_t> true_positives(L, 0);
  for (const auto& [gold, row] : counts_)
    for (const auto& [pred, n] : row) {
      const size_t g = index.at(gold), p = index.at(pred);
      if (confusion) r.confusion[g * L + p] += n;
      r.labels[g].support += n;
      r.labels[p].predicted += n;
      r.examples += n;
      if (g == p) r.correct += n, true_positives[g] += n;
    }
  for (size_t i = 0; i < L; ++i) {
    LabelScores& s = r.labels[i];
    const uint64_t tp = true_positives[i];
    s.precision = ratio(tp, s.predicted);
    s.recall = ratio(tp, s.support);
    s.f1 = f1_of(s.precision, s.recall);
    r.macro.precision += s.precision / double(L);
    r.macro.recall += s.recall / double(L);
    r.macro.f1 += s.f1 / double(L);
    const double w = ratio(s.support, r.examples);
    r.weighted.precision += w * s.precision;
    r.weighted.recall += w * s.recall;
    r.weighted.f1 += w * s.f1;
  }
  r.accuracy = ratio(r.correct, r.examples);
  r.micro = {r.accuracy, r.accuracy, r.accuracy};
  return r;
}

}  // namespace lm::eval
