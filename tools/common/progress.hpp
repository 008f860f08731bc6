// The status line of long jobs: one line on stderr, rewritten in place with '\r', shown only
// when stderr is a terminal and the tool is not quiet, so logs and pipes never see it.
// lm-train's step line and the progress of lm-eval and lm-quantize both go through it.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

#include "base/log.hpp"

namespace lm::tools {

// "42s", "3m05s", "1h10m".
std::string human_time(double seconds);

// The sum of the sizes of `paths` ('-' = stdin) if all are regular files, else 0 (unknown: a pipe).
uint64_t total_file_bytes(const std::vector<std::string>& paths);
// True if one of `paths` is stdin ('-') and stdin is a terminal: someone is typing the input,
// and a progress line would only get in the way.
bool reads_terminal(const std::vector<std::string>& paths);

// The one rewritable line. Does nothing when not enabled.
class StatusLine {
 public:
  // Enabled when stderr is a terminal, `log` is not quiet, and `wanted`.
  explicit StatusLine(const Logger& log, bool wanted = true);
  ~StatusLine() { clear(); }
  StatusLine(const StatusLine&) = delete;
  StatusLine& operator=(const StatusLine&) = delete;
  bool enabled() const { return enabled_; }
  // Replaces the line with `text`.
  void show(const std::string& text);
  // Ends the line shown so it stays on the screen; the next show() starts a new one.
  void keep();
  // Erases the line shown.
  void clear();

 private:
  bool enabled_, shown_ = false;
};

// done/total with the rate and the time left, on a StatusLine, at most ten times a second:
//   "lm-eval perplexity: 1.2/3.4 MiB (35%), 9070 tokens/s, ETA 2m05s"
// `total` 0 means unknown (a pipe): then only what is done and the rate. Erased by finish()
// or when destroyed (an error message then starts on a clean line).
class Progress {
 public:
  enum class Unit { Bytes, Count };
  // label: what is going on; unit: of done and total (Count shows them with `count_name`);
  // rate_name: what update()'s `items` count, per second ("tokens", "lines"); empty: the rate
  // is of `done` itself (MiB/s, or count_name/s).
  Progress(const Logger& log, std::string label, uint64_t total, Unit unit, std::string count_name,
           std::string rate_name, bool wanted = true);
  bool enabled() const { return line_.enabled(); }
  // A new label (the next file) is drawn at the next update, however soon.
  void set_label(std::string label) {
    if (label != label_) drawn_ = false;
    label_ = std::move(label);
  }
  void set_total(uint64_t total) { total_ = total; }
  // How far it is (in the unit of total) and how many rate items are done so far.
  void update(uint64_t done, uint64_t items);
  void finish() { line_.clear(); }

 private:
  StatusLine line_;
  std::string label_, count_name_, rate_name_;
  uint64_t total_;
  Unit unit_;
  std::chrono::steady_clock::time_point start_, last_;
  bool drawn_ = false;
};

}  // namespace lm::tools
