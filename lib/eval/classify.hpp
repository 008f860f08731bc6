// Classification metrics: accuracy, per-label precision / recall / F1, micro, macro and
// support-weighted averages and the confusion matrix of predicted labels against gold ones,
// with scikit-learn's conventions (labels sorted, the union of gold and predicted labels; a
// ratio with a zero denominator is 0).
#pragma once

#include <cstdint>
#include <map>
#include <set>
#include <string>
#include <string_view>
#include <vector>

namespace lm::eval {

struct LabelScores {
  std::string label;
  double precision = 0, recall = 0, f1 = 0;
  uint64_t support = 0;    // gold examples with this label
  uint64_t predicted = 0;  // examples predicted with this label
};

struct Averages {
  double precision = 0, recall = 0, f1 = 0;
};

struct ClassifyResult {
  std::vector<LabelScores> labels;  // sorted by label
  // confusion[g * labels.size() + p]: examples with gold label g predicted as p; empty unless
  // asked for (it grows with the square of the label count)
  std::vector<uint64_t> confusion;
  uint64_t examples = 0, correct = 0;
  double accuracy = 0;
  Averages micro, macro, weighted;  // micro P = R = F1 = accuracy for single-label data
};

// The most labels a confusion matrix is made for: 4096 labels make a 128 MiB matrix (and a
// table no one reads); the scores without the matrix have no such limit.
inline constexpr size_t kMaxConfusionLabels = 4096;

// Counts (gold, predicted) pairs; memory grows with the number of distinct pairs, at most the
// number of examples.
class ClassifyScorer {
 public:
  void add(std::string_view gold, std::string_view predicted);
  uint64_t examples() const { return examples_; }
  // Distinct labels so far, gold and predicted.
  size_t labels() const { return names_.size(); }
  // The scores, with the confusion matrix if `confusion` (labels() <= kMaxConfusionLabels).
  ClassifyResult result(bool confusion = false) const;

 private:
  std::map<std::string, std::map<std::string, uint64_t>, std::less<>> counts_;  // gold -> predicted -> n
  std::set<std::string, std::less<>> names_;
  uint64_t examples_ = 0;
};

}  // namespace lm::eval
