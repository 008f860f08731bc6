// Shared trainer flags and progress reporting of lm-train and lm-finetune.
#include "common/train_cli.hpp"

#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <csignal>
#include <cstdio>

#include "base/error.hpp"
#include "base/file.hpp"
#include "base/json.hpp"
#include "base/threads.hpp"
#include "common/cli.hpp"

namespace lm::tools {

namespace {
std::atomic<int> g_signal{0};
extern "C" void on_signal(int sig) {
  if (g_signal.exchange(sig) != 0) _exit(128 + sig);  // a second signal: leave at once
}
}  // namespace

DistRun::DistRun(const char* tool, int* argc, char*** argv) {
  try {
    session_.emplace(argc, argv);
  } catch (const UsageError& e) {
    std::fprintf(stderr, "%s: %s\n", tool, e.what());
    std::exit(kExitUsage);
  } catch (const Error& e) {
    std::fprintf(stderr, "%s: %s\n", tool, e.what());
    std::exit(kExitError);
  }
  set_error_rank(dist::world().rank());
}

void DistRun::setup(Logger& log, train::TrainOptions& o) const {
  if (!root()) log.set_level(Logger::Level::Quiet);
  if (o.threads == 0 && dist::local_size() > 1) o.threads = std::max(1, resolve_threads(0) / dist::local_size());
  if (dist::world().distributed())
    log.debug("MPI: %d ranks, %d on this machine, %d threads each", dist::world().size(), dist::local_size(),
              resolve_threads(o.threads));
}

bool DistRun::root() const { return dist::world().root(); }

int DistRun::finish(int rc) {
  if ((rc == kExitError || rc == kExitUsage) && dist::world().distributed()) {
    std::fflush(stdout);
    std::fflush(stderr);
    // An error every rank meets (a usage error, a missing file) is ended by rank 0's abort; the
    // others give it two seconds before ending the job themselves (an error of their own), as
    // OpenMPI garbles its notes when several ranks abort at once.
    if (!root()) ::sleep(2);
    session_->abort(rc);
  }
  return rc;
}

void add_trainer_flags(CLI::App& app, train::TrainOptions& o, TrainerFlags& f) {
  lm::tools::doc(
      app.add_option("--batch", o.batch, "Sequences per micro-batch")->check(CLI::Range(1, 1 << 16))->type_name("B"))
      .group("Budget and optimization")
      .man(R"(Sequences per micro-batch.)");
  lm::tools::doc(app.add_option("--grad-accum", o.grad_accum, "Micro-batches per optimizer step")
                     ->check(CLI::Range(1, 1 << 16))
                     ->type_name("K"))
      .group("Budget and optimization")
      .man(R"(Micro-batches per optimizer step.)");
  lm::tools::doc(app.add_option("--steps", o.steps, "Budget: optimizer steps"))
      .group("Budget and optimization")
      .man(R"(Stop after N optimizer steps.)");
  lm::tools::doc(app.add_option("--tokens", o.tokens, "Budget: training tokens"))
      .group("Budget and optimization")
      .man(R"(Stop after N training tokens (rounded up to whole steps).)");
  lm::tools::doc(app.add_option("--time", f.time_budget, "Budget: wall time, e.g. 90s, 10m, 2h")->type_name("DURATION"))
      .group("Budget and optimization")
      .man(R"(Stop after this wall time: a number of seconds, or with the suffix s, m or h (90s, 10m, 1.5h),
at most 8760h (365 days).
With only a time budget, the length of the learning-rate schedule is estimated from the time of
steps 2 to 4 and estimated again after every step from the mean step time so far, so that the
cosine reaches
.B \-\-lr\-min
when the time is up even when other work on the machine slowed the first steps; such runs are
not bit-for-bit reproducible. A resumed time-budget run keeps the schedule length its checkpoint
recorded.)");
  lm::tools::doc(app.add_option("--lr", o.opt.lr, "Peak learning rate")->check(CLI::Range(0.0, 10.0)))
      .group("Budget and optimization")
      .man(R"(Peak learning rate.)");
  lm::tools::doc(app.add_option("--lr-min", o.opt.lr_min, "Learning rate at the end of the cosine decay")
                     ->check(CLI::Range(0.0, 10.0)))
      .group("Budget and optimization")
      .man(R"(Learning rate at the end of the cosine decay.)");
  lm::tools::doc(app.add_option("--warmup", o.opt.warmup_steps, "Linear warmup steps"))
      .group("Budget and optimization")
      .man(R"(Linear warmup steps. A warmup as long as the run's steps or longer (when the
step count is known: from
.BR \-\-steps ,
.BR \-\-tokens ,
or the estimate of a
.B \-\-time
budget) never reaches the cosine decay, and a warning says so.)");
  lm::tools::doc(app.add_option("--dropout", o.dropout,
                 "Dropout on the embeddings, each attention and MLP output and a classifier's input, while training")
      ->check(CLI::Range(0.0, 0.95))->type_name("P"))
      .group("Budget and optimization")
      .man(R"(Dropout rate while training: on the token embeddings and on the output of every
attention and MLP block before it joins the residual stream, as GPT-2 does. Kept values are
scaled by 1/(1\-P). The masks follow the data position, so a resumed run draws the same ones.)");
  lm::tools::doc(app.add_option("--weight-drop", o.weight_drop,
                 "An LSTM's weight-drop: DropConnect on its recurrent matrices, one mask per window")
      ->check(CLI::Range(0.0, 0.95))->type_name("P"))
      .group("Budget and optimization")
      .man(R"(An LSTM's weight-drop rate while training (AWD-LSTM's DropConnect): each element of
every layer's recurrent matrix is dropped with probability P, one mask per window for all its
steps and streams, kept elements scaled by 1/(1\-P). Unlike
.BR \-\-dropout ,
it regularizes the recurrence itself. A transformer has no recurrent matrix: the option is
then a usage error.)");
  lm::tools::doc(app.add_option("--weight-decay", o.opt.weight_decay, "AdamW weight decay (not on norms)")
                     ->check(CLI::Range(0.0, 10.0)))
      .group("Budget and optimization")
      .man(R"(AdamW weight decay.)");
  lm::tools::doc(app.add_option("--grad-clip", o.opt.grad_clip, "Clip the global gradient norm to this (0 = off)")
      ->check(CLI::Range(0.0, 1e6)))
      .group("Budget and optimization")
      .man(R"(Scale gradients down to this global norm (0 turns clipping off).)");
  lm::tools::doc(
      app.add_option("--valid-fraction", o.valid_fraction, "Share of --data held out when there is no --valid")
          ->check(CLI::Range(0.0, 0.5))
          ->type_name("F"))
      .group("Data and output")
      .man(R"(Share of the data held out, 0 to 0.5.)");
  lm::tools::doc(app.add_option("--eval-every", o.eval_every, "Steps between validation runs (0 = only at the end)"))
      .group("Validation and checkpoints")
      .man(R"(Steps between validations (0 validates only at the end).)");
  lm::tools::doc(app.add_option("--eval-batches", o.eval_batches, "Micro-batches per validation run")
                     ->check(CLI::Range(1, 1 << 20)))
      .group("Validation and checkpoints")
      .man(R"(Micro-batches of consecutive held-out windows per validation.)");
  lm::tools::doc(
      app.add_option("--patience", o.patience, "Stop after this many validations without improvement (0 = off)")
          ->check(CLI::Range(0, 1 << 20)))
      .group("Validation and checkpoints")
      .man(R"(Stop when N validations in a row do not improve the best validation loss (0: never).
With
.BR \-\-patience ,
the model written holds the weights of the best validation, not those of the last step (as
Hugging Face's load_best_model_at_end does), whether the run stops early or spends its budget;
the result then reports best_step, the step of those weights, and valid_loss is theirs, and a
line on standard error says which step's weights are written. A copy of the trained weights is
kept for this. After
.BR \-\-resume ,
the best is taken among the validations of the resumed run.)");
  lm::tools::doc(
      app.add_option("--checkpoint", f.checkpoint, "Checkpoint file (default: OUTPUT.ckpt)")->type_name("FILE"))
      .group("Validation and checkpoints")
      .man(R"(Checkpoint file (default: the output file with
.B .ckpt
appended). A checkpoint is a GGUF model file plus the AdamW moments and the run's state under
.B lm.train.*
keys; it is replaced atomically, so an interrupted save leaves the previous one intact.)");
  lm::tools::doc(
      app.add_option("--checkpoint-every", o.checkpoint_every, "Steps between checkpoints (0 = only when interrupted)"))
      .group("Validation and checkpoints")
      .man(R"(Steps between checkpoints (0: only when interrupted).)");
  lm::tools::doc(app.add_option("--resume", f.resume, "Continue the run saved in this checkpoint")->type_name("FILE"))
      .group("Validation and checkpoints")
      .man(R"(Continue the run saved in a checkpoint. With the same options and thread count, the resumed
steps are bit for bit those of an uninterrupted run. A checkpoint of another model shape,
batch size or seed is refused, and so is a damaged one: every tensor has a checksum, and a
NaN or infinity in it is an error. A run never saves non-finite weights. A checkpoint
written with another batch, gradient accumulation, seed, learning rate schedule, weight decay,
clipping or dropout, or with another budget, is refused with the differences listed, unless
.BR \-\-force\-resume .
The budget is compared as the length of the cosine schedule in steps: a larger
.B \-\-steps
or
.B \-\-tokens
would stretch what is left of it. A
.B \-\-time
budget keeps the schedule the checkpoint's run estimated and is not compared.)");
  lm::tools::doc(app.add_flag("--force-resume", o.force_resume,
               "With --resume, continue even where the batch, seed, optimizer or other options differ"))
      .group("Validation and checkpoints")
      .man(R"(With
.BR \-\-resume ,
continue even where those options differ (the run is then not an exact continuation; the
differences are printed as a warning). The model shape must still match.)");
  lm::tools::doc(app.add_option("--metrics", f.metrics, "Write one JSON object per step to this file (JSON Lines)")
                     ->type_name("FILE"))
      .group("Data and output")
      .man(R"(Write one JSON object per step (JSON Lines) with the keys step, loss, lr, grad_norm, tokens,
tokens_per_s, elapsed_s, skipped, on validation steps valid_loss and, under
.BR mpirun ,
comm_s (rank 0's seconds in the step's gradient sum, waiting for the other ranks included). The
file is written as
training goes, so it can be followed with
.BR "tail \-f" .)");
  lm::tools::doc(app.add_option("--plot", f.plot,
                                "Draw the training and validation loss and the learning rate in this SVG file, at "
                                "each checkpoint and at the end")
                     ->type_name("FILE"))
      .group("Data and output")
      .man(R"(Draw the run as a picture in FILE (SVG, shown by any web browser): the training loss and the
validation loss against the step, and the learning rate on a panel below. It is written at
every checkpoint and at the end, each time to a temporary file renamed into place, so an
interrupted run leaves one too. A resumed run draws the steps from where it resumed; the
picture of a whole run can be drawn from its metrics file with
.BR "lm\-eval plot" .
Runs of more than 2000 steps are drawn as the means of consecutive steps, as the legend says.)");
  lm::tools::doc(app.add_option("--zero", o.zero,
                                "Under mpirun, 1: each rank keeps the AdamW moments of its share of the tensors (ZeRO-1)")
                     ->check(CLI::Range(0, 1))
                     ->type_name("0|1"))
      .group("Budget and optimization")
      .man(R"(Under
.BR mpirun ,
1 shards the optimizer state (ZeRO stage 1): the trained tensors are dealt out to the ranks,
whole and balanced by size; each tensor's gradient is summed to its owner alone, the owner
keeps its AdamW moments and updates it, and broadcasts the new weights. A rank's optimizer
memory falls to about 1/N (8 bytes per parameter of its share instead of all). The
communication per step is that of the plain sum. Checkpoints are the same file: rank 0
gathers the moments to write it (for that moment it holds them all), and it resumes with or
without
.BR \-\-zero ,
on any number of ranks with the same global batch. Without
.B mpirun
it changes nothing.)");
  lm::tools::doc(app.add_option("--overlap", o.overlap,
                                "Under mpirun, 1: sum each layer's gradients while backward goes on (0: after backward)")
                     ->type_name("0|1"))
      .group("Budget and optimization")
      .man(R"(Under
.BR mpirun ,
1 (the default) starts summing a layer's gradients over the ranks as soon as backward has
finished that layer, on a thread of its own, while backward goes on to the layers below (as
PyTorch's DistributedDataParallel and Horovod do); what is left (the embeddings, the head) is summed
after backward. 0 sums everything after backward. The result is the same either way. It
applies to decoders (training, full and LoRA fine-tuning, classifiers); encoders, LSTMs and
.B \-\-zero 1
sum after backward. The metrics' comm_s is the time spent after backward waiting for the sums.)");
  lm::tools::doc(app.add_option("-s,--seed", o.seed, "Random seed (initialisation and data order)"))
      .group("Other")
      .man(R"(Seed for the initial weights and the order of the training windows.)");
}

void finish_trainer_flags(train::TrainOptions& o, const TrainerFlags& f, bool dry) {
  if (!f.time_budget.empty()) o.time_s = parse_duration(f.time_budget, "--time");
  if (!dry && o.steps == 0 && o.tokens == 0 && o.time_s <= 0)
    throw UsageError("no training budget: give --steps, --tokens or --time");
}

void add_distill_flags(CLI::App& app, train::DistillOptions& d) {
  lm::tools::doc(app.add_option("--teacher", d.teacher,
                                "Distill from this teacher model (same tokenizer; any model lm-generate loads)")
                     ->type_name("FILE"))
      .group("Distillation")
      .man(R"(Train on a teacher's soft targets as well as on the labels (knowledge distillation): the loss of
each scored token (or text, for a classifier) is
(1\-\fIA\fR)\(muCE + \fIA\fR\(mu\fIT\fR\(S2\(muKL(teacher\(sl\fIT\fR \(bv student\(sl\fIT\fR)
with
.I A
from
.B \-\-distill\-alpha
and
.I T
from
.BR \-\-distill\-temp .
The teacher is any model file lm-generate loads, quantized included, with the student's
tokenizer (another vocabulary is an error naming both); for
.B \-\-task classify
it is a classifier with the same labels. It runs inference only, on each training micro-batch,
on the run's threads; its time per step is shown as teacher_s in
.B \-\-metrics
(with kl, the mean KL term), and
.B \-\-dry\-run
reports its forward time and memory. Validation scores the student on the labels alone. A
checkpoint records the teacher (path and checksum): resuming with another teacher or other
distillation options is refused unless
.BR \-\-force\-resume .)");
  lm::tools::doc(app.add_option("--distill-alpha", d.alpha, "Weight of the teacher's term, 0 (labels alone) to 1 (teacher alone)")
                     ->type_name("A"))
      .group("Distillation")
      .man(R"(Weight of the teacher's term, from 0 (the labels alone: the teacher is then not run, and the
run is bit for bit one without
.BR \-\-teacher )
to 1 (the teacher alone).)");
  lm::tools::doc(app.add_option("--distill-temp", d.temp, "Softmax temperature of the teacher's term")
                     ->type_name("T"))
      .group("Distillation")
      .man(R"(Temperature of both softmaxes in the KL term; higher values spread the teacher's
probability over more tokens. The term is scaled by T\(S2 so that its gradient keeps its size.)");
  lm::tools::doc(app.add_option("--distill-top-k", d.top_k,
                                "Keep only the teacher's K most likely tokens per position (0 = all)")
                     ->type_name("K"))
      .group("Distillation")
      .man(R"(Keep only the teacher's K most likely tokens (or labels) of each position, renormalised over
them: the KL term then costs K terms instead of the vocabulary (0: all of them).)");
}

void finish_distill_flags(const CLI::App& app, const train::DistillOptions& d) {
  if (d.teacher.empty())
    for (const char* name : {"--distill-alpha", "--distill-temp", "--distill-top-k"})
      if (app.count(name)) throw UsageError(std::string(name) + " sets up distillation and goes with --teacher");
  d.validate();
}

void check_run_files(const std::string& output, const std::string& checkpoint, const std::string& resume,
                     std::initializer_list<std::string> inputs) {
  for (const std::string& out : {output, checkpoint})
    for (const std::string& in : inputs)
      if (!out.empty() && !in.empty() && same_file(out, in))
        throw UsageError("output '" + out + "' is also an input; choose another file");
  if (!output.empty() && (output == checkpoint || same_file(output, checkpoint)))
    throw UsageError("-o/--output and the checkpoint are the same file '" + output + "'; choose another --checkpoint");
  if (!output.empty() && !resume.empty() && (output == resume || same_file(output, resume)))
    throw UsageError("-o/--output '" + output + "' is the checkpoint --resume reads; the final model would replace it");
  for (const std::string& f : {output, checkpoint})
    if (!f.empty()) remove_stale_temps(f);  // left by a run that died while saving
  if (!checkpoint.empty()) OutputFile probe(checkpoint);  // not committed: leaves nothing behind
}

void check_side_output(const std::string& file, const char* flag, std::initializer_list<std::string> others) {
  if (file.empty()) return;
  if (is_std_stream(file)) throw UsageError(std::string(flag) + " needs a file name: the results go to stdout");
  for (const std::string& other : others)
    if (!other.empty() && (other == file || same_file(other, file)))
      throw UsageError(std::string(flag) + " '" + file + "' is also another file of the run; choose another file");
}

const std::atomic<int>& install_stop_signals() {
  std::signal(SIGINT, on_signal);
  std::signal(SIGTERM, on_signal);
  return g_signal;
}

double written_valid_loss(const train::RunResult& r, const Logger& log) {
  if (!r.kept_best) return r.last_valid_loss ? double(*r.last_valid_loss) : NAN;
  log.info("%s at step %llu; writing the weights of step %llu, the best validation loss (%.4f; the last was %.4f)",
           r.end == train::RunEnd::EarlyStop ? "stopped early" : "finished", (unsigned long long)r.steps,
           (unsigned long long)r.best_step, double(*r.best_valid_loss), double(r.last_valid_loss.value_or(NAN)));
  return double(*r.best_valid_loss);
}

std::string model_name(const std::string& path) {
  std::string name = path.substr(path.rfind('/') + 1);
  if (name.size() > 5 && name.compare(name.size() - 5, 5, ".gguf") == 0) name.resize(name.size() - 5);
  return name;
}

StepReporter::StepReporter(const Logger& log, const std::string& metrics, double peak_gflops, const std::string& plot,
                           const std::string& title)
    : log_(log), peak_(peak_gflops), status_(log), plot_(plot), title_(title) {
  if (!metrics.empty()) metrics_.emplace(metrics, size_t{1} << 16, OutputFile::Mode::Direct);
  if (!plot_.empty() && !is_std_stream(plot_)) {
    remove_stale_temps(plot_);
    OutputFile probe(plot_);  // not committed: leaves nothing behind
  }
}

void StepReporter::operator()(const train::StepInfo& s) {
  const double eta = s.total_steps > s.step ? (s.total_steps - s.step) * s.elapsed_s / double(s.step) : 0;
  char valid_part[48] = "";
  if (s.valid_loss) std::snprintf(valid_part, sizeof valid_part, " valid %.4f", double(*s.valid_loss));
  // Distillation: the KL term and the teacher's share of the step's time.
  char teacher_part[64] = "";
  if (s.distilling && s.step_s > 0)
    std::snprintf(teacher_part, sizeof teacher_part, " kl %.4f teacher %.0f%%", double(s.kl),
                  100.0 * s.teacher_s / s.step_s);
  char line[320];
  std::snprintf(line, sizeof line, "step %llu/%llu loss %.4f%s%s lr %.2e %.0f tok/s MFU %.0f%% ETA %s%s",
                (unsigned long long)s.step, (unsigned long long)s.total_steps, double(s.loss), teacher_part, valid_part,
                double(s.lr), s.tokens_per_s, 100.0 * s.gflops / peak_, human_time(eta).c_str(),
                s.skipped ? " (update skipped: non-finite gradients)" : "");
  if (status_.enabled()) {
    status_.show(line);
    if (s.valid_loss) status_.keep();
  } else if (s.valid_loss || s.skipped || log_.level() == Logger::Level::Verbose) {
    log_.info("%s", line);
  }
  if (metrics_) {
    Json j{{"step", s.step},
           {"loss", json_number(s.loss)},
           {"lr", json_number(s.lr)},
           {"grad_norm", json_number(s.grad_norm)},
           {"tokens", s.tokens_seen},
           {"tokens_per_s", json_number(s.tokens_per_s)},
           {"elapsed_s", json_number(s.elapsed_s)},
           {"skipped", s.skipped}};
    if (dist::world().distributed()) j["comm_s"] = json_number(s.comm_s);
    if (s.distilling) {
      j["kl"] = json_number(s.kl);
      j["teacher_s"] = json_number(s.teacher_s);
    }
    if (s.valid_loss) j["valid_loss"] = json_number(*s.valid_loss);
    metrics_->write(dump_json(j) + "\n");
    metrics_->flush();
  }
  if (!plot_.empty())
    points_.push_back({double(s.step), double(s.loss), double(s.lr), s.valid_loss ? double(*s.valid_loss) : NAN});
}

void StepReporter::write_plot() {
  if (!plot_.empty() && !points_.empty()) train::write_metrics_svg(plot_, points_, title_);
}

void StepReporter::finish() {
  status_.keep();
  if (metrics_) metrics_->commit();
  write_plot();
}

}  // namespace lm::tools
