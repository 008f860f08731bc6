// What lm-train and lm-finetune share: the trainer's flags, SIGINT/SIGTERM handling, the
// terminal status line and the JSON Lines metrics log.
#pragma once

#include <atomic>
#include <optional>
#include <initializer_list>
#include <string>

#include <CLI/CLI.hpp>

#include "base/file.hpp"
#include "base/log.hpp"
#include "train/run.hpp"

namespace lm::tools {

// Flags of the training loop, bound to o and the strings (paths and the --time text).
struct TrainerFlags {
  std::string time_budget, checkpoint, resume, metrics;
};
void add_trainer_flags(CLI::App& app, train::TrainOptions& o, TrainerFlags& f);
// After parsing: --time into o.time_s; a budget is required unless `dry`. Throws UsageError.
void finish_trainer_flags(train::TrainOptions& o, const TrainerFlags& f, bool dry);

// Checks a run's files before any work, after the caller has opened its OutputFile for -o: the
// output and the checkpoint are none of `inputs`, not each other, and the output is not the
// checkpoint --resume reads (the checkpoint may be: it is rewritten in place); and the
// checkpoint can be created (directory present and writable), so a run does not fail only
// when it saves. Temp files of both left by a run that died while saving are removed. Throws
// UsageError, or IoError naming the file.
void check_run_files(const std::string& output, const std::string& checkpoint, const std::string& resume,
                     std::initializer_list<std::string> inputs);

// SIGINT/SIGTERM set the returned flag (a second one exits at once).
const std::atomic<int>& install_stop_signals();

// The validation loss of the weights a finished run writes (NaN without held-out data): the
// last one, or with --patience the best, in which case it says on stderr (unless -q) which
// step's weights are written and what the last evaluation gave.
double written_valid_loss(const train::RunResult& r, const Logger& log);

// "42s", "3m05s", "1h10m".
std::string human_time(double seconds);
// general.name for an output path: its file name without directory and ".gguf".
std::string model_name(const std::string& path);

// Prints steps (a status line on a terminal, log lines otherwise) and writes --metrics.
class StepReporter {
 public:
  // metrics: empty for none. peak_gflops: the sgemm peak MFU is measured against.
  StepReporter(const Logger& log, const std::string& metrics, double peak_gflops);
  void operator()(const train::StepInfo& s);
  // Ends the status line and commits the metrics file.
  void finish();

 private:
  const Logger& log_;
  double peak_;
  bool tty_;
  std::optional<OutputFile> metrics_;
};

}  // namespace lm::tools
