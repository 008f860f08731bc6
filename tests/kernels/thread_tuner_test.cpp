// Tests for lib/kernels/thread_tuner: on a simulated clock, the tuner moves to the count whose
// steps are faster, comes back when the load changes, and on an idle machine spends almost
// every step at the full count.
#include <doctest/doctest.h>

#include <algorithm>
#include <functional>

#include "base/threads.hpp"
#include "kernels/blas.hpp"
#include "kernels/thread_tuner.hpp"

using lm::kernels::ThreadTuner;

namespace {

double g_now = 0;
double fake_clock() { return g_now; }

// Runs `steps` decoding steps whose cost at n threads is cost(n) seconds (all of it inside the
// evaluation); returns how many ran at the full count.
int run(ThreadTuner& t, int steps, const std::function<double(int)>& cost, int rows = 1) {
  int full = 0;
  for (int i = 0; i < steps; ++i) {
    const int n = t.begin(rows);
    full += n == t.max_threads();
    g_now += cost(n);
    t.end();
    g_now += 20e-6;  // sampling between steps
  }
  return full;
}

}  // namespace

TEST_CASE("ThreadTuner follows the load") {
  ThreadTuner t(2, fake_clock);
  // Idle: two threads are faster. Nearly every step runs at two.
  const int full = run(t, 5000, [](int n) { return n == 2 ? 0.5e-3 : 0.9e-3; });
  CHECK(t.current(1) == 2);
  CHECK(full > 5000 * 0.98);
  // A busy process: two threads are eight times slower. The tuner moves to one within the
  // current probe interval (at most 1024 steps after the last probe).
  run(t, 1100, [](int n) { return n == 2 ? 4e-3 : 0.9e-3; });
  CHECK(t.current(1) == 1);
  // Once there it stays: probes of two threads end after one slow step.
  const int at_two = run(t, 2000, [](int n) { return n == 2 ? 4e-3 : 0.9e-3; });
  CHECK(at_two < 2000 * 0.02);
  // The load goes away: back to two.
  run(t, 1100, [](int n) { return n == 2 ? 0.5e-3 : 0.9e-3; });
  CHECK(t.current(1) == 2);
  // Prompt steps are their own kind, and start at the count decoding found.
  CHECK(t.current(512) == 2);
}

TEST_CASE("ThreadTuner: under a load present from the start, one thread within 12 steps") {
  ThreadTuner t(2, fake_clock);
  const auto busy = [](int n) { return n == 2 ? 3e-3 : 1e-3; };
  const int at_two = run(t, 12, busy);
  CHECK(t.current(1) == 1);
  CHECK(at_two <= 7);  // 2 warm-up steps, 4 measured, then the probe's first (uncounted) step
  // Idle from the start: the early probe of one thread ends after its third step.
  ThreadTuner idle(2, fake_clock);
  const int full = run(idle, 64, [](int n) { return n == 2 ? 0.5e-3 : 0.9e-3; });
  CHECK(idle.current(1) == 2);
  CHECK(full >= 64 - 3);
}

TEST_CASE("ThreadTuner: started at fewer threads (a busy machine), it moves up when the load is gone") {
  ThreadTuner t(4, fake_clock, 1);
  CHECK(t.current(1) == 1);
  CHECK(t.current(512) == 1);
  // The load was a passing one: four threads are faster, and a probe finds them.
  run(t, 40, [](int n) { return n == 4 ? 0.3e-3 : n == 2 ? 0.5e-3 : 0.9e-3; });
  CHECK(t.current(1) == 4);
  ThreadTuner mid(4, fake_clock, 3);  // 3 idle cores: start at 2, the largest count not above
  CHECK(mid.current(1) == 2);
  CHECK(lm::idle_cores(2) >= 1);
  CHECK(lm::idle_cores(2) <= 2);
}

TEST_CASE("ThreadTuner: a kind not measured yet starts at the count another kind chose") {
  ThreadTuner t(4, fake_clock);
  run(t, 200, [](int n) { return n == 1 ? 1e-3 : 5e-3; });
  CHECK(t.current(1) == 1);
  CHECK(t.current(512) == 1);
  // One thread off: the tuner only ever answers 1 and never changes anything.
  ThreadTuner one(1, fake_clock);
  CHECK(one.begin(1) == 1);
  one.end();
  CHECK(one.max_threads() == 1);
}

TEST_CASE("ThreadTuner: a step followed by a wait (for input) is not measured") {
  ThreadTuner t(2, fake_clock);
  for (int i = 0; i < 3000; ++i) {
    const int n = t.begin(1);
    g_now += n == 2 ? 0.5e-3 : 0.9e-3;
    t.end();
    if (i % 7 == 0) g_now += 2.0;  // the caller waits for a line now and then
  }
  CHECK(t.current(1) == 2);
  // Under a load the steps between the waits still find one thread.
  for (int i = 0; i < 3000; ++i) {
    const int n = t.begin(1);
    g_now += n == 2 ? 3e-3 : 0.9e-3;
    t.end();
    if (i % 7 == 0) g_now += 2.0;
  }
  CHECK(t.current(1) == 1);
  lm::kernels::set_threads(0);  // leave the process's threads as the other tests expect
}

