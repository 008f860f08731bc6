// Fine-tuning jobs for run_loop(): continued training of a loaded model on text, on
// prompt/completion pairs with the loss masked to the completion, or as a sequence classifier
// with a head over the last token's final hidden state; either every weight or LoRA pairs
// (plus chosen base tensors) are trained.
#pragma once

#include <algorithm>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "dist/comm.hpp"
#include "model/lora.hpp"
#include "model/encoder.hpp"
#include "model/lstm.hpp"
#include "model/model.hpp"
#include "tokenizer/tokenizer.hpp"
#include "train/distill.hpp"
#include "train/run.hpp"

namespace lm::train {

// One training sequence: its tokens and the first token whose prediction is scored (tokens
// before it, the prompt, only condition).
struct Sequence {
  std::vector<int> tokens;
  int loss_from = 1;
};

// JSON Lines with string members "prompt" and "completion": BOS (if add_bos), the prompt, the
// completion and EOS, scored from the first token where the prompt alone would tokenize
// differently. Empty lines are skipped. Throws FormatError naming the file and line.
std::vector<Sequence> load_prompt_completion(const std::string& path, const Tokenizer& tok, bool add_bos, int threads);

struct LabeledExample {
  std::vector<int> tokens;
  int label = 0;  // index into LabeledData::labels
};
struct LabeledData {
  std::vector<std::string> labels;   // sorted
  std::vector<LabeledExample> examples;
};
// "label<TAB>text" or fastText "__label__NAME text" lines. Labels are `labels` if given, else
// the sorted set of this file's labels. Texts are cut to max_tokens (BOS included). Throws
// FormatError naming the file and line of a line without label or text, with a label not in
// `labels`, or (without `labels`) with label model::kMaxLabels + 1.
LabeledData load_labeled(const std::string& path, const Tokenizer& tok, bool add_bos, int max_tokens,
                         const std::vector<std::string>* labels, int threads);

enum class Task { Text, PromptCompletion, Classify };
const char* task_name(Task t);  // "text", "prompt-completion", "classify"

// lm-finetune's checkpoint keys, compared on resume: the task, the context and a checksum of
// the -m model's weights (the run's starting point).
inline constexpr const char* kTaskKey = "lm.finetune.task";
inline constexpr const char* kContextKey = "lm.finetune.context";
inline constexpr const char* kBaseKey = "lm.finetune.base_checksum";

struct FinetuneOptions {
  Task task = Task::Text;
  bool lora = false;
  model::LoraOptions lora_opt;
  // Base tensors also trained with LoRA (every one of them is trained in full fine-tuning).
  bool train_norms = false, train_embeddings = false, train_head = false;
  // Task::Classify without LoRA: train only the classifier head over the fixed base (a linear
  // probe); backward stops at the head, so a step costs about a forward pass.
  bool head_only = false;
  int context = 0;  // sequence length; 0 = the model's
  int pooling = model::kPoolLast;  // a new classifier's pooling (an existing one keeps its own)
  // The label names of the loaded model's classifier, if it has one. Text and prompt/completion
  // runs keep them in the checkpoints and the model they write; classify runs use the data's.
  std::vector<std::string> model_labels;
  // A teacher (docs/distillation.md): a model of the same tokenizer, or for Task::Classify a
  // classifier with the data's labels. model_name: the -m file, for the vocabulary check.
  DistillOptions distill;
  std::string model_name;
};

// The data of a fine-tuning run; only the members of the task are used.
struct FinetuneData {
  const std::vector<int>* text = nullptr;            // Task::Text: token streams
  const std::vector<int>* text_valid = nullptr;
  const std::vector<Sequence>* seqs = nullptr;       // Task::PromptCompletion
  const std::vector<Sequence>* seqs_valid = nullptr;
  const LabeledData* labeled = nullptr;              // Task::Classify
  const LabeledData* labeled_valid = nullptr;
  std::string train_name, valid_name;  // valid_name is empty when held-out data is split from train
};

// A batch of examples as rows of t tokens, t the longest example's inputs (at most T): inputs
// and targets (b, t), the padding and the prompt's positions not scored (target -1). Returns t;
// *fed is the tokens the examples feed the model, padding left out.
int pad_examples(const std::vector<const Sequence*>& batch, int T, int* inputs, int* targets, uint64_t* fed);

// Prompt/completion data at context T: throws FormatError when no training example (or, with
// held-out examples, none of those) has its completion start within T tokens; returns how many
// training examples do not, which train nothing.
size_t check_completions(const FinetuneData& data, int T);

// The mean of run(batch) over the first `limit` items taken in batches of B, weighted by batch
// size. Under MPI, batch j runs on rank j mod N and the sums are reduced (docs/distributed.md).
template <class Item, class Run>
float mean_over_batches(const std::vector<Item>& items, size_t B, size_t limit, Run run) {
  const dist::Comm& comm = dist::world();
  double sums[2] = {0, 0};  // loss x examples, examples
  size_t j = 0;
  for (size_t i = 0; i < items.size() && i < limit; i += B, ++j) {
    if (int(j % size_t(comm.size())) != comm.rank()) continue;
    std::vector<const Item*> batch;
    for (size_t k = i; k < std::min(items.size(), i + B); ++k) batch.push_back(&items[k]);
    sums[0] += double(run(batch)) * double(batch.size());
    sums[1] += double(batch.size());
  }
  comm.sum(sums, 2);
  return float(sums[0] / sums[1]);
}

// Fine-tuning an LSTM (docs/lstm.md; lib/train/lstm_run.cpp). Every weight is trained:
// Task::Text as lm-train trains an LSTM (contiguous streams, the state carried from window to
// window, p.cfg.n_ctx the window); Task::PromptCompletion each example from a zero state, scored
// on its completion, truncated to p.cfg.n_ctx tokens. check_lstm_finetune throws UsageError for
// what an LSTM cannot do here (LoRA, classification, a teacher); make_lstm_finetune calls it.
void check_lstm_finetune(const FinetuneOptions& f);
struct LstmFinetune {
  std::unique_ptr<Job> job;
  size_t unscored = 0;      // prompt/completion examples that train nothing (check_completions)
  size_t memory_bytes = 0;  // weights, gradients, AdamW moments, activations and carried states
};
// p: the loaded model, trained in place (it must outlive the job).
LstmFinetune make_lstm_finetune(const TrainOptions& o, const FinetuneOptions& f, model::LstmParams& p,
                                const Tokenizer& tok, const FinetuneData& data);

class FinetuneJob final : public Job {
 public:
  // base: the loaded model (F32); for Task::Classify without a head one is added with
  // data.labeled->labels.size() outputs. Throws UsageError for options that do not fit: an
  // encoder (bert) fine-tunes as a classifier only, every weight or the head alone (no LoRA, no
  // teacher yet), its examples already rows with the start and end tokens.
  FinetuneJob(const TrainOptions& o, const FinetuneOptions& f, model::Params base, const Tokenizer& tok,
              const FinetuneData& data);
  ~FinetuneJob() override;

