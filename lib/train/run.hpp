// The training run of lm-train: budgets, gradient accumulation, validation, early stopping,
// the non-finite guard, periodic checkpoints and interruption. Progress goes to a callback;
// printing is the caller's.
#pragma once

#include <atomic>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "model/lstm.hpp"
#include "model/model.hpp"
#include "tokenizer/tokenizer.hpp"
#include "train/distill.hpp"
#include "train/trainer.hpp"

namespace lm::train {

// The shape of a model lm-train makes: a preset, then the fields set here.
struct ModelShape {
  std::string arch = "llama";       // "llama", "gpt2", "lstm" (docs/lstm.md) or "bert" (docs/encoder.md)
  std::string preset = "small";     // starting point for the model shape; the fields below override
  std::optional<int> context, layers, embd, heads, kv_heads, ff;
  std::optional<int> hidden, proj;  // an LSTM's units per layer H and projection width P (0: none)
  bool untied = false;              // separate output.weight instead of the tied embedding
};
// Whether the shape is an LSTM's.
inline bool is_lstm(const ModelShape& s) { return s.arch == "lstm"; }
// Whether the shape is an encoder's (docs/encoder.md).
inline bool is_encoder(const ModelShape& s) { return s.arch == "bert"; }

// The training loop's settings, shared by lm-train and lm-finetune.
struct TrainOptions {
  int batch = 8;                    // sequences per micro-batch
  float dropout = 0;                // the model's dropout while training (Model::set_dropout)
  float weight_drop = 0;            // an LSTM's weight-drop (LstmModel::set_weight_drop); a
                                    // transformer's run refuses it (UsageError)
  int grad_accum = 1;               // micro-batches per optimizer step
  uint64_t steps = 0;               // budgets; at least one of steps, tokens, time_s must be set
  uint64_t tokens = 0;
  double time_s = 0;
  OptimizerOptions opt;             // lr, lr_min, warmup, decay, clipping (total_steps is derived)
  double valid_fraction = 0.05;     // held out from the end of the data when no validation file
  uint64_t eval_every = 100;        // steps between validation runs (0 = only at the end)
  int eval_batches = 8;             // micro-batches of held-out windows per validation run
  int patience = 0;                 // stop after this many validations without improvement (0 = off);
                                    // when set, the run ends with the weights of its best validation
  int max_skipped = 3;              // consecutive non-finite updates before giving up
  uint64_t checkpoint_every = 0;    // steps between checkpoints (0 = only when interrupted)
  uint64_t seed = 0;
  int threads = 0;
  // Under MPI, 1: ZeRO-1, each rank keeps the AdamW moments of its share of the tensors only
  // (docs/distributed.md); 0: every rank keeps them all.
  int zero = 0;
  // Under MPI, sum each layer's gradients while backward goes on below it (where the job can,
  // Job::set_on_grads_ready); false: after the whole backward.
  bool overlap = true;
  // Resume even where the options a checkpoint records differ (listed as a warning instead).
  bool force_resume = false;
};

// Throws UsageError when o asks for weight-drop: a transformer's runs call it (only an LSTM has
// recurrent matrices to drop).
void refuse_weight_drop(const TrainOptions& o);

// Appends "NAME X in the checkpoint but Y now" to a comma-separated list when the values
// differ; a resumed run lists these (docs/reliability.md E3).
void diff_option(std::string& diff, const char* name, uint64_t checkpoint, uint64_t now);
void diff_option(std::string& diff, const char* name, int64_t checkpoint, int64_t now);
void diff_option(std::string& diff, const char* name, float checkpoint, float now);

// Throws FormatError naming the checkpoint when its model's shape differs from cfg
// (docs/reliability.md E4).
void check_same_model(const format::GgufFile& g, const model::ModelConfig& cfg);

// Builds the model configuration: preset, then the explicit fields; vocabulary from the tokenizer.
// For an LSTM (is_lstm(shape)) the ModelConfig of make_lstm_config's (model::to_model_config);
// for an encoder (is_encoder(shape)) the preset's sizes made an encoder (model::encoder_config).
model::ModelConfig make_config(const ModelShape& shape, int n_vocab);
// An LSTM's configuration: presets lstm-tiny, lstm-small (the default) and lstm-medium, near the
// parameter counts of tiny, small and medium (docs/lstm.md), then --context (the window of
// truncated backpropagation through time), --layers, --embd, --hidden and --proj. The output
// layer is tied to the embeddings when the widths allow and --untied is not given. Throws
// UsageError for a transformer preset or a transformer-only field (--heads, --kv-heads, --ff).
model::LstmConfig make_lstm_config(const ModelShape& shape, int n_vocab);

struct StepInfo {
  uint64_t step = 0, total_steps = 0;
  float loss = 0;
  double grad_norm = 0;
  float lr = 0;
  double tokens_per_s = 0;          // this step, of all ranks
  double gflops = 0;                // model FLOPs per second per rank (6N + 12 L C T per token)
  double elapsed_s = 0;
  double step_s = 0;                // this step's seconds on rank 0
  uint64_t tokens_seen = 0;
  bool skipped = false;             // the update was skipped (non-finite gradients)
  double comm_s = 0;                // under MPI: seconds this rank spent in the step's gradient sum
  std::optional<float> valid_loss;  // set on steps that ran a validation
  // Distillation (docs/distillation.md): this step's seconds in the teacher (this rank's) and
  // mean KL term; only when `distilling`.
  bool distilling = false;
  double teacher_s = 0;
  float kl = 0;
};

enum class RunEnd { Budget, EarlyStop, Interrupted };

struct RunResult {
  RunEnd end = RunEnd::Budget;
  uint64_t steps = 0;
  std::optional<float> best_valid_loss, last_valid_loss;
  uint64_t best_step = 0;   // the step of best_valid_loss
  // With patience: the weights left in place are those of best_step, not of the last step
  // (the best validation came before the end of the run).
  bool kept_best = false;
  float last_loss = 0;
  int signal = 0;           // RunEnd::Interrupted: the signal that stopped the run (on any rank)
};

// Where a run saves itself, and what it tells its caller.
struct RunHooks {
  std::string checkpoint_path;              // empty: never write checkpoints
  std::optional<std::string> resume_path;
  const std::atomic<int>* stop = nullptr;   // non-zero: save a checkpoint and return Interrupted
  std::function<void(const StepInfo&)> on_step;
  std::function<void(const std::string&)> on_checkpoint;  // called with the path after each save
};

// Everything a pretraining run needs. Data vectors are token streams (whole-text encodings).
struct RunInputs : RunHooks {
  const Tokenizer* tokenizer = nullptr;
  const std::vector<int>* train = nullptr;
  const std::vector<int>* valid = nullptr;  // may be empty: no validation
  std::string train_name, valid_name;  // valid_name is empty when valid is split from train
  std::string tokenizer_name;          // where the tokenizer came from, for the teacher's vocabulary check
  DistillOptions distill;              // a teacher (distill.enabled()): docs/distillation.md
};

// What a run trains and on what: pretraining here, lm-finetune's jobs in finetune.hpp.
// run_loop() does the rest (budgets, schedule, accumulation, clipping, the non-finite guard,
// validation, early stopping, checkpoints, resume, interruption).
class Job {
 public:
  virtual ~Job() = default;
  // The tensors the optimizer updates; their buffers stay put for the whole run.
  virtual std::vector<Trainable> trainables() = 0;
  // Gradient buffers, zeroed before each step and clipped together.
  virtual std::vector<std::span<float>> grads() = 0;
  // Draws one micro-batch, runs forward and backward (adding into the gradients); returns the
  // mean loss.
  virtual float micro_step() = 0;
  // Draws the micro-batch micro_step() would draw, without computing it: under MPI, every rank
  // draws every micro-batch of a step (docs/distributed.md) and computes only its share.
  virtual void skip_micro_step() = 0;
  // Tokens one micro-batch feeds the model, padding left out: exact for token streams, the
  // training data's mean per example times the batch for padded tasks. The --tokens budget is
  // converted into steps with it. Then model FLOPs per token.
  virtual uint64_t tokens_per_micro_step() const = 0;
  // Tokens the last micro_step() fed the model, padding left out (tok/s, tokens seen).
  virtual uint64_t last_tokens() const { return tokens_per_micro_step(); }
  virtual double flops_per_token() const = 0;
  // Mean held-out loss, or nullopt without held-out data. Under MPI every rank calls it; each
  // runs its share of the held-out micro-batches and the sums are reduced (dist::world()).
  virtual std::optional<float> validate() = 0;
  // The data sampler's position, part of the resumable state.
  virtual Rng::State sampler_rng() const = 0;
  virtual uint64_t sampler_draws() const = 0;
  virtual void set_sampler(const Rng::State& rng, uint64_t draws) = 0;
  // Adds what is trained (a model, an adapter) to a checkpoint being written.
  virtual void add_to_checkpoint(format::GgufWriter& w) = 0;
  // Checks that a checkpoint belongs to this job (FormatError naming what differs) and loads
  // what is trained from it.
  virtual void restore(const format::GgufFile& g) = 0;
  // The job's options that differ from the checkpoint's but leave it loadable (diff_option's
  // list): a resume refuses them unless forced.
  virtual std::string options_diff(const format::GgufFile&) const { return {}; }
  // Called on every rank before rank 0 writes a checkpoint: a job whose state is spread over the
  // ranks (an LSTM's carried states) gathers it on rank 0 here.
  virtual void before_checkpoint() {}
  // Data-parallel overlap (docs/distributed.md): a job that knows when part of its gradients is
  // final during micro_step() keeps f and calls it with (index into grads(), begin, end) for each
  // such range, in the same order on every rank, and returns true; f empty stops the calls. A
  // job that cannot returns false, and its gradients are summed after micro_step().
  virtual bool set_on_grads_ready(std::function<void(size_t, size_t, size_t)> f) {
    (void)f;
    return false;
  }
  // Distillation: whether the micro-steps run a teacher, the seconds spent in it so far, and the
  // mean KL term of the last micro_step().
  virtual bool distilling() const { return false; }
  virtual double teacher_seconds() const { return 0; }
  virtual float last_kl() const { return 0; }
};

// Runs `job` under the budgets and options of o (the model-shape fields are not used), on every
// rank of dist::world(): a step is --grad-accum micro-batches per rank, gradients summed over the
// ranks; hooks.on_step and on_checkpoint are called and checkpoints written on rank 0 only
// (docs/distributed.md). With
// o.patience, the job's trained tensors end holding the weights of the best validation
// (RunResult::kept_best), unless the run was interrupted. A resumed run's budget (--steps,
// --tokens) is compared with the checkpoint's like its other options.
RunResult run_loop(const TrainOptions& o, Job& job, const RunHooks& hooks, const Logger& log);

// Trains and returns the final parameters in `params` (allocated here). Throws UsageError for
// bad options, FormatError for bad data or checkpoints, Error when training diverges
// (more than max_skipped consecutive non-finite updates; the last checkpoint stays).
RunResult run_training(const ModelShape& shape, const TrainOptions& o, const RunInputs& in,
                       std::optional<model::Params>& params, const Logger& log);

struct DryRun {
  model::ModelConfig cfg;
  size_t n_params = 0;
  uint64_t tokens_per_step = 0;
  double flops_per_step = 0;
  size_t state_bytes = 0;       // weights, gradients and the two AdamW moments
  size_t activation_bytes = 0;
  double step_seconds = 0;      // one measured forward and backward pass (times grad_accum)
  uint64_t steps = 0;           // 0 when only a time budget is given
  // With a teacher: step_seconds is a whole distillation step; student_seconds the student's
  // plain step and teacher_seconds the teacher's forward over the step's tokens (all measured,
  // times grad_accum), and the bytes the teacher holds.
  double student_seconds = 0;
  double teacher_seconds = 0;
  size_t teacher_bytes = 0;
};
// Builds the model and times one training step on random tokens, without training; with a
// teacher (distill enabled; tok and tok_name the student's tokenizer), loads it and times its
// forward too.
DryRun dry_run(const ModelShape& shape, const TrainOptions& o, int n_vocab, const DistillOptions& distill = {},
               const Tokenizer* tok = nullptr, const std::string& tok_name = "");
// dry_run of an LSTM shape (dry_run calls it): d.cfg is model::to_model_config's.
DryRun dry_run_lstm(const ModelShape& shape, const TrainOptions& o, int n_vocab);

// run_training for an LSTM (docs/lstm.md): truncated backpropagation through time over
// --batch x --grad-accum x ranks streams, each a contiguous share of the training tokens read
// window after window with its state carried (and reset at BOS tokens and when a stream starts
// its share again); checkpoints carry the states, so a resumed run continues bit for bit.
RunResult run_lstm_training(const ModelShape& shape, const TrainOptions& o, const RunInputs& in,
                            std::optional<model::LstmParams>& params, const Logger& log);

// Mean loss over consecutive windows of `tokens` (at most max_windows of T+1 tokens), in
// micro-batches of B; under MPI, micro-batch j runs on rank j mod N and the sums are reduced,
// so every rank returns the mean one process computes (up to the order of double additions).
float evaluate(model::Model& net, const model::Params& p, const std::vector<int>& tokens, int B, int T,
               int max_windows);

}  // namespace lm::train
