#include "eval/classify.hpp"

#include <vector>

#include "base/error.hpp"

namespace lm::eval {

namespace {

constexpr std::string_view kLabelPrefix = "__label__";  // fastText's

bool is_space(char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == '\v' || c == '\f'; }

std::string_view trim(std::string_view s) {
  while (!s.empty() && is_space(s.front())) s.remove_prefix(1);
  while (!s.empty() && is_space(s.back())) s.remove_suffix(1);
  return s;
}

double ratio(uint64_t a, uint64_t b) { return b ? double(a) / double(b) : 0.0; }
double f1_of(double p, double r) { return p + r > 0 ? 2 * p * r / (p + r) : 0.0; }

}  // namespace

std::string_view line_label(std::string_view line) {
  if (line.starts_with(kLabelPrefix)) {
    line.remove_prefix(kLabelPrefix.size());
    size_t end = 0;
    while (end < line.size() && !is_space(line[end])) ++end;
    return line.substr(0, end);
  }
  const size_t tab = line.find('\t');
  return trim(tab == std::string_view::npos ? line : line.substr(0, tab));
}

bool has_label_field(std::string_view line) {
  return line.starts_with(kLabelPrefix) || line.find('\t') != std::string_view::npos;
}

std::string_view line_text(std::string_view line) {
  if (line.starts_with(kLabelPrefix)) {
    while (line.starts_with(kLabelPrefix)) {
      size_t end = 0;
      while (end < line.size() && !is_space(line[end])) ++end;
      line = trim(line.substr(end));
    }
    return line;
  }
  const size_t tab = line.find('\t');
  return tab == std::string_view::npos ? std::string_view() : trim(line.substr(tab + 1));
}

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
