// Knowledge distillation (docs/distillation.md): the teacher of a run, loaded once and run on
// each training micro-batch of the student, inference only; its soft targets go to
// Model::forward / forward_classify. Also the checkpoint keys that record the teacher.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "format/gguf.hpp"
#include "model/model.hpp"
#include "tokenizer/tokenizer.hpp"

namespace lm::train {

struct DistillOptions {
  std::string teacher;  // the teacher's model file; empty: no distillation
  float alpha = 0.5f;   // weight of the soft term: (1 - alpha) CE + alpha T^2 KL
  float temp = 2.0f;    // temperature T of both softmaxes in the KL term
  int top_k = 0;        // keep the teacher's k most likely ids per row; 0: all of them
  bool enabled() const { return !teacher.empty(); }
  // Throws UsageError naming the flag: alpha outside [0, 1], temp not above 0, top_k < 0.
  void validate() const;
};

class Teacher {
 public:
  // A language-model teacher (any model file lm-generate loads, quantized included) for
  // micro-batches of up to B rows of T tokens. student_tok / student_name: the student's
  // tokenizer and where it came from, for the vocabulary check. Throws IoError, FormatError
  // naming the file (another vocabulary, an encoder), UsageError (a context shorter than T,
  // top_k above the vocabulary).
  Teacher(const DistillOptions& o, const Tokenizer& student_tok, const std::string& student_name, int B, int T);
  // A classifier teacher (a classifier file) whose labels must be `labels`, in that order.
  Teacher(const DistillOptions& o, const Tokenizer& student_tok, const std::string& student_name,
          const std::vector<std::string>& labels, int B, int T);
  ~Teacher();
  Teacher(const Teacher&) = delete;
  Teacher& operator=(const Teacher&) = delete;

  // Soft targets for tokens (b, t): row i * t + j is the teacher's prediction after token j of
  // row i. Valid until the next call. Language-model teacher only.
  const model::SoftTargets& run(const int* tokens, int b, int t);
  // Soft targets (b rows over the labels) for right-padded texts (model::pad_rows). Classifier
  // teacher only.
  const model::SoftTargets& run_classify(const int* tokens, const int* lengths, int b, int t);
  bool classifier() const;
  const DistillOptions& options() const { return o_; }
  // Seconds spent in run() and run_classify() so far.
  double seconds() const { return seconds_; }
  // FNV-1a 64 (fnv1a64_words) over the teacher file's tensor bytes, in file order.
  uint64_t checksum() const { return checksum_; }
  // Bytes held: weights, cache and buffers.
  size_t bytes() const;
  // Seconds of one forward over B rows of T tokens (the second of two, on the run's threads): for
  // --dry-run.
  double measure();

 private:
  struct Impl;
  // Keeps each row's top_k ids of `rows` rows of `k` values (in place of the full rows).
  void select_top_k(const float* rows, int n_rows, int k);
  DistillOptions o_;
  std::unique_ptr<Impl> impl_;
  model::SoftTargets soft_;
  std::vector<float> top_logits_;
  std::vector<int> top_ids_;
  double seconds_ = 0;
  uint64_t checksum_ = 0;
  int B_, T_;
};

// Records the teacher of a run in a checkpoint (lm.distill.*; docs/distillation.md). Nothing
// for nullptr. `t` must outlive w.write().
void add_distill_keys(format::GgufWriter& w, const Teacher* t);
// The differences between the teacher and options a checkpoint records and this run's (nullptr:
// no teacher), in diff_option's form ("--teacher ... in the checkpoint but ... now"); empty when
// they agree.
std::string distill_diff(const format::GgufFile& g, const Teacher* t);

}  // namespace lm::train
