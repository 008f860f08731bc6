// What lm-train and lm-finetune share: the trainer's flags, SIGINT/SIGTERM handling, the
// terminal status line, the JSON Lines metrics log and the --plot picture.
#pragma once

#include <atomic>
#include <optional>
#include <initializer_list>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>

#include "base/file.hpp"
#include "base/log.hpp"
#include "common/progress.hpp"
#include "dist/comm.hpp"
#include "train/plot.hpp"
#include "train/run.hpp"

namespace lm::tools {

// The MPI session of lm-train and lm-finetune (docs/distributed.md), for the whole of main().
class DistRun {
 public:
  // Starts MPI when a launcher started the process (see dist::Session). Started by mpirun in a
  // build without MPI: says so in one line and exits 2.
  DistRun(const char* tool, int* argc, char*** argv);
  // After parsing: ranks above 0 print nothing but errors (rank 0 reports), and with -t 0 and
  // several ranks on this machine each rank takes its share of the cores.
  void setup(Logger& log, train::TrainOptions& o) const;
  // The rank that writes the outputs, the checkpoints, --metrics and --plot.
  bool root() const;
  // The exit status to return from main. After an error (rc 1 or 2) under MPI, ends the whole
  // job (MPI_Abort) so that no rank waits for this one; an interrupted run (128 + signal) has
  // already met the other ranks and ends normally.
  int finish(int rc);

 private:
  std::optional<dist::Session> session_;
};

// Flags of the training loop, bound to o and the strings (paths and the --time text).
struct TrainerFlags {
  std::string time_budget, checkpoint, resume, metrics, plot;
};
void add_trainer_flags(CLI::App& app, train::TrainOptions& o, TrainerFlags& f);
// After parsing: --time into o.time_s; a budget is required unless `dry`. Throws UsageError.
void finish_trainer_flags(train::TrainOptions& o, const TrainerFlags& f, bool dry);

// --teacher, --distill-alpha, --distill-temp, --distill-top-k (docs/distillation.md).
void add_distill_flags(CLI::App& app, train::DistillOptions& d);
// After parsing: the --distill-* flags need --teacher; values checked. Throws UsageError.
void finish_distill_flags(const CLI::App& app, const train::DistillOptions& d);

// Checks a run's files before any work, after the caller has opened its OutputFile for -o: the
// output and the checkpoint are none of `inputs`, not each other, and the output is not the
// checkpoint --resume reads (the checkpoint may be: it is rewritten in place); and the
// checkpoint can be created (directory present and writable), so a run does not fail only
// when it saves. Temp files of both left by a run that died while saving are removed. Throws
// UsageError, or IoError naming the file.
void check_run_files(const std::string& output, const std::string& checkpoint, const std::string& resume,
                     std::initializer_list<std::string> inputs);

// Checks a file a run writes besides the model (--plot): not stdout, where the results go, and
// none of `others` (the output, the checkpoint, --metrics, --resume, the inputs). Throws UsageError.
void check_side_output(const std::string& file, const char* flag, std::initializer_list<std::string> others);

// SIGINT/SIGTERM set the returned flag (a second one exits at once).
const std::atomic<int>& install_stop_signals();

// The validation loss of the weights a finished run writes (NaN without held-out data): the
// last one, or with --patience the best, in which case it says on stderr (unless -q) which
// step's weights are written and what the last evaluation gave.
double written_valid_loss(const train::RunResult& r, const Logger& log);

// general.name for an output path: its file name without directory and ".gguf".
std::string model_name(const std::string& path);

// Prints steps (a status line on a terminal, log lines otherwise), writes --metrics and
// --plot.
class StepReporter {
 public:
  // metrics, plot: empty for none; a plot file is checked writable here, before the run.
  // peak_gflops: the sgemm peak MFU is measured against. title: the picture's.
  StepReporter(const Logger& log, const std::string& metrics, double peak_gflops, const std::string& plot = "",
               const std::string& title = "");
  void operator()(const train::StepInfo& s);
  // Writes the --plot picture of the steps so far (atomically); called at each checkpoint.
  void write_plot();
  // Ends the status line, commits the metrics file and writes the picture.
  void finish();

 private:
  const Logger& log_;
  double peak_;
  StatusLine status_;
  std::optional<OutputFile> metrics_;
  std::string plot_, title_;
  std::vector<train::MetricsPoint> points_;  // the steps so far, for --plot
};

}  // namespace lm::tools