TEST_CASE("ThreadTuner: a switch to more threads that does not hold is undone, and tried again later and later") {
  // Beside a busy process, threads that slept run fast for a while after they wake (the
  // scheduler favours them), then share their core: a probe of two threads sees 0.43 ms per
  // step, two threads once chosen take 0.95 ms, one thread 0.5 ms throughout.
  ThreadTuner t(2, fake_clock, 1);
  int streak = 0;
  const auto fresh_then_slow = [&](int n) {
    streak = n == 2 ? streak + 1 : 0;
    return n == 1 ? 0.5e-3 : streak <= 10 ? 0.43e-3 : 0.95e-3;
  };
  double spent = 0;
  int at_two = 0;
  for (int i = 0; i < 4000; ++i) {
    const double before = g_now;
    at_two += run(t, 1, fresh_then_slow) == 0 ? 0 : 1;
    spent += g_now - before;
  }
  CHECK(t.current(1) == 1);
  // Every switch to two threads is undone after 9 steps, and the waits grow to 1024 steps:
  // the steps cost at most 4% more than one thread alone would have.
  CHECK(spent < 4000 * (0.5e-3 + 20e-6) * 1.04);
  CHECK(at_two < 4000 * 0.05);
}

TEST_CASE("ThreadTuner: end() puts back the count applied before begin(), so tuned steps nest") {
  // A training step at one thread (the outer tuner's choice under a load) with a teacher's
  // evaluation inside it, which its own tuner runs at two: after the teacher, the step goes on
  // at one thread, and after the step the tool's count is back.
  lm::kernels::set_active_threads(2);
  ThreadTuner outer(2, fake_clock, 1), inner(2, fake_clock);
  CHECK(outer.begin(1) == 1);
  CHECK(lm::kernels::active_threads() == 1);
  CHECK(inner.begin(512) == 2);
  CHECK(lm::kernels::active_threads() == 2);
  inner.end();
  CHECK(lm::kernels::active_threads() == 1);
  outer.end();
  CHECK(lm::kernels::active_threads() == 2);
  lm::kernels::set_threads(0);
}

TEST_CASE("ThreadTuner: a later first probe (training steps) keeps an idle run at the full count") {
  ThreadTuner t(2, fake_clock, 0, 32);
  const auto idle = [](int n) { return n == 2 ? 0.3 : 0.55; };  // seconds per step
  CHECK(run(t, 31, idle) == 31);  // the probe is step 32
  // A load from the start is still found by the first probe: one thread from then on.
  ThreadTuner busy(2, fake_clock, 0, 32);
  run(busy, 45, [](int n) { return n == 2 ? 0.9 : 0.55; });
  CHECK(busy.current(1) == 1);
  lm::kernels::set_threads(0);
}

namespace {
int g_idle = 2;
int fake_idle(int cores) { return std::min(cores, g_idle); }
}  // namespace

TEST_CASE("ThreadTuner: no probe of more threads while other programs run on the cores it would add") {
  // Beside a busy process, the first step of a probe of two threads can wait for a core for a
  // hundred milliseconds; the probe measures nothing worth that, so it is not taken.
  g_idle = 1;
  ThreadTuner t(2, fake_clock, 1, 6, fake_idle);
  const auto busy_probe = [](int n) { return n == 2 ? 0.1 : 0.3e-3; };
  CHECK(run(t, 2000, busy_probe) == 0);
  CHECK(t.current(1) == 1);
  // A probe of fewer threads is not held back: at two threads under the same load, the tuner
  // still finds one.
  ThreadTuner at_two(2, fake_clock, 2, 6, fake_idle);
  run(at_two, 40, [](int n) { return n == 2 ? 3e-3 : 0.3e-3; });
  CHECK(at_two.current(1) == 1);
  // The load ends: the next probe interval (32 steps: skipped probes do not lengthen it) finds
  // two threads faster.
  g_idle = 2;
  run(t, 40, [](int n) { return n == 2 ? 0.2e-3 : 0.3e-3; });
  CHECK(t.current(1) == 2);
  lm::kernels::set_threads(0);
}

TEST_CASE("ThreadTuner: on an idle machine a probe of fewer threads costs one step") {
  // 30 prompt steps of 512 rows: two threads 40 ms, one 76 ms. The probe's first step counts
  // (there are no threads to wake), and one step 1.5 times as slow ends it.
  ThreadTuner t(2, fake_clock);
  const int full = run(t, 30, [](int n) { return n == 2 ? 40e-3 : 76e-3; }, 512);
  CHECK(full == 29);
  CHECK(t.current(512) == 2);
  lm::kernels::set_threads(0);
}
