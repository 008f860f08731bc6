// Shared trainer flags and progress reporting of lm-train and lm-finetune.
#include "common/train_cli.hpp"

#include <unistd.h>

#include <cmath>
#include <csignal>
#include <cstdio>

#include "base/error.hpp"
#include "base/file.hpp"
#include "common/cli.hpp"

namespace lm::tools {

namespace {
std::atomic<int> g_signal{0};
extern "C" void on_signal(int sig) {
  if (g_signal.exchange(sig) != 0) _exit(128 + sig);  // a second signal: leave at once
}
}  // namespace

void add_trainer_flags(CLI::App& app, train::TrainOptions& o, TrainerFlags& f) {
  app.add_option("--batch", o.batch, "Sequences per micro-batch")->check(CLI::Range(1, 1 << 16));
  app.add_option("--grad-accum", o.grad_accum, "Micro-batches per optimizer step")->check(CLI::Range(1, 1 << 16));
  app.add_option("--steps", o.steps, "Budget: optimizer steps");
  app.add_option("--tokens", o.tokens, "Budget: training tokens");
  app.add_option("--time", f.time_budget, "Budget: wall time, e.g. 90s, 10m, 2h")->type_name("DURATION");
  app.add_option("--lr", o.opt.lr, "Peak learning rate")->check(CLI::Range(0.0, 10.0));
  app.add_option("--lr-min", o.opt.lr_min, "Learning rate at the end of the cosine decay")->check(CLI::Range(0.0, 10.0));
  app.add_option("--warmup", o.opt.warmup_steps, "Linear warmup steps");
  app.add_option("--dropout", o.dropout,
                 "Dropout on the embeddings, each attention and MLP output and a classifier's input, while training")
      ->check(CLI::Range(0.0, 0.95));
  app.add_option("--weight-decay", o.opt.weight_decay, "AdamW weight decay (not on norms)")->check(CLI::Range(0.0, 10.0));
  app.add_option("--grad-clip", o.opt.grad_clip, "Clip the global gradient norm to this (0 = off)")
      ->check(CLI::Range(0.0, 1e6));
  app.add_option("--valid-fraction", o.valid_fraction, "Share of --data held out when there is no --valid")
      ->check(CLI::Range(0.0, 0.5));
  app.add_option("--eval-every", o.eval_every, "Steps between validation runs (0 = only at the end)");
  app.add_option("--eval-batches", o.eval_batches, "Micro-batches per validation run")->check(CLI::Range(1, 1 << 20));
  app.add_option("--patience", o.patience, "Stop after this many validations without improvement (0 = off)")
      ->check(CLI::Range(0, 1 << 20));
  app.add_option("--checkpoint", f.checkpoint, "Checkpoint file (default: OUTPUT.ckpt)")->type_name("FILE");
  app.add_option("--checkpoint-every", o.checkpoint_every, "Steps between checkpoints (0 = only when interrupted)");
  app.add_option("--resume", f.resume, "Continue the run saved in this checkpoint")->type_name("FILE");
  app.add_flag("--force-resume", o.force_resume,
               "With --resume, continue even where the batch, seed, optimizer or other options differ");
  app.add_option("--metrics", f.metrics, "Write one JSON object per step to this file (JSON Lines)")->type_name("FILE");
  app.add_option("-s,--seed", o.seed, "Random seed (initialisation and data order)");
}

void finish_trainer_flags(train::TrainOptions& o, const TrainerFlags& f, bool dry) {
  if (!f.time_budget.empty()) o.time_s = parse_duration(f.time_budget, "--time");
  if (!dry && o.steps == 0 && o.tokens == 0 && o.time_s <= 0)
    throw UsageError("no training budget: give --steps, --tokens or --time");
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

std::string human_time(double s) {
  char buf[32];
  if (s < 90) std::snprintf(buf, sizeof buf, "%.0fs", s);
  else if (s < 5400) std::snprintf(buf, sizeof buf, "%.0fm%02.0fs", std::floor(s / 60), std::fmod(s, 60));
  else std::snprintf(buf, sizeof buf, "%.0fh%02.0fm", std::floor(s / 3600), std::fmod(s / 60, 60));
  return buf;
}

std::string model_name(const std::string& path) {
  std::string name = path.substr(path.rfind('/') + 1);
  if (name.size() > 5 && name.compare(name.size() - 5, 5, ".gguf") == 0) name.resize(name.size() - 5);
  return name;
}

StepReporter::StepReporter(const Logger& log, const std::string& metrics, double peak_gflops)
    : log_(log), peak_(peak_gflops), tty_(isatty(STDERR_FILENO) && log.level() != Logger::Level::Quiet) {
  if (!metrics.empty()) metrics_.emplace(metrics, size_t{1} << 16, OutputFile::Mode::Direct);
}

void StepReporter::operator()(const train::StepInfo& s) {
  const double eta = s.total_steps > s.step ? (s.total_steps - s.step) * s.elapsed_s / double(s.step) : 0;
  char valid_part[48] = "";
  if (s.valid_loss) std::snprintf(valid_part, sizeof valid_part, " valid %.4f", double(*s.valid_loss));
  char line[256];
  std::snprintf(line, sizeof line, "step %llu/%llu loss %.4f%s lr %.2e %.0f tok/s MFU %.0f%% ETA %s%s",
                (unsigned long long)s.step, (unsigned long long)s.total_steps, double(s.loss), valid_part,
                double(s.lr), s.tokens_per_s, 100.0 * s.gflops / peak_, human_time(eta).c_str(),
                s.skipped ? " (update skipped: non-finite gradients)" : "");
  if (tty_) std::fprintf(stderr, "\r\033[K%s%s", line, s.valid_loss ? "\n" : "");
  else if (s.valid_loss || s.skipped || log_.level() == Logger::Level::Verbose) log_.info("%s", line);
  if (metrics_) {
    char j[512];
    int n = std::snprintf(j, sizeof j,
                          "{\"step\":%llu,\"loss\":%.9g,\"lr\":%.9g,\"grad_norm\":%.9g,\"tokens\":%llu,"
                          "\"tokens_per_s\":%.1f,\"elapsed_s\":%.3f,\"skipped\":%s",
                          (unsigned long long)s.step, double(s.loss), double(s.lr), s.grad_norm,
                          (unsigned long long)s.tokens_seen, s.tokens_per_s, s.elapsed_s, s.skipped ? "true" : "false");
    if (s.valid_loss) n += std::snprintf(j + n, sizeof j - size_t(n), ",\"valid_loss\":%.9g", double(*s.valid_loss));
    metrics_->write(std::string(j, size_t(n)) + "}\n");
    metrics_->flush();
  }
}

void StepReporter::finish() {
  if (tty_) std::fputc('\n', stderr);
  if (metrics_) metrics_->commit();
}

}  // namespace lm::tools