  std::vector<Trainable> trainables() override;
  std::vector<std::span<float>> grads() override;
  float micro_step() override;
  void skip_micro_step() override;
  uint64_t tokens_per_micro_step() const override;
  uint64_t last_tokens() const override { return last_tokens_; }
  double flops_per_token() const override;
  std::optional<float> validate() override;
  Rng::State sampler_rng() const override;
  uint64_t sampler_draws() const override;
  void set_sampler(const Rng::State& s, uint64_t draws) override;
  void add_to_checkpoint(format::GgufWriter& w) override;
  void restore(const format::GgufFile& g) override;
  std::string options_diff(const format::GgufFile& g) const override;
  // A decoder's trained tensors of layer l (names blk.l.*: LoRA pairs and base tensors) are
  // reported whole when backward has finished the layer; an encoder's are summed after backward.
  bool set_on_grads_ready(std::function<void(size_t, size_t, size_t)> f) override;
  bool distilling() const override { return teacher_ && teacher_->options().alpha > 0; }
  double teacher_seconds() const override { return teacher_ ? teacher_->seconds() : 0; }
  float last_kl() const override { return net_ ? net_->last_kl() : 0.0f; }
  // The teacher (nullptr without one), e.g. for --dry-run's figures.
  Teacher* teacher() { return teacher_.get(); }

  model::Params& params() { return p_; }
  model::Lora* lora() { return lora_.get(); }
  int context() const { return T_; }
  // Prompt/completion examples whose completion starts past the context: they train nothing.
  size_t unscored_examples() const { return unscored_; }
  // The classifier's label names for the files this job writes (empty without a classifier).
  const std::vector<std::string>& labels() const;
  // Classifier accuracy over held-out examples (Task::Classify with held-out data), else nullopt.
  std::optional<double> valid_accuracy();
  // Bytes of weights, gradients, optimizer moments and activations this job holds.
  size_t memory_bytes() const;

 private:
  void set_training(bool on, uint64_t seed = 0);
  float run_sequences(const std::vector<const Sequence*>& batch, bool backward);
  float run_labeled(const std::vector<const LabeledExample*>& batch, bool backward, int* correct);
  // "full", "head" or "lora" with "+norms", "+embeddings", "+head": what the run trains.
  std::string trained_description() const;
  const TrainOptions& o_;
  FinetuneOptions f_;
  model::Params p_;
  const Tokenizer& tok_;
  FinetuneData data_;
  int T_;
  std::unique_ptr<model::Lora> lora_;
  std::unique_ptr<model::Model> net_;          // a decoder's
  std::unique_ptr<model::EncoderModel> enc_;   // an encoder's (docs/encoder.md, classifiers)
  std::unique_ptr<Teacher> teacher_;
  std::vector<uint8_t> trained_;     // per base view
  std::unique_ptr<BatchSampler> text_sampler_;
  Rng rng_;
  uint64_t draws_ = 0, last_tokens_ = 0;
  double mean_tokens_ = 0;  // padded tasks: mean tokens per training example (see tokens_per_micro_step)
  size_t unscored_ = 0;
  uint64_t base_checksum_ = 0;  // of the loaded model's weights, before any training
  std::vector<int> inputs_, targets_, lengths_, labels_;
};

}  // namespace lm::train
