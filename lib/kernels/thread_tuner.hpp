// The thread count of inference steps, chosen by measuring (issue: a shared machine).
//
// On a machine where other programs run, a parallel step is as slow as its slowest thread: with
// one busy process beside two decoding threads on two cores, every barrier waits for a thread
// the scheduler has set aside, and decoding ran 8x slower than on one thread. The best count
// depends on the load, which changes while a tool runs, so it is measured: each kind of step
// (by rows: decoding 1, 2, 3-4, 5-8 rows; prompts 9-64 and more) runs at the count that was
// fastest, and now and then a few steps at another count check that it still is. A probe that
// confirms the choice doubles the interval to the next (32 steps up to 1024), so on an idle
// machine almost every step runs at the full count; one that finds a faster count switches to it
// (at once when its steps take under 0.7 of the current count's).
//
// Used only when the user did not fix the count: `-t 0` (the default) is "up to every core,
// as fast as the machine allows now"; `-t N` is exactly N threads.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <vector>

namespace lm::kernels {

class ThreadTuner {
 public:
  // Counts tried: max_threads, then halves down to 1. max_threads 1 turns tuning off. `clock`
  // (seconds) is the steady clock unless a test gives its own. Steps start at the largest
  // count not above `start` (0: max_threads); set_threads() starts at the cores no other
  // runnable thread takes (idle_cores), so a tool started beside a busy process does not spend
  // its first steps waiting at barriers. Step `first_probe` is the first probe of
  // another count (the first 2 steps are not measured): soon for decoding steps of a millisecond,
  // later for training steps of a second, where a probe of a slower count costs more.
  //
  // A probe of more threads than the current count is skipped (and tried again after the probe
  // interval) while `idle(max_threads)` says fewer cores than that count are free of other
  // programs' runnable threads; null: every core is (tests). Beside a busy process such a probe
  // gains nothing (beside one busy loop on two cores, one thread was the fastest count for
  // decoding, prompts and training in every run) and can cost far more than the whole run: the
  // first step of a probe of two threads took 95-181 ms in 4 of 8 runs of 256 decoding steps of
  // 0.3 ms, halving their speed.
  explicit ThreadTuner(int max_threads, double (*clock)() = nullptr, int start = 0, int first_probe = 6,
                       int (*idle)(int) = nullptr);
  // The count for the next step of `rows` rows; it is applied (set_active_threads) before this
  // returns. Call end() when the step's evaluation is done: it puts back the count that was
  // applied before begin(), so a tuned step nested in another (a teacher's evaluation inside a
  // training step) leaves the outer step at its own count.
  //
  // A step's cost is the time from its begin() to the next begin(): the evaluation and what
  // the caller does between evaluations (sampling, output). Threads that wait at the end of a
  // parallel region spin for a while, and on a loaded machine they take the core from the
  // serial work in between, so the evaluation's time alone hides the loss. A step followed by
  // more than 5 ms outside evaluations (waiting for input or a request; a training step's
  // validation or checkpoint) is not measured.
  int begin(int rows);
  void end();
  int max_threads() const { return counts_.empty() ? 1 : counts_[0]; }
  // The count steps of `rows` rows run at now (outside probes).
  int current(int rows) const { return counts_.empty() ? 1 : counts_[size_t(kinds_[size_t(kind_of(rows))].cur)]; }

 private:
  struct Kind {
    int cur = 0;                  // index into counts_
    std::array<double, 16> recent{};  // seconds per row of the last steps at cur (ring)
    int n_recent = 0;
    // The first probe comes after 4 measured steps, so a load present from the start costs
    // a few slow steps, not dozens; the first 2 steps of a kind are not measured (they fault in
    // the cache and start the threads).
    int until_probe = 6, interval = 32, warmup = 2;
    bool measured = false;
    int probe = -1, probe_left = 0;  // a probe under way: the count tried and steps left
    std::array<double, 9> probe_s{};  // the first step after a switch wakes threads: not counted
    int next_alt = 1;  // the next count to probe
    // A switch to more threads is checked over the steps after it. Beside a busy process, a
    // probe of more threads can look faster than it is: threads that have slept are favoured by
    // the scheduler for a while after they wake (measured: 2 threads 416-455 us per step in a
    // probe, 934-975 us once chosen, 1 thread 480-598 us). If the 8 steps after the first run
    // slower than the count left (by a tenth), the tuner goes back to it and waits four times as
    // long (up to 1024 steps) before probing again.
    int confirm = 0;     // steps left to watch (0: none)
    int prev = 0;        // the count left, and its mean seconds per row
    double prev_s = 0;
    int backoff = 32;    // the wait after a switch that did not hold
  };
  static int kind_of(int rows);
  void record(double per_row);
  std::vector<int> counts_;
  std::array<Kind, 6> kinds_;
  // The last step begun: its kind (-1: none to record), rows, whether it was a probe, and when
  // it began and its evaluation ended (seconds on a steady clock).
  int last_kind_ = -1, last_rows_ = 1;
  bool last_probe_ = false;
  double last_begin_ = 0, last_end_ = 0;
  int before_ = 0;  // the count applied when the last step began (0: none)
  double (*clock_)();
  int (*idle_)(int);
};

// Applies n threads to our OpenMP loops and OpenBLAS when it differs from the last count
// applied (cheap when it does not).
void set_active_threads(int n);

// The tuner of this process's inference steps, or null when the thread count is fixed
// (set_threads() with a positive count, or one core). Not thread-safe: one thread evaluates.
ThreadTuner* inference_tuner();
// The tuner of training steps (train::run_loop: one optimizer step is one tuned step), null
// under the same conditions. Its own instance: a training step is a different kind of work from
// the inference steps a teacher evaluates inside it. Training may follow the load because its
// results do not depend on the thread count (docs/architecture.md); its first probe is step 32.
ThreadTuner* training_tuner();

// The count applied now (0 before set_threads()).
int active_threads();

}  // namespace lm::kernels
