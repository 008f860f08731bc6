#include "kernels/thread_tuner.hpp"

#include <algorithm>
#include <chrono>
#include <memory>

#include "base/threads.hpp"
#include "kernels/blas.hpp"

namespace lm::kernels {

namespace {
double now_s() { return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count(); }
int every_core(int cores) { return cores; }
}  // namespace

ThreadTuner::ThreadTuner(int max_threads, double (*clock)(), int start, int first_probe, int (*idle)(int))
    : clock_(clock ? clock : now_s), idle_(idle ? idle : every_core) {
  for (int n = max_threads; n > 1; n /= 2) counts_.push_back(n);
  if (!counts_.empty()) counts_.push_back(1);
  int first = 0;
  while (start > 0 && first + 1 < int(counts_.size()) && counts_[size_t(first)] > start) ++first;
  for (Kind& k : kinds_) k.cur = first, k.next_alt = first == 0 ? 1 : 0, k.until_probe = std::max(first_probe, 3);
}

int ThreadTuner::kind_of(int rows) {
  return rows <= 1 ? 0 : rows <= 2 ? 1 : rows <= 4 ? 2 : rows <= 8 ? 3 : rows <= 64 ? 4 : 5;
}

int ThreadTuner::begin(int rows) {
  if (counts_.empty()) return 1;
  const double t = clock_();
  // A step followed by a wait (for input, for a request) is not measured: the wait is the same
  // at any count, and in a window of 16 steps one or two of them outweigh the difference.
  if (last_kind_ >= 0 && last_end_ >= last_begin_ && t - last_end_ <= 0.005) record((t - last_begin_) / last_rows_);
  const int kind = kind_of(rows);
  Kind& k = kinds_[size_t(kind)];
  if (k.probe < 0 && --k.until_probe <= 0) {  // start a probe of the next other count
    if (k.next_alt == k.cur || k.next_alt >= int(counts_.size())) k.next_alt = k.cur == 0 ? 1 : 0;
    const int alt = k.next_alt;
    k.next_alt = (k.next_alt + 1) % int(counts_.size());
    if (counts_[size_t(alt)] > counts_[size_t(k.cur)] && idle_(counts_[0]) < counts_[size_t(alt)]) {
      k.until_probe = k.interval;  // other programs run on the cores it would add: not now
    } else {
      k.probe = alt;
      k.probe_left = int(k.probe_s.size());
    }
  }
  last_kind_ = kind, last_rows_ = std::max(rows, 1), last_probe_ = k.probe >= 0;
  const int n = counts_[size_t(last_probe_ ? k.probe : k.cur)];
  before_ = active_threads();
  set_active_threads(n);
  last_begin_ = clock_();
  last_end_ = 0;
  return n;
}

void ThreadTuner::end() {
  if (counts_.empty()) return;
  last_end_ = clock_();
  // Code outside the tuned steps runs at the count it ran at before: the full count in a tool
  // (sampling, quantizing), the training step's when a teacher evaluates inside one.
  set_active_threads(before_ > 0 ? before_ : counts_[0]);
}

void ThreadTuner::record(double per_row) {
  Kind& k = kinds_[size_t(last_kind_)];
  k.measured = true;
  if (!last_probe_ && k.warmup > 0) {
    --k.warmup;
    return;
  }
  if (!last_probe_) {
    if (k.probe >= 0) return;  // a step begun before the probe started
    k.recent[size_t(k.n_recent % int(k.recent.size()))] = per_row;
    ++k.n_recent;
    if (k.confirm > 0 && --k.confirm == 0) {  // a switch to more threads: did it hold?
      double mean = 0;  // steps 1..8 after it (the first wakes the threads)
      for (int i = 1; i < k.n_recent; ++i) mean += k.recent[size_t(i)] / (k.n_recent - 1);
      if (mean > 1.1 * k.prev_s) {
        k.cur = k.prev;
        k.n_recent = 0;
        k.backoff = std::min(k.backoff * 4, 1024);
        k.interval = k.backoff;
        k.until_probe = k.interval;
      } else {
        k.backoff = 32;
      }
    }
    return;
  }
  const size_t at = k.probe_s.size() - size_t(k.probe_left);
  k.probe_s[at] = per_row;
  const int n = std::min(k.n_recent, int(k.recent.size()));
  double cur = 0;
  for (int i = 0; i < n; ++i) cur += k.recent[size_t(i)] / n;
  // The first step of a probe of more threads wakes them, so it is not counted; a probe of
  // fewer threads has none to wake.
  const bool fewer = k.probe > k.cur;
  const size_t first = fewer ? 0 : 1;
  const size_t counted = at + 1 - first;
  // The mean of the probe's counted steps, against the mean of the current count's recent
  // steps: means, because on a loaded machine most steps are quick and a few wait
  // milliseconds for a core, and those few are the loss.
  double alt = 0;
  for (size_t i = first; i <= at; ++i) alt += k.probe_s[i] / double(counted);
  // Probe steps a quarter slower than the current mean (over at least two), or one twice as
  // slow (one and a half for fewer threads), or a first step of more threads eight times as
  // slow, end the probe: a count worth taking is faster from its first steps, and on a loaded
  // machine a step with too many threads can take a hundred times longer. On an idle machine a
  // probe of fewer threads is the cost (one thread ran prompt steps 1.9x slower than two), and
  // in a run of 30 prompt steps each probe step cost 3%.
  const bool hopeless = n > 0 && ((counted >= 2 && alt > 1.25 * cur) ||
                                  (counted >= 1 && alt > (fewer ? 1.5 : 2.0) * cur) ||
                                  (!fewer && at == 0 && per_row > 8 * cur));
  // Three steps under 0.7 of the current mean decide it the other way: a busy process beside
  // the threads makes the full count that much slower, and every step waited costs.
  const bool decisive = counted >= 3 && n > 0 && alt < 0.7 * cur;
  if (--k.probe_left > 0 && !hopeless && !decisive) return;
  if (n == 0 || counted == 0) cur = alt;  // nothing to compare: keep the current count
  if (alt < 0.9 * cur) {
    if (k.probe < k.cur && n > 0) {  // more threads: watched over the next steps
      k.confirm = 9;
      k.prev = k.cur, k.prev_s = cur;
    }
    k.cur = k.probe;
    // Kinds not measured yet start from this count: the load that decided it applies to them.
    for (Kind& o : kinds_)
      if (!o.measured) o.cur = k.probe;
    k.n_recent = 0;
    k.interval = 32;
  } else {
    // A hopeless probe (the other count is far slower: a load beside the threads) waits four
    // times as long for the next; one that was merely not faster, twice.
    k.interval = std::min(k.interval * (hopeless ? 4 : 2), 1024);
  }
  k.until_probe = k.interval;
  k.probe = -1;
}

namespace {
int g_applied = 0;
std::unique_ptr<ThreadTuner> g_tuner, g_training_tuner;
}  // namespace

int active_threads() { return g_applied; }

void set_active_threads(int n) {
  if (n == g_applied) return;
  g_applied = n;
  apply_threads(n);
}

int set_threads(int threads) {
  const int n = resolve_threads(threads);
  g_applied = n;
  apply_threads(n);
  const bool tune = threads <= 0 && n > 1;
  const int start = tune ? idle_cores(n) : n;
  g_tuner = tune ? std::make_unique<ThreadTuner>(n, nullptr, start, 6, idle_cores) : nullptr;
  g_training_tuner = tune ? std::make_unique<ThreadTuner>(n, nullptr, start, 32, idle_cores) : nullptr;
  return n;
}

ThreadTuner* inference_tuner() { return g_tuner.get(); }
ThreadTuner* training_tuner() { return g_training_tuner.get(); }

}  // namespace lm::kernels
